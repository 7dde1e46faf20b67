import { useEffect, useState } from "react";
import { ApiProblem } from "../api/problem";

/** An error as the API explained it: its title and detail, each invalid field, when to retry
 * after a 429, and the request id to quote. Announced to screen readers. */
export function ProblemAlert({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  if (!(error instanceof ApiProblem)) {
    return (
      <div role="alert" className="problem">
        <p className="problem-title">Something went wrong</p>
        <p>{error instanceof Error ? error.message : String(error)}</p>
      </div>
    );
  }
  const { problem, requestId, retryAfterSeconds, status } = error;
  return (
    <div role="alert" className="problem">
      <p className="problem-title">
        <span aria-hidden="true">⚠ </span>
        {problem.title}
        {status > 0 ? ` (${status})` : ""}
      </p>
      {problem.detail ? <p>{problem.detail}</p> : null}
      {problem.errors && problem.errors.length > 0 ? (
        <ul>
          {problem.errors.map((e) => (
            <li key={`${e.field}:${e.message}`}>
              <strong>{e.field}</strong>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
      {status === 429 && retryAfterSeconds !== null ? (
        <RetryCountdown seconds={retryAfterSeconds} />
      ) : null}
      {requestId ? (
        <p className="request-id">
          Request id: <code>{requestId}</code>
        </p>
      ) : null}
    </div>
  );
}

function RetryCountdown({ seconds }: { seconds: number }) {
  const [left, setLeft] = useState(seconds);
  useEffect(() => {
    if (left <= 0) return;
    const timer = setTimeout(() => setLeft((s) => s - 1), 1000);
    return () => clearTimeout(timer);
  }, [left]);
  return (
    <p>{left > 0 ? `Too many requests: try again in ${left} s.` : "You can try again now."}</p>
  );
}
