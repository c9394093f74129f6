-- The W3C traceparent of the request that created (or last retried) the work, so
-- the workers that carry it out later (the dispatcher and reconciliation for print
-- jobs; the download worker and the completion report for download tasks) log and
-- call onwards in that request's trace. NULL for rows from before, and for work
-- asked for without a trace context.
ALTER TABLE print_jobs ADD COLUMN traceparent text;
ALTER TABLE download_tasks ADD COLUMN traceparent text;
