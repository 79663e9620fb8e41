"""Alerts: one message about a failed run or a failed/warned check, sent to every configured
channel (generic webhook, Slack incoming webhook, e-mail over SMTP) (no dagster).

Secrets (webhook URLs, SMTP credentials) are read from the environment variables the settings
name, at send time, and never appear in a log line or an error: a failure to notify says
which channel and why, never where it was sending to. One channel failing never stops the
others, and never raises: alerting must not fail the pipeline it reports on.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.error
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
    """A channel did not take an alert; the message is safe to log (no URL, no credentials)."""


def _secret(name: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise NotifyError(f"environment variable {name} is not set")
    return value


def _post_json(url: str, payload: dict, timeout: float) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise NotifyError(f"the server answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise NotifyError(f"cannot reach the server: {reason}") from None


def slack_payload(alert: Alert) -> dict:
    """Slack's Block Kit: the summary, the message, the fields, and the link to the run."""
    fields = [*((label, value) for label, value in alert._fields() if value), *((k, v) for k, v in alert.counts.items())]
    return {
        "text": alert.summary,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.summary[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message[:2900] or " "}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in fields[:10]]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": alert.run_url}]},
        ],
    }


def _send_email(channel: EmailChannel, alert: Alert, env: Mapping[str, str], timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = alert.summary
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    message.set_content(alert.as_text())
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=timeout) as smtp:
            if channel.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if channel.username_env and channel.password_env:
                smtp.login(_secret(channel.username_env, env), _secret(channel.password_env, env))
            smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise NotifyError(f"SMTP error: {type(exc).__name__} {getattr(exc, 'smtp_code', '')}".rstrip()) from None
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"cannot reach {channel.host}:{channel.port}: {exc}") from None


def send(channel: WebhookChannel | SlackChannel | EmailChannel, alert: Alert, env: Mapping[str, str], timeout: float) -> None:
    if isinstance(channel, WebhookChannel):
        _post_json(_secret(channel.url_env, env), alert.as_json(), timeout)
    elif isinstance(channel, SlackChannel):
        _post_json(_secret(channel.webhook_url_env, env), slack_payload(alert), timeout)
    else:
        _send_email(channel, alert, env, timeout)


def channel_name(channel: WebhookChannel | SlackChannel | EmailChannel) -> str:
    return {WebhookChannel: "webhook", SlackChannel: "slack", EmailChannel: "email"}[type(channel)]


def deliver(alert: Alert, settings: Alerts, env: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Send the alert to every channel; per channel None when it was taken, else why not."""
    env = os.environ if env is None else env
    outcome: dict[str, str | None] = {}
    for channel in settings.channels():
        try:
            send(channel, alert, env, settings.timeout_seconds)
            outcome[channel_name(channel)] = None
        except NotifyError as exc:
            outcome[channel_name(channel)] = str(exc)
    return outcome
