"""Model-based test of deletes capture: see ``delete_machines`` for the model.

CI runs a bounded, derandomized budget; ``make test-model-long`` runs longer, with new
random sequences each time.
"""

from __future__ import annotations

from typing import Any

from hypothesis.stateful import run_state_machine_as_test

from tests.model.delete_machines import DeleteMachine
from tests.model.settings import model_settings


def test_each_deletion_is_in_exactly_one_tombstone(pg: Any, store_settings: Any) -> None:
    DeleteMachine.pg, DeleteMachine.store_settings = pg, store_settings
    run_state_machine_as_test(DeleteMachine, settings=model_settings(examples=5, steps=25))
