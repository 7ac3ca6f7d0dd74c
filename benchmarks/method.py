"""Runs one method in this process: ``python -m benchmarks.method <name> '<json-args>'``.

Prints, as the last line of stdout, ``BENCH_RESULT {json}``: what the method
returned plus, in MiB:

- ``maxrss_self_mib``: this process's peak RSS, ``getrusage(RUSAGE_SELF).ru_maxrss``;
- ``maxrss_children_mib``: the largest peak RSS of its child processes (the ``psql``
  processes our extractor streams COPY through, or a limit's psql/cat), read as
  ``VmHWM`` from ``/proc/<pid>/status`` by a thread that polls the children while
  the method runs. ``RUSAGE_CHILDREN`` is recorded too
  (``maxrss_children_rusage_mib``) but overstates them: Linux carries the parent's
  RSS high-water mark over fork+exec into ``ru_maxrss``, so a 10 MiB psql started
  by a 200 MiB Python process reports 200 MiB there.

The runner starts this module through ``sh`` for the same reason: started directly
by the (large) runner, this process's own ``ru_maxrss`` would begin at the runner's.

Standard library only at import time: it also runs under the dlt virtualenv.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import threading
import traceback
from typing import Any

from benchmarks.config import RESULT_MARKER
from benchmarks.methods import METHODS


class ChildWatcher(threading.Thread):
    """Polls this process's children (and theirs) for their peak RSS (``VmHWM``)."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self.seen = 0
        self._stop_event = threading.Event()
        self._pids: set[int] = set()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            self._stop_event.wait(self.interval)

    def poll(self) -> None:
        for pid in self._descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                            if pid not in self._pids:
                                self._pids.add(pid)
                                self.seen += 1
                            break
            except (OSError, ValueError):
                continue  # exited meanwhile

    @staticmethod
    def _children(pid: int) -> list[int]:
        found: list[int] = []
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return found
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    found += [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                continue
        return found

    def _descendants(self, pid: int) -> list[int]:
        children = self._children(pid)
        return children + [g for c in children for g in self._children(c)]

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=2)


def peak_rss_mib(watcher: ChildWatcher | None) -> dict[str, float | int | None]:
    """Peak RSS figures in MiB (Linux reports ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rusage_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    watched = watcher.peak_kib / 1024.0 if watcher and watcher.seen else None
    return {
        "maxrss_self_mib": own,
        "maxrss_children_mib": watched,  # None: no child process was alive at a poll
        "children_seen": watcher.seen if watcher else 0,
        "maxrss_children_rusage_mib": rusage_children,
    }


def run(name: str, args: dict[str, Any], watcher: ChildWatcher) -> dict[str, Any]:
    spec = METHODS[name]
    function = getattr(importlib.import_module(spec.module), spec.function)
    result: dict[str, Any] = function(args)
    watcher.poll()
    watcher.stop()
    result.update(method=name, **peak_rss_mib(watcher))
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in METHODS:
        print(f"usage: python -m benchmarks.method <{'|'.join(METHODS)}> '<json-args>'", file=sys.stderr)
        return 2
    watcher = ChildWatcher()
    watcher.start()
    try:
        result = run(argv[1], json.loads(argv[2]), watcher)
    except Exception as e:  # noqa: BLE001 - any failure is reported to the runner as the method's error
        traceback.print_exc()
        watcher.stop()
        result = {"method": argv[1], "error": f"{type(e).__name__}: {e}", **peak_rss_mib(watcher)}
        print(RESULT_MARKER + json.dumps(result, default=str), flush=True)
        return 1
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
