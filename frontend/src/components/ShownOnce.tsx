import type { ReactNode } from "react";
import { CopyButton } from "./CopyButton";

/** A secret the API shows only in this response (an API key, a signing secret): the value,
 * a copy button, and a button to put it away. */
export function ShownOnce({
  id,
  heading,
  children,
  value,
  copyLabel,
  testId,
  onDone,
}: {
  id: string;
  heading: string;
  children: ReactNode;
  value: string;
  copyLabel: string;
  testId: string;
  onDone(): void;
}) {
  return (
    <section aria-labelledby={id} className="secret">
      <h2 id={id}>{heading}</h2>
      <p>{children}</p>
      <p>
        <code data-testid={testId}>{value}</code> <CopyButton text={value} label={copyLabel} />
      </p>
      <button type="button" onClick={onDone}>
        I have stored it
      </button>
    </section>
  );
}
