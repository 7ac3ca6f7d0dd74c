"""Hypothesis settings of the fuzz tests: bounded, reproducible, and writing nothing outside tmp."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=150,
    deadline=None,  # a hang is caught by tests.security._support.within instead
    derandomize=True,  # the same examples on every run: CI cannot flake on a new random case
    database=None,  # no .hypothesis directory in the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
    print_blob=False,
)
