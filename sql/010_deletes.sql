-- Hard deletes captured by comparing key sets (README, "Deletes").
-- deleted_rows / deletes_object_key: the partition's tombstone as this run left it
-- (a replay of an older partition carries its earlier tombstone forward).
-- key_set_object_key: the key set this run read (frontier runs of sources that capture
-- deletes); the newest successful run's is the one the next frontier run compares with.
ALTER TABLE data_platform.ingestion_metadata
    ADD COLUMN IF NOT EXISTS deleted_rows       BIGINT,
    ADD COLUMN IF NOT EXISTS deletes_object_key TEXT,
    ADD COLUMN IF NOT EXISTS key_set_object_key TEXT;

CREATE INDEX IF NOT EXISTS ingestion_metadata_key_sets_idx
    ON data_platform.ingestion_metadata (source_name, id DESC)
    WHERE key_set_object_key IS NOT NULL AND status = 'success';
