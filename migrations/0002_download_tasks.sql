-- Download tasks (download-service). Workers in every replica claim due rows with
-- a lease; a row left 'running' by a dead worker is claimed again once its lease
-- expires. The completion callback is delivered (and retried) from the same table.
CREATE TABLE download_tasks (
    id                  uuid PRIMARY KEY,
    url                 text        NOT NULL,
    callback_url        text,
    state               text        NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed')),
    -- A stable failure code (too_large, not_an_image, …) once failed; the last
    -- transient one while retrying.
    error               text,
    content_type        text,
    width               integer,
    height              integer,
    bytes               bigint,
    original_key        text,
    thumbnail_key       text,
    attempts            integer     NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz NOT NULL DEFAULT now(),
    lease_owner         text,
    lease_expires_at    timestamptz,
    -- When the completion callback is next due; NULL when there is none to send.
    callback_due_at     timestamptz,
    callback_attempts   integer     NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- Claiming work: queued tasks that are due, and running ones whose lease ran out.
CREATE INDEX download_tasks_claim_idx ON download_tasks (next_attempt_at)
    WHERE state IN ('queued', 'running');
-- Claiming callbacks that are due.
CREATE INDEX download_tasks_callback_idx ON download_tasks (callback_due_at)
    WHERE callback_due_at IS NOT NULL;
