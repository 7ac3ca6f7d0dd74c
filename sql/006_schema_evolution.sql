-- Schema evolution: what changed against the source's last successful schema.
ALTER TABLE data_platform.schema_history
    ADD COLUMN IF NOT EXISTS family   TEXT,
    ADD COLUMN IF NOT EXISTS changes  JSONB;

ALTER TABLE data_platform.ingestion_metadata
    ADD COLUMN IF NOT EXISTS schema_changes JSONB;

CREATE INDEX IF NOT EXISTS schema_history_family_idx
    ON data_platform.schema_history (family, created_at DESC);
