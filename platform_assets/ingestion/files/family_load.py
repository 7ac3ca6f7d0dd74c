"""Loads the files of one partition of a file family: each version once, each file alone.

A run launched by the family's sensor loads exactly the file versions the sensor saw at
rest (``FileRef``s, carried by the run request); a file that changed since is left for
the sensor's next request. A manual run loads the partition's files that have been at
rest for ``stable_seconds`` and lists the others as still changing. Each file is
loaded under a lock of its own, in which the ledger is read again: runs that overlap
(a sensor's and a manual one) never load one version twice. After its load, a file
may be moved to ``_processed/<date>/``, never over another file.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg2

from platform_assets.ingestion.errors import (
    FileChangedError,
    IngestionError,
    TransientError,
)
from platform_assets.ingestion.files.family_scan import (
    PROCESSED_DIR,
    FileProblem,
    FileSeen,
    content_md5,
    scan_family,
)
from platform_assets.ingestion.files.load import FileLoadRequest, load_file
from platform_assets.ingestion.partitions.files import FamilySpec
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import FileLoadResult
from platform_assets.ingestion.tracking import file_ledger, run_records
from platform_assets.ingestion.tracking.run_scope import (
    escaped,
    locked_source,
    run_in_session,
)
from platform_resources.object_store import ObjectStoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileRef:
    """A file version as the sensor saw it at rest."""

    relative_path: str
    size: int
    mtime_ns: int
    md5: str | None
    """None: too large for the sensor to hash in a tick; the run hashes it."""


@dataclass
class FileOutcome:
    relative_path: str
    status: Literal["loaded", "skipped", "failed"]
    reason: str = ""
    result: FileLoadResult | None = None


@dataclass
class PartitionFiles:
    """What a run did with each file of the partition."""

    outcomes: list[FileOutcome] = field(default_factory=list)

    def by_status(self, status: str) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]


def load_family_partition(
    spec: FamilySpec,
    partition_key: str,
    services: Services,
    *,
    files: list[FileRef] | None = None,
    reload_loaded: bool = False,
    dagster_run_id: str | None = None,
) -> PartitionFiles:
    """Load the partition's files (see module docstring)."""
    scan = scan_family(spec)
    present = {f.relative_path: f for f in scan.files if f.partition_key == partition_key}
    done = PartitionFiles()
    for problem in scan.problems:
        if problem.arrival_key == partition_key:
            record_problem(spec, problem, services)
            done.outcomes.append(FileOutcome(problem.relative_path, "failed", problem.message))
    for seen, expected in _wanted(spec, present, files, done):
        done.outcomes.append(
            _load_one(spec, seen, expected, services, reload_loaded, dagster_run_id)
        )
    return done


def _wanted(
    spec: FamilySpec, present: dict[str, FileSeen], files: list[FileRef] | None, done: PartitionFiles
) -> list[tuple[FileSeen, str | None]]:
    """The files to load with the MD5 each must have (None: whatever it holds now)."""
    if files is None:
        now_ns = time.time_ns()
        wanted = []
        for seen in present.values():
            if now_ns - seen.mtime_ns < spec.stable_seconds * 1e9:
                done.outcomes.append(FileOutcome(
                    seen.relative_path, "skipped",
                    f"still changing (modified less than {spec.stable_seconds:g} s ago); loaded once at rest",
                ))
            else:
                wanted.append((seen, None))
        return wanted
    wanted = []
    for ref in files:
        seen = present.get(ref.relative_path)
        if seen is None:
            done.outcomes.append(FileOutcome(ref.relative_path, "skipped", GONE))
        elif (seen.size, seen.mtime_ns) != (ref.size, ref.mtime_ns):
            done.outcomes.append(FileOutcome(
                ref.relative_path, "skipped",
                "changed since the sensor saw it at rest; the sensor requests its new version once at rest",
            ))
        else:
            wanted.append((seen, ref.md5))
    return wanted


def _load_one(
    spec: FamilySpec,
    seen: FileSeen,
    expected_md5: str | None,
    services: Services,
    reload_loaded: bool,
    dagster_run_id: str | None,
) -> FileOutcome:
    relative = seen.relative_path
    with locked_source(services, relative, family=spec.name) as platform:
        try:
            md5 = content_md5(seen)
        except OSError as e:
            unreadable = FileProblem.of(seen, f"cannot be read ({e.strerror or e}); fix its permissions")
        else:
            if md5 is None:
                return FileOutcome(relative, "skipped", CHANGED if seen.path.exists() else GONE)
            if expected_md5 is not None and md5 != expected_md5:
                return FileOutcome(relative, "skipped", CHANGED)
            if not reload_loaded and file_ledger.is_loaded(platform, spec.name, relative, md5, seen.path):
                note = _move_processed(spec, seen)
                return FileOutcome(relative, "skipped", "; ".join(filter(None, ["this version is loaded already", note])))
            return _load_version(spec, seen, md5, services, platform, reload_loaded, dagster_run_id)
    record_problem(spec, unreadable, services)
    return FileOutcome(relative, "failed", unreadable.message)


PROBLEM_KEY_PREFIX = "status:"
"""Failure rows of problems are keyed by the file's status, not a content MD5."""
GONE = "no longer in the directory (moved or deleted since the run started)"
CHANGED = "changed while it was read; loaded once at rest"


def _load_version(
    spec: FamilySpec,
    seen: FileSeen,
    md5: str,
    services: Services,
    platform: Any,
    reload_loaded: bool,
    dagster_run_id: str | None,
) -> FileOutcome:
    """Load the version ``md5`` of ``seen``, under its lock (held by the caller)."""
    relative = seen.relative_path
    request = FileLoadRequest(
        path=seen.path,
        object_key=spec.object_key(seen.partition_key, relative, md5),
        execution_date=seen.partition_key,
        file_format=spec.format,
        source_name=relative,
        csv_options=spec.csv_options(relative) if spec.format == "csv" else None,
        schema_policy=spec.schema_policy,
        family=spec.name,
        relative_path=relative,
        partition_key=seen.partition_key,
        dagster_run_id=dagster_run_id,
        content_md5=md5,
        hashed_status=tuple(seen.stat_key),
        replaces_loaded=reload_loaded,
    )
    start = request.run_start(services)
    run_id: int | None = None
    try:
        with run_in_session(platform, services, start) as run_id:
            result = load_file(request, services, platform, run_id)
    except FileChangedError:
        return FileOutcome(relative, "skipped", CHANGED)
    except TransientError:
        raise
    except IngestionError as e:
        if _platform_refused(e):
            raise  # an outage of the whole run, not this version's failure: the sensor asks again
        log.error("%s: %s failed: %s", spec.name, relative, e)
        file_ledger.record_failure(
            platform, spec.name, relative, md5, stat_key=seen.stat_key,
            partition_key=seen.partition_key, run_id=run_id, message=str(e),
        )
        return FileOutcome(relative, "failed", str(e))
    file_ledger.forget_failure(platform, spec.name, relative, md5)
    return FileOutcome(relative, "loaded", _move_processed(spec, seen), result=result)


def _platform_refused(error: BaseException) -> bool:
    """Whether the object store or the platform database refused the load (credentials,
    a grant, a bucket policy): not the file's fault, so not recorded as its failure."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ObjectStoreError) or (
            isinstance(cause, psycopg2.Error) and not isinstance(cause, psycopg2.DataError)
        ):
            return True
        cause = cause.__cause__
    return False


def _move_processed(spec: FamilySpec, seen: FileSeen) -> str:
    """``after_load: move``: to ``_processed/<date>/<relative path>``, never over another file.

    Only the version loaded moves: a file written to since stays for the next run (and
    one written to while it moved is put back). A move that fails (a read-only
    directory, ``_processed`` on another volume) leaves the file where it is; returns
    what to tell about it ("" when there is nothing to tell).
    """
    if spec.after_load != "move" or not _unchanged(seen.path, seen):
        return ""
    target = spec.directory / PROCESSED_DIR / seen.partition_key / seen.relative_path
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        candidate = _move_without_replacing(seen.path, target)
        if not _unchanged(candidate, seen, moved=True):
            try:
                _move_without_replacing(candidate, seen.path, numbered=False)
            except FileExistsError:
                return (f"written to while it moved to {PROCESSED_DIR}/, and a new file took its name: "
                        f"it stays as {candidate.relative_to(spec.directory)}")
            return "written to while it moved to _processed: left in place for the next run"
    except OSError as e:
        log.warning("%s: could not move %s to %s: %s", spec.name, seen.path, target.parent, e)
        return (f"could not be moved to {PROCESSED_DIR}/ ({e.strerror or e}); it stays in the directory "
                "(loaded, so no run loads it again): let the run write there, on the same volume")
    return ""


NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK})


def _move_without_replacing(source: Path, target: Path, numbered: bool = True) -> Path:
    """Move ``source`` to ``target`` (else ``target.1``, ``.2``, ... when ``numbered``), never
    over a file: a hard link fails if the name exists, however many runs move at once.
    Raises FileExistsError when ``target`` exists and ``numbered`` is False."""
    candidate, n = target, 1
    while True:
        try:
            os.link(source, candidate)
        except FileExistsError:
            if not numbered:
                raise
            candidate, n = target.with_name(f"{target.name}.{n}"), n + 1
            continue
        except OSError as e:
            if e.errno not in NO_HARD_LINKS:
                raise
            if candidate.exists():  # a filesystem without hard links: checked, then renamed
                if not numbered:
                    raise FileExistsError(candidate) from e
                candidate, n = target.with_name(f"{target.name}.{n}"), n + 1
                continue
            os.rename(source, candidate)
            return candidate
        os.unlink(source)
        return candidate


def _unchanged(path: Path, seen: FileSeen, moved: bool = False) -> bool:
    """Whether ``path`` still holds the version ``seen`` (a move changes only the ctime)."""
    try:
        now = path.stat()
    except FileNotFoundError:
        return False
    key = [now.st_size, now.st_mtime_ns] + ([] if moved else [now.st_ctime_ns])
    return key == seen.stat_key[: len(key)]


def record_problem(spec: FamilySpec, problem: FileProblem, services: Services) -> bool:
    """A file that cannot be loaded as it is (its name, its date, its permissions): a ``failed``
    run and a failure row, once per state of the file.

    Its content is not what is wrong, and is not read: the problem is known by the
    file's status (size, mtime, ctime), so a touched, renamed or rewritten file is
    looked at again. Returns True when it was recorded now (False: recorded before).
    """
    relative = escaped(problem.relative_path)
    md5 = f"{PROBLEM_KEY_PREFIX}{problem.size}:{problem.mtime_ns}:{problem.ctime_ns}"
    with locked_source(services, relative, family=spec.name) as platform:
        if file_ledger.has_failed(platform, spec.name, relative, md5):
            return False
        start = run_records.RunStart(
            source_name=relative, source_type=spec.format, execution_date=problem.arrival_key,
            object_key=relative, uri=escaped(str(problem.path)), load_mode="file", partition_key=problem.arrival_key,
            family=spec.name,
        )
        run_id = run_records.start_run(platform, start)
        run_records.finish_failed(platform, run_id, f"{escaped(str(problem.path))}: {problem.message}")
        return file_ledger.record_failure(
            platform, spec.name, relative, md5, stat_key=[problem.size, problem.mtime_ns, problem.ctime_ns],
            partition_key=problem.arrival_key, run_id=run_id, message=problem.message,
        )
