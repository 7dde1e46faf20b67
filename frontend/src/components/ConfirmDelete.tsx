import { type ReactNode, useState } from "react";

/** A destructive button that asks once more: `label` first, then `question` (and whatever the
 * confirmation needs, e.g. the password) with `confirm` and a way back. */
export function ConfirmDelete({
  label,
  confirm,
  question,
  pending,
  onConfirm,
}: {
  label: string;
  confirm: string;
  question: ReactNode;
  pending: boolean;
  onConfirm(): void;
}) {
  const [confirming, setConfirming] = useState(false);
  if (!confirming) {
    return (
      <button type="button" className="danger" onClick={() => setConfirming(true)}>
        {label}
      </button>
    );
  }
  return (
    <div className="confirm">
      {question}
      <button type="button" className="danger" disabled={pending} onClick={onConfirm}>
        {pending ? "Deleting…" : confirm}
      </button>
      <button type="button" onClick={() => setConfirming(false)}>
        Keep it
      </button>
    </div>
  );
}
