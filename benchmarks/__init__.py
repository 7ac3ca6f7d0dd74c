"""Benchmark suite of the ingestion engine: ``python -m benchmarks.run [--quick]``.

See ``benchmarks/README.md``. Every measured method runs in a process of its own
(``python -m benchmarks.method <name> <json-args>``); the orchestration, data
generation, output checks and the report live in the sibling modules.
"""
