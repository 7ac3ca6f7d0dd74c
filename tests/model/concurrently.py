"""Steps of a model test that run at the same time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_concurrently(*calls: Callable[[], Any], timeout: float = 300) -> list[Any]:
    """Run each call in its own thread and wait for all; returns their results in order.

    The first exception raised by a call is raised here; a call still running after
    ``timeout`` seconds fails the step (a hang, probably a lock never released)."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} concurrent step(s) still running after {timeout} s"
    return results
