"""Two registry sources reading the same table (found by an attack test).

Both were tracked as ``public.events``: the full snapshot's load of a day hid the
incremental source's load of that day from the late check, and a late row was lost.
The registry now refuses two sources on one table; a custom query is the way to read
it twice, and keeps the incremental source's state its own.
"""

from __future__ import annotations

import pytest

from platform_assets.registry import (
    PostgresSource,
    Registry,
    RegistryError,
    load_registry,
)
from tests.adversarial._common import D1, D2, D3, column_union, registry
from tests.helpers import materialize_partition, query

EVENTS = PostgresSource(name="events", table="events", load="incremental", watermark_column="id",
                        watermark_type="integer", allow_empty=True)
EVENTS_SNAPSHOT = PostgresSource(name="events_snapshot", table="events", allow_empty=True)
EVENTS_BY_QUERY = PostgresSource(name="events_snapshot", query="SELECT * FROM public.events", allow_empty=True)


def test_two_sources_on_one_table_are_refused_naming_both_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match="'events' and 'events_snapshot' both read public.events"):
        Registry(postgres=[EVENTS, EVENTS_SNAPSHOT])
    path = tmp_path / "sources.yaml"
    path.write_text("postgres:\n  - {name: a, table: t}\n  - {name: b, schema: public, table: t}\n")
    with pytest.raises(RegistryError, match="custom query"):
        load_registry(path)


def test_a_snapshot_through_a_custom_query_keeps_the_late_row(pg_conn, pg, store_settings):
    query(pg_conn, "CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL);"
                   "INSERT INTO events (id, kind) SELECT g, 'a' FROM generate_series(1, 10) g")
    reg = registry(EVENTS, EVENTS_BY_QUERY)
    late = pg.connect()
    try:
        query(late, "INSERT INTO events (id, kind) VALUES (11, 'late')")
        query(pg_conn, "INSERT INTO events (id, kind) VALUES (12, 'b')")
        assert materialize_partition(reg, pg, store_settings, "events", D1).success
        late.commit()
    finally:
        late.close()
    assert materialize_partition(reg, pg, store_settings, "events_snapshot", D1).success
    query(pg_conn, "INSERT INTO events (id, kind) VALUES (13, 'c')")
    assert materialize_partition(reg, pg, store_settings, "events", D2).success
    assert materialize_partition(reg, pg, store_settings, "events", D3).success
    assert column_union(store_settings, "events", [D1, D2, D3], "id") == list(range(1, 14))
