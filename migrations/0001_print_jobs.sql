-- Print jobs (print-service). One row per job; the dispatcher claims rows whose
-- state is 'queued' and whose next attempt is due, holding a lease while it works.
CREATE TABLE print_jobs (
    id               uuid PRIMARY KEY,
    user_id          bigint      NOT NULL CHECK (user_id > 0),
    file_id          bigint      NOT NULL CHECK (file_id > 0),
    copies           integer     NOT NULL CHECK (copies BETWEEN 1 AND 100),
    state            text        NOT NULL CHECK (state IN
                         ('queued', 'dispatched', 'printing', 'completed', 'failed', 'canceled')),
    correlation_id   uuid        NOT NULL UNIQUE,
    printer_id       bigint,
    printer_url      text,
    image_url        text,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    error            text,
    idempotency_key  text,
    -- user_id:file_id:copies of the request that created the job, to tell a retry
    -- (same key, same body) from a conflicting reuse of the key.
    request_fingerprint text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The dispatcher's claim query: due queued jobs, oldest first.
CREATE INDEX print_jobs_claim_idx ON print_jobs (next_attempt_at) WHERE state = 'queued';
-- Reclaiming expired leases of dispatched-but-unacknowledged work.
CREATE INDEX print_jobs_lease_idx ON print_jobs (lease_expires_at) WHERE lease_expires_at IS NOT NULL;
-- A user's jobs, newest first (keyset pagination on id, a UUIDv7).
CREATE INDEX print_jobs_user_idx ON print_jobs (user_id, id DESC);
CREATE INDEX print_jobs_state_idx ON print_jobs (state, id DESC);
-- A retried POST with the same Idempotency-Key finds its job (per user).
CREATE UNIQUE INDEX print_jobs_idempotency_idx ON print_jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
