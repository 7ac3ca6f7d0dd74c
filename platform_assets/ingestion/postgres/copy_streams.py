"""Runs the extract's COPY statements in ``psql`` processes that share the extract's snapshot.

psycopg2 hands COPY output to Python one row at a time, which costs more than the
parsing itself. ``psql`` writes it to a pipe that pyarrow reads in large blocks.
Each psql session imports the snapshot exported by the extract's own transaction
(``SET TRANSACTION SNAPSHOT``, as parallel ``pg_dump`` does), so every stream reads
exactly the rows of that snapshot; several streams (ctid ranges of one table) run
in parallel and their batches are merged. Without ``psql`` on the PATH, the
statements run one after another through psycopg2 on the extract's cursor.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from platform_assets.ingestion.errors import IngestionError, TransientError
from platform_assets.ingestion.postgres.copy_reader import parse_copy_text, read_copy
from platform_assets.ingestion.postgres.type_mapping import ColumnMapping
from platform_resources.config import EngineSettings, PostgresSettings

SESSION_OPTIONS = (
    "-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
    "-c extra_float_digits=1 -c bytea_output=hex"
)
QUEUED_BATCHES_PER_STREAM = 1
PSQL_EXIT_WAIT_SECONDS = 2
_DONE = object()


def psql_executable() -> str | None:
    """The psql client to stream with, unless INGESTION_COPY_CLIENT=psycopg2."""
    if EngineSettings.from_env().copy_client == "psycopg2":
        return None
    return shutil.which("psql")


def extract_batches(
    cur: Any,
    settings: PostgresSettings,
    snapshot_id: str | None,
    copy_statements: list[str],
    mappings: list[ColumnMapping],
    source_name: str,
    application_name: str,
    framed: bool = False,
) -> Iterator[pa.RecordBatch]:
    """Batches of every statement, read from the snapshot of ``cur``'s transaction.

    ``framed``: rows of any size (see ``copy_reader.parse_copy_text``).
    """
    psql = psql_executable()
    if psql is None or snapshot_id is None:
        for statement in copy_statements:
            yield from read_copy(cur, statement, mappings, source_name, framed)
        return
    streams = [
        _psql_stream(psql, settings, snapshot_id, statement, mappings, source_name, application_name, framed)
        for statement in copy_statements
    ]
    if len(streams) == 1:
        yield from streams[0]
    else:
        yield from _merged(streams)


def _psql_stream(
    psql: str,
    settings: PostgresSettings,
    snapshot_id: str,
    copy_statement: str,
    mappings: list[ColumnMapping],
    source_name: str,
    application_name: str,
    framed: bool,
) -> Iterator[pa.RecordBatch]:
    env = {
        **os.environ,
        "PGHOST": settings.host,
        "PGPORT": str(settings.port),
        "PGUSER": settings.user,
        "PGDATABASE": settings.dbname,
        "PGAPPNAME": application_name,
        "PGOPTIONS": SESSION_OPTIONS,
        "PGCLIENTENCODING": "UTF8",
        "PGCONNECT_TIMEOUT": "10",
    }
    if settings.password:
        env["PGPASSWORD"] = settings.password
    command = [
        psql, "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "-c", f"SET TRANSACTION SNAPSHOT '{snapshot_id}'",
        "-c", copy_statement,
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
        try:
            yield from parse_copy_text(
                process.stdout if framed else pa.PythonFile(process.stdout, mode="r"), mappings, source_name,
                lambda: _exited_with_error(process), framed,
            )
            process.stdout.close()
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            if code < 0:
                message = f"psql was killed by signal {-code} ({signal.Signals(-code).name}) {message}".strip()
            error = TransientError if code < 0 or _connection_lost(message) else IngestionError
            raise error(f"{source_name}: reading from PostgreSQL failed: {message}")


def _exited_with_error(process: subprocess.Popen) -> bool:
    """Whether psql failed; a parse error at a cut-off row races its exit, so wait briefly."""
    try:
        return process.wait(timeout=PSQL_EXIT_WAIT_SECONDS) != 0
    except subprocess.TimeoutExpired:
        return False


_CONNECTION_LOST = (
    "could not connect",
    "connection to server",
    "server closed the connection",
    "terminating connection",
    "connection timed out",
)


def _connection_lost(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _CONNECTION_LOST)


def _merged(streams: list[Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """Batches of several streams as they arrive; the first failure stops them all."""
    batches: queue.Queue = queue.Queue(maxsize=QUEUED_BATCHES_PER_STREAM * len(streams))
    stop = threading.Event()

    def pump(stream: Iterator[pa.RecordBatch]) -> None:
        try:
            for batch in stream:
                if stop.is_set():
                    break
                batches.put(batch)
            batches.put(_DONE)
        except BaseException as e:  # handed to the consumer
            batches.put(e)
        finally:
            stream.close()

    threads = [threading.Thread(target=pump, args=(s,), daemon=True) for s in streams]
    for thread in threads:
        thread.start()
    remaining = len(threads)
    try:
        while remaining:
            item = batches.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        while any(t.is_alive() for t in threads):
            try:
                batches.get(timeout=0.1)
            except queue.Empty:
                pass
