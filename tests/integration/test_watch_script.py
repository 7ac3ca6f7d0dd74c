"""deploy/watch-platform.sh, the watch outside the daemon: run for real against a tracking
database, a stand-in ``dagster-daemon liveness-check`` and a webhook on loopback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from platform_assets.ingestion.tracking.migrations import bootstrap
from tests.integration.test_alerts import Webhook

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "watch-platform.sh"


@pytest.fixture
def tracking(pg_conn):
    bootstrap(pg_conn)
    with pg_conn.cursor() as cur:
        cur.execute(
            """INSERT INTO data_platform.ingestion_metadata
                   (source_name, source_type, execution_date, status, finished_at, family)
               VALUES ('public.orders', 'postgres', '2024-01-01', 'success', now() - interval '30 hours', NULL),
                      ('public.orders', 'postgres', '2024-01-02', 'failed', now(), NULL),
                      ('public.customers', 'postgres', '2024-01-02', 'success', now() - interval '1 hour', NULL),
                      ('a.csv', 'csv', '2024-01-01', 'success', now() - interval '40 hours', 'drops'),
                      ('b.csv', 'csv', '2024-01-02', 'success', now() - interval '2 hours', 'drops'),
                      ('e.json', 'json', '2024-01-01', 'success', now() - interval '50 hours', 'events')"""
        )
    return pg_conn


def _watch(tmp_path, pg, webhook_url: str | None, daemon_alive: bool, hours: int = 26):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    daemon = bin_dir / "dagster-daemon"
    daemon.write_text(f"#!/bin/sh\n[ \"$1\" = liveness-check ] && exit {0 if daemon_alive else 1}\nexit 2\n")
    daemon.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "PLATFORM_PG", "ALERT_"))}
    env.update(ENV_FILE="/nonexistent", DAGSTER_BIN=str(bin_dir), FRESHNESS_HOURS=str(hours),
               PLATFORM_PGHOST=pg.host, PLATFORM_PGPORT=str(pg.port), PLATFORM_PGUSER=pg.user,
               PLATFORM_PGDATABASE=pg.dbname)
    if webhook_url:
        env["ALERT_WEBHOOK_URL"] = webhook_url
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def test_stale_sources_and_a_dead_daemon_are_posted(tmp_path, pg, tracking):
    webhook = Webhook()
    try:
        done = _watch(tmp_path, pg, webhook.url, daemon_alive=False)
    finally:
        webhook.close()
    assert done.returncode == 1, done.stderr
    assert len(webhook.received) == 1
    text = webhook.received[0]["text"]
    assert "Dagster daemon has not sent a heartbeat" in text
    assert "no successful load for 26 h: events (last success" in text and "public.orders (last success" in text
    assert "public.customers" not in text and "drops" not in text  # a file of the family loaded 2 h ago
    assert webhook.url not in done.stderr + done.stdout


def test_all_well_is_silent(tmp_path, pg, tracking):
    webhook = Webhook()
    try:
        done = _watch(tmp_path, pg, webhook.url, daemon_alive=True, hours=72)
    finally:
        webhook.close()
    assert (done.returncode, webhook.received, done.stderr) == (0, [], "")


def test_an_unreachable_tracking_database_is_a_problem(tmp_path, pg):
    # pg has no tracking tables: the query fails, which the watch reports rather than ignores
    done = _watch(tmp_path, pg, None, daemon_alive=True)
    assert done.returncode == 1 and "tracking database could not be queried" in done.stderr
