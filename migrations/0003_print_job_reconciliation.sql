-- Reconciliation of print jobs (print-service). A job in 'dispatched' or 'printing'
-- is checked at its printer once next_attempt_at passes (its deadline, set when it
-- reached the printer: PRINT_JOB_DEADLINE_MS per copy), under the same lease columns
-- the dispatcher uses for 'queued' jobs.
ALTER TABLE print_jobs
    -- Times reconciliation sent the job again because its printer did not know it
    -- (capped by DISPATCH_MAX_ATTEMPTS, then 'failed' with 'printer_lost_job').
    ADD COLUMN resends integer NOT NULL DEFAULT 0,
    -- Checks in a row that could not reach the printer (the backoff before the next).
    ADD COLUMN check_failures integer NOT NULL DEFAULT 0;

-- The reconciler's claim query: due jobs at a printer, oldest deadline first.
CREATE INDEX print_jobs_check_idx ON print_jobs (next_attempt_at)
    WHERE state IN ('dispatched', 'printing');
