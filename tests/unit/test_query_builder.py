"""Unit tests for platform_assets.ingestion.postgres.query_builder.

The composables are rendered with a real connection (``as_string``, as the engine
does; values are ``sql.Literal``s, there are no placeholders) but no table of the
project is touched; a few tests evaluate the predicates over VALUES lists or a
temporary table to check what they select, not just how they read.
"""

from __future__ import annotations

import io
import json

import psycopg2
import pytest
from psycopg2 import sql

from platform_assets.ingestion.postgres import query_builder
from platform_assets.ingestion.postgres.catalog import describe_query
from platform_assets.ingestion.postgres.query_builder import (
    CatchUp,
    ExtractRange,
    copy_statement,
    query_extract,
    range_condition,
    relation,
    select_list,
    strip_statement,
    table_extract,
    where_clause,
)
from platform_assets.ingestion.postgres.type_mapping import PgColumn, map_column

REFERENCE = "(SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint)"
WIDENED = f"({REFERENCE} - 1 - ((({REFERENCE} - 1) % 4294967296 - (xmin::text::bigint) + 4294967296) % 4294967296))"


def xid_condition(xip: str, xmax: int) -> str:
    """The rendered invisible-row condition; ``xip`` as psycopg2 renders the list literal (64-bit)."""
    return f"((xmin::text::bigint) >= 3 AND ({WIDENED} >= {xmax} OR {WIDENED} = ANY({xip}::bigint[])))"


def mapping(name: str, type_name: str = "int4", element: str | None = None, position: int = 1):
    return map_column(
        PgColumn(name=name, type_name=type_name, declared_type=type_name, position=position, element_type_name=element)
    )


# --------------------------------------------------------------------------- ExtractRange


@pytest.mark.parametrize(
    ("extract_range", "full"),
    [
        (ExtractRange(), True),
        (ExtractRange(column="id", cast_type="int8", include_nulls=True), True),
        (ExtractRange(column="id", cast_type="int8"), False),  # every non-NULL value
        (ExtractRange(lower="5"), True),  # no column: nothing to filter on
        (ExtractRange(column="id", cast_type="int8", lower="5"), False),
        (ExtractRange(column="id", cast_type="int8", upper="5"), False),
        (ExtractRange(column="id", cast_type="int8", catchup=CatchUp("1:2:", "5")), False),
    ],
)
def test_is_full(extract_range: ExtractRange, full: bool) -> None:
    assert extract_range.is_full is full


RANGES = [
    ExtractRange(),
    ExtractRange(column="id", cast_type="int8"),
    ExtractRange(column="id", cast_type="int8", lower="10", lower_inclusive=True, upper="20"),
    ExtractRange(
        column="updated_at",
        cast_type="timestamptz",
        lower="2024-01-01T00:00:00.000000+00:00",
        catchup=CatchUp(snapshot="100:200:150,160", upper="2024-01-01T00:00:00.000000+00:00"),
    ),
    ExtractRange(
        column="updated_at",
        cast_type="timestamp",
        lower="2024-01-01T00:00:00.000000",
        upper="2024-01-02T00:00:00.000000",
        upper_inclusive=True,
        catchup=CatchUp(snapshot="4294967396:4294967496:", upper="2024-01-01T00:00:00.000000", floor="2023-12-31T00:00:00.000000"),
    ),
]


@pytest.mark.parametrize("extract_range", RANGES)
def test_extract_range_json_round_trip(extract_range: ExtractRange) -> None:
    stored = json.loads(json.dumps(extract_range.to_json()))
    assert ExtractRange.from_json(stored) == extract_range


def test_extract_range_json_shape() -> None:
    r = ExtractRange(column="id", cast_type="int8", lower="1", catchup=CatchUp("1:5:3", "1", floor="0"))
    assert r.to_json() == {
        "column": "id",
        "cast_type": "int8",
        "lower": "1",
        "lower_inclusive": False,
        "upper": None,
        "upper_inclusive": False,
        "catchup": {"snapshot": "1:5:3", "upper": "1", "floor": "0"},
        "include_nulls": False,
        "empty": False,
    }


def test_extract_range_from_json_without_catchup_key_or_floor() -> None:
    assert ExtractRange.from_json({"column": "id", "cast_type": "int8", "lower": "3"}) == ExtractRange(
        column="id", cast_type="int8", lower="3"
    )
    restored = ExtractRange.from_json({"column": "id", "catchup": {"snapshot": "1:2:", "upper": "9"}})
    assert restored.catchup == CatchUp(snapshot="1:2:", upper="9", floor=None)


# --------------------------------------------------------------------------- where_clause


@pytest.mark.parametrize(
    "extract_range", [ExtractRange(), ExtractRange(column="id", cast_type="int8", include_nulls=True)]
)
def test_full_range_has_no_where(render, extract_range: ExtractRange) -> None:
    where = where_clause(extract_range)
    assert isinstance(where, sql.Composable)
    assert render(where) == ""


@pytest.mark.parametrize(
    ("lower_inclusive", "upper_inclusive", "lower_op", "upper_op"),
    [(False, False, ">", "<"), (True, False, ">=", "<"), (False, True, ">", "<="), (True, True, ">=", "<=")],
)
def test_bounds_inclusivity_operators(
    render, lower_inclusive: bool, upper_inclusive: bool, lower_op: str, upper_op: str
) -> None:
    where = where_clause(
        ExtractRange(
            column="id",
            cast_type="int8",
            lower="10",
            lower_inclusive=lower_inclusive,
            upper="20",
            upper_inclusive=upper_inclusive,
        )
    )
    assert render(where) == (
        f' WHERE (("id" {lower_op} CAST(\'10\' AS int8)) AND "id" {upper_op} CAST(\'20\' AS int8))'
    )


def test_lower_bound_only(render) -> None:
    where = where_clause(ExtractRange(column="ts", cast_type="timestamptz", lower="2024-01-01T00:00:00Z"))
    assert render(where) == " WHERE ((\"ts\" > CAST('2024-01-01T00:00:00Z' AS timestamptz)))"


def test_upper_bound_only(render) -> None:
    where = where_clause(ExtractRange(column="d", cast_type="date", upper="2024-01-02"))
    assert render(where) == " WHERE (TRUE AND \"d\" < CAST('2024-01-02' AS date))"


def test_values_are_quoted_literals_cast_to_the_column_type(render) -> None:
    hostile = "2024-01-01'); DROP TABLE x; --"
    text = render(where_clause(ExtractRange(column="ts", cast_type="timestamp", lower=hostile, upper=hostile)))
    # quoted and escaped by psycopg2 as one string literal, cast to the column type
    literal = "CAST('2024-01-01''); DROP TABLE x; --' AS timestamp)"
    assert text == f' WHERE (("ts" > {literal}) AND "ts" < {literal})'
    assert text.count(literal) == 2
    assert "%(" not in text  # no placeholders left


INJECTION = "2024-01-01' OR '1'='1"


@pytest.fixture
def text_ranges(monkeypatch):
    """Allow ``text`` bounds, to check literal quoting on plain strings (watermarks are never text)."""
    monkeypatch.setattr(query_builder, "WATERMARK_CAST_TYPES", query_builder.WATERMARK_CAST_TYPES | {"text"})


@pytest.mark.parametrize("cast_type", ["text", "int8); DROP TABLE x; --", "timestamptz) OR (TRUE"])
def test_a_cast_type_that_is_not_a_watermark_type_is_refused(cast_type: str) -> None:
    with pytest.raises(ValueError, match="not a watermark type"):
        where_clause(ExtractRange(column="c", cast_type=cast_type, lower="1"))


def test_a_quote_in_a_value_does_not_widen_the_selection(render, fetch, text_ranges) -> None:
    """The value is compared as one text; its ``OR '1'='1'`` is never SQL."""
    where = where_clause(
        ExtractRange(column="s", cast_type="text", lower=INJECTION, lower_inclusive=True, upper=INJECTION, upper_inclusive=True)
    )
    assert render(where) == (
        " WHERE ((\"s\" >= CAST('2024-01-01'' OR ''1''=''1' AS text)) AND \"s\" <= CAST('2024-01-01'' OR ''1''=''1' AS text))"
    )
    rows = ["2023-12-31", "2024-01-01", "2024-01-02", "1", INJECTION, "zzz"]
    values = sql.SQL(", ").join(sql.SQL("({})").format(sql.Literal(v)) for v in rows)
    query = sql.SQL("SELECT s FROM (VALUES {}) AS t(s){} ORDER BY s").format(values, where)
    assert fetch(query) == [(INJECTION,)]


def test_a_quote_in_a_value_for_a_timestamp_column_is_one_bad_timestamp(fetch) -> None:
    """Cast to the column type, the whole value is one (invalid) timestamp: an error, not more rows."""
    where = where_clause(ExtractRange(column="ts", cast_type="timestamp", lower=INJECTION))
    query = sql.SQL(
        "SELECT ts FROM (VALUES ('2023-12-31'::timestamp), ('2024-01-02'::timestamp)) AS t(ts){}"
    ).format(where)
    with pytest.raises(psycopg2.errors.InvalidDatetimeFormat) as e:
        fetch(query)
    assert INJECTION in str(e.value)


@pytest.mark.parametrize(
    "value",
    ["it's", "''", "back\\slash", "\\'", "100%", "%s", "%(lower)s", "%%", "{}", "{0}", "line\nbreak", "naïve ☃", "", " "],
)
def test_values_round_trip_through_the_literal(fetch, value: str, text_ranges) -> None:
    """lower = upper = value (inclusive) selects exactly the row equal to value."""
    where = where_clause(
        ExtractRange(column="s", cast_type="text", lower=value, lower_inclusive=True, upper=value, upper_inclusive=True)
    )
    rows = [value, value + "x", "x" + value, "other"]
    values = sql.SQL(", ").join(sql.SQL("({})").format(sql.Literal(v)) for v in rows)
    query = sql.SQL("SELECT s FROM (VALUES {}) AS t(s){}").format(values, where)
    assert fetch(query) == [(value,)]


def test_catchup_with_floor(render) -> None:
    where = where_clause(
        ExtractRange(
            column="id",
            cast_type="int8",
            lower="100",
            catchup=CatchUp(snapshot="4294967396:4294967496:4294967446,8589934593", upper="100", floor="40"),
        )
    )
    assert render(where) == (
        " WHERE (((\"id\" > CAST('100' AS int8)) OR (\"id\" >= CAST('40' AS int8) AND "
        "\"id\" <= CAST('100' AS int8) AND "
        + xid_condition("ARRAY[4294967446,8589934593]", 4294967496)  # 64-bit xids
        + ")))"
    )


def test_catchup_without_floor(render) -> None:
    where = where_clause(
        ExtractRange(column="id", cast_type="int8", lower="100", catchup=CatchUp(snapshot="10:20:", upper="100"))
    )
    assert render(where) == (
        " WHERE (((\"id\" > CAST('100' AS int8)) OR (\"id\" <= CAST('100' AS int8) AND "
        + xid_condition("'{}'", 20)
        + ")))"
    )
    assert render(where).count(" >= CAST(") == 0  # no floor bound


def test_catchup_with_upper_bound_keeps_upper_outside_the_or(render) -> None:
    where = where_clause(
        ExtractRange(
            column="id",
            cast_type="int8",
            lower="100",
            upper="200",
            catchup=CatchUp(snapshot="10:20:", upper="100", floor="50"),
        )
    )
    text = render(where)
    assert text.endswith(") AND \"id\" < CAST('200' AS int8))")
    assert text.startswith(" WHERE (((\"id\" > CAST('100' AS int8)) OR (")
    assert text == (
        " WHERE (((\"id\" > CAST('100' AS int8)) OR (\"id\" >= CAST('50' AS int8) AND "
        "\"id\" <= CAST('100' AS int8) AND "
        + xid_condition("'{}'", 20)
        + ")) AND \"id\" < CAST('200' AS int8))"
    )


def test_rendered_catchup_uses_a_single_modulo_operator(render) -> None:
    where = where_clause(
        ExtractRange(column="id", cast_type="int8", lower="1", catchup=CatchUp(snapshot="10:20:15", upper="1"))
    )
    text = render(where)
    assert "%%" not in text
    assert "+ 4294967296) % 4294967296))" in text
    assert "ANY(ARRAY[15]::bigint[])" in text
    assert ">= 20 OR" in text


@pytest.mark.parametrize(
    "extract_range", [ExtractRange(), ExtractRange(column="id", cast_type="int8", include_nulls=True)]
)
def test_range_condition_of_a_full_range_is_true(render, extract_range: ExtractRange) -> None:
    condition = range_condition(extract_range)
    assert isinstance(condition, sql.Composable)
    assert render(condition) == "TRUE"


@pytest.mark.parametrize(
    "extract_range",
    [
        ExtractRange(column="id", cast_type="int8", lower="1"),
        ExtractRange(column="id", cast_type="int8", upper="9", upper_inclusive=True),
        ExtractRange(column="id", cast_type="int8", lower="1", upper="9", catchup=CatchUp("10:20:15", "1", "0")),
    ],
)
def test_where_clause_is_where_plus_range_condition(render, extract_range: ExtractRange) -> None:
    assert render(where_clause(extract_range)) == " WHERE " + render(range_condition(extract_range))


# Each row: (id, 32-bit xmin). Snapshot "100:200:150": xmin 150 or >= 200 is invisible.
ROWS = [(1, 50), (2, 150), (3, 160), (4, 250), (5, 90), (6, 300), (7, 2), (8, 210)]


@pytest.mark.parametrize(
    ("extract_range", "expected_ids"),
    [
        pytest.param(ExtractRange(), [1, 2, 3, 4, 5, 6, 7, 8], id="full"),
        pytest.param(ExtractRange(column="id", cast_type="int4", lower="3"), [4, 5, 6, 7, 8], id="lower-exclusive"),
        pytest.param(
            ExtractRange(column="id", cast_type="int4", lower="3", lower_inclusive=True), [3, 4, 5, 6, 7, 8], id="lower-inclusive"
        ),
        pytest.param(ExtractRange(column="id", cast_type="int4", upper="3"), [1, 2], id="upper-exclusive"),
        pytest.param(
            ExtractRange(column="id", cast_type="int4", upper="3", upper_inclusive=True), [1, 2, 3], id="upper-inclusive"
        ),
        pytest.param(
            ExtractRange(column="id", cast_type="int4", lower="5", catchup=CatchUp("100:200:150", upper="5")),
            [2, 4, 6, 7, 8],
            id="catchup-no-floor",
        ),
        pytest.param(
            ExtractRange(column="id", cast_type="int4", lower="5", catchup=CatchUp("100:200:150", upper="5", floor="3")),
            [4, 6, 7, 8],
            id="catchup-floor",
        ),
        pytest.param(
            ExtractRange(
                column="id",
                cast_type="int4",
                lower="5",
                upper="8",
                catchup=CatchUp("100:200:150", upper="5", floor="3"),
            ),
            [4, 6, 7],
            id="catchup-floor-and-upper",
        ),
        pytest.param(
            ExtractRange(column="id", cast_type="int4", lower="8", catchup=CatchUp("100:200:150,160", upper="8")),
            [2, 3, 4, 6, 8],
            id="catchup-two-open-xids",
        ),
    ],
)
def test_where_clause_selects_the_expected_rows(fetch, extract_range: ExtractRange, expected_ids: list[int]) -> None:
    where = where_clause(extract_range)
    values = sql.SQL(", ").join(sql.SQL("({}, {}::bigint)").format(sql.Literal(i), sql.Literal(x)) for i, x in ROWS)
    query = sql.SQL("SELECT id FROM (VALUES {}) AS t(id, xmin){} ORDER BY id").format(values, where)
    assert [r[0] for r in fetch(query)] == expected_ids


# --------------------------------------------------------------------------- identifiers


def test_relation_quotes_both_parts(render) -> None:
    assert render(relation("public", "orders")) == '"public"."orders"'
    assert render(relation("My Schema", 'we"ird')) == '"My Schema"."we""ird"'


def test_select_list_plain_and_array_columns(render) -> None:
    mappings = [
        mapping("id", "int8"),
        mapping("tags", "_text", element="text"),
        mapping("Mixed Case", "interval"),
        mapping("ranges", "_int4range", element="int4range"),
    ]
    assert render(select_list(mappings)) == (
        '"id", array_to_json("tags") AS "tags", "Mixed Case", "ranges"'
    )


@pytest.mark.parametrize(
    ("schema", "table", "expected_relation"),
    [
        ("public", "orders", '"public"."orders"'),
        ("public", "orders; DROP TABLE x", '"public"."orders; DROP TABLE x"'),
        ('s"; --', "t", '"s""; --"."t"'),
        ("sales", "Order Lines", '"sales"."Order Lines"'),
    ],
)
def test_table_extract_full(render, schema: str, table: str, expected_relation: str) -> None:
    query = table_extract(schema, table, [mapping("id", "int8"), mapping("tags", "_int4", element="int4")], ExtractRange())
    assert isinstance(query, sql.Composable)
    assert render(query) == f'SELECT "id", array_to_json("tags") AS "tags" FROM {expected_relation}'


def test_table_extract_with_range(render) -> None:
    query = table_extract(
        "public",
        "orders; DROP TABLE x",
        [mapping("id", "int8"), mapping("created; --", "timestamptz")],
        ExtractRange(column="created; --", cast_type="timestamptz", lower="2024-01-01T00:00:00+00:00", lower_inclusive=True),
    )
    assert render(query) == (
        'SELECT "id", "created; --" FROM "public"."orders; DROP TABLE x" '
        "WHERE ((\"created; --\" >= CAST('2024-01-01T00:00:00+00:00' AS timestamptz)))"
    )


def test_table_extract_runs_against_a_hostile_table_name(unit_conn, render) -> None:
    """The weird name is one identifier: the statement reads exactly that table."""
    table = "orders; DROP TABLE x"
    with unit_conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TEMP TABLE {} (id int8, tags int4[])").format(sql.Identifier(table))
        )
        try:
            cur.execute(
                sql.SQL("INSERT INTO {} VALUES (1, '{{1,2}}'), (2, NULL), (3, '{{}}')").format(sql.Identifier(table))
            )
            query = table_extract(
                "pg_temp",
                table,
                [mapping("id", "int8"), mapping("tags", "_int4", element="int4")],
                ExtractRange(column="id", cast_type="int8", lower="1"),
            )
            cur.execute(render(query))
            assert cur.fetchall() == [(2, None), (3, [])]
            buf = io.BytesIO()
            cur.copy_expert(copy_statement(render(query)), buf)
            assert buf.getvalue() == b'2\t\\N\n3\t[]\n'
        finally:
            cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def test_identifier_with_percent_renders_in_a_bounded_extract(render) -> None:
    """'%' in a name stays as is: the statement has no placeholders to confuse it with."""
    query = table_extract(
        "public",
        "discount_%s",
        [mapping("pct%", "int4")],
        ExtractRange(column="pct%", cast_type="int4", lower="1"),
    )
    assert render(query) == (
        'SELECT "pct%" FROM "public"."discount_%s" WHERE (("pct%" > CAST(\'1\' AS int4)))'
    )


def test_identifier_with_percent_runs_a_bounded_extract_with_catchup(unit_conn, render) -> None:
    """Table 'pct%' with column 'pct%': a bounded extract with a catch-up (which also holds
    the '%' modulo operator) reads exactly the expected rows, with SELECT and with COPY."""
    table = sql.Identifier("pct%")
    with unit_conn.cursor() as cur:  # autocommit: every statement is its own transaction
        cur.execute(sql.SQL('CREATE TEMP TABLE {} ("pct%" int4)').format(table))
        try:
            cur.execute(sql.SQL("INSERT INTO {} VALUES (0), (1), (2), (3), (4), (5)").format(table))
            cur.execute("SELECT pg_current_snapshot()::text")
            [(snapshot,)] = cur.fetchall()
            cur.execute(sql.SQL("INSERT INTO {} VALUES (2), (4), (6)").format(table))  # after the snapshot
            query = table_extract(
                "pg_temp",
                "pct%",
                [mapping("pct%", "int4")],
                ExtractRange(
                    column="pct%",
                    cast_type="int4",
                    lower="4",
                    upper="6",
                    catchup=CatchUp(snapshot=snapshot, upper="4", floor="1"),
                ),
            )
            text = render(query)
            assert text.startswith('SELECT "pct%" FROM "pg_temp"."pct%" WHERE ')
            assert "%%" not in text
            # > 4 (5), or 1 <= x <= 4 and written after the snapshot (2, 4); < 6 overall
            cur.execute(text)
            assert sorted(cur.fetchall()) == [(2,), (4,), (5,)]
            buf = io.BytesIO()
            cur.copy_expert(copy_statement(text), buf)
            assert sorted(buf.getvalue().splitlines()) == [b"2", b"4", b"5"]
        finally:
            cur.execute(sql.SQL("DROP TABLE {}").format(table))


# --------------------------------------------------------------------------- custom queries


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  SELECT 1;  ", "SELECT 1"),
        ("SELECT 1;;\n", "SELECT 1"),
        ("\n\tSELECT 1 ; \n", "SELECT 1"),
        pytest.param("SELECT 1 ; ;", "SELECT 1", id="semicolons-with-space"),
        pytest.param("SELECT 1;\n ;\t; \n", "SELECT 1", id="semicolons-and-whitespace-mixed"),
        ("SELECT ';' AS s", "SELECT ';' AS s"),
        ("SELECT 'a;'", "SELECT 'a;'"),
    ],
)
def test_strip_statement(query: str, expected: str) -> None:
    assert strip_statement(query) == expected


def test_query_extract_keeps_percent_and_braces_untouched(render) -> None:
    user_query = "SELECT name, '100%' AS pct, '{}' AS braces, '{0}' AS fmt FROM t WHERE name LIKE 'a%%b%s';"
    composed = query_extract(user_query, [mapping("name", "text"), mapping("pct", "text")])
    assert render(composed) == (
        'SELECT "name", "pct" FROM (\n'
        "SELECT name, '100%' AS pct, '{}' AS braces, '{0}' AS fmt FROM t WHERE name LIKE 'a%%b%s'"
        "\n) AS custom_query"
    )


def test_query_extract_with_array_column(render) -> None:
    composed = query_extract("select array[1,2] as xs", [mapping("xs", "_int4", element="int4")])
    assert render(composed) == 'SELECT array_to_json("xs") AS "xs" FROM (\nselect array[1,2] as xs\n) AS custom_query'


def test_query_extract_copy_runs_with_percent_and_braces(unit_conn) -> None:
    user_query = "SELECT '100%' AS pct, '{}' AS braces, '%s %(x)s' AS fmt;\n"
    composed = query_extract(user_query, [mapping("pct", "text"), mapping("braces", "text"), mapping("fmt", "text")])
    buf = io.BytesIO()
    with unit_conn.cursor() as cur:
        cur.copy_expert(copy_statement(composed.as_string(cur)), buf)
    assert buf.getvalue() == b"100%\t{}\t%s %(x)s\n"


def test_query_extract_puts_the_query_on_lines_of_its_own(render) -> None:
    composed = query_extract("SELECT 1 AS a -- the answer\n;", [mapping("a", "int4")])
    assert render(composed) == 'SELECT "a" FROM (\nSELECT 1 AS a -- the answer\n) AS custom_query'


@pytest.mark.parametrize(
    "user_query",
    [
        "SELECT 1 AS a -- the answer",
        "SELECT 1 AS a -- the answer;",
        pytest.param("SELECT 1 AS a; -- the answer", id="semicolon-then-comment"),
        "SELECT 1 AS a -- the answer\n",
        "SELECT 1 AS a ; ;",
        "-- leading comment\nSELECT 1 AS a -- trailing ) comment",
    ],
)
def test_query_extract_with_trailing_line_comment_runs(unit_conn, user_query: str) -> None:
    composed = query_extract(user_query, [mapping("a", "int4")])
    with unit_conn.cursor() as cur:
        select = composed.as_string(cur)
        cur.execute(select)
        assert cur.fetchall() == [(1,)]
        buf = io.BytesIO()
        cur.copy_expert(copy_statement(select), buf)
    assert buf.getvalue() == b"1\n"


def test_describe_query_with_trailing_line_comment(unit_conn) -> None:
    with unit_conn.cursor() as cur:
        cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # as read_only_snapshot does
        try:
            columns = describe_query(cur, "SELECT 1 AS a -- the answer", "unit_src")
        finally:
            cur.execute("ROLLBACK")
    assert [(c.name, c.type_name) for c in columns] == [("a", "int4")]


@pytest.mark.parametrize(
    ("select", "expected"),
    [
        ("SELECT 1", "COPY (SELECT 1) TO STDOUT (FORMAT text)"),
        ('SELECT "a" FROM "s"."t"', 'COPY (SELECT "a" FROM "s"."t") TO STDOUT (FORMAT text)'),
    ],
)
def test_copy_statement(select: str, expected: str) -> None:
    assert copy_statement(select) == expected


# --------------------------------------------------------------------------- NULL watermarks and empty ranges


def _selected(fetch, extract_range: ExtractRange) -> list[int | None]:
    values = "(1), (5), (9), (NULL)"
    query = sql.SQL("SELECT id FROM (VALUES " + values + ") AS t(id){} ORDER BY id").format(where_clause(extract_range))
    return [r[0] for r in fetch(query)]


@pytest.mark.parametrize(
    ("extract_range", "expected"),
    [
        (ExtractRange(column="id", cast_type="int4", upper="5", upper_inclusive=True), [1, 5]),
        (ExtractRange(column="id", cast_type="int4", upper="5", upper_inclusive=True, include_nulls=True), [1, 5, None]),
        (ExtractRange(column="id", cast_type="int4", lower="1", upper="5", upper_inclusive=True, include_nulls=True),
         [5, None]),
        (ExtractRange(column="id", cast_type="int4", empty=True), []),
        (ExtractRange(column="id", cast_type="int4", empty=True, include_nulls=True), [None]),
        (ExtractRange(column="id", cast_type="int4", lower="5", upper="5", upper_inclusive=True), []),
        (ExtractRange(column="id", cast_type="int4", include_nulls=True), [1, 5, 9, None]),
        (ExtractRange(column="id", cast_type="int4"), [1, 5, 9]),
    ],
)
def test_nulls_and_empty_ranges(fetch, extract_range: ExtractRange, expected: list[int | None]) -> None:
    assert _selected(fetch, extract_range) == expected
    assert ExtractRange.from_json(extract_range.to_json()) == extract_range


def test_empty_range_is_not_full() -> None:
    assert not ExtractRange(column="id", cast_type="int4", empty=True).is_full
    assert not ExtractRange(column="id", cast_type="int4", empty=True, include_nulls=True).is_full
    assert ExtractRange(column="id", cast_type="int4", include_nulls=True).is_full
