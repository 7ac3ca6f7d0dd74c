"""The pure alert rules: messages, redaction, retry/drop bookkeeping, the cursor."""

from __future__ import annotations

import json

import pytest

from platform_assets.alerts.messages import (
    Failure,
    first_line,
    payload,
    redact,
    redacted,
)
from platform_assets.alerts.outbox import (
    NOT_TRIED,
    OUT_OF_TIME,
    AlertCursor,
    CursorError,
    Pending,
    deliver,
)
from platform_assets.alerts.rules import (
    RunVerdict,
    TickOutcome,
    failed_run_verdict,
    failing_tick_alerts,
)

WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"
FAILURE = Failure(
    kind="run", key="run:abc", source="bronze/postgres/orders", partition="2024-01-02",
    what="step bronze__postgres__orders",
    error="IngestionError: cannot connect to postgresql://reader:hunter2@db:5432/app\nTraceback ...",
    run_id="abc",
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ValueError: boom\nsecond", "ValueError: boom"),
        ("\n\n  indented first  \nnext", "indented first"),
        ("", ""),
        (None, ""),
        ("x" * 400, "x" * 297 + "..."),
    ],
)
def test_first_line(text, expected):
    assert first_line(text) == expected


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("postgresql://reader:hunter2@db/app", [], "postgresql://reader:***@db/app"),
        ("connect failed: password=hunter2 host=db", [], "connect failed: password=*** host=db"),
        ('{"PGPASSWORD": "s3cr3t!"}', [], '{"PGPASSWORD": ***}'),
        ("aws_secret_access_key = AbC/123", [], "aws_secret_access_key = ***"),
        ("token=abc&x=1", [], "token=***&x=1"),
        (f"posting to {WEBHOOK} failed", [], "posting to *** failed"),
        ("the key is minio-secret-value here", ["minio-secret-value"], "the key is *** here"),
        ("short pw ab stays", ["ab"], "short pw ab stays"),  # too short to replace blindly
        ("nothing to hide: 12 rows", ["hunter2"], "nothing to hide: 12 rows"),
        ("secret: 12", [], "secret: ***"),  # over-redacting is the safe side
    ],
)
def test_redact(text, secrets, expected):
    assert redact(text, secrets) == expected


def test_payload_carries_the_fields_and_no_secret():
    message = payload(FAILURE, ui_base_url="http://dagster.internal:3000/", secrets=["hunter2", WEBHOOK])
    text = message["text"]
    assert text.startswith(":rotating_light: *Run failed*: bronze/postgres/orders")
    assert "*Partition:* 2024-01-02" in text
    assert "*What failed:* step bronze__postgres__orders" in text
    assert "*Error:* IngestionError: cannot connect to postgresql://reader:***@db:5432/app" in text
    assert "Traceback" not in text  # first line only
    assert "*Run:* http://dagster.internal:3000/runs/abc" in text
    attachment = message["attachments"][0]
    assert attachment["title_link"] == "http://dagster.internal:3000/runs/abc"
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Source"] == "bronze/postgres/orders" and fields["Partition"] == "2024-01-02"
    dumped = json.dumps(message)
    assert "hunter2" not in dumped and "hooks.slack.com" not in dumped


def test_payload_without_ui_url_names_the_run_and_escapes_slack_controls():
    failure = Failure(kind="check", key="k", source="bronze/files/drops", what="check unique (ERROR)",
                      error="3 rows <id> & more", run_id="r1")
    message = payload(failure)
    assert "*Run:* r1" in message["text"] and "title_link" not in message["attachments"][0]
    assert "3 rows &lt;id&gt; &amp; more" in message["text"]
    assert "*Partition:* none" in message["text"]


def test_sensor_failure_without_run():
    failure = Failure(kind="sensor", key="tick:s:1", source="sensor drops_sensor", what="tick 1", error="boom")
    message = payload(failure, ui_base_url="http://ui")
    assert "*Sensor tick failed*" in message["text"] and "Run" not in message["text"]


def test_redacted_failure_is_what_the_cursor_may_keep():
    secret = "s" * 10 + "TAIL"
    long_error = "E: " + "x" * 290 + f" password {secret}\nsecond line {secret}"
    failure = Failure(kind="run", key="run:1", source=f"bronze/postgres/orders {secret}", what="step",
                      error=long_error, partition="2024-01-01", run_id="1")
    clean = redacted(failure, [secret])
    assert secret[:4] not in repr(clean)  # redacted before the cut: no part of the secret survives
    assert clean.error.startswith("E: xxx") and "second line" not in clean.error and len(clean.error) <= 300
    assert clean.source == "bronze/postgres/orders ***" and clean.key == "run:1" and clean.run_id == "1"


def _sender(outcomes: list[str | None]):
    calls = []

    def send(failure):
        calls.append(failure.key)
        return outcomes.pop(0) if outcomes else None

    return send, calls


def _failure(key: str) -> Failure:
    return Failure(kind="run", key=key, source="s", what="w", error="e")


def test_deliver_sends_pending_first_then_new():
    send, calls = _sender([None, None])
    old = Pending(_failure("old"), queued_at=100.0, attempts=2, last_error="down")
    done = deliver([old], [_failure("new")], send, now=200.0, retry_seconds=3600)
    assert calls == ["old", "new"]
    assert [f.key for f in done.sent] == ["old", "new"] and done.pending == [] and done.dropped == []


def test_deliver_stops_at_the_first_failure_and_keeps_the_rest_pending():
    send, calls = _sender(["unreachable"])
    done = deliver([], [_failure("a"), _failure("b")], send, now=50.0, retry_seconds=3600)
    assert calls == ["a"]  # one timeout per tick, not one per alert
    assert [(p.failure.key, p.attempts, p.last_error, p.queued_at) for p in done.pending] == [
        ("a", 1, "unreachable", 50.0), ("b", 0, NOT_TRIED, 50.0)]


def test_deliver_retries_within_the_bound_and_drops_after_it():
    send, calls = _sender(["down", "down"])
    young = Pending(_failure("young"), queued_at=1000.0, attempts=3)
    old = Pending(_failure("old"), queued_at=0.0, attempts=9, last_error="down")
    done = deliver([old, young], [], send, now=3700.0, retry_seconds=3600)
    assert calls == ["young"]  # the expired one is not tried again
    assert [p.failure.key for p in done.dropped] == ["old"]
    assert [(p.failure.key, p.attempts) for p in done.pending] == [("young", 4)]


def test_deliver_stops_when_the_tick_is_out_of_time():
    send, calls = _sender([])
    clock = iter([False, False, True, True])
    done = deliver([], [_failure(k) for k in "abcd"], send, now=0.0, retry_seconds=10,
                   out_of_time=lambda: next(clock))
    assert calls == ["a", "b"] and [f.key for f in done.sent] == ["a", "b"]
    assert [(p.failure.key, p.attempts, p.last_error) for p in done.pending] == [
        ("c", 0, OUT_OF_TIME), ("d", 0, OUT_OF_TIME)]


def test_deliver_bounds_the_pending_list():
    send, _ = _sender(["down"])
    done = deliver([], [_failure(str(i)) for i in range(5)], send, now=0.0, retry_seconds=10, max_pending=3)
    assert [p.failure.key for p in done.dropped] == ["0", "1"]
    assert [p.failure.key for p in done.pending] == ["2", "3", "4"]


def test_cursor_round_trip():
    cursor = AlertCursor(
        failures_after=12, successes_after=7, awaiting_retry={"r1": 5.5},
        ticks={"drops_sensor": {"after": 3, "failing": "boom"}},
        pending=[Pending(FAILURE, queued_at=1.0, attempts=2, last_error="HTTP 500")],
    )
    again = AlertCursor.from_json(cursor.to_json())
    assert again == cursor and again.started
    assert not AlertCursor.from_json(None).started and not AlertCursor.from_json("").started


@pytest.mark.parametrize("text", ["not json", '{"v": 99}', '{"v": 1, "pending": [{"x": 1}]}', "[]"])
def test_unreadable_cursor_is_an_error(text):
    with pytest.raises(CursorError):
        AlertCursor.from_json(text)


@pytest.mark.parametrize(
    ("will_retry", "retry_run", "enabled", "waited", "expected"),
    [
        (None, None, False, 0, RunVerdict.ALERT),  # no retries configured
        ("false", None, True, 0, RunVerdict.ALERT),  # retries spent
        ("true", None, True, 10, RunVerdict.WAIT),  # retry due, not launched yet
        ("true", "r2", True, 10, RunVerdict.RETRIED),  # the retry run is the one to watch
        ("true", None, True, 901, RunVerdict.ALERT),  # the retry never started
        (None, None, True, 10, RunVerdict.WAIT),  # Dagster has not tagged the run yet
        (None, None, True, 901, RunVerdict.ALERT),
    ],
)
def test_failed_run_verdict(will_retry, retry_run, enabled, waited, expected):
    verdict = failed_run_verdict(will_retry=will_retry, retry_run_id=retry_run, retries_enabled=enabled,
                                 waited_seconds=waited, grace_seconds=900)
    assert verdict is expected


def test_failing_ticks_alert_once_per_streak_and_per_error():
    ticks = [TickOutcome(1, True, "boom"), TickOutcome(2, True, "boom"), TickOutcome(3, True, "other"),
             TickOutcome(4, False), TickOutcome(5, True, "other"), TickOutcome(6, True, "other")]
    alerts, failing = failing_tick_alerts(None, ticks)
    assert [t.tick_id for t in alerts] == [1, 3, 5] and failing == "other"
    alerts, failing = failing_tick_alerts("other", [TickOutcome(7, True, "other")])
    assert alerts == [] and failing == "other"
    assert failing_tick_alerts("other", [TickOutcome(8, False)]) == ([], None)
