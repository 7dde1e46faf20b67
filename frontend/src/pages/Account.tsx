import { type FormEvent, useState } from "react";
import { ApiProblem } from "../api/problem";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { Field } from "../components/Field";
import { ProblemAlert } from "../components/ProblemAlert";
import { needsPassword, PasswordAgain } from "../components/Reauth";
import { useAction, useLoad, when } from "../hooks";
import { useSession, useSignedIn } from "../session";

/** The account: change its email or password (each needs the current password), or delete
 * it (the password again when the sign-in is not recent). */
export function Account() {
  const { run, setEmail: rememberEmail, signOut } = useSession();
  const session = useSignedIn();
  const me = useLoad(() => run((api) => api.GET("/v1/users/me")), []);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [current, setCurrent] = useState("");
  const [saved, setSaved] = useState<string | null>(null);
  const update = useAction();
  const remove = useAction();
  const [deletePassword, setDeletePassword] = useState("");
  const askPassword = needsPassword(session, remove.error);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setSaved(null);
    const user = await update.run(() =>
      run((api) =>
        api.PATCH("/v1/users/me", {
          body: {
            current_password: current,
            ...(email ? { email } : {}),
            ...(password ? { password } : {}),
          },
        }),
      ),
    );
    if (user) {
      me.setData(user);
      rememberEmail(user.email);
      setSaved(password ? "Password changed." : "Email changed.");
      setEmail("");
      setPassword("");
      setCurrent("");
    }
  }

  async function destroy() {
    const done = await remove.run(async () => {
      await run((api) =>
        api.DELETE("/v1/users/me", {
          body: askPassword && deletePassword ? { current_password: deletePassword } : {},
        }),
      );
      return true;
    });
    // Signed out: the sign-in page follows.
    if (done) signOut();
  }

  const problem = update.error instanceof ApiProblem ? update.error : null;
  return (
    <main>
      <h1>Account</h1>
      <ProblemAlert error={me.error} />
      {me.data ? (
        <p>
          Signed in as <strong>{me.data.email}</strong> · member since {when(me.data.created_at)}
        </p>
      ) : null}
      <form onSubmit={submit} aria-labelledby="change" aria-busy={update.pending}>
        <h2 id="change">Change email or password</h2>
        <Field
          label="New email"
          type="email"
          autoComplete="email"
          value={email}
          onChange={setEmail}
          error={problem?.fieldError("email")}
        />
        <Field
          label="New password"
          type="password"
          autoComplete="new-password"
          hint="8 characters or more; leave empty to keep it."
          value={password}
          onChange={setPassword}
          error={problem?.fieldError("password")}
        />
        <Field
          label="Current password"
          type="password"
          autoComplete="current-password"
          value={current}
          onChange={setCurrent}
          error={problem?.fieldError("current_password")}
          required
        />
        <ProblemAlert error={update.error} />
        {saved ? <p role="status">{saved}</p> : null}
        <button type="submit" disabled={update.pending || (!email && !password)}>
          {update.pending ? "Saving…" : "Save"}
        </button>
      </form>
      <section aria-labelledby="delete-account">
        <h2 id="delete-account">Delete the account</h2>
        <p>Deletes your items, API keys and webhook endpoints. This cannot be undone.</p>
        <ProblemAlert error={remove.error} />
        <ConfirmDelete
          label="Delete account"
          confirm="Yes, delete my account"
          pending={remove.pending}
          onConfirm={destroy}
          question={
            askPassword ? (
              <PasswordAgain value={deletePassword} onChange={setDeletePassword} />
            ) : null
          }
        />
      </section>
    </main>
  );
}
