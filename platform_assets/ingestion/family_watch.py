"""What one tick of a family's sensor asks for: the file versions at rest and not loaded yet.

A file is at rest when its size, mtime and ctime are the same as at the previous tick
(the cursor remembers them, with the file's MD5 once known). A version at rest that
the ledger holds, or that failed before, is not asked for again. Files whose name the
family cannot use are recorded once per version (``record_problem``) and reported in
the tick. Hashing is bounded per tick; files not hashed yet wait for the next one.

Cursor (JSON): ``{"files": {relative path: [size, mtime_ns, ctime_ns, md5 or null]}}``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field

from platform_assets.ingestion import file_ledger
from platform_assets.ingestion.family_loader import FileRef, record_problem
from platform_assets.ingestion.family_scan import FileSeen, scan_family
from platform_assets.ingestion.family_spec import FamilySpec
from platform_assets.ingestion.parquet_sink import file_md5
from platform_assets.ingestion.services import Services

HASH_SECONDS_PER_TICK = 20.0


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
    plan = TickPlan()
    remembered: dict[str, list] = {}
    ready: dict[str, list[FileRef]] = defaultdict(list)
    deadline = time.monotonic() + HASH_SECONDS_PER_TICK
    platform = services.connect_platform()
    try:
        for seen in scan.files:
            before = previous.get(seen.relative_path)
            at_rest = before is not None and before[:3] == seen.stat_key
            md5 = before[3] if at_rest else None
            if at_rest and md5 is None:
                md5 = file_ledger.loaded_md5(platform, spec.name, seen.relative_path, seen.stat_key)
                if md5 is None and time.monotonic() < deadline:
                    md5 = _md5_at_rest(seen)
            remembered[seen.relative_path] = [*seen.stat_key, md5]
            if not at_rest or md5 is None:
                continue
            if file_ledger.is_loaded(platform, spec.name, seen.relative_path, md5):
                continue
            if file_ledger.has_failed(platform, spec.name, seen.relative_path, md5):
                continue
            ready[seen.partition_key].append(FileRef(seen.relative_path, seen.size, seen.mtime_ns, md5))
    finally:
        platform.close()
    for problem in scan.problems:
        if record_problem(spec, problem, services):
            plan.reported.append(f"{problem.relative_path}: {problem.message}")
    plan.ready = dict(ready)
    plan.cursor = json.dumps({"files": remembered}, sort_keys=True)
    return plan


def _md5_at_rest(seen: FileSeen) -> str | None:
    try:
        md5 = file_md5(seen.path)
        after = seen.path.stat()
    except OSError:
        return None
    return md5 if [after.st_size, after.st_mtime_ns, after.st_ctime_ns] == seen.stat_key else None


def _files(cursor: str | None) -> dict[str, list]:
    """The files of a cursor; cursors of earlier versions hold none (their files wait one tick)."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except json.JSONDecodeError:
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}
