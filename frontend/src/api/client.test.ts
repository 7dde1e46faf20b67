import { describe, expect, it, vi } from "vitest";
import { call, createApi } from "./client";
import { ApiProblem } from "./problem";

function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

describe("the client wrapper", () => {
  it("sends the session's token as a bearer header and never cookies", async () => {
    const fetch = vi.fn(async (_request: Request) => json(200, { items: [], next_cursor: null }));
    const hooks = { token: () => "tok", unauthorized: vi.fn() };
    const api = createApi(hooks, fetch as unknown as typeof globalThis.fetch);
    const page = await call(hooks, () => api.GET("/v1/items", { params: { query: { limit: 5 } } }));
    expect(page.items).toEqual([]);
    const request = fetch.mock.calls[0]?.[0] as Request;
    expect(request.headers.get("authorization")).toBe("Bearer tok");
    expect(request.credentials).toBe("omit");
    expect(new URL(request.url).search).toBe("?limit=5");
  });

  it("throws the problem, and a refused token ends the session", async () => {
    const problem = {
      type: "about:blank",
      title: "Unauthorized",
      status: 401,
      detail: "invalid or expired token",
      request_id: "r-401",
    };
    const fetch = vi.fn(async () => json(401, problem));
    const hooks = { token: () => "old", unauthorized: vi.fn() };
    const api = createApi(hooks, fetch as unknown as typeof globalThis.fetch);
    const error = await call(hooks, () => api.GET("/v1/users/me")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiProblem);
    expect((error as ApiProblem).requestId).toBe("r-401");
    expect(hooks.unauthorized).toHaveBeenCalledOnce();
  });

  it("a 401 while signed out (a wrong password) is only an error", async () => {
    const fetch = vi.fn(async () =>
      json(401, { type: "about:blank", title: "Unauthorized", status: 401 }),
    );
    const hooks = { token: () => null, unauthorized: vi.fn() };
    const api = createApi(hooks, fetch as unknown as typeof globalThis.fetch);
    await expect(
      call(hooks, () => api.POST("/v1/auth/token", { body: { email: "a@b.c", password: "x" } })),
    ).rejects.toBeInstanceOf(ApiProblem);
    expect(hooks.unauthorized).not.toHaveBeenCalled();
  });

  it("a network failure is a problem naming the API", async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError("Failed to fetch");
    });
    const hooks = { token: () => null, unauthorized: vi.fn() };
    const api = createApi(hooks, fetch as unknown as typeof globalThis.fetch);
    const error = (await call(hooks, () => api.GET("/health")).catch(
      (e: unknown) => e,
    )) as ApiProblem;
    expect(error.problem.title).toBe("The API cannot be reached");
  });
});
