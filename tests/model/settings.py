"""Budget of the model-based tests: bounded and reproducible in CI, longer on demand.

``MODEL_EXAMPLES`` (sequences per machine) and ``MODEL_STEPS`` (operations per
sequence) raise the budget; ``MODEL_RANDOM=1`` draws new sequences on every run
instead of the same derandomized ones (``make test-model-long`` sets all three).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def model_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("MODEL_EXAMPLES", examples)),
        stateful_step_count=int(os.environ.get("MODEL_STEPS", steps)),
        deadline=None,
        derandomize=os.environ.get("MODEL_RANDOM") != "1",
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
