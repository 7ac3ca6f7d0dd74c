"""One tracked load of a CSV or JSON file into the bronze layer (``FileLoadRequest``).

Inside a tracking session (see ``tracking.run_scope``): the file is converted to Parquet
while the Parquet is uploaded; the file must not change while it is read; then one
platform transaction marks the run ``success``, logs the schema and records the file
in the ledger (``data_platform.ingested_files``).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from platform_assets.ingestion.errors import (
    FileChangedError,
    IngestionError,
    SchemaDetectionError,
)
from platform_assets.ingestion.files.convert import (
    ConvertedFile,
    convert_csv,
    convert_json,
)
from platform_assets.ingestion.files.csv_reader import CsvOptions
from platform_assets.ingestion.services import Services
from platform_assets.ingestion.sink.load_result import FileLoadResult
from platform_assets.ingestion.sink.parquet import file_md5
from platform_assets.ingestion.sink.schema_evolution import (
    SchemaGate,
    SchemaPolicy,
    with_changes_metadata,
)
from platform_assets.ingestion.sink.schema_metadata import (
    file_column_entries,
    file_schema_metadata,
)
from platform_assets.ingestion.sink.staged import staged_upload
from platform_assets.ingestion.tracking import locks, run_records, schema_log

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileLoadRequest:
    """One file to load. ``source_name`` is how the tracking tables name it."""

    path: Path
    object_key: str
    execution_date: str
    file_format: Literal["csv", "json"]
    source_name: str
    csv_options: CsvOptions | None = None
    schema_policy: SchemaPolicy = "evolve"
    family: str | None = None
    relative_path: str | None = None
    partition_key: str | None = None
    dagster_run_id: str | None = None
    content_md5: str | None = None
    """Known already (a family hashes the file to name its version); else hashed while it converts."""
    hashed_status: tuple[int, ...] | None = None
    """(size, mtime_ns, ctime_ns) of the file when ``content_md5`` was computed: the file
    read must still be that one."""
    replaces_loaded: bool = False
    """The version is in the ledger already and is loaded again (its record is replaced)."""

    def run_start(self, services: Services) -> run_records.RunStart:
        return run_records.RunStart(
            source_name=self.source_name,
            source_type=self.file_format,
            execution_date=self.execution_date,
            object_key=self.object_key,
            uri=services.uri(self.object_key),
            load_mode="file",
            partition_key=self.partition_key,
            dagster_run_id=self.dagster_run_id,
            family=self.family,
        )


def load_file(request: FileLoadRequest, services: Services, platform: Any, run_id: int) -> FileLoadResult:
    """Convert, store and record ``request``'s file (``platform`` holds its lock)."""
    path = request.path
    before = file_status(path)
    if request.hashed_status is not None and _status_key(before) != request.hashed_status:
        raise FileChangedError(f"{path} changed after it was hashed; nothing was stored, it is loaded once at rest")
    previous = schema_log.last_schema(platform, request.source_name, request.family)
    gate = SchemaGate(request.source_name, request.schema_policy, previous, compare_source_types=False)
    # A family's column that became text in an earlier file starts as text: types do not flap.
    text_columns = schema_log.family_text_columns(platform, request.family) if request.family else frozenset()

    def check_schema(schema: pa.Schema, pinned: frozenset[str]) -> pa.Schema:
        check_column_names(schema, path)
        changes = gate.check(file_column_entries(schema, pinned))
        if changes.flagged:
            log.warning("%s: schema changed: %s", request.source_name, changes.describe())
        return with_changes_metadata(schema, changes)

    with (
        staged_upload(services, request.object_key) as stage,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-md5") as hashing,
    ):
        # The source checksum is computed on the other core while the file converts.
        source_md5: Future[str] | None = None if request.content_md5 else hashing.submit(file_md5, path)
        converted = _converter(request, text_columns)(path, stage.local, check_schema, stage.upload)
        if _status_key(file_status(path)) != _status_key(before):
            raise FileChangedError(
                f"{path}: the file changed while it was being read (still being written?); "
                "nothing was stored, load it again once it is complete"
            )
        content_md5 = request.content_md5 or source_md5.result()
        stage.publish(platform, locks.lock_name(request.source_name, request.family), converted.parquet.size_bytes)
    schema = file_schema_metadata(converted)
    run_records.commit_success(
        platform, run_id, request.source_name, request.execution_date,
        run_records.RunSuccess(
            row_count=converted.parquet.row_count,
            file_size_bytes=converted.parquet.size_bytes,
            checksum=converted.parquet.md5,
            schema_metadata=schema,
            schema_changes=None if gate.changes.empty else gate.changes.to_json(),
        ),
        None,
        file=_identity(request, before, content_md5),
        partition_key=request.partition_key,
        object_key=request.object_key,
        replaces_file=request.replaces_loaded,
    )
    return FileLoadResult(
        uri=services.uri(request.object_key),
        object_key=request.object_key,
        row_count=converted.parquet.row_count,
        file_size_bytes=converted.parquet.size_bytes,
        checksum=converted.parquet.md5,
        source_name=request.source_name,
        source_type=request.file_format,
        execution_date=request.execution_date,
        run_id=run_id,
        schema=schema,
        schema_changes=gate.changes.to_json(),
        preview=converted.preview,
        file=str(path),
        source_md5=content_md5,
    )


def _identity(request: FileLoadRequest, status: os.stat_result, content_md5: str) -> run_records.FileIdentity:
    return run_records.FileIdentity(
        file_path=str(request.path.resolve()),
        size_bytes=status.st_size,
        mtime_ns=status.st_mtime_ns,
        content_md5=content_md5,
        family=request.family,
        relative_path=request.relative_path,
        ctime_ns=status.st_ctime_ns,
        inode=status.st_ino,
    )


Converter = Callable[[Path, Path, Any, Any], ConvertedFile]


def _converter(request: FileLoadRequest, text_columns: frozenset[str]) -> Converter:
    if request.file_format == "csv":
        options = request.csv_options or CsvOptions()
        return lambda path, dest, hook, follower: convert_csv(path, dest, options, hook, follower, text_columns)
    return lambda path, dest, hook, follower: convert_json(path, dest, hook, follower, text_columns)


def check_column_names(schema: pa.Schema, path: Path) -> None:
    """Refuse names that cannot be recorded (NUL, lone surrogates) before anything is stored."""
    for name in _field_names(schema):
        if "\x00" in name or not _encodable(name):
            raise SchemaDetectionError(
                f"{path}: the column name {name.encode('utf-8', 'backslashreplace').decode()!r} holds a NUL "
                "character or invalid text, which cannot be recorded; rename it in the file"
            )


def _field_names(fields: Any) -> list[str]:
    names = []
    for f in fields:
        names.append(f.name)
        if pa.types.is_struct(f.type):
            names += _field_names(list(f.type))
        elif pa.types.is_list(f.type) or pa.types.is_large_list(f.type):
            names += _field_names([f.type.value_field])
    return names


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _status_key(status: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written (the ctime too: a copy that keeps the mtime)."""
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def file_status(path: Path) -> os.stat_result:
    """The file's status; IngestionError when it is missing, not a regular file or unreadable."""
    if not path.exists():
        raise IngestionError(f"{path} does not exist")
    if path.is_dir():
        raise IngestionError(f"{path} is a directory, not a file")
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise IngestionError(f"{path} is not a regular file (a pipe, socket or device); nothing was read")
    if not os.access(path, os.R_OK):
        raise IngestionError(f"{path} is not readable by this process (check its permissions)")
    return status
