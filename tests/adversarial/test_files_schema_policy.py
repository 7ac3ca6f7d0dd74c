"""``schema_policy: freeze`` (README "Schema detection and evolution": any change fails
the run; an unchanged schema loads). Found by an attack test."""

from __future__ import annotations

from dataclasses import replace

from platform_assets.ingestion.files.family_load import load_family_partition
from platform_assets.ingestion.partitions.files import FamilySpec
from platform_assets.registry import FileFamily, Registry
from tests.helpers import family_rows, query, write_input

DAY = "2024-03-02"


def test_frozen_family_loads_a_file_whose_schema_did_not_change(services, pg_conn, store_settings, tmp_path,
                                                                monkeypatch):
    """The family's first file has a ``code`` column that turns to text on a late value
    (``n/a`` after hundreds of integers): recorded ``code: string``. The next file has the
    same shape. It was refused under ``freeze``: the schema check ran on the first
    attempt's schema (``code: int64``, from the first block) before the late value forced
    the column to text. A family's column recorded as text now starts as text."""
    body = "id,code\n" + "".join(f"{i},{i}\n" for i in range(300)) + "300,n/a\n"
    family = FileFamily(name="codes", directory=str(tmp_path), glob="codes_*.csv", format="csv",
                        date_pattern=r"_(\d{8})_", date_format="%Y%m%d", schema_policy="freeze",
                        stable_seconds=0)
    spec = family.spec(Registry(files=[family]))
    original = FamilySpec.csv_options
    # small first blocks stand in for "beyond the first 4 MiB"
    monkeypatch.setattr(FamilySpec, "csv_options", lambda self, rel: replace(original(self, rel), block_size=1024))
    write_input(tmp_path, "codes_20240302_1.csv", body)
    first = load_family_partition(spec, DAY, services)
    assert [o.status for o in first.outcomes] == ["loaded"], first.outcomes
    [(logged,)] = query(pg_conn, "SELECT schema_metadata FROM data_platform.schema_history")
    assert {c["name"]: c["arrow_type"] for c in logged["columns"]} == {"id": "int64", "code": "string"}

    write_input(tmp_path, "codes_20240302_2.csv", body)
    second = load_family_partition(spec, DAY, services)
    assert [o.status for o in second.outcomes if o.relative_path.endswith("_2.csv")] == ["loaded"], second.outcomes
    assert len(family_rows(store_settings, "codes", "id")) == 602
