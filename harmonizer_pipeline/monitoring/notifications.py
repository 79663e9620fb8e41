"""Alerts: one message about a failed run or a failed/warned check, sent to every configured
channel (generic webhook, Slack incoming webhook, e-mail over SMTP) (no dagster).

Secrets (webhook URLs, SMTP credentials) are read from the environment variables the settings
name, at send time, and never appear in a log line or an error: a failure to notify says
which channel and why, never where it was sending to. One channel failing never stops the
others, and never raises: alerting must not fail the pipeline it reports on. Within one sensor
tick (a `Delivery`) a channel that could not be reached is not tried again, no channel is tried
once the tick's time is up, and a channel's try is cut at its time (timeout_seconds, at most
what is left of the tick): Dagster abandons a sensor evaluation after 60 s, cursor update and all.
Personal data an alert's message quotes (a run's error may quote a value) is masked
(privacy.masking.scrub_text).
"""

from __future__ import annotations

import http.client
import json
import os
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from email.message import EmailMessage

from harmonizer_pipeline.monitoring.settings import Alerts, EmailChannel, SlackChannel, WebhookChannel
from harmonizer_pipeline.privacy.masking import scrub_text

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
    counts: dict[str, float | None] = field(default_factory=dict)
    # The plain-English summary of the file or merge the alert is about (reports.summary), if any.
    narrative: str | None = None

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
        if self.narrative:
            lines += [self.narrative, ""]
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
            *([{"type": "section", "text": {"type": "mrkdwn", "text": alert.narrative[:2900]}}] if alert.narrative else []),
            *({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{value}"} for label, value in pairs[:10]]}
              for pairs in sections if pairs),
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": alert.run_url}]},
        ],
    }  # fmt: skip


class _HangUp:
    """Hangs up a connection (smtplib's or http.client's, anything with a `sock`) once `seconds`
    have passed since it was started. Their timeout bounds each socket operation, not the
    exchange: an SMTP exchange has a dozen of them (greeting, EHLO, STARTTLS and EHLO again, AUTH,
    MAIL, a RCPT a recipient, DATA, the message, QUIT), and a server answering each just in time
    would hold a channel for many times its timeout. As a context manager: the error of a
    connection it hung up is a TimeoutError, whatever the hang-up broke."""

    def __init__(self, seconds: float):
        self.connection = None
        self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def __enter__(self) -> _HangUp:
        self.timer.start()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self.timer.cancel()
        if self.fired and isinstance(error, (OSError, http.client.HTTPException)):
            raise TimeoutError("timed out") from None
        return False

    def _fire(self) -> None:
        self.fired = True  # before reading self.connection: see attach
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            try:  # the socket's own shutdown, under TLS too: the waiting read returns at once
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:  # closed already
                pass

    def attach(self, connection) -> None:
        self.connection = connection
        if self.fired:  # fired while connecting, before it could see the connection
            raise TimeoutError("timed out")


class _HangsUp(urllib.request.AbstractHTTPHandler):
    """Mixin for urllib's HTTP(S) handlers (their base class, so do_open types): each connection they open is attached to `hang_up`
    once connected (through a proxy tunnel too)."""

    def __init__(self, hang_up: _HangUp):
        super().__init__()
        self.hang_up = hang_up

    def do_open(self, http_class, req, **kwargs):
        def attached_connection(*args, **kw):
            connection = http_class(*args, **kw)
            connect = connection.connect

            def connect_and_attach() -> None:
                connect()
                self.hang_up.attach(connection)

            connection.connect = connect_and_attach
            return connection

        return super().do_open(attached_connection, req, **kwargs)


class _HangUpHTTPHandler(_HangsUp, urllib.request.HTTPHandler):
    pass


class _HangUpHTTPSHandler(_HangsUp, urllib.request.HTTPSHandler):
    pass


def _post_json(url: str, payload: dict, seconds: float) -> None:
    """The whole request within `seconds`, as for e-mail: urllib's timeout bounds each socket
    operation, and a server sending its answer a byte at a time would hold the channel for many
    times it. Through urllib's opener, so proxies from the environment still apply."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with _HangUp(seconds) as hang_up:
            opener = urllib.request.build_opener(_HangUpHTTPHandler(hang_up), _HangUpHTTPSHandler(hang_up))
            with opener.open(request, timeout=seconds) as response:
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


def _send_email(channel: EmailChannel, alert: Alert, env: Mapping[str, str], seconds: float) -> None:
    """The whole exchange within `seconds`: each socket operation times out after them, and the
    connection is hung up when they are over."""
    message = EmailMessage()
    message["Subject"] = alert.summary
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.recipients)
    message.set_content(alert.as_text())
    context = ssl.create_default_context()
    where = f"{channel.host}:{channel.port}"
    try:
        with _HangUp(seconds) as hang_up:
            if channel.ssl:
                connection = smtplib.SMTP_SSL(channel.host, channel.port, timeout=seconds, context=context)
            else:
                connection = smtplib.SMTP(channel.host, channel.port, timeout=seconds)
            with connection as smtp:
                hang_up.attach(smtp)
                if channel.starttls:
                    smtp.starttls(context=context)
                if channel.username_env and channel.password_env:
                    smtp.login(_secret(channel.username_env, env), _secret(channel.password_env, env))
                smtp.send_message(message)
    except OSError as exc:  # smtplib's errors and TimeoutError (the hang-up's too) included
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            # smtplib's name for a timeout or a hang-up; the socket's own error, if any, is its context.
            raise _connection_failed(where, exc.__context__ or "the server hung up") from None
        if isinstance(exc, smtplib.SMTPException):
            raise NotifyError(f"SMTP error: {type(exc).__name__} {getattr(exc, 'smtp_code', '')}".rstrip()) from None
        raise _connection_failed(where, exc) from None


def send(channel: WebhookChannel | SlackChannel | EmailChannel, alert: Alert, env: Mapping[str, str], timeout: float) -> None:
    # A run's error may quote a value of a file: personal data in it leaves masked.
    alert = replace(alert, message=scrub_text(alert.message), narrative=alert.narrative and scrub_text(alert.narrative))
    if isinstance(channel, WebhookChannel):
        _post_json(_secret_url(channel.url_env, env), alert.as_json(), timeout)
    elif isinstance(channel, SlackChannel):
        _post_json(_secret_url(channel.webhook_url_env, env), slack_payload(alert), timeout)
    else:
        _send_email(channel, alert, env, timeout)


def channel_name(channel: WebhookChannel | SlackChannel | EmailChannel) -> str:
    return {WebhookChannel: "webhook", SlackChannel: "slack", EmailChannel: "email"}[type(channel)]


class Delivery:
    """Alerts sent within one sensor tick, which must end before `deadline` (time.monotonic()):
    a channel found unreachable is skipped for the rest of it; once the time is up no channel is
    tried (the tick's first alert aside: it goes to every channel, as the sensor always handles
    one record); and a channel's try is cut at timeout_seconds, or at what is left of the tick
    when that is less (a second at least)."""

    def __init__(self, settings: Alerts, env: Mapping[str, str] | None = None, deadline: float | None = None):
        self.settings = settings
        self.env = os.environ if env is None else env
        self.deadline = deadline
        self.unreachable: set[str] = set()
        self.first = True

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
            elif not self.first and self.out_of_time():  # checked before each channel
                outcome[name] = "skipped: this tick ran out of time"
            else:
                outcome[name] = self._try(name, channel, alert)
        self.first = False
        return outcome

    def _try(self, name: str, channel: WebhookChannel | SlackChannel | EmailChannel, alert: Alert) -> str | None:
        try:
            send(channel, alert, self.env, self._timeout())
            return None
        except NotifyError as exc:
            if exc.unreachable:
                self.unreachable.add(name)
            return str(exc)
        except Exception as exc:  # alerting never fails the sensor
            # Only the type: an exception's text may quote the URL or the credentials.
            return f"failed unexpectedly: {type(exc).__name__}"
