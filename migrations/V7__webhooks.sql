-- Webhook endpoints (functions/webhooks): a user's URL, the events it subscribes to, and its
-- signing secret, sealed (shared/src/sealed.rs, the row's id as associated data) under
-- WEBHOOK_ENCRYPTION_KEY, which is not in the database: a dump alone cannot sign deliveries.
-- After a rotation the previous secret keeps signing beside the new one until
-- previous_secret_expires_at (the Standard Webhooks signature header holds several).

CREATE TABLE webhooks (
    id                         uuid PRIMARY KEY,
    user_id                    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    url                        text NOT NULL CHECK (url <> ''),
    events                     text[] NOT NULL CHECK (cardinality(events) >= 1),
    description                text NOT NULL DEFAULT '',
    enabled                    boolean NOT NULL DEFAULT true,
    -- Why delivery disabled it (410 Gone, failing for days); NULL when enabled, or disabled
    -- by its owner.
    disabled_reason            text,
    secret_sealed              bytea NOT NULL,
    previous_secret_sealed     bytea,
    previous_secret_expires_at timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK ((previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL))
);

-- A user's endpoints, in creation order (ids are UUIDv7), for listing and for fan-out.
CREATE INDEX webhooks_user_idx ON webhooks (user_id, id);
