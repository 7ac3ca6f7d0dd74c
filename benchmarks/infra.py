"""The services a run needs: its own PostgreSQL database and an S3 server on loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg2
from botocore.config import Config

from benchmarks.config import PgTarget, S3Target

ADMIN_DB = os.environ.get("PGDATABASE") or "postgres"


def admin_target() -> PgTarget:
    """The server from the libpq variables (default 127.0.0.1:5432, user postgres)."""
    return PgTarget(
        host=os.environ.get("PGHOST") or "127.0.0.1",
        port=int(os.environ.get("PGPORT") or 5432),
        user=os.environ.get("PGUSER") or "postgres",
        dbname=ADMIN_DB,
        password=os.environ.get("PGPASSWORD") or None,
    )


def connect(target: PgTarget, autocommit: bool = True) -> Any:
    conn = psycopg2.connect(
        host=target.host, port=target.port, user=target.user, password=target.password,
        dbname=target.dbname, application_name="benchmarks", connect_timeout=10,
    )
    conn.autocommit = autocommit
    return conn


def create_database() -> PgTarget:
    """A fresh database ``bench_ingest_<hex>`` on the admin server."""
    admin = admin_target()
    name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
    conn = connect(admin)
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()
    return PgTarget(host=admin.host, port=admin.port, user=admin.user, dbname=name, password=admin.password)


def drop_database(target: PgTarget) -> None:
    if not target.dbname.startswith("bench_ingest_"):
        raise ValueError(f"refusing to drop {target.dbname!r}: not a benchmark database")
    conn = connect(PgTarget(target.host, target.port, target.user, ADMIN_DB, target.password))
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{target.dbname}" WITH (FORCE)')
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A ``localbucket`` S3 server (buckets are folders under ``root``) in a child process."""

    process: subprocess.Popen
    target: S3Target
    root: Path
    log_path: Path

    def client(self) -> Any:
        return s3_client(self.target)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def s3_client(target: S3Target) -> Any:
    return boto3.client(
        "s3", endpoint_url=target.endpoint, aws_access_key_id=target.access_key,
        aws_secret_access_key=target.secret_key, region_name=target.region,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
    )


def start_s3_server(root: Path, buckets: list[str]) -> S3Server:
    """Start ``localbucket`` on a free loopback port and create ``buckets``.

    localbucket (the project's embedded object store) keeps objects on disk, so a
    run's memory does not grow with what it stored, unlike moto's in-memory backend.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    executable = shutil.which("localbucket") or str(Path(sys.executable).with_name("localbucket"))
    port = free_port()
    log_path = root.parent / "localbucket.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [executable, "--host", "127.0.0.1", "--port", str(port), str(root)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = S3Server(process, S3Target(endpoint=f"http://127.0.0.1:{port}"), root, log_path)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"localbucket exited: {log_path.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError("localbucket did not start listening within 20 s") from None
            time.sleep(0.1)
    try:
        client = server.client()
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
    except BaseException:
        server.stop()
        raise
    return server
