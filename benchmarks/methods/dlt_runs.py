"""dlt baselines, run by the interpreter of .venv-bench-dlt (dlt cannot live in the main venv).

``sql_table`` source (reflection ``full_with_precision``, so ``numeric(12,2)`` stays a
decimal) with the ``pyarrow`` or ``connectorx`` backend, ``loader_file_format="parquet"``,
``filesystem`` destination on the same loopback S3 server as ours (bucket
``bench-dlt``). The timed part is source creation + ``pipeline.run`` (extract,
normalize, load). Every repetition uses a fresh pipeline and dataset name.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.config import PgTarget, S3Target


def _configure(s3: S3Target) -> None:
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # no network here
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = f"s3://{s3.bucket}"
    prefix = "DESTINATION__FILESYSTEM__CREDENTIALS__"
    os.environ[prefix + "AWS_ACCESS_KEY_ID"] = s3.access_key
    os.environ[prefix + "AWS_SECRET_ACCESS_KEY"] = s3.secret_key
    os.environ[prefix + "ENDPOINT_URL"] = s3.endpoint
    os.environ[prefix + "REGION_NAME"] = s3.region


def _run(args: dict[str, Any], backend: str) -> dict[str, Any]:
    s3 = S3Target.from_json(args["s3"])
    _configure(s3)
    import dlt
    from dlt.sources.sql_database import sql_table

    target = PgTarget.from_json(args["pg"])
    table = args["table"]
    name = f"bench_{backend}_{args['tag']}"
    pipelines_dir = Path(args["pipelines_dir"])
    start = time.perf_counter()
    source = sql_table(
        credentials=target.sqlalchemy_url(), table=table, schema="public", backend=backend,
        reflection_level="full_with_precision",
    )
    pipeline = dlt.pipeline(
        pipeline_name=name, destination="filesystem", dataset_name=name, pipelines_dir=str(pipelines_dir)
    )
    info = pipeline.run(source, loader_file_format="parquet", write_disposition="replace")
    seconds = time.perf_counter() - start
    info.raise_on_failed_jobs()
    files = [
        Path(job.file_path)
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if Path(job.file_path).name.startswith(f"{table}.") and job.file_path.endswith(".parquet")
    ]
    output_bytes = sum(f.stat().st_size for f in files)
    rows = pipeline.last_trace.last_normalize_info.row_counts.get(table)
    shutil.rmtree(pipelines_dir / name, ignore_errors=True)
    return {
        "seconds": seconds, "rows": rows, "output_bytes": output_bytes, "files": len(files),
        "output": {"kind": "s3_prefix", "bucket": s3.bucket, "prefix": f"{name}/{table}/"},
        "destination": f"filesystem s3://{s3.bucket}/{name}/ on {s3.endpoint}",
    }


def dlt_pyarrow(args: dict[str, Any]) -> dict[str, Any]:
    return _run(args, "pyarrow")


def dlt_connectorx(args: dict[str, Any]) -> dict[str, Any]:
    return _run(args, "connectorx")
