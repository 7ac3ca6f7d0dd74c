"""When sources load without anyone clicking, and whether they are fresh: pure rules.

``plan``: which days are due, missed or beyond the catch-up horizon at a given moment,
and a source's freshness. No clock, database or Dagster here (``tests/unit/test_layout.py``).
"""
