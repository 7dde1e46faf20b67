-- The job queue (see shared/src/repo/jobs.rs and worker/): work the API hands to the worker in
-- the same transaction as the change that caused it, so a rolled-back change enqueues nothing
-- and a committed one is never lost. Delivery is at-least-once, in no guaranteed order.
--
-- States: available (waiting for run_at) → running (claimed: lease_owner holds it until
-- lease_expires_at, extended by heartbeats) → completed, or retryable (failed, waiting for
-- run_at again) → … → dead (out of attempts, kept with its last error until replayed or
-- discarded). cancelled: discarded by an operator. A running job whose lease expired (its
-- worker was killed) is claimable again.

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind <> ''),
    payload          jsonb NOT NULL,
    -- Higher first among jobs of one kind that are due.
    priority         smallint NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    state            text NOT NULL DEFAULT 'available' CHECK (state IN
                         ('available', 'running', 'retryable', 'completed', 'dead', 'cancelled')),
    -- Claims so far, the running one included.
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    lease_owner      text,
    lease_expires_at timestamptz,
    last_error       text,
    -- Two unfinished jobs never share a dedup key (index below); finished ones may.
    dedup_key        text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- Claiming: the due jobs of one kind, best first. Partial, so finished jobs (the bulk of the
-- table) are not in it, and a claim is one index descent whatever the table's size.
CREATE INDEX jobs_claim_idx ON jobs (kind, priority DESC, run_at)
    WHERE state IN ('available', 'retryable');
-- Reclaiming: running jobs of one kind whose lease expired.
CREATE INDEX jobs_lease_idx ON jobs (kind, lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_dedup_key_idx ON jobs (dedup_key)
    WHERE dedup_key IS NOT NULL AND state IN ('available', 'running', 'retryable');
-- Retention: completed jobs, oldest first.
CREATE INDEX jobs_completed_idx ON jobs (updated_at) WHERE state = 'completed';
-- Operators' views of what went wrong (`worker jobs list --state dead`).
CREATE INDEX jobs_dead_idx ON jobs (kind, updated_at) WHERE state IN ('dead', 'cancelled');
