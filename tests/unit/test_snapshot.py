"""Unit tests for platform_assets.ingestion.postgres.snapshot.

The row condition is evaluated by PostgreSQL itself: first over synthetic 32-bit
xids (a VALUES list with a column named ``xmin``) against a chosen reference (the
64-bit xmax of the snapshot the query would run in), then over real rows written
before, during and after a snapshot taken with ``pg_current_snapshot()``.
"""

from __future__ import annotations

import pytest
from psycopg2 import sql

from platform_assets.ingestion.postgres.session import in_progress_subtransactions
from platform_assets.ingestion.postgres.snapshot import (
    FIRST_NORMAL_XID,
    XID32,
    Snapshot,
)

EPOCH1 = XID32  # xid8 values of the second epoch


# --------------------------------------------------------------------------- parse / str


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("741:741:", Snapshot(741, 741, ())),
        ("100:200:150", Snapshot(100, 200, (150,))),
        ("100:200:150,160,199", Snapshot(100, 200, (150, 160, 199))),
        ("4294967396:4294967496:4294967446", Snapshot(4294967396, 4294967496, (4294967446,))),
        ("3:3:", Snapshot(3, 3, ())),
    ],
)
def test_parse_and_str_round_trip(text: str, expected: Snapshot) -> None:
    snapshot = Snapshot.parse(text)
    assert snapshot == expected
    assert str(snapshot) == text
    assert Snapshot.parse(str(snapshot)) == snapshot


@pytest.mark.parametrize("text", ["", "1:2", "a:b:", "1:2:x", "1:2:3:4"])
def test_parse_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        Snapshot.parse(text)


def test_parse_accepts_server_output(fetch) -> None:
    [(text,)] = fetch("SELECT pg_current_snapshot()::text")
    snapshot = Snapshot.parse(text)
    assert str(snapshot) == text
    assert snapshot.xmin <= snapshot.xmax


# --------------------------------------------------------------------------- rendered values


@pytest.mark.parametrize(
    ("text", "xip", "xmax"),
    [
        ("100:200:", "'{}'", 200),
        ("100:200:150,160", "ARRAY[150,160]", 200),
        ("4294967396:4294967496:4294967446", "ARRAY[4294967446]", 4294967496),
        (f"{5 * XID32 + 9}:{5 * XID32 + 9}:", "'{}'", 5 * XID32 + 9),
    ],
)
def test_condition_compares_64_bit_values(render, text: str, xip: str, xmax: int) -> None:
    condition = Snapshot.parse(text).invisible_row_condition()
    assert isinstance(condition, sql.Composable)
    rendered = render(condition)
    assert f"= ANY({xip}::bigint[])" in rendered
    assert f">= {xmax} OR" in rendered
    assert "pg_snapshot_xmax(pg_current_snapshot())" in rendered  # the reference, read by the query


def test_condition_constants(render) -> None:
    text = render(Snapshot(1, 2, ()).invisible_row_condition(reference_xmax=10))
    widened = f"(10 - 1 - (((10 - 1) % {XID32} - (xmin::text::bigint) + {XID32}) % {XID32}))"
    assert text == (
        f"((xmin::text::bigint) >= {FIRST_NORMAL_XID} AND ({widened} >= 2 OR {widened} = ANY('{{}}'::bigint[])))"
    )
    assert "%%" not in text  # a plain modulo operator: no placeholders, nothing doubled
    assert "%(" not in text


# --------------------------------------------------------------------------- synthetic xids


def invisible(fetch, snapshot: str | Snapshot, xids: list[int], reference: int | None = None) -> list[bool]:
    """Evaluate the condition over 32-bit ``xids``; ``reference`` defaults to the snapshot's xmax."""
    if isinstance(snapshot, str):
        snapshot = Snapshot.parse(snapshot)
    condition = snapshot.invisible_row_condition(reference_xmax=reference or snapshot.xmax)
    values = sql.SQL(", ").join(sql.SQL("({}, {}::bigint)").format(sql.Literal(i), sql.Literal(x)) for i, x in enumerate(xids))
    query = sql.SQL("SELECT {} FROM (VALUES {}) AS t(i, xmin) ORDER BY i").format(condition, values)
    return [r[0] for r in fetch(query)]


HALF = 1 << 31


@pytest.mark.parametrize(
    ("snapshot", "reference", "cases"),
    [
        pytest.param(
            "100:200:150,160", 300,
            {
                0: False, 1: False, 2: False,  # invalid, bootstrap, frozen: always visible
                3: False, 99: False, 100: False, 149: False,
                150: True, 155: False, 160: True, 199: False,  # in xip / committed before
                200: True, 201: True, 299: True,  # at/after xmax
            },
            id="plain",
        ),
        pytest.param(
            f"{EPOCH1 + 100}:{EPOCH1 + 200}:{EPOCH1 + 150},{EPOCH1 + 160}", EPOCH1 + 400,
            {99: False, 150: True, 155: False, 160: True, 199: False, 200: True, 250: True},
            id="second-epoch",
        ),
        pytest.param(
            f"{XID32 - 20}:{XID32 - 10}:{XID32 - 15}", XID32 + 2000,
            {
                XID32 - 30: False, XID32 - 15: True, XID32 - 12: False,
                XID32 - 10: True, XID32 - 1: True,
                3: True, 4: True, 1000: True,  # wrapped past 2^32: still after xmax
                2: False,  # frozen, even right after the wrap
            },
            id="xmax-near-wraparound",
        ),
        pytest.param(
            f"{XID32 - 20}:{XID32 + 10}:{XID32 - 15},{XID32 + 5}", XID32 + 100,
            {XID32 - 15: True, XID32 - 14: False, 5: True, 6: False, 9: False, 10: True, 11: True},
            id="snapshot-spans-wraparound",
        ),
        pytest.param(
            "741:741:", 741,
            {740: False, 741 - HALF: False, 3: False},
            id="no-open-transactions",
        ),
        pytest.param(
            # The stored snapshot is more than 2^31 transactions old: 32-bit arithmetic
            # (modulo 2^32, as PostgreSQL compares) took a row written since for the past.
            "100:200:", 200 + HALF + 50,
            {(200 + HALF + 10) % XID32: True, (200 + HALF - 10) % XID32: True, 150: False},
            id="snapshot-older-than-2^31-transactions",
        ),
        pytest.param(
            # A row frozen long ago, more than 2^31 transactions before the stored snapshot,
            # keeps its raw xmin: 32-bit arithmetic took it for a row written after it.
            f"{EPOCH1 + 100}:{EPOCH1 + 200}:", EPOCH1 + 300,
            {(EPOCH1 + 200 - HALF - 5) % XID32: False, (EPOCH1 + 200 - HALF - 1000) % XID32: False},
            id="row-frozen-2^31-transactions-before-the-snapshot",
        ),
    ],
)
def test_condition_on_synthetic_xids(fetch, snapshot: str, reference: int, cases: dict[int, bool]) -> None:
    xids = list(cases)
    assert invisible(fetch, snapshot, xids, reference) == [cases[x] for x in xids]


# --------------------------------------------------------------------------- with_in_progress


@pytest.mark.parametrize(
    ("snapshot", "xids32", "expected_xip"),
    [
        pytest.param(Snapshot(100, 200, (150,)), [], (150,), id="nothing-added"),
        pytest.param(Snapshot(100, 200, (150,)), [160, 199, 100], (100, 150, 160, 199), id="plain"),
        pytest.param(Snapshot(100, 200, ()), [170, 120], (120, 170), id="sorted"),
        pytest.param(Snapshot(100, 200, (150, 160)), [150, 160, 160, 170, 170], (150, 160, 170), id="dedup"),
        pytest.param(
            Snapshot(100, 200, (150,)),
            [99, 3, 200, 201, 10**6, XID32 - 1],  # below xmin / at or past xmax
            (150,),
            id="out-of-range-dropped",
        ),
        pytest.param(
            Snapshot(EPOCH1 + 100, EPOCH1 + 200, (EPOCH1 + 150,)),
            [160, 150, 99, 200],
            (EPOCH1 + 150, EPOCH1 + 160),
            id="second-epoch",
        ),
        pytest.param(
            Snapshot(5 * XID32 + 100, 5 * XID32 + 200, ()),
            [199],
            (5 * XID32 + 199,),
            id="sixth-epoch",
        ),
        pytest.param(
            # xmax just past the 2^32 boundary: xids near 2^32 belong to the epoch below
            Snapshot(XID32 - 20, XID32 + 10, (XID32 - 15, XID32 + 5)),
            [XID32 - 12, XID32 - 1, 3, 9, XID32 - 15, 5],
            (XID32 - 15, XID32 - 12, XID32 - 1, XID32 + 3, XID32 + 5, XID32 + 9),
            id="xmax-just-past-2^32",
        ),
        pytest.param(
            Snapshot(XID32 - 20, XID32 + 10, ()),
            [10, 11, 1000, XID32 - 21, XID32 - 100],  # at/after xmax (wrapped) / before xmin
            (),
            id="xmax-just-past-2^32-out-of-range",
        ),
        pytest.param(
            Snapshot(XID32 - 20, XID32, ()),
            [XID32 - 1, XID32 - 20, XID32 - 21, 0, 3],
            (XID32 - 20, XID32 - 1),
            id="xmax-exactly-2^32",
        ),
        pytest.param(
            Snapshot(EPOCH1 + 100, EPOCH1 + 200, ()),
            [XID32 - 1, 50],  # widen into epoch 1 (past xmax -> epoch 0) / below xmin
            (),
            id="no-borrowing-from-the-epoch-below-xmin",
        ),
        pytest.param(Snapshot(741, 741, ()), [740, 741, 742], (), id="xmin-equals-xmax"),
    ],
)
def test_with_in_progress(snapshot: Snapshot, xids32: list[int], expected_xip: tuple[int, ...]) -> None:
    widened = snapshot.with_in_progress(xids32)
    assert widened == Snapshot(snapshot.xmin, snapshot.xmax, expected_xip)
    assert all(snapshot.xmin <= x < snapshot.xmax for x in widened.xip)
    assert len(set(widened.xip)) == len(widened.xip)
    assert Snapshot.parse(str(widened)) == widened  # stored as text with the load


def test_with_in_progress_returns_a_new_snapshot() -> None:
    snapshot = Snapshot(100, 200, (150,))
    widened = snapshot.with_in_progress([160])
    assert snapshot == Snapshot(100, 200, (150,))
    assert widened is not snapshot
    assert widened.xip == (150, 160)
    assert str(widened) == "100:200:150,160"


@pytest.mark.parametrize(
    ("snapshot", "xids32", "cases"),
    [
        pytest.param(
            Snapshot(100, 200, (150,)),
            [160],
            {150: True, 155: False, 160: True, 161: False, 199: False, 200: True},
            id="plain",
        ),
        pytest.param(
            Snapshot(XID32 - 20, XID32 + 10, (XID32 - 15,)),
            [XID32 - 12, 5],
            {XID32 - 15: True, XID32 - 12: True, XID32 - 11: False, 4: False, 5: True, 6: False, 10: True},
            id="xmax-just-past-2^32",
        ),
    ],
)
def test_in_progress_xids_become_invisible(fetch, snapshot: Snapshot, xids32: list[int], cases: dict[int, bool]) -> None:
    xids = list(cases)
    widened = snapshot.with_in_progress(xids32)
    reference = snapshot.xmax + 1000
    assert invisible(fetch, widened, xids, reference) == [cases[x] for x in xids]
    # without them, the added xids would count as committed before the snapshot
    added = [x % XID32 for x in widened.xip if x not in snapshot.xip]
    assert not any(invisible(fetch, snapshot, added, reference))


# --------------------------------------------------------------------------- real rows


def snapshot_now(cur) -> Snapshot:
    cur.execute("SELECT pg_current_snapshot()::text")
    return Snapshot.parse(cur.fetchone()[0])


def invisible_ids(cur, table: sql.Composable, snapshot: Snapshot) -> dict[int, bool]:
    condition = snapshot.invisible_row_condition()  # against the query's own current snapshot
    cur.execute(sql.SQL("SELECT id, {} FROM {} ORDER BY id").format(condition, table))
    return dict(cur.fetchall())


def test_rows_committed_after_the_snapshot_are_invisible(unit_conn) -> None:
    table = sql.Identifier("unit_snapshot_rows")
    with unit_conn.cursor() as cur:  # autocommit: every statement is its own transaction
        cur.execute(sql.SQL("CREATE TEMP TABLE {} (id int)").format(table))
        try:
            cur.execute(sql.SQL("INSERT INTO {} VALUES (1), (2)").format(table))
            cur.execute(sql.SQL("INSERT INTO {} VALUES (3)").format(table))
            snapshot = snapshot_now(cur)
            cur.execute(sql.SQL("INSERT INTO {} VALUES (4)").format(table))
            cur.execute(sql.SQL("UPDATE {} SET id = 5 WHERE id = 1").format(table))  # new row version
            cur.execute(sql.SQL("INSERT INTO {} VALUES (6)").format(table))
            assert invisible_ids(cur, table, snapshot) == {2: False, 3: False, 4: True, 5: True, 6: True}
            # a later snapshot sees everything
            assert not any(invisible_ids(cur, table, snapshot_now(cur)).values())
        finally:
            cur.execute(sql.SQL("DROP TABLE {}").format(table))


def test_rows_of_a_transaction_open_at_the_snapshot_are_invisible(unit_conn, second_conn, scratch_table) -> None:
    table = sql.SQL("public.{}").format(sql.Identifier(scratch_table))
    with unit_conn.cursor() as cur, second_conn.cursor() as other:
        cur.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
        other.execute(sql.SQL("INSERT INTO {} VALUES (2)").format(table))  # stays open
        other.execute("SELECT txid_current()")
        open_xid = other.fetchone()[0]
        cur.execute("SELECT txid_current()")  # a later transaction completes: xmax moves past it
        snapshot = snapshot_now(cur)
        second_conn.commit()
        cur.execute(sql.SQL("INSERT INTO {} VALUES (3)").format(table))

        assert open_xid in snapshot.xip
        cur.execute(sql.SQL("SELECT xmin::text::bigint FROM {} WHERE id = 2").format(table))
        assert cur.fetchone()[0] == open_xid % XID32
        assert invisible_ids(cur, table, snapshot) == {1: False, 2: True, 3: True}


def extract_snapshot_now(cur) -> Snapshot:
    """The snapshot as the engine records it (source_session.read_only_snapshot): the
    top-level snapshot plus the in-progress xids its xip omits (subtransactions)."""
    snapshot = snapshot_now(cur)
    return snapshot.with_in_progress(in_progress_subtransactions(cur, snapshot))


@pytest.mark.parametrize(
    ("before_snapshot", "after_snapshot"),
    [
        pytest.param(
            ["SAVEPOINT s", "INSERT INTO {t} VALUES (2)"],
            ["RELEASE SAVEPOINT s"],
            id="savepoint-open-at-the-snapshot",
        ),
        pytest.param(
            ["SAVEPOINT s", "INSERT INTO {t} VALUES (2)", "SAVEPOINT s2", "INSERT INTO {t} VALUES (3)"],
            ["RELEASE SAVEPOINT s"],
            id="nested-savepoints-open-at-the-snapshot",
        ),
        pytest.param(
            ["SAVEPOINT s", "INSERT INTO {t} VALUES (2)", "RELEASE SAVEPOINT s"],
            [],
            id="savepoint-released-before-the-snapshot",
        ),
        pytest.param(
            ["DO $$BEGIN BEGIN INSERT INTO {t} VALUES (2); EXCEPTION WHEN others THEN NULL; END; END$$"],
            [],
            id="plpgsql-exception-block",
        ),
    ],
)
def test_rows_of_a_subtransaction_open_at_the_snapshot_are_invisible(
    unit_conn, second_conn, scratch_table, before_snapshot: list[str], after_snapshot: list[str]
) -> None:
    table = sql.SQL("public.{}").format(sql.Identifier(scratch_table))

    def run(cur, statements: list[str]) -> None:
        for statement in statements:
            cur.execute(sql.SQL(statement.replace("{t}", "{}")).format(table))

    with unit_conn.cursor() as cur, second_conn.cursor() as other:
        other.execute(sql.SQL("INSERT INTO {} VALUES (1)").format(table))
        other.execute("SELECT txid_current()")
        top_xid = other.fetchone()[0]
        run(other, before_snapshot)  # subtransaction rows: id 2 (and 3)
        cur.execute("SELECT txid_current()")  # a later transaction completes: xmax moves past all
        bare = snapshot_now(cur)
        snapshot = extract_snapshot_now(cur)
        run(other, after_snapshot)
        second_conn.commit()

        cur.execute(sql.SQL("SELECT id, xmin::text::bigint FROM {} ORDER BY id").format(table))
        xmins = dict(cur.fetchall())
        assert xmins[1] == top_xid % XID32
        assert all(xmins[i] != xmins[1] for i in xmins if i != 1)  # written with subxids
        # pg_current_snapshot() lists only the top-level xid: alone it misses the subtransaction rows
        assert top_xid in bare.xip
        assert invisible_ids(cur, table, bare) == {i: i == 1 for i in xmins}
        # the snapshot could see none of the rows: all belong to a transaction open at that time
        assert top_xid in snapshot.xip
        assert invisible_ids(cur, table, snapshot) == {i: True for i in xmins}
