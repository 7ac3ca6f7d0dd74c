"""Model-based tests of database partitions: see ``partition_machines`` for the model.

CI runs a bounded, derandomized budget; ``make test-model-long`` runs longer, with new
random sequences each time.
"""

from __future__ import annotations

from typing import Any

from hypothesis.stateful import run_state_machine_as_test

from tests.model.partition_machines import IntegerMachine, TimestampMachine
from tests.model.settings import model_settings


def test_timestamp_partitions_hold_every_version_an_extract_saw_once(pg: Any, store_settings: Any) -> None:
    TimestampMachine.pg, TimestampMachine.store_settings = pg, store_settings
    run_state_machine_as_test(TimestampMachine, settings=model_settings(examples=4, steps=25))


def test_integer_partitions_hold_every_row_once(pg: Any, store_settings: Any) -> None:
    IntegerMachine.pg, IntegerMachine.store_settings = pg, store_settings
    run_state_machine_as_test(IntegerMachine, settings=model_settings(examples=4, steps=25))
