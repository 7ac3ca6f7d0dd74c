"""SQL injection through the database extraction API and the source registry.

Identifiers (schema, table, watermark column) are either quoted correctly, so that a
relation literally named like an attack extracts fine, or refused with a clear error.
Custom queries that write, or try to escape the read-only wrapper, fail with
IngestionError, change nothing and leave a ``failed`` tracking row. Every test
creates canary objects (tables, a schema, a sequence, a function) and compares the
whole database state before and after.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from psycopg2 import sql
from pydantic import ValidationError

from platform_assets.ingestion.database_ingestor import (
    extract_table_full,
    extract_table_incremental,
    extract_with_custom_query,
)
from platform_assets.ingestion.errors import (
    IngestionError,
    SchemaDetectionError,
    WatermarkError,
)
from platform_assets.registry import (
    FileFamily,
    PostgresSource,
    RegistryError,
    load_registry,
)
from tests.helpers import query, read_parquet
from tests.security._support import (
    DS,
    bucket_keys,
    check_each,
    create_canaries,
    database_state,
    runs,
)


@pytest.fixture
def canaries(pg_conn: Any) -> dict[str, Any]:
    """Canary objects in the test database; returns the database state after creating them."""
    create_canaries(pg_conn)
    return database_state(pg_conn)


def ident(conn: Any, *names: str) -> str:
    return sql.Identifier(*names).as_string(conn)


HOSTILE_NAMES = [
    "orders; DROP TABLE canary",
    'x" ; DROP TABLE canary; --',
    '"; DROP TABLE canary; --',
    "o'rders'); DROP TABLE canary; --",
    "заказы_表_😀",
    "Mixed Case Name",
    "%s %(x)s 100%",
    "$$;DROP TABLE canary;$$",
    ":'ON_ERROR_STOP' :foo",  # psql variable syntax: the COPY runs through psql -c
    "tab\there",
    "canary WHERE false",
    "canary.canary_two",
]

HOSTILE_COLUMN = 'v"; DROP TABLE canary; --'


def make_table(conn: Any, schema: str, table: str) -> None:
    rel = sql.Identifier(schema, table)
    query(
        conn,
        sql.SQL("CREATE TABLE {rel} (id int PRIMARY KEY, {col} text); "
                "INSERT INTO {rel} VALUES (1, 'one'), (2, {evil})").format(
            rel=rel, col=sql.Identifier(HOSTILE_COLUMN), evil=sql.Literal("'; DROP TABLE canary; --")
        ).as_string(conn),
    )


EXPECTED_ROWS = [{"id": 1, HOSTILE_COLUMN: "one"}, {"id": 2, HOSTILE_COLUMN: "'; DROP TABLE canary; --"}]
KEPT = ("schemas", "functions", "large_objects", "rows:public.canary", "rows:public.canary_two",
        "rows:canary_schema.inner_canary", "seq:public.canary_seq")


def assert_canaries_intact(conn: Any, canaries: dict[str, Any]) -> None:
    """The canaries are unchanged and no relation disappeared (new tables of the test may exist)."""
    state = database_state(conn)
    for key in KEPT:
        assert state[key] == canaries[key], key
    assert set(canaries["relations"]) <= set(state["relations"])


# --------------------------------------------------------------------------- identifiers


def test_tables_literally_named_like_attacks_extract(services, pg_conn, canaries):
    for name in HOSTILE_NAMES:
        make_table(pg_conn, "public", name)
    before = database_state(pg_conn)

    def check(indexed: tuple[int, str]) -> None:
        i, name = indexed
        key = f"safe/table_{i}.parquet"
        result = extract_table_full(name, "public", key, DS, services=services)
        assert result["status"] == "success" and result["row_count"] == 2
        assert read_parquet(services, key).to_pylist() == EXPECTED_ROWS
        [run] = runs(pg_conn, f"public.{name}")
        assert run["status"] == "success" and run["row_count"] == 2

    check_each(list(enumerate(HOSTILE_NAMES)), check)
    assert database_state(pg_conn) == before


def test_default_object_key_of_hostile_table_names(services, pg_conn, canaries):
    """The guide's default key embeds the table name; S3 stores it verbatim."""
    names = ["orders; DROP TABLE canary", 'x" ; DROP TABLE canary; --', "заказы_表_😀"]

    def check(name: str) -> None:
        make_table(pg_conn, "public", name)
        result = extract_table_full(name, "public", None, DS, services=services)
        key = f"postgres/{name}/{DS}/{name}.parquet"
        assert result["object_key"] == key
        assert read_parquet(services, key).num_rows == 2

    check_each(names, check)
    assert bucket_keys(services) == sorted(f"postgres/{n}/{DS}/{n}.parquet" for n in names)
    assert_canaries_intact(pg_conn, canaries)


def test_table_name_giving_an_unsafe_default_key_is_refused_clearly(services, pg_conn, canaries):
    """A table named '..' (or with a backslash) cannot use the default key; an explicit key works."""

    def check(name: str) -> None:
        make_table(pg_conn, "public", name)
        with pytest.raises(IngestionError, match="object key"):
            extract_table_full(name, "public", None, DS, services=services)
        result = extract_table_full(name, "public", f"explicit/{len(name)}.parquet", DS, services=services)
        assert result["row_count"] == 2

    check_each(["..", "back\\slash"], check)
    assert_canaries_intact(pg_conn, canaries)


HOSTILE_SCHEMAS = ['sch"; DROP TABLE canary; --', "schéma ☃", "x; DROP SCHEMA canary_schema CASCADE", "PUBLIC"]


def test_schemas_literally_named_like_attacks_extract(services, pg_conn, canaries):
    table = "t; DROP TABLE canary"
    for schema in HOSTILE_SCHEMAS:
        query(pg_conn, sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)).as_string(pg_conn))
        make_table(pg_conn, schema, table)
    before = database_state(pg_conn)

    def check(indexed: tuple[int, str]) -> None:
        i, schema = indexed
        key = f"safe/schema_{i}.parquet"
        result = extract_table_full(table, schema, key, DS, services=services)
        assert result["row_count"] == 2
        assert read_parquet(services, key).to_pylist() == EXPECTED_ROWS
        [run] = runs(pg_conn, f"{schema}.{table}")
        assert run["status"] == "success"

    check_each(list(enumerate(HOSTILE_SCHEMAS)), check)
    assert database_state(pg_conn) == before


IDENTIFIER_ATTACKS = [
    ("public", "canary; DROP TABLE canary"),
    ("public", 'canary"; DROP TABLE canary; --'),
    ("public", "canary WHERE false"),
    ("public", "canary UNION SELECT 1, 'x'"),
    ("public", "(SELECT 1) AS x; DROP TABLE canary; --"),
    ('public"; DROP TABLE canary; --', "canary"),
    ("public; DROP TABLE canary", "canary"),
    ("canary_schema.inner_canary", "x"),
    ("public", "CANARY"),  # identifiers are case-sensitive once quoted
    ("public", " canary"),
    ("public", "canary" + "x" * 100),  # longer than NAMEDATALEN: no truncation to another table
]


def test_injection_attempts_through_identifiers_are_refused(services, pg_conn, canaries):
    def check(case: tuple[str, str]) -> None:
        schema, table = case
        with pytest.raises(SchemaDetectionError, match="does not exist"):
            extract_table_full(table, schema, "bad/ident.parquet", DS, services=services)
        [run] = runs(pg_conn, f"{schema}.{table}")
        assert run["status"] == "failed"
        assert "does not exist" in run["error_message"]
        assert run["finished_at"] is not None

    check_each(IDENTIFIER_ATTACKS, check)
    assert database_state(pg_conn) == canaries
    assert "bad/ident.parquet" not in bucket_keys(services)


WATERMARK_COLUMNS = ['up"dated\'; DROP TABLE canary; --', "ts) OR (1=1", "时间 戳", "%(x)s%s"]


def test_watermark_columns_with_quotes_are_quoted(services, pg_conn, canaries):
    def check(indexed: tuple[int, str]) -> None:
        i, column = indexed
        table = f"events_{i}"
        rel, col = ident(pg_conn, table), ident(pg_conn, column)
        query(pg_conn, f"CREATE TABLE {rel} (id int, {col} timestamptz NOT NULL)")
        query(pg_conn, f"INSERT INTO {rel} VALUES (1, '2024-01-01 10:00+00'), (2, '2024-01-02 10:00+00')")
        first = extract_table_incremental(table, "public", column, f"wm/{i}/1.parquet", DS, services=services)
        assert first["row_count"] == 2
        query(pg_conn, f"INSERT INTO {rel} VALUES (3, '2024-01-03 10:00+00')")
        second = extract_table_incremental(table, "public", column, f"wm/{i}/2.parquet", DS, services=services)
        assert second["row_count"] == 1
        assert read_parquet(services, f"wm/{i}/2.parquet").column("id").to_pylist() == [3]
        assert second["watermark_after"].startswith("2024-01-03T10:00:00")
        [(stored_column, value)] = query(
            pg_conn,
            "SELECT watermark_column, watermark_value FROM data_platform.watermarks WHERE source_name = %s",
            (f"public.{table}",),
        )
        assert stored_column == column and value == second["watermark_after"]

    check_each(list(enumerate(WATERMARK_COLUMNS)), check)
    assert_canaries_intact(pg_conn, canaries)


def test_integer_watermark_column_with_quotes(services, pg_conn, canaries):
    column = 'id"); DELETE FROM canary; --'
    col = ident(pg_conn, column)
    query(pg_conn, f"CREATE TABLE items ({col} bigint, v text); INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    extract_table_incremental("items", "public", column, "wmi/1.parquet", DS, "integer", services=services)
    query(pg_conn, "INSERT INTO items VALUES (3, 'c')")
    result = extract_table_incremental("items", "public", column, "wmi/2.parquet", DS, "integer", services=services)
    assert result["row_count"] == 1 and result["watermark_after"] == "3"
    assert_canaries_intact(pg_conn, canaries)


def test_watermark_column_injection_is_refused(services, pg_conn, canaries):
    query(pg_conn, "CREATE TABLE events (id int, updated_at timestamptz)")
    columns = ["updated_at; DROP TABLE canary", 'updated_at" > now() OR "x', "UPDATED_AT", "updated_at::text"]

    def check(column: str) -> None:
        with pytest.raises(WatermarkError, match="does not exist"):
            extract_table_incremental("events", "public", column, "wm/bad.parquet", DS, services=services)

    check_each(columns, check)
    assert [(r["status"], "does not exist" in r["error_message"]) for r in runs(pg_conn, "public.events")] == [
        ("failed", True)
    ] * len(columns)
    assert query(pg_conn, "SELECT count(*) FROM data_platform.watermarks") == [(0,)]
    assert_canaries_intact(pg_conn, canaries)


NUL_IDENTIFIERS = [("public", "canary\x00; DROP TABLE canary"), ("pub\x00lic", "canary")]


def test_nul_in_identifiers_is_a_clear_ingestion_error_with_a_failed_row(services, pg_conn, canaries):
    def check(case: tuple[str, str]) -> None:
        schema, table = case
        with pytest.raises(IngestionError):
            extract_table_full(table, schema, "bad/nul.parquet", DS, services=services)

    check_each(NUL_IDENTIFIERS, check)
    assert [r["status"] for r in runs(pg_conn)] == ["failed"] * len(NUL_IDENTIFIERS)


def test_nul_in_identifiers_changes_nothing(services, pg_conn, canaries):
    """Whatever the exception type (see the xfail above), nothing runs and nothing is stored."""
    for schema, table in NUL_IDENTIFIERS:
        with pytest.raises(Exception):
            extract_table_full(table, schema, "bad/nul.parquet", DS, services=services)
    assert database_state(pg_conn) == canaries
    assert [r for r in runs(pg_conn) if r["status"] != "failed"] == []
    assert bucket_keys(services) == []


# --------------------------------------------------------------------------- custom queries

WRITING_QUERIES = {
    "delete": "DELETE FROM canary RETURNING *",
    "update": "UPDATE canary SET v = 'pwned' RETURNING *",
    "insert": "INSERT INTO canary VALUES (100, 'pwned') RETURNING *",
    "create_table": "CREATE TABLE stolen (x int)",
    "create_table_as": "CREATE TABLE stolen AS SELECT * FROM canary",
    "select_into": "SELECT * INTO stolen FROM canary",
    "drop_table": "DROP TABLE canary",
    "truncate": "TRUNCATE canary",
    "cte_insert": "WITH ins AS (INSERT INTO canary VALUES (100, 'pwned') RETURNING *) SELECT * FROM ins",
    "cte_delete": "WITH d AS (DELETE FROM canary RETURNING *) SELECT count(*) AS n FROM d",
    "cte_update_nested": "SELECT * FROM (WITH u AS (UPDATE canary SET v = 'x' RETURNING id) SELECT id FROM u) s",
    "nextval": "SELECT nextval('canary_seq') AS n",
    "setval": "SELECT setval('canary_seq', 42) AS n",
    "function_insert": "SELECT canary_insert() AS n",
    "lateral_function_insert": "SELECT c.id, f.n FROM canary c, LATERAL (SELECT canary_insert() AS n) f",
    "do_block": "DO $$BEGIN DROP TABLE canary; END$$",
    "copy_program": "COPY canary TO PROGRAM 'touch /tmp/pwned-by-custom-query'",
    "stacked": "SELECT 1; DROP TABLE canary",
    "stacked_comment": "SELECT 1 AS n; DROP TABLE canary; --",
    "stacked_newlines": "SELECT 1 AS n\n;\nDROP TABLE canary\n",
    "escape_wrapper": "SELECT 1) x; COMMIT; DROP TABLE canary; SELECT (1",
    "escape_wrapper_2": "SELECT 1 AS n) AS a; COMMIT; DELETE FROM canary; SELECT * FROM (SELECT 1 AS n",
    "escape_by_comment": "SELECT 1 AS n) AS a; COMMIT; DROP TABLE canary; --",
    "rollback_then_write": "SELECT 1) x; ROLLBACK; DELETE FROM canary; SELECT (1",
    "dollar_then_stack": "SELECT $$x$$ AS a; DROP TABLE canary",
    "dollar_tag_then_stack": "SELECT $t$ $$ ; $t$ AS a; DROP TABLE canary",
    "dollar_unterminated": "SELECT $t$ AS a; DROP TABLE canary; --",
    "dollar_mismatched_tags": "SELECT $a$ x $b$ AS a; DROP TABLE canary; SELECT $b$",
    "backslash_in_standard_string": "SELECT '\\'; DROP TABLE canary; --' AS a",
    "e_string_escaped_backslash": "SELECT E'\\\\'; DROP TABLE canary; --' AS a",
    "quoted_ident_unterminated": 'SELECT 1 AS "a; DROP TABLE canary',
    "block_comment_unclosed": "SELECT 1 AS a /* ; DROP TABLE canary",
    "nested_comment_closed_early": "SELECT 1 AS a /* /* */ */ ; DROP TABLE canary",
    "paren_unclosed": "SELECT (1 AS a",
}


def test_custom_queries_that_write_or_escape_fail_and_change_nothing(services, pg_conn, canaries):
    def check(name: str) -> None:
        key = f"custom/{name}.parquet"
        with pytest.raises(IngestionError) as caught:
            extract_with_custom_query(WRITING_QUERIES[name], key, DS, source_name=f"q_{name}", services=services)
        assert str(caught.value)
        [run] = runs(pg_conn, f"q_{name}")
        assert run["status"] == "failed"
        assert run["error_message"] == str(caught.value)
        assert run["finished_at"] is not None
        assert run["row_count"] is None
        assert database_state(pg_conn) == canaries

    check_each(sorted(WRITING_QUERIES), check)
    assert bucket_keys(services) == []
    assert not Path("/tmp/pwned-by-custom-query").exists()


def test_custom_query_refusal_holds_for_both_copy_clients(services, pg_conn, canaries, monkeypatch):
    cases = [(c, n) for c in ("psql", "psycopg2")
             for n in ("stacked", "escape_wrapper", "function_insert", "nextval", "cte_insert")]

    def check(case: tuple[str, str]) -> None:
        client, name = case
        monkeypatch.setenv("INGESTION_COPY_CLIENT", client)
        with pytest.raises(IngestionError):
            extract_with_custom_query(WRITING_QUERIES[name], "c/x.parquet", DS, source_name=f"{client}_{name}",
                                      services=services)
        assert [r["status"] for r in runs(pg_conn, f"{client}_{name}")] == ["failed"]

    check_each(cases, check)
    assert database_state(pg_conn) == canaries


SIDE_EFFECT_QUERIES = [
    "SELECT lo_create(0) AS n",
    "SELECT lo_from_bytea(0, 'x') AS n",
    "SELECT set_config('default_transaction_read_only', 'off', false) AS s",
    "SELECT pg_advisory_lock(42) AS l",
    "SELECT pg_notify('chan', 'payload') AS n",
]


def test_custom_query_side_effects_do_not_persist(services, pg_conn, canaries):
    def check(indexed: tuple[int, str]) -> None:
        i, text = indexed
        try:
            extract_with_custom_query(text, f"custom/side_{i}.parquet", DS, source_name=f"side_{i}", services=services)
        except IngestionError:
            pass  # refusing the query is as good as undoing it
        assert [r["status"] for r in runs(pg_conn, f"side_{i}")] in (["success"], ["failed"])
        assert database_state(pg_conn) == canaries

    check_each(list(enumerate(SIDE_EFFECT_QUERIES)), check)
    # the advisory lock died with the extract's session
    assert query(pg_conn, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42") == [(0,)]


LEGITIMATE_QUERIES = {
    "dollar_quoted_parens": ("SELECT $$ ) ( $$ AS a", " ) ( "),
    "tagged_dollar": ("SELECT $x$ $$ ) $y$ $x$ AS a", " $$ ) $y$ "),
    "escaped_quote_in_e_string": ("SELECT E'\\') --' AS a", "') --"),
    "doubled_quote": ("SELECT 'it''s ) fine' AS a", "it's ) fine"),
    "paren_in_quoted_ident": ('SELECT "a)b" AS a FROM (SELECT 1 AS "a)b") s', 1),
    "paren_in_comment": ("SELECT 1 AS a -- ) DROP TABLE canary", 1),
    "paren_in_nested_comment": ("SELECT 1 AS a /* /* */ ) DROP TABLE canary */", 1),
    "parens_in_string": ("SELECT ')) ((' AS a", ")) (("),
    "semicolon_via_chr": ("SELECT 'a' || chr(59) || 'b' AS a", "a;b"),
}

# Queries legitimate in PostgreSQL that the product refuses by policy: no ';' anywhere in
# a custom query (a lexer of ours cannot follow every corner of PostgreSQL's).
SEMICOLON_QUERIES = [
    "SELECT 'a; DROP TABLE canary' AS a",
    "SELECT $$ ) ; DROP TABLE canary; ( $$ AS a",
    'SELECT "a;b" AS a FROM (SELECT 1 AS "a;b") s',
    "SELECT 1 AS a -- ; DROP TABLE canary",
    "SELECT 1 AS a /* /* */ ; DROP TABLE canary; */",
]


def test_read_only_queries_with_tricky_lexemes_still_work(services, pg_conn, canaries):
    def check(name: str) -> None:
        text, expected = LEGITIMATE_QUERIES[name]
        result = extract_with_custom_query(text, f"ok/{name}.parquet", DS, source_name="legit", services=services)
        assert result["row_count"] == 1
        assert read_parquet(services, f"ok/{name}.parquet").column("a").to_pylist() == [expected]

    check_each(sorted(LEGITIMATE_QUERIES), check)
    assert database_state(pg_conn) == canaries


def test_semicolons_anywhere_in_a_custom_query_are_refused(services, pg_conn, canaries):
    def check(text: str) -> None:
        with pytest.raises(IngestionError, match="chr\\(59\\)"):
            extract_with_custom_query(text, "refused.parquet", DS, source_name="semi", services=services)

    check_each(SEMICOLON_QUERIES, check)
    assert database_state(pg_conn) == canaries
    assert [r["status"] for r in runs(pg_conn)] == ["failed"] * len(SEMICOLON_QUERIES)


# Statements that Postgres' lexer splits where the product's lexer (sql_text._scan) sees one
# statement: the product treats '$$' right after '$' or after a non-alphanumeric non-ASCII
# character as a dollar quote, although Postgres continues an identifier there ('a$$$' and
# '€$$' are identifiers), and it does not know dollar-quote tags with non-ASCII letters ($é$).
LEXER_BYPASSES = {
    "dollar_continuing_identifier": (
        "SELECT 1 AS a$$$) AS q; COMMIT; DROP TABLE canary; SELECT * FROM (SELECT 1 AS b$$$"
    ),
    "non_ascii_symbol_identifier": (
        "SELECT 1 AS €$$) AS q; COMMIT; DROP TABLE canary; SELECT * FROM (SELECT 1 AS €$$"
    ),
    "non_ascii_dollar_tag": (
        "SELECT $é$'$é$ AS a) q; COMMIT; DROP TABLE canary; SELECT * FROM (SELECT $é$'$é$ AS b"
    ),
}


def test_custom_query_lexer_bypasses_change_nothing(services, pg_conn, canaries):
    def check(name: str) -> None:
        # put back what an earlier case may have dropped, so that each case is judged alone
        query(pg_conn, "CREATE TABLE IF NOT EXISTS canary (id int PRIMARY KEY, v text NOT NULL); "
                       "INSERT INTO canary VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma') ON CONFLICT DO NOTHING")
        with pytest.raises(IngestionError):
            extract_with_custom_query(LEXER_BYPASSES[name], "c/bypass.parquet", DS, source_name=name,
                                      services=services)
        assert database_state(pg_conn) == canaries, "the custom query dropped the canary table"

    check_each(sorted(LEXER_BYPASSES), check)


def test_custom_query_lexer_bypass_still_fails_and_leaves_a_failed_row(services, pg_conn):
    """Today's behaviour of the bypasses above: the load fails and is tracked (but see the xfail)."""

    def check(name: str) -> None:
        query(pg_conn, "CREATE TABLE IF NOT EXISTS canary (x int)")
        with pytest.raises(IngestionError):
            extract_with_custom_query(LEXER_BYPASSES[name], "c/bypass.parquet", DS, source_name=name,
                                      services=services)
        assert [r["status"] for r in runs(pg_conn, name)] == ["failed"]

    check_each(sorted(LEXER_BYPASSES), check)
    assert "c/bypass.parquet" not in bucket_keys(services)


def test_hostile_source_names_are_stored_literally(services, pg_conn, canaries):
    def check(source_name: str) -> None:
        result = extract_with_custom_query("SELECT 1 AS one", "ok/src.parquet", DS, source_name=source_name,
                                           services=services)
        assert result["source_name"] == source_name
        [run] = runs(pg_conn, source_name)
        assert run["status"] == "success"

    check_each(["x'); DROP TABLE canary; --", 'q" ; DELETE FROM canary', "源 ☃", "%s%(x)s"], check)
    assert database_state(pg_conn) == canaries


# --------------------------------------------------------------------------- registry

HOSTILE_REGISTRY_NAMES = [
    "orders; DROP TABLE x",
    'x" ; DROP TABLE y; --',
    "Orders",
    "заказы",
    "a-b",
    "a b",
    "1abc",
    "_leading",
    "",
    "../escape",
    "a/b",
    "a\\b",
]


def write_yaml(path: Path, section: str, name: str) -> Path:
    import yaml

    if section == "postgres":
        entry = {"name": name, "table": "orders"}
    else:
        entry = {"name": name, "directory": "/tmp", "glob": "*.csv", "format": "csv"}
    path.write_text(yaml.safe_dump({section: [entry]}, allow_unicode=True))
    return path


@pytest.mark.parametrize("section", ["postgres", "files"])
@pytest.mark.parametrize("name", HOSTILE_REGISTRY_NAMES)
def test_registry_refuses_hostile_names_naming_source_and_field(tmp_path, section, name):
    path = write_yaml(tmp_path / "sources.yaml", section, name)
    with pytest.raises(RegistryError) as caught:
        load_registry(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"source {name!r}, field name" in message
    assert "lower_snake_case" in message


@pytest.mark.parametrize("name", HOSTILE_REGISTRY_NAMES)
def test_registry_models_raise_validation_error(name):
    with pytest.raises(ValidationError, match="lower_snake_case"):
        PostgresSource(name=name, table="orders")
    with pytest.raises(ValidationError, match="lower_snake_case"):
        FileFamily(name=name, directory="/tmp", glob="*.csv", format="csv")


@pytest.mark.parametrize("section", ["postgres", "files"])
def test_registry_refuses_name_with_trailing_newline(tmp_path, section):
    path = write_yaml(tmp_path / "sources.yaml", section, "orders\n")
    with pytest.raises(RegistryError, match="field name"):
        load_registry(path)


def test_registry_accepts_hostile_table_identifiers_which_are_quoted_at_run_time(tmp_path):
    """Table/schema/watermark names are arbitrary identifiers (quoted when used), not refused."""
    path = tmp_path / "sources.yaml"
    path.write_text(
        textwrap.dedent(
            """
            postgres:
              - name: weird
                schema: 'sch"; DROP TABLE x; --'
                table: "orders; DROP TABLE x"
                load: incremental
                watermark_column: 'up"dated'
                watermark_type: timestamp
            """
        )
    )
    [source] = load_registry(path).postgres
    assert source.source_name == 'sch"; DROP TABLE x; --.orders; DROP TABLE x'
    assert source.watermark_column == 'up"dated'


# --------------------------------------------------------------------------- stored ranges


def test_stored_extract_range_cast_type_is_not_spliced_into_sql():
    from platform_assets.ingestion.postgres.query_builder import (
        ExtractRange,
        range_condition,
    )
    from tests.conftest import ADMIN

    tampered = ExtractRange.from_json({
        "column": "id", "cast_type": "int) OR TRUE OR (1 = 1", "lower": "5", "lower_inclusive": False,
        "upper": None, "upper_inclusive": False, "catchup": None,
    })
    conn = ADMIN.connect()
    try:
        try:
            rendered = range_condition(tampered).as_string(conn)
        except (ValueError, IngestionError):
            return  # refusing an unknown type is the fix
    finally:
        conn.close()
    assert "OR TRUE" not in rendered, rendered
