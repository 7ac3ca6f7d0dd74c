"""Dagster resource for the alert webhook: a Slack-compatible incoming webhook, posted to
with the standard library.

The URL is a secret (a Slack webhook's path is its credential): configured as
``dg.EnvVar("ALERT_WEBHOOK_URL")``, read at run time, shown in the UI by its variable's
name only, and never part of an error message. Nothing connects when the resource is
built: only ``post`` does.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

import dagster as dg

from platform_resources.config import ALERT_WEBHOOK_VARIABLE, AlertSettings, is_set

DEFAULT_TIMEOUT_SECONDS = 5.0


class WebhookError(Exception):
    """The webhook did not take a message; the text never holds the URL."""


class AlertWebhookResource(dg.ConfigurableResource):
    """Where alerts go. ``url`` unset: alerting is off (nothing is sent)."""

    url: str | None = None
    ui_base_url: str | None = None
    """The Dagster UI's base URL (``DAGSTER_UI_URL``); alerts then link to their run."""
    retry_seconds: float = AlertSettings.retry_seconds
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls) -> AlertWebhookResource:
        settings = AlertSettings.from_env()
        return cls(
            url=dg.EnvVar(ALERT_WEBHOOK_VARIABLE) if is_set(ALERT_WEBHOOK_VARIABLE) else None,
            ui_base_url=settings.ui_base_url,
            retry_seconds=settings.retry_seconds,
        )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def post(self, payload: dict[str, Any]) -> None:
        """POST ``payload`` as JSON; raises ``WebhookError`` unless the webhook answers 2xx."""
        if not self.url:
            raise WebhookError(f"{ALERT_WEBHOOK_VARIABLE} is not set")
        request = urllib.request.Request(
            self.url,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as e:
            # str(e) and e.reason hold no URL (e.url does): say only what the server answered.
            raise WebhookError(f"the webhook answered HTTP {e.code}") from None
        except urllib.error.URLError as e:
            raise WebhookError(f"the webhook is unreachable ({_reason(e.reason)})") from None
        except (TimeoutError, socket.timeout):
            raise WebhookError(f"the webhook did not answer within {self.timeout_seconds:g} s") from None
        except (OSError, ValueError) as e:  # a malformed URL, a reset connection
            raise WebhookError(f"the webhook could not be reached ({type(e).__name__})") from None


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return type(reason).__name__ if isinstance(reason, BaseException) else "no answer"
