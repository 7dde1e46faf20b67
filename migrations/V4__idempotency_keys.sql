-- Idempotency-Key: the first response to a POST that created something, replayed when the same
-- user repeats the same request with the same key within 24 hours (see shared/src/idempotency.rs).
--
-- A row is written in the same transaction as the change it answers for, so it exists exactly
-- when that change committed; a request still in flight holds a transaction-scoped advisory
-- lock instead of a row, which a crash or a rollback releases (no "in flight" state to expire).
-- The key itself is not stored, only a hash; the body is sealed with a key derived from the
-- client's Idempotency-Key (it may hold a secret shown once, such as a new API key).

CREATE TABLE idempotency_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the user id and the Idempotency-Key header.
    key_hash     bytea NOT NULL CHECK (length(key_hash) = 32),
    -- HMAC-SHA256 (keyed by the Idempotency-Key) of method, path, query and body: the same key
    -- with another request is refused.
    request_hash bytea NOT NULL CHECK (length(request_hash) = 32),
    status       smallint NOT NULL CHECK (status BETWEEN 200 AND 299),
    -- The headers the handler set (Content-Type, Location, …) as [[name, value], …].
    headers      jsonb NOT NULL,
    -- Nonce and ChaCha20-Poly1305 ciphertext of the response body.
    body         bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key_hash)
);
-- Serves the bounded clean-up of rows older than 24 hours.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
