-- Which source wrote an object (partition_load._WRITTEN_BY_ANOTHER, asked before every
-- partition run): looked up by object key, so it stays an index scan as the ledger grows.
CREATE INDEX IF NOT EXISTS ingestion_metadata_object_key_idx
    ON data_platform.ingestion_metadata (object_key)
    WHERE status = 'success';

CREATE INDEX IF NOT EXISTS ingestion_metadata_deletes_object_key_idx
    ON data_platform.ingestion_metadata (deletes_object_key)
    WHERE status = 'success' AND deletes_object_key IS NOT NULL;
