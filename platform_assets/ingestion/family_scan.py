"""Which files a family's directory holds now, and which cannot be loaded as they are named.

A file's partition is the date in its name (``date_pattern``), else the day it arrived
(its modification time, in the registry's timezone). A name that matches the pattern
with something that is not a date, or that is not valid UTF-8, is that file's problem:
it is reported (dated by the day the file arrived) and the other files go on.
"""

from __future__ import annotations

import datetime as dt
import logging
import stat
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from platform_assets.ingestion.errors import IngestionError
from platform_assets.ingestion.family_spec import FamilySpec
from platform_assets.ingestion.file_ingestor import matching_files

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
    arrival_key: str
    message: str


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
    matched = matching_files(directory, spec.glob)
    targets = {_resolved(p) for p in matched if not p.is_symlink()}
    for path in matched:
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
        if path.is_symlink() and _resolved(path) in targets:
            log.info("%s: skipping %s, a link to a file of the family loaded under its own name", spec.name, path)
            continue
        arrival = arrival_day(status.st_mtime_ns, spec.timezone)
        name = relative.as_posix()
        problem = _name_problem(spec, path.name, name)
        if problem is not None:
            problems.append(FileProblem(_printable(name), path, status.st_size, status.st_mtime_ns,
                                        arrival.isoformat(), problem))
            continue
        date = spec.date_from_name(path.name) or arrival
        files.append(FileSeen(name, path, status.st_size, status.st_mtime_ns, status.st_ctime_ns, date.isoformat()))
    return FamilyScan(files, problems)


def arrival_day(mtime_ns: int, timezone: str) -> dt.date:
    return dt.datetime.fromtimestamp(mtime_ns / 1e9, tz=ZoneInfo(timezone)).date()


def _name_problem(spec: FamilySpec, file_name: str, relative_path: str) -> str | None:
    try:
        relative_path.encode("utf-8")
    except UnicodeEncodeError:
        return (f"the file name {_printable(relative_path)!r} is not valid UTF-8; rename the file "
                "(its name is recorded in the tracking tables and object keys)")
    try:
        spec.date_from_name(file_name)
    except ValueError as e:
        return f"{e}: rename the file, or fix date_pattern/date_format in the registry"
    return None


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None
