"""Schema policy across the files of a family (second adversarial pass)."""

from __future__ import annotations

from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.registry import FileFamily, Registry
from tests.helpers import family_rows, write_input


def test_frozen_json_family_refuses_a_file_whose_values_fit_the_recorded_text_column(tmp_path, services,
                                                                                     store_settings):
    """Promise: a frozen family loads a file whose schema did not change, and a family's
    column that became text in an earlier file starts as text: types do not flap from
    one file to the next (``file_load.load_file``: ``text_columns``; fixed for CSV in
    the first pass, tests/adversarial/test_files_schema_policy.py).

    JSON family, ``schema_policy: freeze``. File 1 has ``code`` holding 5 and "A7": the
    column is kept as JSON text (string), recorded ``code: string``. File 2 has
    ``code: 6`` only - a value the recorded text column holds as well as file 1's 5.
    ``text_columns`` is passed to the CSV converter only (``_converter`` returns
    ``convert_json`` without it): file 2 is read as int64 and refused ("the schema is
    frozen but changed: code: type string -> int64"). Under ``evolve`` the column flaps
    string -> int64 -> string from file to file.
    """
    fam = FileFamily(name="events", directory=str(tmp_path), glob="events_*.json", format="json",
                     date_pattern=r"_(\d{8})_", date_format="%Y%m%d", schema_policy="freeze", stable_seconds=0)
    spec = fam.spec(Registry(files=[fam]))
    write_input(tmp_path, "events_20240302_1.json", '{"id": 1, "code": 5}\n{"id": 2, "code": "A7"}\n')
    first = load_family_partition(spec, "2024-03-02", services)
    assert [o.status for o in first.outcomes] == ["loaded"]
    write_input(tmp_path, "events_20240302_2.json", '{"id": 3, "code": 6}\n')
    second = load_family_partition(spec, "2024-03-02", services)
    outcome = {o.relative_path: (o.status, o.reason) for o in second.outcomes}["events_20240302_2.json"]
    assert outcome[0] == "loaded", outcome[1]
    assert [r[0] for r in family_rows(store_settings, "events", "id")] == [1, 2, 3]


def test_the_guides_load_is_compared_with_a_family_files_schema_of_the_same_name(tmp_path, services):
    """Promise: the guide's functions keep their behaviour (tracking as database loads,
    ``source_name`` = the file name); a family's files are tracked per family
    (``ingestion_metadata.family``/``schema_history.family``, sql/008).

    A family loads ``fam/customers_20240302.csv`` (id, name). Later someone loads an
    unrelated ``other/customers_20240302.csv`` (order, amount) with the guide's
    ``ingest_csv_file(..., schema_policy="freeze")``: its first load. ``load_file`` asks
    ``tracking.last_schema(source_name, family=None)``, which selects ``WHERE source_name
    = %s`` without ``family IS NULL``: the family file's schema is taken for the guide
    source's previous schema, and the load is refused ("the schema is frozen but
    changed ... removed ['id', 'name']"). Under ``evolve`` it reports those bogus
    changes in its result and the Parquet footer.
    """
    from platform_assets.ingestion.file_ingestor import ingest_csv_file
    from tests.adversarial._files_support import family, registry

    fam_dir = tmp_path / "fam"
    fam_dir.mkdir()
    write_input(fam_dir, "customers_20240302.csv", "id,name\n1,ann\n")
    fam = family(fam_dir, stable_seconds=0)
    assert [o.status for o in load_family_partition(fam.spec(registry(fam)), "2024-03-02", services).outcomes] == [
        "loaded"]
    other = tmp_path / "other"
    other.mkdir()
    path = write_input(other, "customers_20240302.csv", "order,amount\n1,2.5\n")
    result = ingest_csv_file(path, "adhoc/orders.parquet", "2024-03-02", services=services, schema_policy="freeze")
    assert result["schema_changes"] == {"added": [], "removed": [], "type_changed": [], "nullability_changed": []}


def test_a_json_familys_text_column_stays_text_when_later_files_hold_only_timestamps(tmp_path, services,
                                                                                     store_settings):
    """JSON strings that are all ISO timestamps became timestamps (the CSV rule, 2026-11-30):
    a frozen family whose earlier file held the column as text keeps loading it as text,
    in the fast NDJSON path and the exact one."""
    fam = FileFamily(name="events", directory=str(tmp_path), glob="events_*.json", format="json",
                     date_pattern=r"_(\d{8})_", date_format="%Y%m%d", schema_policy="freeze", stable_seconds=0)
    spec = fam.spec(Registry(files=[fam]))
    write_input(tmp_path, "events_20240302_1.json", '{"id": 1, "at": "soon"}\n')
    assert [o.status for o in load_family_partition(spec, "2024-03-02", services).outcomes] == ["loaded"]
    write_input(tmp_path, "events_20240302_2.json", '{"id": 2, "at": "2024-03-02T10:00:00Z"}\n')
    write_input(tmp_path, "events_20240302_3.json", '[{"id": 3, "at": "2024-03-02T11:00:00Z"}]')
    second = load_family_partition(spec, "2024-03-02", services)
    assert {o.relative_path: o.status for o in second.outcomes} == {
        "events_20240302_1.json": "skipped", "events_20240302_2.json": "loaded", "events_20240302_3.json": "loaded"}
    assert [r[1] for r in family_rows(store_settings, "events", "id", "at")] == [
        "soon", "2024-03-02T10:00:00Z", "2024-03-02T11:00:00Z"]
