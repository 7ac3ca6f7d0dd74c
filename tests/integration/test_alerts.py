"""The alerts sensor against real runs in a Dagster instance and a webhook on loopback.

The webhook is an ``http.server`` in a thread that records every POST; the unreachable
one is a closed port. Runs are real (``dg.materialize``) and fail for real; the sensor
is evaluated as the daemon would, with ``build_sensor_context`` and its cursor.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from platform_assets.alerts.outbox import AlertCursor
from platform_assets.defs.alerts import SENSOR_NAME, build_alerts_sensor
from platform_resources.alert_webhook import AlertWebhookResource

SECRET = "pg-Secret-4711"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
KEY = dg.AssetKey(["bronze", "test", "sales"])
OP = "bronze__test__sales"
UI = "http://dagster.test:3000"
FAILS, BAD_CHECK, BAD_WARN, BLOCKED = "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"


@dg.asset(
    key=KEY,
    partitions_def=DAILY,
    check_specs=[
        dg.AssetCheckSpec("positive", asset=KEY),
        dg.AssetCheckSpec("recent", asset=KEY),
        dg.AssetCheckSpec("stored", asset=KEY, blocking=True),
    ],
)
def sales(context):
    partition = context.partition_key
    if partition == FAILS:
        raise RuntimeError(
            f"cannot reach postgresql://reader:{SECRET}@db.internal:5432/app (password={SECRET})\nsecond line"
        )
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="positive", passed=partition != BAD_CHECK,
                              severity=dg.AssetCheckSeverity.ERROR, metadata={"failing_rows": 3})
    yield dg.AssetCheckResult(check_name="recent", passed=partition != BAD_WARN, severity=dg.AssetCheckSeverity.WARN)
    yield dg.AssetCheckResult(check_name="stored", passed=partition != BLOCKED, severity=dg.AssetCheckSeverity.ERROR)


class Webhook:
    """A Slack-compatible webhook on 127.0.0.1 that records the JSON it receives."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.status == 200:
                    hook.received.append(json.loads(body))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/{SECRET}-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts(self) -> list[str]:
        return [m["text"] for m in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture
def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more


@pytest.fixture
def instance(monkeypatch) -> Iterator[dg.DagsterInstance]:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    with dg.instance_for_test() as instance:
        yield instance


def _resource(url: str | None, **kwargs) -> AlertWebhookResource:
    return AlertWebhookResource(url=url, ui_base_url=UI, **kwargs)


def _tick(sensor, instance, cursor, resource):
    """One evaluation, as the daemon runs it: returns the new cursor and the tick's data."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alert_webhook": resource})
    data = sensor.evaluate_tick(context)
    return (data.cursor if data.cursor is not None else cursor), data


def _sensor(**kwargs):
    return build_alerts_sensor(sensor_names=["drops_sensor"], op_assets={OP: KEY.to_user_string()}, **kwargs)


def _run(instance, partition, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize([sales], partition_key=partition, instance=instance, raise_on_error=False, **kwargs)


def test_one_message_per_failed_run_with_its_fields_and_no_secret(instance, webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    _run(instance, FAILS)  # before the sensor's first evaluation: not alerted
    cursor, data = _tick(sensor, instance, None, resource)
    assert webhook.received == [] and AlertCursor.from_json(cursor).started

    failed = _run(instance, FAILS)
    assert not failed.success
    cursor, _ = _tick(sensor, instance, cursor, resource)
    cursor, data = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1, webhook.texts()  # one per run, not one per tick
    message = webhook.received[0]
    fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
    assert fields["Source"] == "bronze/test/sales"
    assert fields["Partition"] == FAILS
    assert fields["What failed"] == f"step {OP}"
    assert fields["Error"] == "RuntimeError: cannot reach postgresql://reader:***@db.internal:5432/app (password=***)"
    assert fields["Run"] == f"{UI}/runs/{failed.run_id}"
    assert message["attachments"][0]["title_link"] == f"{UI}/runs/{failed.run_id}"
    assert message["text"].startswith(":rotating_light: *Run failed*: bronze/test/sales")
    body = json.dumps(message)
    assert SECRET not in body and webhook.url not in body and "second line" not in body
    assert SECRET not in cursor  # nor in the sensor's cursor, shown in the UI


def test_successful_runs_and_passing_checks_send_nothing(instance, webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    cursor, _ = _tick(sensor, instance, None, resource)
    assert _run(instance, "2024-01-01").success
    cursor, data = _tick(sensor, instance, cursor, resource)
    assert webhook.received == []
    assert "0 new failures" in data.skip_message


def test_a_run_dagster_retries_is_alerted_once_its_retries_are_spent(webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        cursor, _ = _tick(sensor, instance, None, resource)
        first = _run(instance, FAILS)
        assert instance.get_run_by_id(first.run_id).tags["dagster/will_retry"] == "true"  # Dagster's verdict
        cursor, _ = _tick(sensor, instance, cursor, resource)
        assert webhook.received == []  # a retry is coming

        # What the retry daemon does: launch the retry and record it on the failed run.
        retry = _run(instance, FAILS, tags={"dagster/parent_run_id": first.run_id,
                                            "dagster/root_run_id": first.run_id, "dagster/retry_number": "1"})
        instance.add_run_tags(first.run_id, {"dagster/auto_retry_run_id": retry.run_id})
        # The daemon counts attempts by run group (not set by dg.materialize): the last one is not retried.
        instance.add_run_tags(retry.run_id, {"dagster/will_retry": "false"})
        cursor, _ = _tick(sensor, instance, cursor, resource)
        cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1, webhook.texts()
    assert f"/runs/{retry.run_id}" in webhook.received[0]["text"]
    assert AlertCursor.from_json(cursor).awaiting_retry == {}


def test_a_retry_that_never_starts_is_alerted_after_the_grace_period(webhook):
    sensor, resource = _sensor(retry_grace_seconds=0.5), _resource(webhook.url)
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        cursor, _ = _tick(sensor, instance, None, resource)
        failed = _run(instance, FAILS)
        cursor, _ = _tick(sensor, instance, cursor, resource)
        assert webhook.received == [] and failed.run_id in AlertCursor.from_json(cursor).awaiting_retry
        time.sleep(0.6)
        cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1
    assert "automatic retry did not start" in webhook.received[0]["text"]


def test_failing_error_check_of_a_successful_run_alerts_once(instance, webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    cursor, _ = _tick(sensor, instance, None, resource)
    run = _run(instance, BAD_CHECK)
    assert run.success  # a non-blocking check does not fail its run
    cursor, _ = _tick(sensor, instance, cursor, resource)
    cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1
    fields = {f["title"]: f["value"] for f in webhook.received[0]["attachments"][0]["fields"]}
    assert fields == {"Source": "bronze/test/sales", "Partition": BAD_CHECK, "What failed": "check positive (ERROR)",
                      "Error": "3 failing rows", "Run": f"{UI}/runs/{run.run_id}"}
    assert webhook.received[0]["text"].startswith(":rotating_light: *Asset check failed*")


def test_warn_checks_alert_only_when_the_registry_asks(instance, webhook):
    quiet, loud = _sensor(), _sensor(warn_assets=[KEY.to_user_string()])
    resource = _resource(webhook.url)
    quiet_cursor, _ = _tick(quiet, instance, None, resource)
    loud_cursor, _ = _tick(loud, instance, None, resource)
    assert _run(instance, BAD_WARN).success
    _tick(quiet, instance, quiet_cursor, resource)
    assert webhook.received == []
    _tick(loud, instance, loud_cursor, resource)
    assert [f["value"] for f in webhook.received[0]["attachments"][0]["fields"] if f["title"] == "What failed"] == [
        "check recent (WARN)"]
    assert len(webhook.received) == 1


def test_a_check_that_failed_its_run_is_alerted_as_the_run(instance, webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    cursor, _ = _tick(sensor, instance, None, resource)
    run = _run(instance, BLOCKED)
    assert not run.success  # the blocking check failed the run
    cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1, webhook.texts()
    text = webhook.received[0]["text"]
    assert "*Run failed*" in text and "failing checks: bronze/test/sales stored" in text
    assert "*Error:* DagsterAssetCheckFailedError: 1 blocking asset check failed" in text


def _sensor_state(instance, name, schedule: bool = False):
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.remote_origin import (
        RegisteredCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        SensorInstigatorData,
    )

    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("platform"), "__repository__"),
                                    name)
    if schedule:
        from dagster._core.scheduler.instigation import ScheduleInstigatorData

        state = InstigatorState(origin, InstigatorType.SCHEDULE, InstigatorStatus.DECLARED_IN_CODE,
                                ScheduleInstigatorData("*/15 * * * *", start_timestamp=time.time()))
    else:
        state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.DECLARED_IN_CODE,
                                SensorInstigatorData(min_interval=30, sensor_type=None))
    instance.add_instigator_state(state)
    return state


def _record_tick(instance, state, error: str | None):
    """A finished tick of ``state``'s sensor, as the daemon stores it."""
    from dagster._core.scheduler.instigation import TickData, TickStatus
    from dagster._utils.error import SerializableErrorInfo

    tick = instance.create_tick(TickData(
        instigator_origin_id=state.instigator_origin_id, instigator_name=state.name,
        instigator_type=state.instigator_type, status=TickStatus.STARTED, timestamp=time.time(),
        selector_id=state.selector_id))
    if error is None:
        instance.update_tick(tick.with_status(TickStatus.SKIPPED))
    else:
        instance.update_tick(tick.with_status(
            TickStatus.FAILURE, error=SerializableErrorInfo(f"{error}\n  more detail", [], "FileNotFoundError")))


def test_failing_sensor_ticks_of_the_platform_alert_once_per_streak(instance, webhook):
    sensor, resource = _sensor(), _resource(webhook.url)
    drops, other = _sensor_state(instance, "drops_sensor"), _sensor_state(instance, "someone_elses_sensor")
    _record_tick(instance, drops, "FileNotFoundError: before the sensor started")
    cursor, _ = _tick(sensor, instance, None, resource)
    for error in ["FileNotFoundError: data/input is missing", "FileNotFoundError: data/input is missing", None,
                  "FileNotFoundError: data/input is missing"]:
        _record_tick(instance, drops, error)
        _record_tick(instance, other, "not ours")
        cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 2, webhook.texts()  # failing, (same again), recovered, failing
    fields = {f["title"]: f["value"] for f in webhook.received[0]["attachments"][0]["fields"]}
    assert fields["Source"] == "sensor drops_sensor"
    assert fields["Error"] == "FileNotFoundError: data/input is missing"
    assert "Run" not in fields
    assert "someone_elses_sensor" not in json.dumps(webhook.received)


def test_a_failing_schedule_tick_of_the_platform_alerts(instance, webhook):
    # The daily automation is a schedule per source: a tick that cannot read the tracking
    # tables must not fail silently.
    sensor = build_alerts_sensor(sensor_names=["orders_daily"], op_assets={OP: KEY.to_user_string()})
    resource = _resource(webhook.url)
    daily = _sensor_state(instance, "orders_daily", schedule=True)
    cursor, _ = _tick(sensor, instance, None, resource)
    _record_tick(instance, daily, "TransientError: cannot read the tracking tables of platform database x")
    cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1, webhook.texts()
    fields = {f["title"]: f["value"] for f in webhook.received[0]["attachments"][0]["fields"]}
    assert fields["Source"] == "schedule orders_daily"


def test_nothing_is_sent_when_the_url_is_unset(instance, webhook):
    sensor = _sensor()
    cursor, _ = _tick(sensor, instance, None, _resource(webhook.url))
    _run(instance, FAILS)
    cursor, data = _tick(sensor, instance, cursor, _resource(None))
    assert webhook.received == []
    assert "ALERT_WEBHOOK_URL is not set" in data.skip_message
    # Turned on later, it starts from then: the failures while it was off are not replayed.
    cursor, _ = _tick(sensor, instance, cursor, _resource(webhook.url))
    cursor, _ = _tick(sensor, instance, cursor, _resource(webhook.url))
    assert webhook.received == []


def test_an_unreachable_webhook_is_retried_on_later_ticks(instance, webhook, closed_url):
    sensor = _sensor()
    cursor, _ = _tick(sensor, instance, None, _resource(closed_url))
    failed = _run(instance, FAILS)
    started = time.monotonic()
    cursor, data = _tick(sensor, instance, cursor, _resource(closed_url))
    assert time.monotonic() - started < 10  # a refused connection does not hang the tick
    cursor, data = _tick(sensor, instance, cursor, _resource(closed_url))
    pending = AlertCursor.from_json(cursor).pending
    assert [(p.failure.key, p.attempts) for p in pending] == [(f"run:{failed.run_id}", 2)]
    assert "unreachable" in pending[0].last_error and closed_url not in cursor
    assert SECRET not in cursor and "postgresql://reader:***@" in pending[0].failure.error  # the cursor shows in the UI
    webhook.status = 500  # reachable but failing: still retried
    cursor, _ = _tick(sensor, instance, cursor, _resource(webhook.url))
    assert AlertCursor.from_json(cursor).pending[0].last_error == "the webhook answered HTTP 500"
    webhook.status = 200
    cursor, _ = _tick(sensor, instance, cursor, _resource(webhook.url))
    assert len(webhook.received) == 1 and AlertCursor.from_json(cursor).pending == []
    cursor, _ = _tick(sensor, instance, cursor, _resource(webhook.url))
    assert len(webhook.received) == 1


def test_an_alert_undelivered_for_the_bounded_time_is_logged_and_dropped(instance, closed_url, capfd):
    sensor = _sensor()
    resource = _resource(closed_url, retry_seconds=0.5)
    cursor, _ = _tick(sensor, instance, None, resource)
    _run(instance, FAILS)
    cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(AlertCursor.from_json(cursor).pending) == 1
    time.sleep(0.6)
    capfd.readouterr()
    cursor, data = _tick(sensor, instance, cursor, resource)
    assert AlertCursor.from_json(cursor).pending == []
    assert "1 dropped" in data.skip_message
    logged = "".join(capfd.readouterr())  # the sensor's log (the daemon keeps it with the tick)
    assert "alert dropped after 1 failed attempts" in logged and "Run failed" in logged
    assert closed_url not in logged and SECRET not in logged


def test_the_sensor_is_in_the_definitions_with_the_webhook_as_an_env_var(monkeypatch):
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    from platform_assets.definitions import build_definitions
    from platform_assets.registry import Alerts, FileFamily, PostgresSource, Registry

    registry = Registry(
        postgres=[PostgresSource(name="orders", table="orders"),
                  PostgresSource(name="events", table="events", alerts=Alerts(warn_checks=True))],
        files=[FileFamily(name="drops", directory="/tmp", glob="*.csv", format="csv")],
    )
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    off = build_definitions(registry).get_repository_def().get_sensor_def(SENSOR_NAME)
    assert off.default_status == dg.DefaultSensorStatus.STOPPED

    url = f"https://hooks.slack.com/services/T0/B0/{SECRET}"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("DAGSTER_UI_URL", "http://dagster.internal:3000/")
    defs = build_definitions(registry)
    resource = defs.resources["alert_webhook"]
    assert isinstance(resource.url, dg.EnvVar) and resource.url == "ALERT_WEBHOOK_URL"
    assert resource.ui_base_url == "http://dagster.internal:3000"
    repository = defs.get_repository_def()
    assert repository.get_sensor_def(SENSOR_NAME).default_status == dg.DefaultSensorStatus.RUNNING
    snapshot = serialize_value(RepositorySnap.from_def(repository))
    assert "ALERT_WEBHOOK_URL" in snapshot and SECRET not in snapshot and url not in snapshot
    assert registry.warn_check_alerts("events") and not registry.warn_check_alerts("orders")


def test_the_error_is_the_one_dagster_wrapped():
    from dagster._utils.error import SerializableErrorInfo

    from platform_assets.defs.alert_events import error_text

    cause = SerializableErrorInfo("ConnectionError: db down\n", [], "ConnectionError")
    retried = SerializableErrorInfo("Exceeded max_retries of 3\n", [], "RetryRequested", cause=cause)
    step = SerializableErrorInfo("dagster._core.errors.DagsterExecutionStepExecutionError: Error occurred while "
                                 "executing op \"x\":\n", [], "DagsterExecutionStepExecutionError", cause=retried)
    assert error_text(step) == "ConnectionError: db down\n"
    own = SerializableErrorInfo("platform_assets.ingestion.errors.TransientError: public.orders: down\n", [],
                                "TransientError", cause=cause)
    assert error_text(own) == "TransientError: public.orders: down\n"  # our errors name the source: kept
    assert error_text(None) == ""
    check = SerializableErrorInfo("dagster._core.errors.DagsterAssetCheckFailedError: 1 blocking asset check failed\n",
                                  [], "DagsterAssetCheckFailedError")
    assert error_text(check) == "DagsterAssetCheckFailedError: 1 blocking asset check failed\n"


def test_a_failed_platform_load_is_alerted_with_its_source(instance, webhook, pg, store_settings):
    """The real wiring: the definitions' sensor, a PostgreSQL source whose table is missing."""
    from platform_assets.definitions import build_definitions
    from platform_assets.registry import PostgresSource, Registry
    from tests.helpers import dagster_resources

    registry = Registry(start_date="2024-01-01", postgres=[PostgresSource(name="ghost", table="ghost")])
    defs = build_definitions(registry)
    sensor = defs.get_repository_def().get_sensor_def(SENSOR_NAME)
    resource = _resource(webhook.url)
    cursor, _ = _tick(sensor, instance, None, resource)
    result = dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["bronze", "postgres", "ghost"]))], partition_key="2024-01-02",
        resources=dagster_resources(pg, store_settings), instance=instance, raise_on_error=False,
    )
    assert not result.success
    cursor, _ = _tick(sensor, instance, cursor, resource)
    assert len(webhook.received) == 1, webhook.texts()
    fields = {f["title"]: f["value"] for f in webhook.received[0]["attachments"][0]["fields"]}
    assert fields["Source"] == "bronze/postgres/ghost" and fields["Partition"] == "2024-01-02"
    assert fields["What failed"] == "step bronze__postgres__ghost"
    assert fields["Error"].startswith(("IngestionError: ", "SchemaDetectionError: ")), fields["Error"]
    assert "ghost" in fields["Error"] and "\n" not in fields["Error"]
    assert SECRET not in json.dumps(webhook.received)
