import createClient, { type Client } from "openapi-fetch";
import { type ApiProblem, problemFrom, unreachable } from "./problem";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Api = Client<paths>;

/** Where the API is: `VITE_API_URL`, or the host's default port on this machine. */
export const API_URL: string = import.meta.env.VITE_API_URL ?? "http://localhost:8001";

export interface ApiHooks {
  /** The access token to send, if signed in. */
  token(): string | null;
  /** Called when the API refused the token (expired or revoked): the session is over. */
  unauthorized(problem: ApiProblem): void;
}

/** The typed client for `openapi.json`, sending the session's token (never a cookie). */
export function createApi(hooks: ApiHooks, fetchImpl: typeof fetch = globalThis.fetch): Api {
  const client = createClient<paths>({
    baseUrl: API_URL,
    fetch: (request) => fetchImpl(request),
    credentials: "omit",
  });
  client.use({
    onRequest({ request }) {
      const token = hooks.token();
      if (token !== null) request.headers.set("Authorization", `Bearer ${token}`);
      return request;
    },
  });
  return client;
}

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of a call, or its problem thrown as an [`ApiProblem`]; a 401 on a signed-in call
 * ends the session through `hooks.unauthorized`. */
export async function call<T>(hooks: ApiHooks, request: () => Promise<Outcome<T>>): Promise<T> {
  let outcome: Outcome<T>;
  try {
    outcome = await request();
  } catch (cause) {
    throw unreachable(API_URL, cause);
  }
  const { data, error, response } = outcome;
  if (response.ok) return data as T;
  const problem = problemFrom(response, error);
  if (response.status === 401 && hooks.token() !== null) hooks.unauthorized(problem);
  throw problem;
}

/** A fresh `Idempotency-Key`: one per intended change, reused when it is retried. */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}
