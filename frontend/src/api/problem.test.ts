import { describe, expect, it } from "vitest";
import { problemFrom, retryAfter, unreachable } from "./problem";

describe("retryAfter", () => {
  it("reads seconds, an HTTP date, or RateLimit-Reset", () => {
    expect(retryAfter(new Headers({ "retry-after": "17" }))).toBe(17);
    const now = Date.parse("2026-12-01T00:00:00Z");
    expect(retryAfter(new Headers({ "retry-after": "Tue, 01 Dec 2026 00:01:00 GMT" }), now)).toBe(
      60,
    );
    expect(retryAfter(new Headers({ "ratelimit-reset": "5" }))).toBe(5);
    expect(retryAfter(new Headers())).toBeNull();
    expect(retryAfter(new Headers({ "retry-after": "soon" }))).toBeNull();
  });
});

describe("problemFrom", () => {
  it("keeps the API's problem and its request id", () => {
    const response = new Response(null, {
      status: 422,
      headers: { "x-request-id": "from-header" },
    });
    const p = problemFrom(response, {
      type: "about:blank",
      title: "Unprocessable Entity",
      status: 422,
      request_id: "req-1",
      errors: [{ field: "title", message: "must be 1 to 200 characters" }],
    });
    expect(p.status).toBe(422);
    expect(p.requestId).toBe("req-1");
    expect(p.fieldError("title")).toBe("must be 1 to 200 characters");
    expect(p.fieldError("description")).toBeUndefined();
  });

  it("makes a problem of a body that is not one, with the header's request id", () => {
    const response = new Response("<html>", {
      status: 502,
      statusText: "Bad Gateway",
      headers: { "x-request-id": "edge-7", "retry-after": "3" },
    });
    const p = problemFrom(response, "<html>");
    expect(p.problem.title).toBe("Bad Gateway");
    expect(p.requestId).toBe("edge-7");
    expect(p.retryAfterSeconds).toBe(3);
  });

  it("names the API when it cannot be reached", () => {
    const p = unreachable("http://localhost:8001", new TypeError("Failed to fetch"));
    expect(p.status).toBe(0);
    expect(p.problem.detail).toBe("http://localhost:8001: Failed to fetch");
  });
});
