import {
  createContext,
  type ReactNode,
  useCallback,
  useContext,
  useMemo,
  useRef,
  useState,
} from "react";
import { type Api, type ApiHooks, call, createApi } from "./api/client";
import type { ApiProblem } from "./api/problem";

/** A signed-in user: the access token lives in memory and in `sessionStorage` (it survives a
 * reload of this tab, not the tab), never in a cookie. */
export interface Session {
  token: string;
  email: string;
  /** When the token was issued (ms since the epoch): re-authentication is judged from it. */
  signedInAt: number;
  expiresAt: number;
}

const STORAGE_KEY = "basalt.session";

function stored(): Session | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (raw === null) return null;
    const session = JSON.parse(raw) as Session;
    return session.expiresAt > Date.now() ? session : null;
  } catch {
    return null;
  }
}

interface SessionState {
  session: Session | null;
  /** Why the last session ended, when the API ended it (shown on the sign-in page). */
  ended: string | null;
  /** The user signed out here (the sign-in page then does not lead back where they were). */
  signedOut: boolean;
  api: Api;
  /** Runs one call, throwing its problem; a refused token signs the user out. */
  run<T>(
    request: (api: Api) => Promise<{ data?: T; error?: unknown; response: Response }>,
  ): Promise<T>;
  signIn(token: string, email: string, expiresInSeconds: number): void;
  signOut(): void;
  setEmail(email: string): void;
}

const SessionContext = createContext<SessionState | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(stored);
  const [ended, setEnded] = useState<string | null>(null);
  const [signedOut, setSignedOut] = useState(false);
  const current = useRef(session);
  current.current = session;

  const save = useCallback((next: Session | null) => {
    current.current = next;
    setSession(next);
    if (next === null) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  }, []);

  const hooks = useMemo<ApiHooks>(
    () => ({
      token: () => current.current?.token ?? null,
      unauthorized: (problem: ApiProblem) => {
        setEnded(problem.problem.detail ?? "Your session has ended. Sign in again.");
        save(null);
      },
    }),
    [save],
  );
  const api = useMemo(() => createApi(hooks), [hooks]);

  const value = useMemo<SessionState>(
    () => ({
      session,
      ended,
      signedOut,
      api,
      run: (request) => call(hooks, () => request(api)),
      signIn: (token, email, expiresIn) => {
        setEnded(null);
        setSignedOut(false);
        const now = Date.now();
        save({ token, email, signedInAt: now, expiresAt: now + expiresIn * 1000 });
      },
      signOut: () => {
        setEnded(null);
        setSignedOut(true);
        save(null);
      },
      setEmail: (email) => {
        if (current.current) save({ ...current.current, email });
      },
    }),
    [session, ended, signedOut, api, hooks, save],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (state === null) throw new Error("useSession outside SessionProvider");
  return state;
}

/** The signed-in session; only under `RequireSession`. */
export function useSignedIn(): Session {
  const { session } = useSession();
  if (session === null) throw new Error("useSignedIn without a session");
  return session;
}
