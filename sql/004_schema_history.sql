-- Schema detected by every ingestion run.
CREATE TABLE IF NOT EXISTS data_platform.schema_history (
    id               BIGSERIAL PRIMARY KEY,
    source_name      TEXT        NOT NULL,
    schema_metadata  JSONB       NOT NULL,
    execution_date   DATE        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE data_platform.schema_history
    ADD COLUMN IF NOT EXISTS run_id       BIGINT,
    ADD COLUMN IF NOT EXISTS schema_hash  TEXT;

CREATE INDEX IF NOT EXISTS schema_history_source_idx
    ON data_platform.schema_history (source_name, created_at DESC);
