"""Which files a family's directory holds now, and which cannot be loaded as they are named.

A file's partition is the date in its name (``date_pattern``), else the day it arrived
(its modification time, in the registry's timezone). A name that matches the pattern
with something that is not a date, a name that is not valid UTF-8, or a date before the
registry's ``start_date`` is that file's problem: it is reported (dated by the day the
file arrived, or ``start_date``) and the other files go on. A file the glob reaches
several ways (through a link to it or to its folder) is one file, named by its path
without links.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.file_ingestor import matching_files
from platform_assets.ingestion.partitions.files import FamilySpec, partition_date
from platform_assets.ingestion.sink.parquet import HASH_CHUNK

log = logging.getLogger(__name__)
PROCESSED_DIR = "_processed"


@dataclass(frozen=True)
class FileSeen:
    """A file of the family as it is now."""

    relative_path: str
    path: Path
    size: int
    mtime_ns: int
    ctime_ns: int
    partition_key: str

    @property
    def stat_key(self) -> list[int]:
        """What changes when the file is written (ctime too: a copy keeping the mtime)."""
        return [self.size, self.mtime_ns, self.ctime_ns]


@dataclass(frozen=True)
class FileProblem:
    """A file that cannot be loaded as it is: reported once per version."""

    relative_path: str
    path: Path
    size: int
    mtime_ns: int
    ctime_ns: int
    arrival_key: str
    message: str

    @classmethod
    def of(cls, seen: FileSeen, message: str) -> FileProblem:
        return cls(seen.relative_path, seen.path, seen.size, seen.mtime_ns, seen.ctime_ns, seen.partition_key, message)


@dataclass(frozen=True)
class FamilyScan:
    files: list[FileSeen]
    problems: list[FileProblem]


def scan_family(spec: FamilySpec) -> FamilyScan:
    """The family's files now in its directory (regular files; ``_processed`` left out)."""
    directory = spec.directory
    if not directory.is_dir():
        raise IngestionError(
            f"input directory {directory} of file family {spec.name!r} does not exist; "
            "create it or fix 'directory' in the registry"
        )
    files: list[FileSeen] = []
    problems: list[FileProblem] = []
    for path in _one_path_per_file(directory, matching_files(directory, spec.glob)):
        relative = path.relative_to(directory)
        if PROCESSED_DIR in relative.parts:
            continue
        try:
            status = path.stat()
        except OSError as e:
            log.warning("%s: skipping %s: %s", spec.name, path, e)
            continue
        if not stat.S_ISREG(status.st_mode):
            continue
        arrival = arrival_day(status.st_mtime_ns, spec.timezone)
        name = relative.as_posix()
        date, problem = partition_date(spec, path.name, name, arrival)
        if problem is not None:
            problems.append(FileProblem(_printable(name), path, status.st_size, status.st_mtime_ns, status.st_ctime_ns,
                                        max(arrival, spec.start_date or arrival).isoformat(), problem))
            continue
        files.append(FileSeen(name, path, status.st_size, status.st_mtime_ns, status.st_ctime_ns, date.isoformat()))
    return FamilyScan(files, problems)


def content_md5(seen: FileSeen, deadline: float | None = None) -> str | None:
    """The file's MD5 while its status stays ``seen``'s; None when it changed or is gone.

    Raises TimeoutError when ``time.monotonic()`` passes ``deadline`` before the end,
    OSError when the file is there but cannot be read.
    """
    digest = hashlib.md5()
    try:
        with seen.path.open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{seen.path} is not hashed yet")
        after = seen.path.stat()
    except FileNotFoundError:
        return None
    return digest.hexdigest() if [after.st_size, after.st_mtime_ns, after.st_ctime_ns] == seen.stat_key else None


def _one_path_per_file(directory: Path, matched: list[Path]) -> list[Path]:
    """One path for each file the glob reaches several ways (a link to a file or to a folder).

    The path without links is kept, else the first in sorted order.
    """
    root = directory.resolve()
    chosen: dict[Path, Path] = {}
    for path in matched:
        target = _resolved(path)
        if target is None:
            continue
        kept = chosen.get(target)
        without_links = target == root / path.relative_to(directory)
        if kept is None or (without_links and target != root / kept.relative_to(directory)):
            chosen[target] = path
    kept_paths = set(chosen.values())
    for path in matched:
        if path not in kept_paths and _resolved(path) is not None:
            log.info("skipping %s: the same file as %s", path, chosen[_resolved(path)])
    return sorted(kept_paths)


def arrival_day(mtime_ns: int, timezone: str) -> dt.date:
    return dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=ZoneInfo(timezone)).date()


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None
