-- What a partition run acted on (see README, "What a partition holds"):
-- watermark_reset: the guide's UPDATE/DELETE of the watermark that this run acted
--   on, {"old": ..., "new": ...};
-- rebuild: the run replaced the partition's object instead of merging into it;
-- rows_kept: rows of the previous object that a replay kept (row_count includes them).
ALTER TABLE data_platform.ingestion_metadata
    ADD COLUMN IF NOT EXISTS watermark_reset JSONB,
    ADD COLUMN IF NOT EXISTS rebuild BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS rows_kept BIGINT;
