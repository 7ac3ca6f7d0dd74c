-- A failed file version is known by its status too (size, mtime, ctime), as a loaded
-- one is: a sensor does not hash again a file whose version failed.
ALTER TABLE data_platform.file_failures
    ADD COLUMN IF NOT EXISTS ctime_ns BIGINT;
