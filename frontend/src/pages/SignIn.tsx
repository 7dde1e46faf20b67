import { type FormEvent, useState } from "react";
import { Link, useLocation, useNavigate } from "react-router";
import { Field } from "../components/Field";
import { ProblemAlert } from "../components/ProblemAlert";
import { useAction } from "../hooks";
import { useSession } from "../session";

/** Where to go after signing in: where the user was sent from, else the items. */
function destination(state: unknown): string {
  const from = (state as { from?: string } | null)?.from;
  return from?.startsWith("/") && !from.startsWith("/sign-in") ? from : "/items";
}

export function SignIn() {
  const { run, signIn, ended } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const token = await action.run(() =>
      run((api) => api.POST("/v1/auth/token", { body: { email, password } })),
    );
    if (token) {
      signIn(token.access_token, email.trim(), token.expires_in);
      navigate(destination(location.state), { replace: true });
    }
  }

  return (
    <main className="narrow">
      <h1>Sign in</h1>
      {ended ? (
        <p role="status" className="notice">
          {ended} What you were typing is kept.
        </p>
      ) : null}
      <form onSubmit={submit} aria-busy={action.pending}>
        <Field
          label="Email"
          type="email"
          autoComplete="username"
          value={email}
          onChange={setEmail}
          required
        />
        <Field
          label="Password"
          type="password"
          autoComplete="current-password"
          value={password}
          onChange={setPassword}
          required
        />
        <ProblemAlert error={action.error} />
        <button type="submit" disabled={action.pending}>
          {action.pending ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <p>
        No account yet? <Link to="/register">Register</Link>
      </p>
    </main>
  );
}

export function Register() {
  const { run, signIn } = useSession();
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const token = await action.run(async () => {
      await run((api) => api.POST("/v1/auth/register", { body: { email, password } }));
      return run((api) => api.POST("/v1/auth/token", { body: { email, password } }));
    });
    if (token) {
      signIn(token.access_token, email.trim(), token.expires_in);
      navigate("/items", { replace: true });
    }
  }

  const problem = action.error as { fieldError?: (f: string) => string | undefined } | null;
  return (
    <main className="narrow">
      <h1>Create an account</h1>
      <form onSubmit={submit} aria-busy={action.pending}>
        <Field
          label="Email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={setEmail}
          error={problem?.fieldError?.("email")}
          required
        />
        <Field
          label="Password"
          type="password"
          autoComplete="new-password"
          hint="8 characters or more (at most 72 bytes)."
          value={password}
          onChange={setPassword}
          error={problem?.fieldError?.("password")}
          minLength={8}
          required
        />
        <ProblemAlert error={action.error} />
        <button type="submit" disabled={action.pending}>
          {action.pending ? "Creating…" : "Create account"}
        </button>
      </form>
      <p>
        Already registered? <Link to="/sign-in">Sign in</Link>
      </p>
    </main>
  );
}
