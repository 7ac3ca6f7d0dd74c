"""The user guide's file ingestion API (``ingestion.file_ingestor``).

``ingest_csv_file`` / ``ingest_json_file`` load one file; ``batch_ingest_files``
loads every file of a directory matching a glob. Each load is tracked like a
database load (``source_name`` = the file name, ``source_type`` csv or json), and
its result dict has the same shape: ``uri``, ``row_count``, ``file_size_bytes``,
``checksum`` (MD5 of the stored Parquet object), ``source_name``,
``execution_date``, ``status``, plus ``file`` and ``schema``.

Batch object keys: ``files/<path relative to the directory>/<date>/<stem>.parquet``
(the stem drops ``.csv``, ``.json``, ``.ndjson``, ``.jsonl``, ``.tsv`` and ``.gz``),
so two files of one directory never share a key.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from platform_assets.ingestion import tracking
from platform_assets.ingestion.csv_reader import CsvOptions
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_convert import (
    ConvertedFile,
    convert_csv,
    convert_json,
)
from platform_assets.ingestion.parquet_sink import file_md5
from platform_assets.ingestion.schema_evolution import (
    SchemaGate,
    SchemaPolicy,
    with_changes_metadata,
)
from platform_assets.ingestion.schema_metadata import (
    file_column_entries,
    file_schema_metadata,
)
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracked_run import tracked_run

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".tsv", ".csv.gz", ".tsv.gz")
JSON_SUFFIXES = (".json", ".ndjson", ".jsonl", ".json.gz", ".ndjson.gz", ".jsonl.gz")


def ingest_csv_file(
    file_path: str | Path,
    object_key: str,
    execution_date: str | None = None,
    *,
    options: CsvOptions | None = None,
    services: Services | None = None,
    family: str | None = None,
    partition_key: str | None = None,
    dagster_run_id: str | None = None,
    schema_policy: SchemaPolicy = "evolve",
) -> dict[str, Any]:
    """Load one CSV file (``.gz`` too) into ``object_key`` of the bronze bucket."""
    options = options or _default_csv_options(Path(file_path))
    return _ingest_file(
        Path(file_path), object_key, execution_date, "csv",
        lambda path, dest, hook, follower: convert_csv(path, dest, options, hook, follower),
        services, family, partition_key, dagster_run_id, schema_policy,
    )


def ingest_json_file(
    file_path: str | Path,
    object_key: str,
    execution_date: str | None = None,
    *,
    services: Services | None = None,
    family: str | None = None,
    partition_key: str | None = None,
    dagster_run_id: str | None = None,
    schema_policy: SchemaPolicy = "evolve",
) -> dict[str, Any]:
    """Load one JSON file: an array of objects or newline-delimited JSON (``.gz`` too)."""
    return _ingest_file(
        Path(file_path), object_key, execution_date, "json", convert_json,
        services, family, partition_key, dagster_run_id, schema_policy,
    )


def batch_ingest_files(
    directory: str | Path,
    pattern: str,
    execution_date: str | None = None,
    *,
    csv_options: CsvOptions | None = None,
    services: Services | None = None,
) -> list[dict[str, Any]]:
    """Load every file under ``directory`` matching ``pattern``, in sorted order.

    Returns one dict per file: successes carry ``uri`` and ``row_count``, failures
    ``file`` and ``error``. One bad file never stops the others.
    """
    root = Path(directory)
    services = services or Services.from_env()
    ds = execution_date_text(execution_date)
    matches = matching_files(root, pattern)
    if not matches:
        if not root.is_dir():
            log.warning("batch_ingest_files: directory %s does not exist", root)
        else:
            log.warning("batch_ingest_files: no file under %s matches %r", root, pattern)
        return []
    results: list[dict[str, Any]] = []
    for path in matches:
        try:
            key = batch_object_key(root, path, ds)
            if path.is_file() and not _known_format(path):
                _record_refusal(services, path, key, ds, f"{path}: unknown file type; expected one of "
                                f"{CSV_SUFFIXES + JSON_SUFFIXES}")
            if file_format(path) == "csv":
                result = ingest_csv_file(path, key, ds, options=csv_options, services=services)
            else:
                result = ingest_json_file(path, key, ds, services=services)
            results.append(result)
        except IngestionError as e:
            log.error("batch_ingest_files: %s failed: %s", path, e)
            results.append({"file": str(path), "error": str(e), "status": "failed"})
    return results


def matching_files(root: Path, pattern: str) -> list[Path]:
    """Paths under ``root`` matching ``pattern``, sorted; refuses patterns that leave ``root``."""
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise IngestionError(f"pattern {pattern!r} must be relative to {root} and stay inside it")
    resolved_root = root.resolve()
    paths = []
    for name in sorted(glob.glob(pattern, root_dir=root, recursive=True)):
        path = root / name
        try:
            inside = path.resolve().is_relative_to(resolved_root)
        except (OSError, RuntimeError):
            log.warning("skipping %s: its symlinks loop", path)
            continue
        if not inside:
            continue  # a symlink pointing outside the input directory
        paths.append(path)
    return paths


def _known_format(path: Path) -> bool:
    return path.name.lower().endswith(CSV_SUFFIXES + JSON_SUFFIXES)


def _record_refusal(services: Services, path: Path, object_key: str, execution_date: str, message: str) -> None:
    """A failed tracking row for a file refused before reading (raises IngestionError)."""
    start = tracking.RunStart(
        source_name=path.name, source_type="file", execution_date=execution_date,
        object_key=object_key, uri=services.uri(object_key), load_mode="file",
    )
    with tracked_run(services, start):
        raise IngestionError(message)


def file_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    raise IngestionError(
        f"{path}: unknown file type; expected one of {CSV_SUFFIXES + JSON_SUFFIXES}"
    )


def file_stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(CSV_SUFFIXES + JSON_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def batch_object_key(root: Path, path: Path, execution_date: str) -> str:
    relative = path.relative_to(root).as_posix()
    return f"files/{relative}/{execution_date}/{file_stem(path)}.parquet"


def execution_date_text(value: str | dt.date | None) -> str:
    if value is None:
        return dt.date.today().isoformat()
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as e:
        raise IngestionError(f"execution_date must be a date like '2024-01-01', got {value!r}") from e


def _default_csv_options(path: Path) -> CsvOptions:
    return CsvOptions(delimiter="\t") if ".tsv" in path.name.lower() else CsvOptions()


def _ingest_file(
    path: Path,
    object_key: str,
    execution_date: str | None,
    source_type: str,
    convert: Any,
    services: Services | None,
    family: str | None,
    partition_key: str | None,
    dagster_run_id: str | None,
    schema_policy: SchemaPolicy,
) -> dict[str, Any]:
    services = services or Services.from_env()
    ds = execution_date_text(execution_date)
    start = tracking.RunStart(
        source_name=path.name,
        source_type=source_type,
        execution_date=ds,
        object_key=object_key,
        uri=services.uri(object_key),
        load_mode="file",
        partition_key=partition_key,
        dagster_run_id=dagster_run_id,
    )
    with tracked_run(services, start) as (platform, run_id):
        before = _stat(path)
        gate = SchemaGate(
            path.name, schema_policy, tracking.last_schema(platform, path.name, family),
            compare_source_types=False,
        )

        def check_schema(schema: pa.Schema, pinned: frozenset[str]) -> pa.Schema:
            changes = gate.check(file_column_entries(schema, pinned))
            if changes.flagged:
                log.warning("%s: schema changed: %s", path.name, changes.describe())
            return with_changes_metadata(schema, changes)

        services.store.ensure_bucket(services.bronze_bucket)
        with (
            tempfile.TemporaryDirectory(prefix="ingest-", dir=services.work_dir) as tmp,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-md5") as hashing,
        ):
            # The source checksum is computed on the other core while the file converts.
            source_md5 = hashing.submit(file_md5, path)
            local = Path(tmp) / "data.parquet"
            upload = services.store.growing_upload(local, services.bronze_bucket, object_key)
            try:
                converted: ConvertedFile = convert(path, local, check_schema, upload)
                identity = tracking.FileIdentity(
                    file_path=str(path.resolve()),
                    size_bytes=before.st_size,
                    mtime_ns=before.st_mtime_ns,
                    content_md5=source_md5.result(),
                    family=family,
                )
                after = _stat(path)
                if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                    raise IngestionError(
                        f"{path}: the file changed while it was being read (still being written?); "
                        "nothing was stored, load it again once it is complete"
                    )
                upload.complete(converted.parquet.size_bytes)
            except BaseException:
                upload.abort()
                raise
        schema = file_schema_metadata(converted)
        tracking.commit_success(
            platform, run_id, path.name, ds,
            tracking.RunSuccess(
                row_count=converted.parquet.row_count,
                file_size_bytes=converted.parquet.size_bytes,
                checksum=converted.parquet.md5,
                watermark_before=None,
                watermark_after=None,
                extract_range=None,
                source_snapshot=None,
                snapshot_taken_at=None,
                needs_late_check=False,
                schema_metadata=schema,
                schema_changes=None if gate.changes.empty else gate.changes.to_json(),
            ),
            None,
            file=identity,
            partition_key=partition_key,
            object_key=object_key,
        )
    return {
        "uri": start.uri,
        "object_key": object_key,
        "row_count": converted.parquet.row_count,
        "file_size_bytes": converted.parquet.size_bytes,
        "checksum": converted.parquet.md5,
        "source_name": path.name,
        "source_type": source_type,
        "execution_date": ds,
        "status": "success",
        "run_id": run_id,
        "file": str(path),
        "source_md5": identity.content_md5,
        "schema": schema,
        "schema_changes": gate.changes.to_json(),
        "preview": converted.preview,
    }


def _stat(path: Path) -> os.stat_result:
    if not path.exists():
        raise IngestionError(f"{path} does not exist")
    if path.is_dir():
        raise IngestionError(f"{path} is a directory, not a file")
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise IngestionError(f"{path} is not a regular file (a pipe, socket or device); nothing was read")
    if not os.access(path, os.R_OK):
        raise IngestionError(f"{path} is not readable by this process (check its permissions)")
    return status
