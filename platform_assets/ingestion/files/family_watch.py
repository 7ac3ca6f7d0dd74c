"""What one tick of a family's sensor asks for: the file versions at rest and not loaded yet.

A file is at rest when its size, mtime and ctime are the same as at the previous tick
(the cursor remembers them, with what is known of the file's MD5). A version at rest
that the ledger holds, or that failed before, is not asked for again (a loaded one
found again is, under ``after_load: move``: its run moves it). Files whose name
the family cannot use are recorded once per version (``record_problem``) and reported
in the tick.

Hashing is bounded per tick (``HASH_SECONDS_PER_TICK``), within a file too: a file not
hashed in time is hashed first at the next tick, and a file that one whole tick cannot
hash is asked for without its MD5 (the run hashes it, under the file's lock).

Cursor (JSON): ``{"files": {relative path: [size, mtime_ns, ctime_ns, md5 | null | "pending" | "large"]}}``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

from platform_assets.ingestion.files.family_load import FileRef, record_problem
from platform_assets.ingestion.files.family_scan import (
    FileProblem,
    FileSeen,
    content_md5,
    scan_family,
)
from platform_assets.ingestion.partitions.files import FamilySpec
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.tracking import file_ledger

HASH_SECONDS_PER_TICK = 20.0
PENDING = "pending"
"""Hashing ran out of the tick's time: this file is hashed first at the next tick."""
LARGE = "large"
"""A whole tick could not hash it: asked for without its MD5."""


@dataclass
class TickPlan:
    ready: dict[str, list[FileRef]] = field(default_factory=dict)
    """File versions at rest and not loaded, by partition."""
    reported: list[str] = field(default_factory=list)
    """Problems recorded by this tick (each is recorded once per file version)."""
    cursor: str = ""


def plan_tick(spec: FamilySpec, services: Services, cursor: str | None) -> TickPlan:
    """Scan the family's directory and decide what this tick asks for."""
    previous = _files(cursor)
    scan = scan_family(spec)
    problems = list(scan.problems)
    state: dict[str, str | None] = {}
    at_rest: list[FileSeen] = []
    with services.platform_connection() as platform:
        for seen in scan.files:
            before = previous.get(seen.relative_path)
            if before is None or before[:3] != seen.stat_key:
                state[seen.relative_path] = None
                continue
            at_rest.append(seen)
            known = before[3] if _is_md5(before[3]) else None
            state[seen.relative_path] = known or file_ledger.known_md5(
                platform, spec.name, seen.relative_path, seen.stat_key
            ) or before[3]
        problems += _hash(at_rest, state)
        ready: dict[str, list[FileRef]] = defaultdict(list)
        for seen in at_rest:
            md5 = state[seen.relative_path]
            if _is_md5(md5):
                if file_ledger.is_loaded(platform, spec.name, seen.relative_path, md5, seen.path):
                    if spec.after_load != "move":
                        continue  # else requested all the same: the run moves it (found again)
                if file_ledger.has_failed(platform, spec.name, seen.relative_path, md5):
                    continue
            elif md5 != LARGE:
                continue
            ready[seen.partition_key].append(
                FileRef(seen.relative_path, seen.size, seen.mtime_ns, md5 if _is_md5(md5) else None)
            )
    plan = TickPlan(ready=dict(ready))
    for problem in problems:
        if record_problem(spec, problem, services):
            plan.reported.append(f"{problem.relative_path}: {problem.message}")
    remembered = {f.relative_path: [*f.stat_key, state[f.relative_path]] for f in scan.files}
    plan.cursor = json.dumps({"files": remembered}, sort_keys=True)
    return plan


def _hash(at_rest: list[FileSeen], state: dict[str, str | None]) -> list[FileProblem]:
    """Hash the files at rest whose MD5 is not known, within the tick's budget (in place)."""
    todo = [f for f in at_rest if state[f.relative_path] in (None, PENDING)]
    todo.sort(key=lambda f: (state[f.relative_path] != PENDING, f.size))
    problems = []
    deadline = time.monotonic() + HASH_SECONDS_PER_TICK
    for seen in todo:
        if time.monotonic() >= deadline:
            break
        try:
            state[seen.relative_path] = content_md5(seen, deadline)
        except TimeoutError:
            state[seen.relative_path] = LARGE if seen is todo[0] else PENDING
            break
        except OSError as e:
            problems.append(FileProblem.of(seen, f"cannot be read ({e.strerror or e}); fix its permissions"))
    return problems


def _is_md5(value: object) -> bool:
    return isinstance(value, str) and len(value) == 32


def _files(cursor: str | None) -> dict[str, list]:
    """The files of a cursor; cursors of earlier versions hold none (their files wait one tick)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 4}
