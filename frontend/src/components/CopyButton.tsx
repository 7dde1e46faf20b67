import { useState } from "react";

/** Copies `text` to the clipboard and says so (in words, for everyone). */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      setState("failed");
    }
  }
  return (
    <>
      <button type="button" onClick={copy}>
        {label}
      </button>
      <span role="status" className="meta">
        {state === "copied" ? " Copied." : state === "failed" ? " Copy failed: select it." : ""}
      </span>
    </>
  );
}
