"""One failure, one message: a Slack-compatible payload with no secret in it.

The payload is what every Slack-compatible receiver (Slack, Mattermost, Rocket.Chat,
Zulip's Slack endpoint, ...) takes: a ``text`` that says everything on its own, plus a
legacy ``attachments`` entry whose ``fields`` repeat it for receivers that show them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

MAX_ERROR_CHARS = 300
REDACTED = "***"
KINDS = {"run": "Run failed", "check": "Asset check failed", "sensor": "Sensor tick failed"}

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|credential)s?[\w.-]*)"
    r"([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&)}]+)"
)
_WEBHOOK_URL = re.compile(r"(?i)https?://hooks\.[\w.-]+/\S+")


@dataclass(frozen=True)
class Failure:
    """What failed, as the sensor found it; every text is redacted before it is sent."""

    kind: str
    """``run``, ``check`` or ``sensor`` (a key of ``KINDS``)."""
    key: str
    """Identity of this failure (one message per key): ``run:<id>``, ``check:<run>:<check>``, ..."""
    source: str
    what: str
    error: str
    partition: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(**{k: data.get(k) for k in ("kind", "key", "source", "what", "error", "partition", "run_id")})


def first_line(text: str | None, limit: int = MAX_ERROR_CHARS) -> str:
    """The first non-blank line of ``text``, shortened to ``limit`` characters."""
    for line in (text or "").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return ""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values, URL credentials, ``password=...``-like
    assignments or webhook URLs."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _WEBHOOK_URL.sub(REDACTED, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def redacted(failure: Failure, secrets: Iterable[str] = ()) -> Failure:
    """``failure`` as it may be stored (the sensor's cursor shows in the UI) and sent: every
    text redacted, the error cut to its first line (after redaction, so a cut never leaves
    part of a secret)."""
    secrets = list(secrets)

    def clean(text: str | None) -> str | None:
        return None if text is None else redact(text, secrets)

    return Failure(
        kind=failure.kind, key=failure.key, source=clean(failure.source) or "", what=clean(failure.what) or "",
        error=first_line(redact(failure.error or "", secrets)), partition=clean(failure.partition),
        run_id=failure.run_id,
    )


def _escape(text: str) -> str:
    """Slack's three control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def run_url(ui_base_url: str | None, run_id: str | None) -> str | None:
    if not ui_base_url or not run_id:
        return None
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


def payload(failure: Failure, *, ui_base_url: str | None = None, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The Slack-compatible message for ``failure``: source, partition, what failed, the
    error's first line and a link to the run (when the UI's URL is known)."""
    failure = redacted(failure, secrets)

    def clean(text: str | None) -> str:
        return _escape(text or "")

    title = KINDS.get(failure.kind, "Failure")
    fields = [("Source", clean(failure.source)), ("Partition", clean(failure.partition or "none"))]
    fields.append(("What failed", clean(failure.what)))
    fields.append(("Error", clean(failure.error) or "(no message)"))
    link = run_url(ui_base_url, failure.run_id)
    if link:
        fields.append(("Run", clean(link)))
    elif failure.run_id:
        fields.append(("Run", clean(failure.run_id)))
    text = "\n".join([f":rotating_light: *{title}*: {clean(failure.source)}"] + [f"*{k}:* {v}" for k, v in fields])
    attachment: dict[str, Any] = {
        "color": "danger",
        "fallback": text,
        "title": f"{title}: {clean(failure.source)}",
        "fields": [{"title": k, "value": v, "short": k in ("Source", "Partition")} for k, v in fields],
    }
    if link:
        attachment["title_link"] = clean(link)
    return {"text": text, "attachments": [attachment]}
