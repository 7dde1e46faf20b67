import { type FormEvent, useState } from "react";
import { idempotencyKey, type Schemas } from "../api/client";
import { ApiProblem } from "../api/problem";
import { Field } from "../components/Field";
import { ProblemAlert } from "../components/ProblemAlert";
import { needsPassword, PasswordAgain } from "../components/Reauth";
import { ShownOnce } from "../components/ShownOnce";
import { useAction, useLoad, when } from "../hooks";
import { useSession, useSignedIn } from "../session";

/** API keys: create one (shown once), see when each was last used, revoke them. */
export function ApiKeys() {
  const { run } = useSession();
  const session = useSignedIn();
  const keys = useLoad(() => run((api) => api.GET("/v1/api-keys")), []);
  const [name, setName] = useState("");
  const [password, setPassword] = useState("");
  const [key, setKey] = useState(idempotencyKey);
  const [created, setCreated] = useState<Schemas["CreatedKey"] | null>(null);
  const create = useAction();
  const revoke = useAction();
  const [revoking, setRevoking] = useState<string | null>(null);
  const askPassword = needsPassword(session, create.error);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const made = await create.run(() =>
      run((api) =>
        api.POST("/v1/api-keys", {
          params: { header: { "Idempotency-Key": key } },
          body: { name, ...(askPassword && password ? { current_password: password } : {}) },
        }),
      ),
    );
    if (made) {
      setCreated(made);
      setName("");
      setPassword("");
      setKey(idempotencyKey());
      keys.reload();
    }
  }

  async function remove(id: string) {
    const done = await revoke.run(async () => {
      await run((api) => api.DELETE("/v1/api-keys/{id}", { params: { path: { id } } }));
      return true;
    });
    if (done) {
      setRevoking(null);
      keys.reload();
    }
  }

  const problem = create.error instanceof ApiProblem ? create.error : null;
  return (
    <main>
      <h1>API keys</h1>
      <p>
        Scripts and servers send a key in the <code>X-API-Key</code> header.
      </p>
      <form onSubmit={submit} aria-labelledby="new-key" aria-busy={create.pending}>
        <h2 id="new-key">New key</h2>
        <Field
          label="Key name"
          hint="1 to 100 characters, to recognise it later."
          value={name}
          onChange={setName}
          error={problem?.fieldError("name")}
          maxLength={100}
          required
        />
        {askPassword ? <PasswordAgain value={password} onChange={setPassword} /> : null}
        <ProblemAlert error={create.error} />
        <button type="submit" disabled={create.pending}>
          {create.pending ? "Creating…" : "Create key"}
        </button>
      </form>
      {created ? (
        <ShownOnce
          id="created-key"
          heading={`Key “${created.name}” created`}
          value={created.key}
          copyLabel="Copy key"
          testId="new-key"
          onDone={() => setCreated(null)}
        >
          <strong>Copy it now: it is shown only once.</strong>
        </ShownOnce>
      ) : null}
      <section aria-labelledby="keys-heading">
        <h2 id="keys-heading">Your keys</h2>
        <ProblemAlert error={keys.error ?? revoke.error} />
        {keys.data && keys.data.items.length === 0 ? <p>No keys yet.</p> : null}
        {keys.data && keys.data.items.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Prefix</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.data.items.map((k) => (
                <tr key={k.id}>
                  <td>{k.name}</td>
                  <td>
                    <code>{k.prefix}…</code>
                  </td>
                  <td>{when(k.created_at)}</td>
                  <td>{when(k.last_used_at)}</td>
                  <td>
                    {revoking === k.id ? (
                      <>
                        <button
                          type="button"
                          className="danger"
                          disabled={revoke.pending}
                          onClick={() => remove(k.id)}
                        >
                          Yes, revoke “{k.name}”
                        </button>
                        <button type="button" onClick={() => setRevoking(null)}>
                          Cancel
                        </button>
                      </>
                    ) : (
                      <button type="button" onClick={() => setRevoking(k.id)}>
                        Revoke “{k.name}”
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </section>
    </main>
  );
}
