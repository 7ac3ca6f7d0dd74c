-- Current high-water mark per source (source_name is schema.table).
-- watermark_value is text so that it is stored exactly: ISO-8601 with
-- microseconds for timestamps, plain digits for integers.
CREATE TABLE IF NOT EXISTS data_platform.watermarks (
    source_name      TEXT PRIMARY KEY,
    watermark_column TEXT        NOT NULL,
    watermark_value  TEXT,
    watermark_type   TEXT        NOT NULL CHECK (watermark_type IN ('timestamp', 'integer')),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE data_platform.watermarks
    -- Snapshot of the last extract and the lowest value a transaction open at
    -- that snapshot can still commit: the next run re-reads that slice for
    -- rows the last snapshot could not see.
    ADD COLUMN IF NOT EXISTS last_snapshot  TEXT,
    ADD COLUMN IF NOT EXISTS catchup_floor  TEXT,
    ADD COLUMN IF NOT EXISTS last_run_id    BIGINT;

-- A manual reset (the guide's UPDATE) must show up in updated_at.
CREATE OR REPLACE FUNCTION data_platform.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER watermarks_touch_updated_at
    BEFORE UPDATE ON data_platform.watermarks
    FOR EACH ROW EXECUTE FUNCTION data_platform.touch_updated_at();
