"""The layout's rules (README, "Layout"): data flows down, modules stay small.

- ``platform_assets/ingestion/`` (the engine) never imports Dagster, the registry, or
  the Dagster wiring (``platform_assets.defs``, ``platform_assets.definitions``);
- ``platform_assets/ingestion/partitions/`` is pure: no database driver, no object
  store client, nothing that does I/O of its own;
- ``platform_assets/alerts/`` (what an alert says, its delivery bookkeeping) is pure: no
  Dagster, no resources, no network;
- ``platform_assets/automation/`` (when sources are due, freshness) is pure likewise;
- ``platform_resources/`` never imports ``platform_assets``;
- no product module is longer than 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "platform_assets" / "ingestion"
MAX_LINES = 400


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function bodies too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _forbidden(path: Path, prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in _imports(path) if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("path", _modules(ENGINE), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_engine_imports_neither_dagster_nor_the_registry(path: Path) -> None:
    assert _forbidden(path, ("dagster", "dagster_aws", "platform_assets.registry", "platform_assets.defs",
                             "platform_assets.definitions")) == []


@pytest.mark.parametrize("path", _modules(ENGINE / "partitions"), ids=lambda p: str(p.relative_to(ROOT)))
def test_partition_rules_are_pure(path: Path) -> None:
    assert _forbidden(path, ("psycopg2", "boto3", "botocore", "platform_resources", "platform_assets.ingestion.tracking",
                             "platform_assets.ingestion.services", "subprocess", "dagster")) == []


@pytest.mark.parametrize("path", _modules(ROOT / "platform_assets" / "alerts"), ids=lambda p: str(p.relative_to(ROOT)))
def test_alert_rules_are_pure(path: Path) -> None:
    assert _forbidden(path, ("dagster", "platform_resources", "platform_assets.defs", "platform_assets.registry",
                             "urllib", "http", "socket", "psycopg2", "os")) == []


@pytest.mark.parametrize("path", _modules(ROOT / "platform_assets" / "automation"), ids=lambda p: str(p.relative_to(ROOT)))
def test_automation_rules_are_pure(path: Path) -> None:
    assert _forbidden(path, ("dagster", "psycopg2", "boto3", "platform_resources", "platform_assets.ingestion",
                             "platform_assets.registry", "platform_assets.defs", "subprocess")) == []


@pytest.mark.parametrize("path", _modules(ROOT / "platform_resources"), ids=lambda p: str(p.relative_to(ROOT)))
def test_resources_do_not_import_the_platform(path: Path) -> None:
    assert _forbidden(path, ("platform_assets",)) == []


@pytest.mark.parametrize(
    "path", _modules(ROOT / "platform_assets") + _modules(ROOT / "platform_resources"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_module_is_longer_than_400_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_a_module_that_imports_dagster_is_caught(tmp_path: Path) -> None:
    """The rule's own check: it sees imports inside functions too."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    import dagster as dg\n    from platform_assets.registry import Registry\n")
    assert _forbidden(module, ("dagster", "platform_assets.registry")) == [
        "dagster", "platform_assets.registry", "platform_assets.registry.Registry"]
