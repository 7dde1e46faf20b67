-- Webhook deliveries (worker/src/webhooks.rs): one row per message and endpoint. Fan-out
-- inserts them, with their `webhook.deliver` job, in one transaction; each attempt records
-- its outcome here and, on failure, enqueues the next attempt in the same transaction.
--
-- message_id is the `webhook-id` header: the same for every attempt of a message, and for
-- every endpoint an event fans out to, so receivers can drop duplicates. body is the exact
-- text that is signed and sent (text, not jsonb, which would reorder it).
-- States: pending (an attempt is due at next_attempt_at) → delivered (a 2xx), or dead (the
-- schedule ran out, the endpoint answered 410 Gone or was disabled). A replay makes a
-- delivered or dead one pending again.

CREATE TABLE webhook_deliveries (
    id              uuid PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id      text NOT NULL CHECK (message_id <> ''),
    event_type      text NOT NULL CHECK (event_type <> ''),
    body            text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'dead')),
    -- Attempts recorded so far.
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status     integer,
    last_error      text,
    -- At most 1 KiB of the last response's body.
    response_body   text,
    last_attempt_at timestamptz,
    next_attempt_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'pending') = (next_attempt_at IS NOT NULL))
);

-- One delivery per message and endpoint: a fan-out that runs twice (at-least-once) adds none.
CREATE UNIQUE INDEX webhook_deliveries_message_idx ON webhook_deliveries (webhook_id, message_id);
-- An endpoint's deliveries, newest first, keyset-paginated by id (UUIDv7).
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
-- Retention: finished deliveries, oldest first.
CREATE INDEX webhook_deliveries_finished_idx ON webhook_deliveries (updated_at)
    WHERE state IN ('delivered', 'dead');

-- Since when every attempt to the endpoint has failed (NULL after a success): an endpoint
-- failing continuously for WEBHOOK_DISABLE_AFTER_SECONDS (5 days) is disabled.
ALTER TABLE webhooks ADD COLUMN failing_since timestamptz;
