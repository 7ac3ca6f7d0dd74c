"""The user guide's file ingestion API (``ingestion.file_ingestor``).

``ingest_csv_file`` / ``ingest_json_file`` load one file; ``batch_ingest_files``
loads every file of a directory matching a glob. Each load is tracked like a
database load (``source_name`` = the file name, ``source_type`` csv or json), and
its result dict has the same shape: ``uri``, ``row_count``, ``file_size_bytes``,
``checksum`` (MD5 of the stored Parquet object), ``source_name``,
``execution_date``, ``status``, plus ``file`` and ``schema``.

Batch object keys: ``files/<relative folder>/<stem>/<date>/<file name>.parquet``
(the stem drops ``.csv``, ``.json``, ``.ndjson``, ``.jsonl``, ``.tsv`` and ``.gz``; the
object keeps the whole file name), so ``a.csv`` and ``a.csv.gz`` share a folder but
never an object: the key is a one-to-one function of the relative path.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from platform_assets.ingestion.dates import execution_date_text
from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.files.load import FileLoadRequest, load_file
from platform_assets.ingestion.partitions.files import default_delimiter, file_stem
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.schema_evolution import SchemaPolicy
from platform_assets.ingestion.tracking import run_records
from platform_assets.ingestion.tracking.run_scope import tracked_run

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
    schema_policy: SchemaPolicy = "evolve",
) -> dict[str, Any]:
    """Load one CSV file (``.gz`` too) into ``object_key`` of the bronze bucket."""
    path = Path(file_path)
    options = options or CsvOptions(delimiter=default_delimiter(path.name))
    return _ingest(path, object_key, execution_date, "csv", schema_policy, services, csv_options=options)


def ingest_json_file(
    file_path: str | Path,
    object_key: str,
    execution_date: str | None = None,
    *,
    services: Services | None = None,
    schema_policy: SchemaPolicy = "evolve",
) -> dict[str, Any]:
    """Load one JSON file: an array of objects or newline-delimited JSON (``.gz`` too)."""
    return _ingest(Path(file_path), object_key, execution_date, "json", schema_policy, services)


def _ingest(
    path: Path,
    object_key: str,
    execution_date: str | None,
    file_format: Literal["csv", "json"],
    schema_policy: SchemaPolicy,
    services: Services | None,
    csv_options: CsvOptions | None = None,
) -> dict[str, Any]:
    request = FileLoadRequest(
        path=path, object_key=object_key, execution_date=execution_date_text(execution_date),
        file_format=file_format, source_name=path.name, csv_options=csv_options, schema_policy=schema_policy,
    )
    services = services or Services.from_env()
    services.bootstrap()
    with tracked_run(services, request.run_start(services)) as (platform, run_id):
        return load_file(request, services, platform, run_id).as_guide_dict()


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
    services.bootstrap()
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
            if path.is_dir() and not _known_format(path):
                _record_refusal(services, path, key, ds, f"{path}: is a directory; narrow the pattern "
                                f"{pattern!r} to files ({CSV_SUFFIXES + JSON_SUFFIXES})")
            if not _known_format(path):
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
    start = run_records.RunStart(
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


def batch_object_key(root: Path, path: Path, execution_date: str) -> str:
    relative = PurePosixPath(path.relative_to(root).as_posix())
    folder = relative.parent / (file_stem(relative.name) or relative.name)
    return f"files/{folder.as_posix().removeprefix('./')}/{execution_date}/{relative.name}.parquet"

