import { ApiProblem, REAUTHENTICATION_REQUIRED } from "../api/problem";
import type { Session } from "../session";
import { Field } from "./Field";

/** The API's re-authentication window (`REAUTH_WINDOW_SECONDS`, 300 s unless configured). */
const WINDOW_SECONDS = Number(import.meta.env.VITE_REAUTH_WINDOW_SECONDS ?? 300);

/** Whether a sensitive operation needs the password again: the sign-in is older than the
 * window, or the API said so. */
export function needsPassword(session: Session, error: unknown): boolean {
  if (error instanceof ApiProblem && error.problem.type === REAUTHENTICATION_REQUIRED) return true;
  return Date.now() - session.signedInAt > WINDOW_SECONDS * 1000;
}

export function PasswordAgain({
  value,
  onChange,
}: {
  value: string;
  onChange(value: string): void;
}) {
  return (
    <Field
      label="Your password"
      type="password"
      autoComplete="current-password"
      hint="You signed in a while ago: confirm it is you."
      value={value}
      onChange={onChange}
      required
    />
  );
}
