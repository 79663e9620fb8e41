"""Alerts: one message about a failed run or a failed/warned check, sent to every configured
channel (generic webhook, Slack incoming webhook, e-mail over SMTP) (no dagster).

Secrets (webhook URLs, SMTP credentials) are read from the environment variables the settings
name, at send time, and never appear in a log line or an error: a failure to notify says
which channel and why, never where it was sending to. One channel failing never stops the
others, and never raises: alerting must not fail the pipeline it reports on. Within one sensor
tick (a `Delivery`) a channel that could not be reached is not tried again: each try would wait
up to timeout_seconds, and Dagster abandons a sensor evaluation after 60 s.
"""

from __future__ import annotations

import http.client
import json
import os
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage

from harmonizer_pipeline.settings import Alerts, EmailChannel, SlackChannel, WebhookChannel

EVENT_TITLES = {"run_failure": "run failed", "check_failure": "check failed", "check_warning": "check warned"}


@dataclass(frozen=True)
class Alert:
    event: str  # run_failure | check_failure | check_warning
    run_id: str
    run_url: str
    job: str
    message: str
    asset: str | None = None
    partition: str | None = None
    file: str | None = None
    check: str | None = None
    severity: str | None = None
    counts: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        subject = self.asset or self.job
        if self.check:
            subject += f" check {self.check}"
        where = f" ({self.file or self.partition})" if (self.file or self.partition) else ""
        return f"harmonizer: {EVENT_TITLES[self.event]}: {subject}{where}"

    def as_json(self) -> dict:
        return {"summary": self.summary, **asdict(self)}

    def as_text(self) -> str:
        lines = [self.summary, "", self.message, ""]
        lines += [f"{label}: {value}" for label, value in self._fields() if value]
        lines += [f"{name}: {value}" for name, value in self.counts.items()]
        return "\n".join([*lines, "", f"Run: {self.run_url}"])

    def _fields(self) -> list[tuple[str, str | None]]:
        return [("Asset", self.asset), ("Check", self.check), ("Severity", self.severity), ("Partition", self.partition),
                ("File", self.file), ("Job", self.job), ("Run id", self.run_id)]  # fmt: skip


class NotifyError(Exception):
    """A channel did not take an alert; the message is safe to log (no URL, no credentials).
    `unreachable`: down, refusing connections or not answering in time."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def _connection_failed(where: str, reason: BaseException | str) -> NotifyError:
    # ssl.SSLError is an OSError too, but there the server answered: not unreachable.
    if isinstance(reason, ssl.SSLError):
        return NotifyError(f"TLS with {where} failed: {reason}")
    return NotifyError(f"cannot reach {where}: {reason}", unreachable=isinstance(reason, OSError))


def _secret(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise NotifyError(f"environment variable {name} is not set")
    return value


def _secret_url(name: str, env: Mapping[str, str]) -> str:
    """The URL in the variable, checked here: urllib's own errors about it quote it whole."""
    url = _secret(name, env)
    try:
        parts = urllib.parse.urlsplit(url)
        # .port raises ValueError for a port that is not a number in 0..65535.
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        raise NotifyError(f"environment variable {name} does not hold an http(s) URL with a host")
    return url


def _post_json(url: str, payload: dict, timeout: float) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise NotifyError(f"the server answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise _connection_failed("the server", exc.reason) from None
    except http.client.HTTPException as exc:  # before OSError: RemoteDisconnected is both
        # Only the type: InvalidURL quotes the URL, BadStatusLine what the server sent.
        raise NotifyError(f"HTTP request failed: {type(exc).__name__}") from None
    except OSError as exc:
        raise _connection_failed("the server", exc) from None


def slack_payload(alert: Alert) -> dict:
    """Slack's Block Kit: the summary, the message, the fields, the counts, and the link to the run.
    The counts have a section of their own: Slack shows at most 10 fields a section."""
    fields = [(label, value) for label, value in alert._fields() if value]
    sections = [fields, list(alert.counts.items())]
    return {
        "text": alert.summary,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.summary[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message[:2900] or " "}},
            *({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs[:10]]}
              for pairs in sections if pairs),
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": alert.run_url}]},
        ],
    }  # fmt: skip


def _send_email(channel: EmailChannel, alert: Alert, env: Mapping[str, str], timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = alert.summary
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    message.set_content(alert.as_text())
    context = ssl.create_default_context()
    try:
        if channel.ssl:
            connection = smtplib.SMTP_SSL(channel.host, channel.port, timeout=timeout, context=context)
        else:
            connection = smtplib.SMTP(channel.host, channel.port, timeout=timeout)
        with connection as smtp:
            if channel.starttls:
                smtp.starttls(context=context)
            if channel.username_env and channel.password_env:
                smtp.login(_secret(channel.username_env, env), _secret(channel.password_env, env))
            smtp.send_message(message)
    except smtplib.SMTPServerDisconnected as exc:
        # smtplib's name for a timeout or a hang-up; the socket's own error, if any, is its context.
        raise _connection_failed(f"{channel.host}:{channel.port}", exc.__context__ or "the server hung up") from None
    except smtplib.SMTPException as exc:  # before OSError, which it subclasses
        raise NotifyError(f"SMTP error: {type(exc).__name__} {getattr(exc, 'smtp_code', '')}".rstrip()) from None
    except OSError as exc:
        raise _connection_failed(f"{channel.host}:{channel.port}", exc) from None


def send(channel: WebhookChannel | SlackChannel | EmailChannel, alert: Alert, env: Mapping[str, str], timeout: float) -> None:
    if isinstance(channel, WebhookChannel):
        _post_json(_secret_url(channel.url_env, env), alert.as_json(), timeout)
    elif isinstance(channel, SlackChannel):
        _post_json(_secret_url(channel.webhook_url_env, env), slack_payload(alert), timeout)
    else:
        _send_email(channel, alert, env, timeout)


def channel_name(channel: WebhookChannel | SlackChannel | EmailChannel) -> str:
    return {WebhookChannel: "webhook", SlackChannel: "slack", EmailChannel: "email"}[type(channel)]


class Delivery:
    """Alerts sent within one sensor tick: a channel found unreachable is skipped for the rest of
    it, and near the deadline (time.monotonic()) a channel's timeout is cut to what is left of it
    (a second at least)."""

    def __init__(self, settings: Alerts, env: Mapping[str, str] | None = None, deadline: float | None = None):
        self.settings = settings
        self.env = os.environ if env is None else env
        self.deadline = deadline
        self.unreachable: set[str] = set()

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _timeout(self) -> float:
        if self.deadline is None:
            return self.settings.timeout_seconds
        return min(self.settings.timeout_seconds, max(self.deadline - time.monotonic(), 1.0))

    def send(self, alert: Alert) -> dict[str, str | None]:
        """Per channel None when it took the alert, else why not."""
        outcome: dict[str, str | None] = {}
        for channel in self.settings.channels():
            name = channel_name(channel)
            if name in self.unreachable:
                outcome[name] = f"skipped: {name} was unreachable earlier in this tick"
                continue
            try:
                send(channel, alert, self.env, self._timeout())
                outcome[name] = None
            except NotifyError as exc:
                outcome[name] = str(exc)
                if exc.unreachable:
                    self.unreachable.add(name)
            except Exception as exc:  # alerting never fails the sensor
                # Only the type: an exception's text may quote the URL or the credentials.
                outcome[name] = f"failed unexpectedly: {type(exc).__name__}"
        return outcome


def deliver(alert: Alert, settings: Alerts, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Send the alert to every channel; per channel None when it was taken, else why not."""
    return Delivery(settings, env).send(alert)
