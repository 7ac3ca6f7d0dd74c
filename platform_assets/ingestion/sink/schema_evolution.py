"""Schema evolution: compare a run's columns with the source's last successful schema.

Policies, modelled on dlt's schema contracts:

- ``evolve`` (default): added columns are accepted; removed columns, type changes
  and nullability changes are accepted but flagged as warnings;
- ``freeze``: any change fails the run before anything is written to the bronze
  layer and before the watermark moves.

The changes are written into the Parquet footer (key ``data_platform.schema_changes``)
so a downstream reader of that partition sees them, and into the tracking tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa

from platform_assets.ingestion.errors import SchemaContractError

SchemaPolicy = Literal["evolve", "freeze"]
PARQUET_METADATA_KEY = b"data_platform.schema_changes"


@dataclass(frozen=True)
class SchemaChanges:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    type_changed: list[dict[str, str]] = field(default_factory=list)
    nullability_changed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.type_changed or self.nullability_changed)

    @property
    def flagged(self) -> bool:
        """Changes other than added columns: what a downstream reader must be warned about."""
        return bool(self.removed or self.type_changed or self.nullability_changed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {self.added}")
        if self.removed:
            parts.append(f"removed {self.removed}")
        for change in self.type_changed:
            parts.append(f"{change['name']}: type {change['from']} -> {change['to']}")
        for change in self.nullability_changed:
            state = {True: "nullable", False: "not null"}
            parts.append(f"{change['name']}: {state[change['from']]} -> {state[change['to']]}")
        return "; ".join(parts) or "no changes"


def _type_of(column: dict[str, Any], compare_source_types: bool) -> str:
    if compare_source_types:
        return f"{column['source_type']} ({column['arrow_type']})"
    return column["arrow_type"]


def diff_columns(
    previous: list[dict[str, Any]],
    current: list[dict[str, Any]],
    compare_source_types: bool = True,
    compare_nullability: bool = True,
) -> SchemaChanges:
    """Differences between two column lists (``schema_metadata['columns']`` entries).

    Custom queries do not compare nullability: every query column is recorded as
    nullable (an outer join can make any of them NULL), and runs recorded before
    that rule must not count as a change.
    """
    before = {c["name"]: c for c in previous}
    after = {c["name"]: c for c in current}
    type_changed, nullability_changed = [], []
    for name in after.keys() & before.keys():
        old, new = before[name], after[name]
        if _type_of(old, compare_source_types) != _type_of(new, compare_source_types):
            type_changed.append(
                {"name": name, "from": _type_of(old, compare_source_types), "to": _type_of(new, compare_source_types)}
            )
        if compare_nullability and bool(old.get("nullable", True)) != bool(new.get("nullable", True)):
            nullability_changed.append(
                {"name": name, "from": bool(old.get("nullable", True)), "to": bool(new.get("nullable", True))}
            )
    return SchemaChanges(
        added=[c["name"] for c in current if c["name"] not in before],
        removed=[c["name"] for c in previous if c["name"] not in after],
        type_changed=sorted(type_changed, key=lambda c: c["name"]),
        nullability_changed=sorted(nullability_changed, key=lambda c: c["name"]),
    )


def enforce(policy: SchemaPolicy, changes: SchemaChanges, source_name: str) -> None:
    """Raise SchemaContractError when ``policy`` forbids ``changes``."""
    if policy == "freeze" and not changes.empty:
        raise SchemaContractError(
            f"{source_name}: the schema is frozen but changed since the last successful load: "
            f"{changes.describe()}. Nothing was written. Update the source, or set "
            "schema_policy: evolve for it in the registry to accept the change"
        )


def with_changes_metadata(schema: pa.Schema, changes: SchemaChanges) -> pa.Schema:
    """The Parquet schema carrying the changes (only when there are any)."""
    if changes.empty:
        return schema
    metadata = dict(schema.metadata or {})
    metadata[PARQUET_METADATA_KEY] = json.dumps(changes.to_json(), sort_keys=True).encode()
    return schema.with_metadata(metadata)


@dataclass
class SchemaGate:
    """Holds a source's previous columns and the policy; checks each run's columns once."""

    source_name: str
    policy: SchemaPolicy
    previous: list[dict[str, Any]] | None
    compare_source_types: bool = True
    compare_nullability: bool = True
    changes: SchemaChanges = field(default_factory=SchemaChanges)

    def check(self, current: list[dict[str, Any]]) -> SchemaChanges:
        self.changes = (
            SchemaChanges()
            if self.previous is None
            else diff_columns(self.previous, current, self.compare_source_types, self.compare_nullability)
        )
        enforce(self.policy, self.changes, self.source_name)
        return self.changes
