"""schema_evolution: diffing column lists, the freeze/evolve policies, the Parquet footer."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from platform_assets.ingestion.errors import SchemaContractError, SchemaDetectionError
from platform_assets.ingestion.sink.schema_evolution import (
    PARQUET_METADATA_KEY,
    SchemaChanges,
    SchemaGate,
    diff_columns,
    enforce,
    with_changes_metadata,
)


def col(name, source_type="integer", arrow_type="int32", nullable=True, **extra):
    return {"name": name, "source_type": source_type, "arrow_type": arrow_type, "nullable": nullable, **extra}


BASE = [
    col("id", nullable=False),
    col("amount", "numeric(12,2)", "decimal128(12, 2)"),
    col("note", "text", "string"),
]


def test_identical_columns_have_no_changes():
    changes = diff_columns(BASE, [dict(c) for c in BASE])
    assert changes == SchemaChanges()
    assert changes.empty and not changes.flagged
    assert changes.describe() == "no changes"


def test_positions_and_extra_keys_do_not_count_as_changes():
    previous = [dict(c, position=i) for i, c in enumerate(BASE, start=1)]
    current = [dict(c, position=i + 10, precision=12) for i, c in enumerate(reversed(BASE))]
    assert diff_columns(previous, current).empty


def test_added_column_is_not_flagged():
    changes = diff_columns(BASE, [*BASE, col("created_at", "timestamp with time zone", "timestamp[us, tz=UTC]")])
    assert changes.added == ["created_at"]
    assert (changes.removed, changes.type_changed, changes.nullability_changed) == ([], [], [])
    assert not changes.empty and not changes.flagged
    assert changes.describe() == "added ['created_at']"


def test_added_columns_keep_the_current_order():
    current = [col("z"), *BASE, col("a")]
    assert diff_columns(BASE, current).added == ["z", "a"]


def test_removed_columns_are_flagged_in_previous_order():
    changes = diff_columns(BASE, [BASE[1]])
    assert changes.removed == ["id", "note"]
    assert changes.added == []
    assert changes.flagged
    assert changes.describe() == "removed ['id', 'note']"


def test_type_change_compares_source_and_arrow_types():
    current = [BASE[0], col("amount", "numeric(14,2)", "decimal128(14, 2)"), BASE[2]]
    changes = diff_columns(BASE, current)
    assert changes.type_changed == [
        {"name": "amount", "from": "numeric(12,2) (decimal128(12, 2))", "to": "numeric(14,2) (decimal128(14, 2))"}
    ]
    assert changes.flagged
    assert changes.describe() == "amount: type numeric(12,2) (decimal128(12, 2)) -> numeric(14,2) (decimal128(14, 2))"


def test_source_type_only_change_counts_when_comparing_source_types():
    # varchar(10) -> text maps to the same Arrow type but is a different source type.
    previous = [col("code", "character varying(10)", "string")]
    current = [col("code", "text", "string")]
    changes = diff_columns(previous, current)
    assert [c["name"] for c in changes.type_changed] == ["code"]
    assert diff_columns(previous, current, compare_source_types=False).empty


def test_compare_source_types_false_still_sees_arrow_type_changes():
    previous = [col("n", "inferred", "int64")]
    current = [col("n", "pinned", "string")]
    changes = diff_columns(previous, current, compare_source_types=False)
    assert changes.type_changed == [{"name": "n", "from": "int64", "to": "string"}]


def test_nullability_change_in_both_directions():
    previous = [col("a", nullable=True), col("b", nullable=False)]
    current = [col("a", nullable=False), col("b", nullable=True)]
    changes = diff_columns(previous, current)
    assert changes.nullability_changed == [
        {"name": "a", "from": True, "to": False},
        {"name": "b", "from": False, "to": True},
    ]
    assert changes.type_changed == []
    assert changes.flagged
    assert changes.describe() == "a: nullable -> not null; b: not null -> nullable"


def test_missing_nullable_key_means_nullable():
    previous = [{"name": "a", "source_type": "x", "arrow_type": "int64"}]
    assert diff_columns(previous, [col("a", "x", "int64", nullable=True)]).empty
    changes = diff_columns(previous, [col("a", "x", "int64", nullable=False)])
    assert changes.nullability_changed == [{"name": "a", "from": True, "to": False}]


def test_changes_are_sorted_by_column_name():
    previous = [col("z"), col("m"), col("a")]
    current = [col("z", arrow_type="int64"), col("m", arrow_type="int64"), col("a", arrow_type="int64")]
    assert [c["name"] for c in diff_columns(previous, current).type_changed] == ["a", "m", "z"]


def test_every_kind_of_change_together():
    current = [
        col("id", nullable=True),                           # nullability
        col("amount", "double precision", "double"),        # type
        col("extra", "text", "string"),                     # added
    ]                                                       # note removed
    changes = diff_columns(BASE, current)
    assert changes.to_json() == {
        "added": ["extra"],
        "removed": ["note"],
        "type_changed": [
            {"name": "amount", "from": "numeric(12,2) (decimal128(12, 2))", "to": "double precision (double)"}
        ],
        "nullability_changed": [{"name": "id", "from": False, "to": True}],
    }
    assert changes.describe() == (
        "added ['extra']; removed ['note']; amount: type numeric(12,2) (decimal128(12, 2)) -> "
        "double precision (double); id: not null -> nullable"
    )
    assert SchemaChanges(**changes.to_json()) == changes


def test_freeze_raises_with_the_change_list():
    changes = diff_columns(BASE, [*BASE[:2], col("extra", "text", "string")])
    with pytest.raises(SchemaContractError) as raised:
        enforce("freeze", changes, "public.orders")
    message = str(raised.value)
    assert message.startswith("public.orders: the schema is frozen")
    assert "added ['extra']" in message and "removed ['note']" in message
    assert "Nothing was written" in message
    assert isinstance(raised.value, SchemaDetectionError)


def test_freeze_raises_even_for_an_added_column_only():
    with pytest.raises(SchemaContractError, match=r"added \['x'\]"):
        enforce("freeze", SchemaChanges(added=["x"]), "s")


def test_freeze_accepts_no_changes():
    enforce("freeze", SchemaChanges(), "s")


@pytest.mark.parametrize(
    "changes",
    [
        SchemaChanges(),
        SchemaChanges(added=["a"]),
        SchemaChanges(removed=["a"]),
        SchemaChanges(type_changed=[{"name": "a", "from": "x", "to": "y"}]),
        SchemaChanges(nullability_changed=[{"name": "a", "from": True, "to": False}]),
    ],
)
def test_evolve_never_raises(changes):
    enforce("evolve", changes, "s")


def test_with_changes_metadata_writes_the_footer_key():
    schema = pa.schema([pa.field("id", pa.int64())], metadata={b"other": b"kept"})
    changes = SchemaChanges(removed=["note"], added=["extra"])
    out = with_changes_metadata(schema, changes)
    assert out.metadata[b"other"] == b"kept"
    assert json.loads(out.metadata[PARQUET_METADATA_KEY]) == changes.to_json()
    assert PARQUET_METADATA_KEY == b"data_platform.schema_changes"
    assert out.remove_metadata().equals(schema.remove_metadata())
    assert schema.metadata == {b"other": b"kept"}  # the input is not modified


def test_with_changes_metadata_leaves_the_schema_alone_without_changes():
    schema = pa.schema([pa.field("id", pa.int64())])
    assert with_changes_metadata(schema, SchemaChanges()) is schema
    assert schema.metadata is None


def test_gate_without_previous_schema_accepts_anything_even_frozen():
    gate = SchemaGate("s", "freeze", None)
    assert gate.check(BASE).empty
    assert gate.changes.empty


def test_gate_records_changes_and_enforces_its_policy():
    evolve = SchemaGate("s", "evolve", BASE)
    changes = evolve.check(BASE[:2])
    assert changes.removed == ["note"] and evolve.changes is changes

    frozen = SchemaGate("s", "freeze", BASE, compare_source_types=False)
    same_arrow = [BASE[0], BASE[1], col("note", "character varying", "string")]
    assert frozen.check(same_arrow).empty  # only the source type differs
    with pytest.raises(SchemaContractError, match=r"removed \['note'\]"):
        frozen.check(BASE[:2])
