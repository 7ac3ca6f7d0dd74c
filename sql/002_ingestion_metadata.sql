-- One row per ingestion run: running -> success | failed.
-- The guide's columns come first; the rest record where the data went, which
-- Dagster run/partition wrote it and the exact range of source rows it covered.
CREATE TABLE IF NOT EXISTS data_platform.ingestion_metadata (
    id               BIGSERIAL PRIMARY KEY,
    source_name      TEXT        NOT NULL,
    source_type      TEXT        NOT NULL,
    execution_date   DATE        NOT NULL,
    row_count        BIGINT,
    file_size_bytes  BIGINT,
    checksum         TEXT,
    status           TEXT        NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'success', 'failed')),
    error_message    TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE data_platform.ingestion_metadata
    ADD COLUMN IF NOT EXISTS object_key        TEXT,
    ADD COLUMN IF NOT EXISTS uri               TEXT,
    ADD COLUMN IF NOT EXISTS partition_key     TEXT,
    ADD COLUMN IF NOT EXISTS dagster_run_id    TEXT,
    ADD COLUMN IF NOT EXISTS load_mode         TEXT,
    ADD COLUMN IF NOT EXISTS started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS finished_at       TIMESTAMPTZ,
    ADD COLUMN IF NOT EXISTS watermark_column  TEXT,
    ADD COLUMN IF NOT EXISTS watermark_before  TEXT,
    ADD COLUMN IF NOT EXISTS watermark_after   TEXT,
    -- The predicate the run read with (bounds, catch-up snapshot), so the
    -- partition can be replayed exactly.
    ADD COLUMN IF NOT EXISTS extract_range     JSONB,
    -- Source snapshot of the extract (pg_current_snapshot()) and when it was taken.
    ADD COLUMN IF NOT EXISTS source_snapshot   TEXT,
    ADD COLUMN IF NOT EXISTS snapshot_taken_at TIMESTAMPTZ,
    -- True while transactions that were open at the snapshot may still commit
    -- rows into this run's range (see README, "Late rows").
    ADD COLUMN IF NOT EXISTS needs_late_check  BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX IF NOT EXISTS ingestion_metadata_source_idx
    ON data_platform.ingestion_metadata (source_name, created_at DESC);
CREATE INDEX IF NOT EXISTS ingestion_metadata_status_idx
    ON data_platform.ingestion_metadata (status, created_at DESC);
CREATE INDEX IF NOT EXISTS ingestion_metadata_partition_idx
    ON data_platform.ingestion_metadata (source_name, partition_key, id DESC);
