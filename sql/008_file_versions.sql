-- File families load each version of a file once (see README, "File ingestion").
-- A file is its path relative to its family's directory; a version of it is that path
-- with its content (MD5). Rows written before this migration have no relative_path and
-- keep their old meaning; the unique indexes apply to new rows only.
ALTER TABLE data_platform.ingested_files
    ADD COLUMN IF NOT EXISTS relative_path TEXT,
    ADD COLUMN IF NOT EXISTS ctime_ns      BIGINT,
    ADD COLUMN IF NOT EXISTS inode         BIGINT;

CREATE UNIQUE INDEX IF NOT EXISTS ingested_files_version_idx
    ON data_platform.ingested_files (family, relative_path, content_md5)
    WHERE relative_path IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ingested_files_object_idx
    ON data_platform.ingested_files (family, object_key)
    WHERE relative_path IS NOT NULL;
CREATE INDEX IF NOT EXISTS ingested_files_stat_idx
    ON data_platform.ingested_files (family, relative_path, size_bytes, mtime_ns);

-- The family of a file run (file runs are tracked by their relative path).
ALTER TABLE data_platform.ingestion_metadata
    ADD COLUMN IF NOT EXISTS family TEXT;

-- File versions a family could not load (a name without a valid date, content that
-- does not parse, ...), recorded once per version so sensors report each once and
-- do not request them again; a manual materialization still retries them.
CREATE TABLE IF NOT EXISTS data_platform.file_failures (
    id             BIGSERIAL PRIMARY KEY,
    family         TEXT        NOT NULL,
    relative_path  TEXT        NOT NULL,
    content_md5    TEXT        NOT NULL,
    size_bytes     BIGINT,
    mtime_ns       BIGINT,
    partition_key  TEXT,
    run_id         BIGINT,
    error_message  TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (family, relative_path, content_md5)
);
