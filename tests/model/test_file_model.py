"""Model-based test of file families: see ``file_machines`` for the model.

CI runs a bounded, derandomized budget; ``make test-model-long`` runs longer, with new
random sequences each time.
"""

from __future__ import annotations

from typing import Any

from hypothesis.stateful import run_state_machine_as_test

from tests.model.file_machines import FileFamilyMachine
from tests.model.settings import model_settings


def test_each_file_version_lands_in_bronze_exactly_once(pg: Any, store_settings: Any) -> None:
    FileFamilyMachine.pg, FileFamilyMachine.store_settings = pg, store_settings
    run_state_machine_as_test(FileFamilyMachine, settings=model_settings(examples=10, steps=30))
