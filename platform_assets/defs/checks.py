"""Asset checks of every source: declared rules from the registry plus built-in ones.

Checks run in the asset's step on the objects it just wrote (downloaded once, read
by column and batch), and are reported as Dagster asset check results:

- ``stored_object_matches_record`` (ERROR, blocking): each stored object's MD5 and
  row count equal what the tracking table recorded;
- ``row_count`` (unless declared): not empty, unless the source sets ``allow_empty``;
- ``source_reconciliation`` (WARN, PostgreSQL sources): the source's rows in the
  range the run read, counted in the extract's own snapshot, equal the rows it read;
- ``null_watermarks`` (WARN, incremental PostgreSQL sources): no row has a NULL
  watermark that no load captured (the count and a sample of keys otherwise);
- the registry's ``checks``.

Freshness is a separate, unpartitioned check (``defs/freshness.py``).
"""

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import TableLoadResult
from platform_assets.ingestion.sink.parquet import file_md5
from platform_assets.quality import CheckOutcome, Rows, evaluate
from platform_assets.registry_checks import RowCountCheck

STORED_OBJECT = "stored_object_matches_record"
RECONCILIATION = "source_reconciliation"
NULL_WATERMARKS = "null_watermarks"


@dataclass(frozen=True)
class StoredObject:
    object_key: str
    checksum: str
    row_count: int


def declared_checks(source: Any) -> list[Any]:
    """The registry's checks plus the default row count check."""
    checks = list(source.checks)
    if not any(isinstance(c, RowCountCheck) for c in checks):
        checks.append(
            RowCountCheck(
                type="row_count", min=0 if source.allow_empty else 1,
                description="not empty" if not source.allow_empty else "empty allowed",
            )
        )
    return checks


def check_specs(
    key: dg.AssetKey, source: Any, partitions_def: dg.PartitionsDefinition, from_postgres: bool
) -> list[dg.AssetCheckSpec]:
    """Specs of every check of ``source``, partitioned like its asset.

    Partitioned check specs are a Dagster preview feature (pinned version): with
    them the UI shows each check's result per partition.
    """
    named = [
        (STORED_OBJECT, True, "The stored objects' MD5 and row counts match the tracking table."),
        *(
            [(RECONCILIATION, False,
              "The source's rows in the range read, counted in the extract's snapshot, equal the rows read.")]
            if from_postgres
            else []
        ),
        *(
            [(NULL_WATERMARKS, False,
              "No row has a NULL watermark that no load captured (such rows fall in no partition).")]
            if from_postgres and source.watermark_column
            else []
        ),
        *((c.name, c.blocking, c.description or f"{c.type} check") for c in declared_checks(source)),
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(name, asset=key, blocking=blocking, description=description,
                              partitions_def=partitions_def)
            for name, blocking, description in named
        ]


def run_checks(
    key: dg.AssetKey,
    source: Any,
    services: Services,
    objects: list[StoredObject],
    load_result: TableLoadResult | None = None,
) -> list[dg.AssetCheckResult]:
    """Evaluate every check of ``source`` on ``objects``; PostgreSQL sources pass their
    ``load_result`` (the engine's counts in the extract's snapshot)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="checks-", dir=services.work_dir) as tmp:
        files = []
        for i, stored in enumerate(objects):
            local = Path(tmp) / f"{i}.parquet"
            services.store.download_file(services.bronze_bucket, stored.object_key, local)
            files.append(local)
        results.append(_result(key, STORED_OBJECT, "ERROR", _stored_objects(objects, files)))
        if load_result is not None:
            results.append(_result(key, RECONCILIATION, "WARN", _reconciliation(load_result)))
            if getattr(source, "watermark_column", None):
                results.append(_result(key, NULL_WATERMARKS, "WARN", _null_watermarks(load_result)))
        rows = Rows(files, key_columns=load_result.key_columns if load_result else (),
                    object_keys=[stored.object_key for stored in objects], source_name=source.name)
        for check in declared_checks(source):
            results.append(_result(key, check.name, check.severity, evaluate(check, rows)))
    return results


def _stored_objects(objects: list[StoredObject], files: list[Path]) -> CheckOutcome:
    mismatches = []
    for stored, local in zip(objects, files):
        md5, rows = file_md5(local), pq.ParquetFile(local).metadata.num_rows
        if md5 != stored.checksum or rows != stored.row_count:
            mismatches.append(
                {"object_key": stored.object_key, "recorded_md5": stored.checksum, "stored_md5": md5,
                 "recorded_rows": stored.row_count, "stored_rows": rows}
            )
    return CheckOutcome(not mismatches, len(mismatches), mismatches[:5], {"objects": len(objects)})


def _reconciliation(load: TableLoadResult) -> CheckOutcome:
    read, counted = load.rows_from_source, load.source_count
    details = {"source_rows": counted, "loaded_rows": read}
    if load.merged:
        details["rows_kept_from_previous_object"] = load.rows_kept
    return CheckOutcome(counted == read, abs((counted or 0) - read), [], details)


def _null_watermarks(load: TableLoadResult) -> CheckOutcome:
    rows = load.null_watermark_rows or 0
    return CheckOutcome(rows == 0, rows, load.null_watermark_sample or [], {"null_watermark_rows": rows})


def _result(key: dg.AssetKey, name: str, severity: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata: dict[str, Any] = {"failing_rows": dg.MetadataValue.int(outcome.failing_rows)}
    if outcome.sample:
        metadata["sample"] = dg.MetadataValue.json(outcome.sample)
    for name_, value in outcome.details.items():
        metadata[name_] = dg.MetadataValue.json(value) if isinstance(value, (list, dict)) else value
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity(severity),
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
