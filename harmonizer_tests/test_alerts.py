"""Alerts received by real servers on loopback: an HTTP server for the generic and Slack
webhooks, and aiosmtpd speaking STARTTLS with a certificate of a throwaway CA (trustme) and
AUTH. The sensor is evaluated with real contexts on an instance the load runs wrote to."""

import email
import json
import ssl
from email import policy
from pathlib import Path

import dagster as dg
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.ops.notifications import Alert, deliver, slack_payload
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import Alerts, parse_settings
from harmonizer_tests.loopback import Inbox, free_port
from harmonizer_tests.test_harmonize_pipeline import SCHEMA, land

USER, PASSWORD = "alerts@example.org", "s3cret-pass"


@pytest.fixture
def inbox():
    server = Inbox()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Mailbox:
    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, message, session.ssl is not None))
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path, monkeypatch):
    """aiosmtpd on loopback that requires STARTTLS before AUTH and AUTH before mail."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the client verifies the server against this CA only

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, server_hostname="localhost", tls_context=context, require_starttls=True,
        auth_required=True, auth_require_tls=True, authenticator=authenticate,
    )  # fmt: skip
    controller.start()
    yield mailbox, port
    controller.stop()


def alert_settings(inbox_url: str | None, smtp_port: int | None, **extra) -> dict:
    settings = {"ui_url": "http://dagster.example:3000/", **extra}
    if inbox_url:
        settings |= {"webhook": {"url_env": "HZ_TEST_WEBHOOK"}, "slack": {"webhook_url_env": "HZ_TEST_SLACK"}}
    if smtp_port:
        settings["email"] = {
            "host": "localhost", "port": smtp_port, "username_env": "HZ_TEST_SMTP_USER", "password_env": "HZ_TEST_SMTP_PASSWORD",
            "sender": "harmonizer@example.org", "recipients": ["data-team@example.org", "oncall@example.org"],
        }  # fmt: skip
    return settings


@pytest.fixture
def alert_env(inbox, monkeypatch):
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/hook")
    monkeypatch.setenv("HZ_TEST_SLACK", f"{inbox.url}/services/T000/B000/XXXX")
    monkeypatch.setenv("HZ_TEST_SMTP_USER", USER)
    monkeypatch.setenv("HZ_TEST_SMTP_PASSWORD", PASSWORD)


ALERT = Alert(
    event="check_failure", run_id="r-1", run_url="http://ui/runs/r-1", job="load_clinic", message="3 of 4 rows rejected (75.00%)",
    asset="validated/clinic", partition="jan.csv@abc", file="jan.csv", check="schema_gate", severity="ERROR",
    counts={"rows": 4, "rejected_rows": 3},
)  # fmt: skip


def test_each_channel_delivers_the_alert_to_a_real_server(inbox, smtp_server, alert_env):
    mailbox, port = smtp_server
    settings = Alerts.model_validate(alert_settings(inbox.url, port))
    assert deliver(ALERT, settings) == {"webhook": None, "slack": None, "email": None}
    [(path, content_type, hook)] = [r for r in inbox.received if r[0] == "/hook"]
    assert content_type == "application/json"
    assert hook == {
        "summary": "harmonizer: check failed: validated/clinic check schema_gate (jan.csv)",
        "event": "check_failure", "run_id": "r-1", "run_url": "http://ui/runs/r-1", "job": "load_clinic",
        "message": "3 of 4 rows rejected (75.00%)", "asset": "validated/clinic", "partition": "jan.csv@abc", "file": "jan.csv",
        "check": "schema_gate", "severity": "ERROR", "counts": {"rows": 4, "rejected_rows": 3},
    }  # fmt: skip
    assert inbox.on("/services/T000/B000/XXXX") == [slack_payload(ALERT)]
    slack = slack_payload(ALERT)
    assert slack["text"] == hook["summary"]
    assert slack["blocks"][3]["elements"][0]["url"] == "http://ui/runs/r-1"
    assert {"type": "mrkdwn", "text": "*rejected_rows*\n3"} in slack["blocks"][2]["fields"]
    [(sender, recipients, message, over_tls)] = mailbox.messages
    assert (sender, recipients, over_tls) == ("harmonizer@example.org", ["data-team@example.org", "oncall@example.org"], True)
    assert message["Subject"].strip() == hook["summary"]  # folded: the line is long
    body = message.get_content()
    for line in ("Asset: validated/clinic", "Check: schema_gate", "File: jan.csv", "rows: 4", "rejected_rows: 3", "Run: http://ui/runs/r-1"):
        assert line in body


def test_a_channel_that_is_down_is_reported_and_the_others_still_deliver(inbox, monkeypatch, alert_env):
    closed = free_port()
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{closed}/hook")
    settings = Alerts.model_validate({**alert_settings(inbox.url, None), "email": {
        "host": "127.0.0.1", "port": closed, "sender": "a@b.c", "recipients": ["d@e.f"]}})  # fmt: skip
    outcome = deliver(ALERT, settings)
    assert outcome["slack"] is None and len(inbox.on("/services/T000/B000/XXXX")) == 1
    assert outcome["webhook"].startswith("cannot reach the server: ")
    assert outcome["email"].startswith(f"cannot reach 127.0.0.1:{closed}: ")
    # The failure never shows where it was sending to: the URL may hold a token.
    assert all("XXXX" not in problem and "/hook" not in problem for problem in (outcome["webhook"], outcome["email"]))


def test_missing_secrets_wrong_credentials_and_http_errors_are_reported(inbox, smtp_server, alert_env, monkeypatch):
    mailbox, port = smtp_server
    monkeypatch.delenv("HZ_TEST_SLACK")
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/broken")
    monkeypatch.setenv("HZ_TEST_SMTP_PASSWORD", "wrong")
    outcome = deliver(ALERT, Alerts.model_validate(alert_settings(inbox.url, port)))
    assert outcome == {
        "webhook": "the server answered HTTP 500",
        "slack": "environment variable HZ_TEST_SLACK is not set",
        "email": "SMTP error: SMTPAuthenticationError 535",
    }
    assert mailbox.messages == []


def test_email_refuses_a_server_whose_certificate_it_cannot_verify(smtp_server, alert_env, monkeypatch, tmp_path):
    _, port = smtp_server
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    outcome = deliver(ALERT, Alerts.model_validate(alert_settings(None, port)))
    assert "CERTIFICATE_VERIFY_FAILED" in outcome["email"]


@pytest.mark.parametrize(
    "alerts, message",
    [
        ({"webhook": {"url_env": "not a name"}}, "alerts.webhook.url_env: String should match pattern"),
        ({"slack": {}}, "alerts.slack.webhook_url_env: Field required"),
        ({"email": {"host": "h", "sender": "x@y.z", "recipients": []}}, "alerts.email.recipients: List should have at least 1 item"),
        ({"email": {"host": "h", "sender": "nobody", "recipients": ["a@b.c"]}}, "alerts.email.sender: String should match pattern"),
        ({"email": {"host": "h", "port": 0, "sender": "x@y.z", "recipients": ["a@b.c"]}}, "alerts.email.port: Input should be greater than or equal to 1"),
        ({"email": {"host": "h", "sender": "x@y.z", "recipients": ["a@b.c"], "username_env": "U"}}, "give both username_env and password_env"),
        ({"on": ["run_success"]}, "alerts.on.0: Input should be 'run_failure', 'check_failure' or 'check_warning'"),
        ({"ui_url": "dagster:3000"}, "alerts.ui_url: String should match pattern"),
        ({"timeout_seconds": 0}, "alerts.timeout_seconds: Input should be greater than 0"),
        ({"pager": {}}, "alerts.pager: Extra inputs are not permitted"),
    ],
)
def test_bad_alert_settings_name_the_field(alerts, message):
    from harmonizer_pipeline.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        parse_settings(json.dumps({"alerts": alerts}), base_dir=Path("."))
    assert message in str(caught.value)


def make_defs(tmp_path: Path, source: str, alerts: dict) -> dg.Definitions:
    (tmp_path / "in").mkdir()
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    config = {
        "sources": {source: {"landing": {"local": {"path": "in", "glob": "*.csv"}}, "schema": "schema.yaml", "max_reject_rate": 0.5}},
        "alerts": alerts,
    }
    return build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())


@pytest.fixture
def pg_instance(server_url, schema):
    """A Dagster instance on PostgreSQL storage, as deployed (a database of its own, dropped after)."""
    from harmonizer_pipeline.resources import postgres

    name = f"alerts_{schema}"
    postgres.ensure_database(server_url, name)
    url = postgres.sqlalchemy_url(postgres.with_database(server_url, name), "psycopg2")
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        yield instance
    postgres.drop_database(server_url, name)


def tick(defs: dg.Definitions, instance, cursor: str | None) -> tuple[str, str | None]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    result = defs.resolve_sensor_def("harmonizer_alerts")(context)
    return result.skip_message, context.cursor


def test_the_sensor_alerts_on_a_failed_run_and_a_warned_check_with_file_counts_and_link(tmp_path, schema, inbox, smtp_server, alert_env, pg_instance):
    mailbox, port = smtp_server
    source = f"al_{schema.removeprefix('t_')}"
    defs = make_defs(tmp_path, source, alert_settings(inbox.url, port))
    instance = pg_instance
    message, cursor = tick(defs, instance, None)
    assert message == "watching for run failures and failed checks from now on"
    # One row of three breaks the schema (within max_reject_rate: a warning), the other file is ragged.
    (tmp_path / "in" / "warn.csv").write_text("id,name\nC1,ann\nX2,bob\nC3,cy\n")
    (tmp_path / "in" / "ragged.csv").write_text("id,name\nC4,dee\nC5,eve,extra\n")
    runs = {r.dagster_run.tags["harmonizer/file"]: r for r in land(defs, instance, source)}
    assert {f: r.success for f, r in runs.items()} == {"warn.csv": True, "ragged.csv": False}
    message, cursor = tick(defs, instance, cursor)
    assert message == "1 failed run(s), 1 failed check(s): 6 alert(s) sent, 0 failed to send"
    hooks = inbox.on("/hook")
    assert [(h["event"], h["asset"], h["check"], h["file"]) for h in hooks] == [
        ("run_failure", f"raw/{source}", None, "ragged.csv"),
        ("check_warning", f"validated/{source}", "quarantine", "warn.csv"),
    ]
    warned = next(h for h in hooks if h["event"] == "check_warning")
    failed = next(h for h in hooks if h["event"] == "run_failure")
    assert warned["counts"] == {"rows": 3, "rejected_rows": 1, "reject_rate": pytest.approx(1 / 3), "max_reject_rate": 0.5}
    assert warned["severity"] == "WARN" and warned["partition"] == runs["warn.csv"].dagster_run.tags["dagster/partition"]
    assert warned["run_url"] == f"http://dagster.example:3000/runs/{runs['warn.csv'].run_id}"
    assert failed["message"] == "ragged.csv: line 3 has 3 fields, the header has 2"
    assert failed["job"] == f"load_{source}" and failed["run_url"].endswith(runs["ragged.csv"].run_id)
    assert len(inbox.on("/services/T000/B000/XXXX")) == 2
    assert sorted(m["Subject"].strip() for _, _, m, _ in mailbox.messages) == sorted(h["summary"] for h in hooks)
    # Nothing new: nothing sent again.
    message, cursor = tick(defs, instance, cursor)
    assert message == "0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send" and len(inbox.received) == 4


def test_a_channel_down_does_not_fail_the_sensor_tick(tmp_path, schema, inbox, alert_env, monkeypatch, pg_instance):
    source = f"ad_{schema.removeprefix('t_')}"
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{free_port()}/hook")
    defs = make_defs(tmp_path, source, alert_settings(inbox.url, None, on=["run_failure"]))
    instance = pg_instance
    _, cursor = tick(defs, instance, None)
    (tmp_path / "in" / "ragged.csv").write_text("id,name\nC5,eve,extra\n")
    (tmp_path / "in" / "warn.csv").write_text("id,name\nC1,ann\nX2,bob\n")
    land(defs, instance, source)
    message, _ = tick(defs, instance, cursor)
    # The warned check is not among `on`; the run failure reaches Slack, the webhook is down.
    assert message.endswith("1 alert(s) sent, 1 failed to send")
    [slack] = inbox.on("/services/T000/B000/XXXX")
    assert slack["text"] == f"harmonizer: run failed: raw/{source} (ragged.csv)"


def test_no_channels_no_sensor(tmp_path, schema):
    defs = make_defs(tmp_path, f"an_{schema.removeprefix('t_')}", {})
    assert "harmonizer_alerts" not in [s.name for s in defs.sensors]


def test_an_instance_with_an_event_log_per_run_is_told_to_use_postgres(tmp_path, schema, inbox, alert_env):
    defs = make_defs(tmp_path, f"as_{schema.removeprefix('t_')}", alert_settings(inbox.url, None))
    with dg.instance_for_test() as instance:  # SQLite, one event log per run
        message, cursor = tick(defs, instance, None)
    assert (message, cursor) == ("alerts need an instance on PostgreSQL storage (dagster.yaml); this one keeps an event log per run", None)
