import { type FormEvent, useState } from "react";
import { Link, useLocation, useNavigate, useParams, useSearchParams } from "react-router";
import { idempotencyKey, type Schemas } from "../api/client";
import { ApiProblem } from "../api/problem";
import { ConfirmDelete } from "../components/ConfirmDelete";
import { Field } from "../components/Field";
import { ProblemAlert } from "../components/ProblemAlert";
import { useAction, useDraft, useLoad, when } from "../hooks";
import { useSession } from "../session";

const PAGE_SIZE = 20;

type Item = Schemas["ItemView"];

/** Your items, newest first, a page at a time (the API's keyset cursor in `?cursor=`). */
export function Items() {
  const { run } = useSession();
  const [params] = useSearchParams();
  const navigate = useNavigate();
  const location = useLocation();
  const cursor = params.get("cursor");
  const previous = ((location.state as { previous?: (string | null)[] } | null)?.previous ??
    []) as (string | null)[];
  const page = useLoad(
    () =>
      run((api) =>
        api.GET("/v1/items", {
          params: { query: { limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) } },
        }),
      ),
    [cursor],
  );

  function go(to: string | null, stack: (string | null)[]) {
    navigate(to ? `/items?cursor=${encodeURIComponent(to)}` : "/items", {
      state: { previous: stack },
    });
  }

  return (
    <main>
      <h1>Items</h1>
      <NewItem onCreated={() => (cursor ? go(null, []) : page.reload())} />
      <section aria-labelledby="list-heading">
        <h2 id="list-heading">Your items</h2>
        <ProblemAlert error={page.error} />
        {page.loading && !page.data ? <p role="status">Loading…</p> : null}
        {page.data && page.data.items.length === 0 ? <p>No items yet.</p> : null}
        {page.data && page.data.items.length > 0 ? (
          <ul className="cards" aria-busy={page.loading}>
            {page.data.items.map((item) => (
              <li key={item.id}>
                <Link to={`/items/${item.id}`}>{item.title}</Link>
                {item.description ? <p>{item.description}</p> : null}
                <p className="meta">Created {when(item.created_at)}</p>
              </li>
            ))}
          </ul>
        ) : null}
        <nav aria-label="Pages" className="pager">
          <button
            type="button"
            disabled={previous.length === 0}
            onClick={() => go(previous[previous.length - 1] ?? null, previous.slice(0, -1))}
          >
            Previous page
          </button>
          <button
            type="button"
            disabled={!page.data?.next_cursor}
            onClick={() =>
              page.data?.next_cursor && go(page.data.next_cursor, [...previous, cursor])
            }
          >
            Next page
          </button>
        </nav>
      </section>
    </main>
  );
}

function NewItem({ onCreated }: { onCreated(item: Item): void }) {
  const { run } = useSession();
  const [draft, setDraft, clear] = useDraft("item.new", { title: "", description: "" });
  const [key, setKey] = useState(idempotencyKey);
  const action = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    const item = await action.run(() =>
      run((api) =>
        api.POST("/v1/items", {
          params: { header: { "Idempotency-Key": key } },
          body: draft,
        }),
      ),
    );
    if (item) {
      clear();
      setKey(idempotencyKey());
      onCreated(item);
    }
  }

  const problem = action.error instanceof ApiProblem ? action.error : null;
  return (
    <form onSubmit={submit} aria-labelledby="new-item" aria-busy={action.pending}>
      <h2 id="new-item">New item</h2>
      <ItemFields value={draft} onChange={setDraft} problem={problem} />
      <ProblemAlert error={action.error} />
      <button type="submit" disabled={action.pending}>
        {action.pending ? "Creating…" : "Create item"}
      </button>
    </form>
  );
}

interface ItemForm {
  title: string;
  description: string;
}

/** An item's title and description, as created and as edited. */
function ItemFields({
  value,
  onChange,
  problem,
}: {
  value: ItemForm;
  onChange(next: ItemForm): void;
  problem: ApiProblem | null;
}) {
  return (
    <>
      <Field
        label="Title"
        value={value.title}
        onChange={(title) => onChange({ ...value, title })}
        hint="1 to 200 characters, one line."
        error={problem?.fieldError("title")}
        maxLength={200}
        required
      />
      <Field
        label="Description"
        multiline
        value={value.description}
        onChange={(description) => onChange({ ...value, description })}
        error={problem?.fieldError("description")}
        maxLength={10000}
      />
    </>
  );
}

/** One item: edit it, or delete it. Another user's id is the API's 404. */
export function ItemPage() {
  const { id = "" } = useParams();
  const { run } = useSession();
  const navigate = useNavigate();
  const item = useLoad(
    () => run((api) => api.GET("/v1/items/{id}", { params: { path: { id } } })),
    [id],
  );
  const [draft, setDraft, clear] = useDraft<ItemForm | null>(`item.${id}`, null);
  const save = useAction();
  const remove = useAction();
  const [saved, setSaved] = useState(false);

  if (item.error) {
    return (
      <main>
        <h1>Item</h1>
        <ProblemAlert error={item.error} />
        <p>
          <Link to="/items">Back to your items</Link>
        </p>
      </main>
    );
  }
  if (!item.data) return <p role="status">Loading…</p>;
  const current = item.data;
  const form = draft ?? { title: current.title, description: current.description };

  async function submit(e: FormEvent) {
    e.preventDefault();
    setSaved(false);
    const updated = await save.run(() =>
      run((api) => api.PATCH("/v1/items/{id}", { params: { path: { id } }, body: form })),
    );
    if (updated) {
      clear();
      item.setData(updated);
      setSaved(true);
    }
  }

  async function destroy() {
    const done = await remove.run(async () => {
      await run((api) => api.DELETE("/v1/items/{id}", { params: { path: { id } } }));
      return true;
    });
    if (done) {
      clear();
      navigate("/items", { replace: true });
    }
  }

  const problem = save.error instanceof ApiProblem ? save.error : null;
  return (
    <main>
      <p>
        <Link to="/items">← Your items</Link>
      </p>
      <h1>{current.title}</h1>
      <p className="meta">
        Created {when(current.created_at)} · updated {when(current.updated_at)}
      </p>
      <form onSubmit={submit} aria-labelledby="edit-item" aria-busy={save.pending}>
        <h2 id="edit-item">Edit</h2>
        <ItemFields value={form} onChange={setDraft} problem={problem} />
        <ProblemAlert error={save.error} />
        {saved ? <p role="status">Saved.</p> : null}
        <button type="submit" disabled={save.pending}>
          {save.pending ? "Saving…" : "Save changes"}
        </button>
      </form>
      <section aria-labelledby="delete-item">
        <h2 id="delete-item">Delete</h2>
        <ProblemAlert error={remove.error} />
        <ConfirmDelete
          label="Delete item"
          confirm="Yes, delete it"
          pending={remove.pending}
          onConfirm={destroy}
          question={<p>Delete “{current.title}” for good?</p>}
        />
      </section>
    </main>
  );
}
