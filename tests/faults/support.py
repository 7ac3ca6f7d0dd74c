"""Helpers of the fault-injection suite: servers that fail on purpose, and reading back state.

Everything here is test code: a moto server that can really go away (its listening
socket closed, not just its accept loop stopped), an HTTP proxy in front of an S3
server that fails chosen requests, a nanio (SigV4-checking) server process, and the
read-back helpers every test uses to assert on the data left behind.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from platform_assets.ingestion.services import Services
from platform_resources.config import ObjectStoreSettings, PostgresSettings
from platform_resources.object_store import ObjectStore
from tests.helpers import tracking_runs as runs  # noqa: F401 (the suite imports it from here)
from tests.helpers import watermark_row  # noqa: F401

EXTRACT_APP = "data_platform:extract"


# --------------------------------------------------------------------------- the source

# The incremental source most cases load: ``version`` tells row versions apart.
ORDERS_DDL = """
CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    version    int NOT NULL DEFAULT 1,
    payload    text NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX ON orders (updated_at);
"""


def add_orders(conn: Any, n: int, day: str, payload_bytes: int = 16) -> None:
    """``n`` rows stamped on ``day`` (distinct microseconds), with ``payload_bytes`` of random-ish text."""
    md5s = max(1, payload_bytes // 32)
    payload = " || ".join(f"md5(g::text || '{i}' || clock_timestamp()::text)" for i in range(md5s))
    query(
        conn,
        f"INSERT INTO orders (payload, updated_at) "
        f"SELECT {payload}, timestamptz %s + (SELECT count(*) FROM orders) * interval '1 ms' "
        f"  + g * interval '1 ms' FROM generate_series(1, %s) g",
        (f"{day} 00:00:00+00", n),
    )


def source_versions(conn: Any) -> list[tuple]:
    return sorted(query(conn, "SELECT id, version, updated_at FROM orders"))


# --------------------------------------------------------------------------- ports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# --------------------------------------------------------------------------- services


def store(endpoint: str, access_key: str = "test-access", secret_key: str = "test-secret",
          store_type: type[ObjectStore] = ObjectStore) -> ObjectStore:
    settings = ObjectStoreSettings(endpoint_url=endpoint, access_key=access_key, secret_key=secret_key)
    return store_type(settings.client(), endpoint)


def services_for(pg: PostgresSettings, object_store: ObjectStore, bucket: str,
                 source: PostgresSettings | None = None, **kwargs: Any) -> Services:
    """A fresh Services, as every run (Dagster op, guide function call) builds its own."""
    return Services(
        source=source or pg, platform=pg, store=object_store, bronze_bucket=bucket,
        lock_wait_seconds=kwargs.pop("lock_wait_seconds", 30), **kwargs,
    )


class StoreWithoutBucketCheck(ObjectStore):
    """Skips the bucket check so that the failure happens at the upload itself."""

    def ensure_bucket(self, bucket: str) -> None:
        return None


# --------------------------------------------------------------------------- read back


def query(conn: Any, sql: str, params: Any = None) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []






def object_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return []
        raise
    return sorted(o["Key"] for o in listed.get("Contents", []))


def object_exists(client: Any, bucket: str, key: str) -> bool:
    """HEAD the key: False on 404 (or a missing bucket)."""
    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
            return False
        raise


def assert_no_object(client: Any, bucket: str, key: str) -> None:
    assert key not in object_keys(client, bucket), f"{key} is listed in {bucket}"
    assert not object_exists(client, bucket, key), f"HEAD {bucket}/{key} found an object"


def read_rows(client: Any, bucket: str, key: str, *columns: str) -> list[tuple]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body), columns=list(columns))
    return [tuple(r[c] for c in columns) for r in table.to_pylist()]


def success_union(conn: Any, client: Any, bucket: str, source: str, *columns: str) -> list[tuple]:
    """Rows of the objects that have a 'success' tracking row (latest success per key), all together."""
    keys = [
        k for (k,) in query(
            conn,
            "SELECT DISTINCT object_key FROM data_platform.ingestion_metadata "
            "WHERE source_name = %s AND status = 'success'",
            (source,),
        )
    ]
    return sorted(row for key in keys for row in read_rows(client, bucket, key, *columns))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


# --------------------------------------------------------------------------- processes


def psql_processes(dbname: str) -> list[int]:
    """Live (non-zombie) psql processes whose environment points at ``dbname``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if not cmdline or not cmdline[0].endswith(b"psql"):
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if f"PGDATABASE={dbname}".encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def extract_backends(conn: Any) -> list[tuple]:
    """(pid, state, query) of the extract sessions on this test's database."""
    return query(
        conn,
        "SELECT pid, state, query FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()",
        (EXTRACT_APP,),
    )


_WHICH = {
    "all": "",
    "copy": " AND query LIKE 'COPY%%' AND state = 'active'",  # the psql sessions streaming
    # The session that exported the snapshot (a psql session that finished its COPY is
    # idle in transaction too until it exits: not it).
    "snapshot": " AND state = 'idle in transaction' AND query NOT LIKE 'COPY%%'",
}


def terminate_extract_backends(conn: Any, which: str = "all") -> int:
    """pg_terminate_backend() the extract sessions of this test's database; how many."""
    [(n,)] = query(
        conn,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()"
        + _WHICH[which],
        (EXTRACT_APP,),
    )
    return n


# --------------------------------------------------------------------------- a moto server that goes away


class MotoServer:
    """ThreadedMotoServer on a fixed port that can be stopped for real and started again.

    ``ThreadedMotoServer.stop()`` only ends the accept loop: the listening socket stays
    open, so clients connect and then wait for a reply until their read timeout. Here
    ``stop`` also closes the socket: the port refuses connections, as when the store
    is down. moto keeps its buckets in process memory, so they survive a restart.
    """

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server._server.server_close()
            self._server = None


# --------------------------------------------------------------------------- a fault-injecting proxy

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "expect", "proxy-connection", "te", "upgrade"}

Fault = Callable[[str, str, dict[str, list[str]]], str | None]


class FaultProxy:
    """An HTTP proxy in front of an S3 server that fails the requests ``fault`` picks.

    ``fault(method, path, query)`` returns None (forward), ``"500"`` (answer an S3
    InternalError without forwarding) or ``"drop"`` (read the request, close the
    connection without an answer).
    """

    def __init__(self, upstream: str, fault: Fault | None = None):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port
        self.fault = fault
        self.seen: list[tuple[str, str, dict[str, list[str]], str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def record(self, method: str, path: str, query: dict[str, list[str]], outcome: str) -> None:
        with self._lock:
            self.seen.append((method, path, query, outcome))

    def requests(self, method: str | None = None, param: str | None = None) -> list[tuple]:
        with self._lock:
            return [
                s for s in self.seen
                if (method is None or s[0] == method) and (param is None or param in s[2])
            ]


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and "100 Continue" for boto's Expect header

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.proxy  # type: ignore[attr-defined]
        body = self._body()
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        action = proxy.fault(self.command, url.path, params) if proxy.fault else None
        proxy.record(self.command, url.path, params, action or "forwarded")
        if action == "500":
            payload = (
                b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
                b"<Message>We encountered an internal error. Please try again.</Message></Error>"
            )
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if action == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Host"] = f"{proxy.upstream_host}:{proxy.upstream_port}"
        headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() in _HOP_HEADERS or (name.lower() == "content-length" and self.command != "HEAD"):
                    continue
                self.send_header(name, value)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


# --------------------------------------------------------------------------- nanio


class NanioServer:
    """A nanio process (checks SigV4 signatures) on a free port, with one user."""

    def __init__(self, data_dir: Path, access_key: str, secret_key: str):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key = access_key
        self.secret_key = secret_key
        self._log = (data_dir.parent / "nanio.log").open("wb")
        executable = Path(sys.executable).parent / "nanio"  # installed next to the venv's python
        self.process = subprocess.Popen(
            [str(executable), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            env={**os.environ, "NANIO_ACCESS_KEY": access_key, "NANIO_SECRET_KEY": secret_key},
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# --------------------------------------------------------------------------- logs


class CapturedLogs(logging.Handler):
    """Every record of every logger, formatted with its traceback (caplog needs the logging plugin)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as e:  # noqa: BLE001 - a record that cannot format still counts
            text = f"{record.name} unformattable {record.msg!r} {record.args!r} ({e})"
        with self._lock2:
            self.lines.append(text)

    @property
    def text(self) -> str:
        with self._lock2:
            return "\n".join(self.lines)
