"""Builds every extract query in one place, without touching a database.

An ``ExtractRange`` is the predicate a run reads with. It is stored as JSON with
the run's tracking row, so a partition can be replayed with exactly the same
predicate later. Values are bound parameters cast to the watermark column's type;
identifiers always go through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from psycopg2 import sql

from platform_assets.ingestion.snapshot import Snapshot
from platform_assets.ingestion.type_mapping import ColumnMapping, SelectAs


@dataclass(frozen=True)
class CatchUp:
    """Re-read rows the previous extract could not see.

    Rows with ``floor <= col <= upper`` (no lower bound when ``floor`` is None)
    written by transactions invisible to ``snapshot``.
    """

    snapshot: str
    upper: str
    floor: str | None = None


@dataclass(frozen=True)
class ExtractRange:
    """Which rows of a table a run reads. Bounds are watermark values in text form."""

    column: str | None = None
    cast_type: str | None = None
    lower: str | None = None
    lower_inclusive: bool = False
    upper: str | None = None
    upper_inclusive: bool = False
    catchup: CatchUp | None = None

    @property
    def is_full(self) -> bool:
        return self.column is None or (
            self.lower is None and self.upper is None and self.catchup is None
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtractRange:
        catchup = data.get("catchup")
        return cls(**{**data, "catchup": CatchUp(**catchup) if catchup else None})


def relation(schema: str, table: str) -> sql.Composable:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def select_list(mappings: list[ColumnMapping]) -> sql.Composable:
    items = []
    for m in mappings:
        column = sql.Identifier(m.column.name)
        if m.select_as is SelectAs.ARRAY_TO_JSON:
            items.append(sql.SQL("array_to_json({c}) AS {c}").format(c=column))
        else:
            items.append(column)
    return sql.SQL(", ").join(items)


def where_clause(extract_range: ExtractRange) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE clause (or nothing) for ``extract_range``, with its parameters."""
    if extract_range.is_full:
        return sql.SQL(""), {}
    condition, params = range_condition(extract_range)
    return sql.SQL(" WHERE {}").format(condition), params


def range_condition(extract_range: ExtractRange) -> tuple[sql.Composable, dict[str, Any]]:
    """The boolean condition selecting ``extract_range``'s rows, with its parameters."""
    if extract_range.is_full:
        return sql.SQL("TRUE"), {}
    column = sql.Identifier(extract_range.column)
    cast_type = sql.SQL(extract_range.cast_type)
    params: dict[str, Any] = {}

    def bound(op: str, name: str, value: str) -> sql.Composable:
        params[name] = value
        return sql.SQL("{c} " + op + " CAST({p} AS {t})").format(
            c=column, p=sql.Placeholder(name), t=cast_type
        )

    main: list[sql.Composable] = []
    if extract_range.lower is not None:
        op = ">=" if extract_range.lower_inclusive else ">"
        main.append(bound(op, "lower", extract_range.lower))
    upper: list[sql.Composable] = []
    if extract_range.upper is not None:
        op = "<=" if extract_range.upper_inclusive else "<"
        upper.append(bound(op, "upper", extract_range.upper))

    predicate = _conjunction(main)
    if extract_range.catchup is not None:
        catchup = extract_range.catchup
        invisible, snapshot_params = Snapshot.parse(catchup.snapshot).invisible_row_condition()
        params.update(snapshot_params)
        late = [bound("<=", "catchup_upper", catchup.upper), invisible]
        if catchup.floor is not None:
            late.insert(0, bound(">=", "catchup_floor", catchup.floor))
        predicate = sql.SQL("({} OR {})").format(predicate, _conjunction(late))
    return _conjunction([predicate, *upper]), params


def _conjunction(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return sql.SQL("TRUE")
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def table_extract(
    schema: str, table: str, mappings: list[ColumnMapping], extract_range: ExtractRange
) -> tuple[sql.Composable, dict[str, Any]]:
    """SELECT for a table or view, with its parameters."""
    where, params = where_clause(extract_range)
    query = sql.SQL("SELECT {cols} FROM {rel}{where}").format(
        cols=select_list(mappings), rel=relation(schema, table), where=where
    )
    return query, params


def query_extract(query: str, mappings: list[ColumnMapping]) -> sql.Composable:
    """SELECT over a user's custom query (no parameters: ``%`` in it stays literal)."""
    return sql.SQL("SELECT {cols} FROM ({query}) AS custom_query").format(
        cols=select_list(mappings), query=sql.SQL(strip_statement(query))
    )


def strip_statement(query: str) -> str:
    """The query without surrounding whitespace and trailing semicolons."""
    return query.strip().rstrip(";").strip()


def copy_statement(select: str) -> str:
    return f"COPY ({select}) TO STDOUT (FORMAT csv)"
