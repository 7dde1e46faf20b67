import { type FormEvent, useState } from "react";
import { Link, useParams } from "react-router";
import { idempotencyKey, type Schemas } from "../api/client";
import { ApiProblem } from "../api/problem";
import { Field } from "../components/Field";
import { ProblemAlert } from "../components/ProblemAlert";
import { ShownOnce } from "../components/ShownOnce";
import { useAction, useDraft, useLoad, when } from "../hooks";
import { useSession } from "../session";

const EVENTS: Schemas["EventType"][] = ["item.created", "item.updated", "item.deleted"];

/** Webhook endpoints: register one (its signing secret shown once), pause or resume it, send a
 * test message, open its deliveries. */
export function Webhooks() {
  const { run } = useSession();
  const hooks = useLoad(() => run((api) => api.GET("/v1/webhooks")), []);
  const [created, setCreated] = useState<Schemas["CreatedWebhook"] | null>(null);
  const toggle = useAction();
  const test = useAction();
  const [tested, setTested] = useState<string | null>(null);

  async function setEnabled(id: string, enabled: boolean) {
    const done = await toggle.run(() =>
      run((api) => api.PATCH("/v1/webhooks/{id}", { params: { path: { id } }, body: { enabled } })),
    );
    if (done) hooks.reload();
  }

  async function sendTest(id: string) {
    setTested(null);
    const done = await test.run(async () => {
      await run((api) => api.POST("/v1/webhooks/{id}/test", { params: { path: { id } } }));
      return true;
    });
    if (done) setTested(id);
  }

  return (
    <main>
      <h1>Webhooks</h1>
      <NewWebhook
        onCreated={(hook) => {
          setCreated(hook);
          hooks.reload();
        }}
      />
      {created ? (
        <ShownOnce
          id="created-hook"
          heading="Endpoint registered"
          value={created.secret}
          copyLabel="Copy secret"
          testId="new-secret"
          onDone={() => setCreated(null)}
        >
          <strong>Copy its signing secret now: it is shown only once.</strong> Verify each
          delivery's <code>webhook-signature</code> with it (Standard Webhooks).
        </ShownOnce>
      ) : null}
      <section aria-labelledby="hooks-heading">
        <h2 id="hooks-heading">Your endpoints</h2>
        <ProblemAlert error={hooks.error ?? toggle.error ?? test.error} />
        {hooks.data && hooks.data.items.length === 0 ? <p>No endpoints yet.</p> : null}
        <ul className="cards">
          {hooks.data?.items.map((hook) => (
            <li key={hook.id}>
              <p>
                <Link to={`/webhooks/${hook.id}`}>{hook.url}</Link>{" "}
                <span className={hook.enabled ? "badge on" : "badge off"}>
                  {hook.enabled ? "Enabled" : "Disabled"}
                </span>
              </p>
              {hook.description ? <p>{hook.description}</p> : null}
              <p className="meta">Events: {hook.events.join(", ")}</p>
              {hook.disabled_reason ? (
                <p className="meta">Disabled by delivery: {hook.disabled_reason}</p>
              ) : null}
              <div className="actions">
                <button
                  type="button"
                  disabled={toggle.pending}
                  onClick={() => setEnabled(hook.id, !hook.enabled)}
                >
                  {hook.enabled ? `Disable ${hook.url}` : `Enable ${hook.url}`}
                </button>
                <button type="button" disabled={test.pending} onClick={() => sendTest(hook.id)}>
                  Send a test to {hook.url}
                </button>
                <Link to={`/webhooks/${hook.id}`}>Deliveries of {hook.url}</Link>
              </div>
              {tested === hook.id ? (
                <p role="status">Test message queued: see its delivery.</p>
              ) : null}
            </li>
          ))}
        </ul>
      </section>
    </main>
  );
}

function NewWebhook({ onCreated }: { onCreated(hook: Schemas["CreatedWebhook"]): void }) {
  const { run } = useSession();
  const [draft, setDraft, clear] = useDraft("webhook.new", {
    url: "",
    description: "",
    events: ["item.created"] as Schemas["EventType"][],
  });
  const [key, setKey] = useState(idempotencyKey);
  const action = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const hook = await action.run(() =>
      run((api) =>
        api.POST("/v1/webhooks", {
          params: { header: { "Idempotency-Key": key } },
          body: draft,
        }),
      ),
    );
    if (hook) {
      clear();
      setKey(idempotencyKey());
      onCreated(hook);
    }
  }

  function toggleEvent(event: Schemas["EventType"], on: boolean) {
    const events = on ? [...draft.events, event] : draft.events.filter((e) => e !== event);
    setDraft({ ...draft, events: EVENTS.filter((e) => events.includes(e)) });
  }

  const problem = action.error instanceof ApiProblem ? action.error : null;
  return (
    <form onSubmit={submit} aria-labelledby="new-hook" aria-busy={action.pending}>
      <h2 id="new-hook">New endpoint</h2>
      <Field
        label="Endpoint URL"
        type="url"
        hint="An https URL on the public internet."
        value={draft.url}
        onChange={(url) => setDraft({ ...draft, url })}
        error={problem?.fieldError("url")}
        maxLength={2048}
        required
      />
      <Field
        label="Endpoint description"
        value={draft.description}
        onChange={(description) => setDraft({ ...draft, description })}
        error={problem?.fieldError("description")}
        maxLength={200}
      />
      <fieldset>
        <legend>Events</legend>
        {EVENTS.map((event) => (
          <label key={event} className="check">
            <input
              type="checkbox"
              checked={draft.events.includes(event)}
              onChange={(e) => toggleEvent(event, e.target.checked)}
            />{" "}
            {event}
          </label>
        ))}
        {problem?.fieldError("events") ? (
          <p className="field-error">{problem.fieldError("events")}</p>
        ) : null}
      </fieldset>
      <ProblemAlert error={action.error} />
      <button type="submit" disabled={action.pending}>
        {action.pending ? "Registering…" : "Register endpoint"}
      </button>
    </form>
  );
}

const STATE_LABEL: Record<Schemas["DeliveryState"], string> = {
  pending: "⏳ Pending",
  delivered: "✔ Delivered",
  dead: "✖ Failed for good",
};

/** One endpoint's deliveries, newest first, with their attempts and a replay button. */
export function WebhookDeliveries() {
  const { id = "" } = useParams();
  const { run } = useSession();
  const [cursor, setCursor] = useState<string | null>(null);
  const hook = useLoad(
    () => run((api) => api.GET("/v1/webhooks/{id}", { params: { path: { id } } })),
    [id],
  );
  const deliveries = useLoad(
    () =>
      run((api) =>
        api.GET("/v1/webhooks/{id}/deliveries", {
          params: { path: { id }, query: { limit: 20, ...(cursor ? { cursor } : {}) } },
        }),
      ),
    [id, cursor],
  );
  const replay = useAction();
  const [replayed, setReplayed] = useState<string | null>(null);

  async function retry(delivery: string) {
    setReplayed(null);
    const done = await replay.run(async () => {
      await run((api) =>
        api.POST("/v1/webhooks/{id}/deliveries/{delivery_id}/retry", {
          params: { path: { id, delivery_id: delivery } },
        }),
      );
      return true;
    });
    if (done) {
      setReplayed(delivery);
      deliveries.reload();
    }
  }

  if (hook.error) {
    return (
      <main>
        <h1>Deliveries</h1>
        <ProblemAlert error={hook.error} />
        <p>
          <Link to="/webhooks">Back to your endpoints</Link>
        </p>
      </main>
    );
  }
  return (
    <main>
      <p>
        <Link to="/webhooks">← Your endpoints</Link>
      </p>
      <h1>Deliveries to {hook.data?.url ?? "…"}</h1>
      <button type="button" onClick={deliveries.reload} disabled={deliveries.loading}>
        {deliveries.loading ? "Refreshing…" : "Refresh"}
      </button>
      <ProblemAlert error={deliveries.error ?? replay.error} />
      {replayed ? <p role="status">Replay queued.</p> : null}
      {deliveries.data && deliveries.data.items.length === 0 ? <p>No deliveries yet.</p> : null}
      {deliveries.data && deliveries.data.items.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Event</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last answer</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Message id</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {deliveries.data.items.map((d) => (
              <tr key={d.id}>
                <td>{d.event_type}</td>
                <td>{STATE_LABEL[d.state]}</td>
                <td>{d.attempts}</td>
                <td>{d.last_status_code ? `HTTP ${d.last_status_code}` : (d.last_error ?? "—")}</td>
                <td>{d.next_attempt_at ? when(d.next_attempt_at) : "—"}</td>
                <td>
                  <code>{d.message_id}</code>
                </td>
                <td>
                  <button type="button" disabled={replay.pending} onClick={() => retry(d.id)}>
                    Replay {d.event_type} delivery
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <nav aria-label="Pages" className="pager">
        <button type="button" disabled={cursor === null} onClick={() => setCursor(null)}>
          First page
        </button>
        <button
          type="button"
          disabled={!deliveries.data?.next_cursor}
          onClick={() => setCursor(deliveries.data?.next_cursor ?? null)}
        >
          Next page
        </button>
      </nav>
    </main>
  );
}
