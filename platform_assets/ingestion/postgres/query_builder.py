"""Builds every extract query in one place, without touching a database.

An ``ExtractRange`` is the predicate a run reads with. It is stored as JSON with
the run's tracking row, so a partition can be replayed with exactly the same
predicate later. Values are ``psycopg2.sql.Literal``s cast to the watermark
column's type; identifiers always go through ``psycopg2.sql.Identifier``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from psycopg2 import sql

# The only types a range casts its bounds to (the watermark column types); a recorded
# range read back from the tracking tables is checked against them before use.
WATERMARK_CAST_TYPES = frozenset({"timestamp", "timestamptz", "date", "int2", "int4", "int8"})
_TRAILING = re.compile(r"[\s;]+$")
_COMMENTS_ONLY = re.compile(r"(\s*--[^\n]*)+\s*$")

from platform_assets.ingestion.postgres.snapshot import Snapshot
from platform_assets.ingestion.postgres.sql_text import check_single_statement
from platform_assets.ingestion.postgres.type_mapping import ColumnMapping, SelectAs


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
    """Which rows of a table a run reads. Bounds are watermark values in text form.

    ``include_nulls`` adds the rows whose watermark is NULL (the first partition's;
    without bounds and without it, the range is every non-NULL value); ``empty``
    selects no watermark value at all (a range that loaded nothing, bounded so that
    its replay stays empty).
    """

    column: str | None = None
    cast_type: str | None = None
    lower: str | None = None
    lower_inclusive: bool = False
    upper: str | None = None
    upper_inclusive: bool = False
    catchup: CatchUp | None = None
    include_nulls: bool = False
    empty: bool = False

    @property
    def is_full(self) -> bool:
        return self.column is None or (
            self.lower is None and self.upper is None and self.catchup is None and not self.empty
            and self.include_nulls
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


def where_clause(extract_range: ExtractRange) -> sql.Composable:
    """The WHERE clause (or nothing) for ``extract_range``."""
    if extract_range.is_full:
        return sql.SQL("")
    return sql.SQL(" WHERE {}").format(range_condition(extract_range))


def range_condition(extract_range: ExtractRange) -> sql.Composable:
    """The boolean condition selecting ``extract_range``'s rows.

    Values are ``sql.Literal``s cast to the column type: quoted by psycopg2's
    adapters, and with no ``%`` placeholders, so identifiers containing ``%`` work.
    """
    if extract_range.is_full:
        return sql.SQL("TRUE")
    if extract_range.cast_type not in WATERMARK_CAST_TYPES:
        raise ValueError(
            f"extract range cast type {extract_range.cast_type!r} is not a watermark type "
            f"{sorted(WATERMARK_CAST_TYPES)}; a recorded range may have been altered"
        )
    column = sql.Identifier(extract_range.column)
    cast_type = sql.SQL(extract_range.cast_type)

    def bound(op: str, value: str) -> sql.Composable:
        return sql.SQL("{c} " + op + " CAST({v} AS {t})").format(
            c=column, v=sql.Literal(value), t=cast_type
        )

    if extract_range.empty:
        predicate: sql.Composable = sql.SQL("FALSE")
    else:
        main: list[sql.Composable] = []
        if extract_range.lower is not None:
            main.append(bound(">=" if extract_range.lower_inclusive else ">", extract_range.lower))
        upper: list[sql.Composable] = []
        if extract_range.upper is not None:
            upper.append(bound("<=" if extract_range.upper_inclusive else "<", extract_range.upper))
        predicate = _conjunction(main) if main or upper else sql.SQL("{} IS NOT NULL").format(column)
        if extract_range.catchup is not None:
            catchup = extract_range.catchup
            late = [bound("<=", catchup.upper), Snapshot.parse(catchup.snapshot).invisible_row_condition()]
            if catchup.floor is not None:
                late.insert(0, bound(">=", catchup.floor))
            predicate = sql.SQL("({} OR {})").format(predicate, _conjunction(late))
        predicate = _conjunction([predicate, *upper])
    if extract_range.include_nulls:
        predicate = sql.SQL("({} OR {} IS NULL)").format(predicate, column)
    return predicate


def _conjunction(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return sql.SQL("TRUE")
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


PageRange = tuple[int | None, int | None]


def table_extract(
    schema: str,
    table: str,
    mappings: list[ColumnMapping],
    extract_range: ExtractRange,
    pages: PageRange | None = None,
) -> sql.Composable:
    """SELECT for a table or view; ``pages`` limits it to heap pages ``[first, last)``."""
    if pages is None:
        where = where_clause(extract_range)
    else:
        where = sql.SQL(" WHERE {} AND {}").format(page_condition(pages), range_condition(extract_range))
    return sql.SQL("SELECT {cols} FROM {rel}{where}").format(
        cols=select_list(mappings), rel=relation(schema, table), where=where
    )


def page_condition(pages: PageRange) -> sql.Composable:
    """A TID range scan over heap pages ``[first, last)`` (None: unbounded)."""
    first, last = pages
    parts = []
    if first is not None:
        parts.append(sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({int(first)},0)")))
    if last is not None:
        parts.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({int(last)},0)")))
    return _conjunction(parts)


def split_pages(pages: int, streams: int) -> list[PageRange]:
    """``streams`` contiguous page ranges covering a table of ``pages`` pages and any growth."""
    if streams <= 1 or pages < streams:
        return [(None, None)]
    bounds = [pages * i // streams for i in range(1, streams)]
    starts: list[int | None] = [None, *bounds]
    ends: list[int | None] = [*bounds, None]
    return list(zip(starts, ends))


def custom_query_text(query: str, source_name: str) -> str:
    """The custom query ready to wrap: stripped, and refused unless it is one statement."""
    text = strip_statement(query)
    check_single_statement(text, source_name)
    return text


def query_extract(query: str, mappings: list[ColumnMapping]) -> sql.Composable:
    """SELECT over a user's custom query (rendered without parameters: ``%`` stays literal).

    The query sits on lines of its own so that a trailing ``--`` comment ends there.
    """
    return sql.SQL("SELECT {cols} FROM (\n{query}\n) AS custom_query").format(
        cols=select_list(mappings), query=sql.SQL(strip_statement(query))
    )


def strip_statement(query: str) -> str:
    """The query without surrounding whitespace and trailing semicolons.

    A semicolon followed only by ``--`` comments is dropped too, unless a quote
    follows it (then it may sit inside a string literal and is left alone).
    """
    text = _TRAILING.sub("", query.strip())
    last = text.rfind(";")
    if last >= 0 and _COMMENTS_ONLY.match(text, last + 1) and not set(text[last:]) & {"'", '"'}:
        text = _TRAILING.sub("", text[:last]) + text[last + 1 :]
    return text


def copy_statement(select: str) -> str:
    return f"COPY ({select}) TO STDOUT (FORMAT text)"


def key_query(
    schema: str, table: str, key: list[ColumnMapping], collated: frozenset[str], utf8_server: bool = True
) -> sql.Composable:
    """SELECT of every row's key, sorted, NULL keys left out. Text sorts in UTF-8 byte order
    (code point order, as Python compares it): ``COLLATE "C"`` on a UTF8 (or SQL_ASCII)
    server, else the bytes of ``convert_to(text, 'UTF8')`` (in WIN1252, "C" puts the byte
    0x80, €, before 0xE9, é).

    A primary key in its own order is read from its index without a sort.
    """
    names = [sql.Identifier(m.column.name) for m in key]
    text_order = sql.SQL('{} COLLATE "C"') if utf8_server else sql.SQL("convert_to({}, 'UTF8')")
    order = [
        text_order.format(name) if m.column.type_name in collated else name
        for name, m in zip(names, key)
    ]
    return sql.SQL("SELECT {cols} FROM {rel} WHERE {not_null} ORDER BY {order}").format(
        cols=select_list(key),
        rel=relation(schema, table),
        not_null=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(n) for n in names),
        order=sql.SQL(", ").join(order),
    )
