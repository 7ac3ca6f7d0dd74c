-- The ledger of ingested files: one row per successful file load, written in the
-- same transaction that marks its run success. Sensors and batch loads consult it
-- so a file is not loaded twice, and a file replaced with new content is.
CREATE TABLE IF NOT EXISTS data_platform.ingested_files (
    id             BIGSERIAL PRIMARY KEY,
    family         TEXT,
    file_path      TEXT        NOT NULL,
    file_name      TEXT        NOT NULL,
    size_bytes     BIGINT      NOT NULL,
    mtime_ns       BIGINT      NOT NULL,
    content_md5    TEXT        NOT NULL,
    partition_key  TEXT,
    object_key     TEXT        NOT NULL,
    run_id         BIGINT      NOT NULL,
    ingested_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS ingested_files_identity_idx
    ON data_platform.ingested_files (file_path, size_bytes, mtime_ns);
CREATE INDEX IF NOT EXISTS ingested_files_family_idx
    ON data_platform.ingested_files (family, partition_key);
