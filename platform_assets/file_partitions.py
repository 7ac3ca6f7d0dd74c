"""Which files belong to a file family's partition, and loading them (no Dagster here)."""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from platform_assets.ingestion import tracking
from platform_assets.ingestion.csv_reader import CsvOptions
from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.file_ingestor import (
    file_stem,
    ingest_csv_file,
    ingest_json_file,
    matching_files,
)
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.text_types import parse_pinned_type
from platform_assets.registry import FileFamily, Registry

log = logging.getLogger(__name__)
PROCESSED_DIR = "_processed"


@dataclass(frozen=True)
class FileCandidate:
    path: Path
    size_bytes: int
    mtime_ns: int
    partition_key: str

    @property
    def identity(self) -> str:
        return f"{self.path}:{self.size_bytes}:{self.mtime_ns}"


def partition_date(family: FileFamily, path: Path, mtime_ns: int, timezone: str) -> dt.date:
    """The date in the file name (``date_pattern``), else the day the file arrived."""
    if family.date_pattern:
        match = re.search(family.date_pattern, path.name)
        if match:
            text = match.groupdict().get("date") or match.group(1)
            try:
                return dt.datetime.strptime(text, family.date_format).date()
            except ValueError as e:
                raise IngestionError(
                    f"{path}: {text!r} from the file name does not parse with date_format "
                    f"{family.date_format!r} of family {family.name!r}"
                ) from e
    arrived = dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=ZoneInfo(timezone))
    return arrived.date()


def scan(family: FileFamily, registry: Registry) -> list[FileCandidate]:
    """The family's files now in its directory (regular files only), sorted by path."""
    directory = family.input_directory()
    if not directory.is_dir():
        raise IngestionError(
            f"input directory {directory} of file family {family.name!r} does not exist; "
            "create it or fix 'directory' in the registry"
        )
    candidates = []
    for path in matching_files(directory, family.glob):
        if PROCESSED_DIR in path.relative_to(directory).parts or not path.is_file():
            continue
        stat = path.stat()
        date = partition_date(family, path, stat.st_mtime_ns, registry.timezone)
        candidates.append(FileCandidate(path, stat.st_size, stat.st_mtime_ns, date.isoformat()))
    return candidates


def csv_options(family: FileFamily) -> CsvOptions:
    return CsvOptions(
        delimiter=family.delimiter,
        quote_char=family.quote_char,
        encoding=family.encoding,
        null_values=tuple(family.null_values),
        skip_rows=family.skip_rows,
        column_types={c: parse_pinned_type(t) for c, t in family.column_types.items()},
    )


def load_partition(
    family: FileFamily,
    registry: Registry,
    partition_key: str,
    services: Services,
    dagster_run_id: str | None = None,
    reload_ingested: bool = False,
) -> list[dict[str, Any]]:
    """Load the partition's files not loaded yet (all of them with ``reload_ingested``).

    Returns one entry per file: ``status`` is ``success``, ``skipped`` (already
    loaded, unchanged) or ``failed`` (with ``error``); one bad file never stops the others.
    """
    files = [c for c in scan(family, registry) if c.partition_key == partition_key]
    loaded = ingested_identities(services, files)
    results = []
    for candidate in files:
        if candidate.identity in loaded and not reload_ingested:
            results.append({"file": str(candidate.path), "status": "skipped"})
            continue
        key = family.key_for(partition_key, file_stem(candidate.path))
        try:
            if family.format == "csv":
                result = ingest_csv_file(
                    candidate.path, key, partition_key, options=csv_options(family), services=services,
                    family=family.name, partition_key=partition_key, dagster_run_id=dagster_run_id,
                    schema_policy=family.schema_policy,
                )
            else:
                result = ingest_json_file(
                    candidate.path, key, partition_key, services=services,
                    family=family.name, partition_key=partition_key, dagster_run_id=dagster_run_id,
                    schema_policy=family.schema_policy,
                )
        except TransientError:
            raise  # the store or database is unreachable: every file would fail; retry the run
        except IngestionError as e:
            log.error("%s: %s", candidate.path, e)
            results.append({"file": str(candidate.path), "status": "failed", "error": str(e)})
            continue
        if family.after_load == "move":
            _move_processed(family, candidate.path, partition_key)
        results.append(result)
    return results


def _move_processed(family: FileFamily, path: Path, partition_key: str) -> None:
    target = family.input_directory() / PROCESSED_DIR / partition_key / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)


@dataclass(frozen=True)
class SensorTick:
    """What a sensor tick asks for: the stable, not yet loaded files by partition."""

    ready: dict[str, list[FileCandidate]]
    cursor: dict[str, list[int]]


def plan_tick(
    candidates: list[FileCandidate], previous: dict[str, list[int]], ingested: set[str]
) -> SensorTick:
    """Files unchanged (size, mtime) since the previous tick and absent from the ledger.

    ``previous`` maps path to [size, mtime_ns] as seen last tick; a file seen for the
    first time, or changed since, waits for the next tick (it may still be written).
    """
    ready: dict[str, list[FileCandidate]] = {}
    for candidate in candidates:
        seen = previous.get(str(candidate.path))
        stable = seen == [candidate.size_bytes, candidate.mtime_ns]
        if stable and candidate.identity not in ingested:
            ready.setdefault(candidate.partition_key, []).append(candidate)
    cursor = {str(c.path): [c.size_bytes, c.mtime_ns] for c in candidates}
    return SensorTick(ready, cursor)


def ingested_identities(services: Services, candidates: list[FileCandidate]) -> set[str]:
    """Identities of the candidates the ledger already holds."""
    platform = services.connect_platform()
    try:
        return {
            c.identity for c in candidates
            if tracking.already_ingested(platform, str(c.path.resolve()), c.size_bytes, c.mtime_ns)
        }
    finally:
        platform.close()
