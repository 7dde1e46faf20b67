import type { components } from "./schema";

export type Problem = components["schemas"]["Problem"];

/** A failed API call: the server's problem+json (or one made up for a network failure), the
 * request id that ties it to the server's logs, and when to retry after a 429. */
export class ApiProblem extends Error {
  readonly status: number;
  readonly problem: Problem;
  readonly requestId: string | null;
  readonly retryAfterSeconds: number | null;

  constructor(
    status: number,
    problem: Problem,
    requestId: string | null,
    retryAfter: number | null,
  ) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = "ApiProblem";
    this.status = status;
    this.problem = problem;
    this.requestId = requestId;
    this.retryAfterSeconds = retryAfter;
  }

  /** The problem of one field of a validation failure (422), if any. */
  fieldError(field: string): string | undefined {
    return this.problem.errors?.find((e) => e.field === field)?.message;
  }
}

/** The problem type the API uses when an operation needs a recent sign-in or the password. */
export const REAUTHENTICATION_REQUIRED = "https://basalt.dev/problems/reauthentication-required";

function isProblem(body: unknown): body is Problem {
  return (
    typeof body === "object" &&
    body !== null &&
    typeof (body as { title?: unknown }).title === "string" &&
    typeof (body as { status?: unknown }).status === "number"
  );
}

/** Seconds until a retry may succeed: `Retry-After` (seconds or an HTTP date), else
 * `RateLimit-Reset`. */
export function retryAfter(headers: Headers, now: number = Date.now()): number | null {
  const value = headers.get("retry-after") ?? headers.get("ratelimit-reset");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/** The problem a response carries, or one made from its status when its body is not one. */
export function problemFrom(response: Response, body: unknown): ApiProblem {
  const requestId =
    (isProblem(body) ? body.request_id : null) ?? response.headers.get("x-request-id");
  const problem: Problem = isProblem(body)
    ? body
    : {
        type: "about:blank",
        title: response.statusText || `HTTP ${response.status}`,
        status: response.status,
        request_id: requestId,
      };
  return new ApiProblem(response.status, problem, requestId, retryAfter(response.headers));
}

/** The problem of a request that got no answer at all. */
export function unreachable(apiUrl: string, cause: unknown): ApiProblem {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new ApiProblem(
    0,
    {
      type: "about:blank",
      title: "The API cannot be reached",
      status: 0,
      detail: `${apiUrl}: ${detail}`,
      request_id: null,
    },
    null,
    null,
  );
}
