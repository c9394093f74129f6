-- Deleted download tasks (DELETE /downloads/{id}). A deleted task is kept, marked,
-- so a repeated delete can finish releasing its objects; every query but that one
-- ignores it.
ALTER TABLE download_tasks ADD COLUMN deleted_at timestamptz;

-- Objects are content-addressed and shared by every task of the same bytes: an
-- object may be deleted from S3 only when no live task refers to it.
CREATE INDEX download_tasks_live_original_idx ON download_tasks (original_key)
    WHERE deleted_at IS NULL AND original_key IS NOT NULL;
CREATE INDEX download_tasks_live_thumbnail_idx ON download_tasks (thumbnail_key)
    WHERE deleted_at IS NULL AND thumbnail_key IS NOT NULL;
