"""Alerts received by real servers on loopback: an HTTP server for the generic and Slack
webhooks, aiosmtpd with a certificate of a throwaway CA (trustme) and AUTH, speaking STARTTLS or
TLS from the start, and bare TCP listeners that answer garbage or nothing. The sensor is
evaluated with real contexts on a PostgreSQL instance the load runs wrote to."""

import email
import json
import logging
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from email import policy
from pathlib import Path

import dagster as dg
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.monitoring.notifications import Alert, Delivery, slack_payload
from harmonizer_pipeline.monitoring.sensors import TICK_BUDGET_SECONDS, alerts_sensor
from harmonizer_pipeline.monitoring.settings import Alerts
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import SettingsError, parse_settings
from harmonizer_tests.harmonize.test_harmonize_pipeline import SCHEMA, land
from harmonizer_tests.loopback import Inbox, Listener, SlowHTTP, SlowSMTP, free_port

USER, PASSWORD = "alerts@example.org", "s3cret-pass"
SLACK_PATH = "/services/T000/B000/XXXX"


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
        over_tls = server.transport.get_extra_info("ssl_object") is not None  # after STARTTLS or from the start
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, message, over_tls))
        return "250 OK"


@pytest.fixture
def tls_context(tmp_path, monkeypatch) -> ssl.SSLContext:
    """The server side of TLS with a certificate for localhost from a throwaway CA, the only CA
    the client trusts."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return context


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # not handled: the server answers 535 itself


def run_smtp(**tls):
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, server_hostname="localhost", auth_required=True, authenticator=authenticate, **tls)
    controller.start()
    return controller, mailbox, port


@pytest.fixture
def smtp_server(tls_context):
    """aiosmtpd on loopback that requires STARTTLS before AUTH and AUTH before mail."""
    controller, mailbox, port = run_smtp(tls_context=tls_context, require_starttls=True, auth_require_tls=True)
    yield mailbox, port
    controller.stop()


@pytest.fixture
def smtps_server(tls_context):
    """aiosmtpd on loopback speaking TLS from the first byte (SMTPS), AUTH before mail."""
    controller, mailbox, port = run_smtp(ssl_context=tls_context, auth_require_tls=False)  # aiosmtpd counts STARTTLS only
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


def plain_email(port: int) -> dict:
    """No TLS and no credentials: for servers that never get as far as TLS."""
    return {"host": "127.0.0.1", "port": port, "starttls": False, "sender": "a@b.c", "recipients": ["d@e.f"]}


@pytest.fixture
def alert_env(inbox, monkeypatch):
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/hook")
    monkeypatch.setenv("HZ_TEST_SLACK", f"{inbox.url}{SLACK_PATH}")
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
    assert Delivery(settings).send(ALERT) == {"webhook": None, "slack": None, "email": None}
    [(path, content_type, hook)] = [r for r in inbox.received if r[0] == "/hook"]
    assert content_type == "application/json"
    assert hook == {
        "summary": "harmonizer: check failed: validated/clinic check schema_gate (jan.csv)",
        "event": "check_failure", "run_id": "r-1", "run_url": "http://ui/runs/r-1", "job": "load_clinic",
        "message": "3 of 4 rows rejected (75.00%)", "asset": "validated/clinic", "partition": "jan.csv@abc", "file": "jan.csv",
        "check": "schema_gate", "severity": "ERROR", "counts": {"rows": 4, "rejected_rows": 3}, "narrative": None,
    }  # fmt: skip
    assert inbox.on(SLACK_PATH) == [slack_payload(ALERT)]
    slack = slack_payload(ALERT)
    assert slack["text"] == hook["summary"]
    assert slack["blocks"][3]["fields"] == [{"type": "mrkdwn", "text": "*rows*\n4"}, {"type": "mrkdwn", "text": "*rejected_rows*\n3"}]
    assert slack["blocks"][4]["elements"][0]["url"] == "http://ui/runs/r-1"
    [(sender, recipients, message, over_tls)] = mailbox.messages
    assert (sender, recipients, over_tls) == ("harmonizer@example.org", ["data-team@example.org", "oncall@example.org"], True)
    assert message["Subject"].strip() == hook["summary"]  # folded: the line is long
    body = message.get_content()
    for line in ("Asset: validated/clinic", "Check: schema_gate", "File: jan.csv", "rows: 4", "rejected_rows: 3", "Run: http://ui/runs/r-1"):
        assert line in body


def test_email_over_tls_from_the_start(inbox, smtps_server, alert_env):
    mailbox, port = smtps_server
    settings = alert_settings(None, port)
    settings["email"]["ssl"] = True
    assert Delivery(Alerts.model_validate(settings)).send(ALERT) == {"email": None}
    [(sender, recipients, message, over_tls)] = mailbox.messages
    assert (sender, recipients, over_tls, message["Subject"].strip()) == (
        "harmonizer@example.org",
        ["data-team@example.org", "oncall@example.org"],
        True,
        ALERT.summary,
    )


def test_a_channel_that_is_down_is_reported_and_the_others_still_deliver(inbox, monkeypatch, alert_env):
    closed = free_port()
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{closed}/hook")
    settings = Alerts.model_validate({**alert_settings(inbox.url, None), "email": plain_email(closed)})
    outcome = Delivery(settings).send(ALERT)
    assert outcome["slack"] is None and len(inbox.on(SLACK_PATH)) == 1
    assert outcome["webhook"].startswith("cannot reach the server: ")
    assert outcome["email"].startswith(f"cannot reach 127.0.0.1:{closed}: ")
    # The failure never shows where it was sending to: the URL may hold a token.
    assert all("XXXX" not in problem and "/hook" not in problem for problem in (outcome["webhook"], outcome["email"]))


def test_missing_secrets_wrong_credentials_and_http_errors_are_reported(inbox, smtp_server, alert_env, monkeypatch):
    mailbox, port = smtp_server
    monkeypatch.delenv("HZ_TEST_SLACK")
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/broken")
    monkeypatch.setenv("HZ_TEST_SMTP_PASSWORD", "wrong")
    outcome = Delivery(Alerts.model_validate(alert_settings(inbox.url, port))).send(ALERT)
    assert outcome == {
        "webhook": "the server answered HTTP 500",
        "slack": "environment variable HZ_TEST_SLACK is not set",
        "email": "SMTP error: SMTPAuthenticationError 535",
    }
    assert mailbox.messages == []


NOT_A_URL = "environment variable HZ_TEST_WEBHOOK does not hold an http(s) URL with a host"


@pytest.mark.parametrize(
    "url, problem",
    [
        ("hooks.example.org/T000/SECRET-TOKEN", NOT_A_URL),  # urllib: ValueError "unknown url type: '<the url>'"
        ("ftp://hooks.example.org/SECRET-TOKEN", NOT_A_URL),
        ("https:///SECRET-TOKEN", NOT_A_URL),
        ("http://127.0.0.1:99999/SECRET-TOKEN", NOT_A_URL),
        ("http://127.0.0.1:port/SECRET-TOKEN", NOT_A_URL),
        ("{inbox}/hook SECRET-TOKEN", "HTTP request failed: InvalidURL"),  # http.client quotes the path
        ("{inbox}/hoök-SECRET-TOKEN", "failed unexpectedly: UnicodeEncodeError"),  # escapes urllib's errors altogether
    ],
)
def test_a_url_urllib_cannot_send_to_is_reported_without_quoting_it(url, problem, inbox, alert_env, monkeypatch):
    monkeypatch.setenv("HZ_TEST_WEBHOOK", url.format(inbox=inbox.url))
    assert Delivery(Alerts.model_validate(alert_settings(inbox.url, None))).send(ALERT) == {"webhook": problem, "slack": None}
    assert inbox.on(SLACK_PATH) == [slack_payload(ALERT)]


def test_servers_answering_garbage_are_reported(inbox, alert_env, monkeypatch):
    with Listener(b"\x00garbage\r\n") as garbage:
        monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{garbage.port}/hook")
        settings = Alerts.model_validate({**alert_settings(inbox.url, None), "email": plain_email(garbage.port)})
        assert Delivery(settings).send(ALERT) == {
            "webhook": "HTTP request failed: BadStatusLine", "slack": None, "email": "SMTP error: SMTPConnectError -1",
        }  # fmt: skip


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "ssl"])
def test_email_refuses_a_server_whose_certificate_it_cannot_verify(request, implicit, inbox, alert_env, monkeypatch, tmp_path):
    mailbox, port = request.getfixturevalue("smtps_server" if implicit else "smtp_server")
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    settings = alert_settings(None, port)
    settings["email"]["ssl"] = implicit
    outcome = Delivery(Alerts.model_validate(settings)).send(ALERT)
    assert outcome["email"].startswith(f"TLS with localhost:{port} failed: [SSL: CERTIFICATE_VERIFY_FAILED]")
    assert mailbox.messages == []


EMAIL = {"host": "smtp.example.org", "sender": "x@y.z", "recipients": ["a@b.c"]}


@pytest.mark.parametrize(
    "alerts, message",
    [
        ({"webhook": {"url_env": "not a name"}}, "alerts.webhook.url_env: String should match pattern"),
        ({"webhook": {}}, "alerts.webhook.url_env: Field required"),
        ({"slack": {}}, "alerts.slack.webhook_url_env: Field required"),
        ({"slack": {"webhook_url_env": "SLACK-URL"}}, "alerts.slack.webhook_url_env: String should match pattern"),
        ({"email": {**EMAIL, "recipients": []}}, "alerts.email.recipients: List should have at least 1 item"),
        ({"email": {**EMAIL, "sender": "nobody"}}, "alerts.email.sender: 'nobody' is not an e-mail address (name@domain)"),
        ({"email": {**EMAIL, "recipients": ["data-team"]}}, "alerts.email.recipients: 'data-team' is not an e-mail address"),
        ({"email": {**EMAIL, "recipients": ["a@b.c, d@e.f"]}}, "alerts.email.recipients: 'a@b.c, d@e.f' is not an e-mail address"),
        ({"email": {**EMAIL, "host": ""}}, "alerts.email.host: '' is not a host name or address"),
        ({"email": {**EMAIL, "host": "smtp://smtp.example.org"}}, "alerts.email.host: 'smtp://smtp.example.org' is not a host name"),
        ({"email": {**EMAIL, "port": 0}}, "alerts.email.port: Input should be greater than or equal to 1"),
        ({"email": {**EMAIL, "port": 65536}}, "alerts.email.port: Input should be less than or equal to 65535"),
        ({"email": {**EMAIL, "starttls": "sometimes"}}, "alerts.email.starttls: Input should be a valid boolean"),
        ({"email": {**EMAIL, "ssl": "sometimes"}}, "alerts.email.ssl: Input should be a valid boolean"),
        ({"email": {**EMAIL, "username_env": "SMTP-USER", "password_env": "P"}}, "alerts.email.username_env: String should match pattern"),
        ({"email": {**EMAIL, "username_env": "U", "password_env": "1PASS"}}, "alerts.email.password_env: String should match pattern"),
        ({"email": {**EMAIL, "username_env": "U"}}, "alerts.email: give both username_env and password_env, or neither"),
        ({"email": {**EMAIL, "password_env": "P"}}, "alerts.email: give both username_env and password_env, or neither"),
        (
            {"email": {**EMAIL, "starttls": False, "username_env": "U", "password_env": "P"}},
            "alerts.email: username_env and password_env need starttls: true or ssl: true, else the password goes in clear",
        ),
        ({"email": {**EMAIL, "starttls": True, "ssl": True}}, "alerts.email: give starttls (a plain connection upgraded, port 587) or ssl"),
        ({"on": ["run_success"]}, "alerts.on[0]: Input should be 'run_failure', 'check_failure' or 'check_warning'"),
        ({"ui_url": "dagster:3000"}, "alerts.ui_url: String should match pattern"),
        ({"timeout_seconds": 0}, "alerts.timeout_seconds: Input should be greater than 0"),
        ({"pager": {}}, "alerts.pager: Extra inputs are not permitted"),
    ],
)
def test_bad_alert_settings_name_the_field(alerts, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(json.dumps({"alerts": alerts}), base_dir=Path("."))
    [line] = caught.value.lines
    assert line.startswith(f"harmonizer.yaml: {message}")


def test_ssl_alone_means_tls_from_the_start_on_port_465():
    def channel(**options):
        email_channel = Alerts.model_validate({"email": {**EMAIL, **options}}).email
        return email_channel.starttls, email_channel.ssl, email_channel.port

    assert channel() == (True, False, 587)
    assert channel(ssl=True) == (False, True, 465)
    assert channel(ssl=True, port=2465, username_env="U", password_env="P") == (False, True, 2465)


def make_defs(tmp_path: Path, sources: list[str], alerts: dict) -> dg.Definitions:
    """Sources landing in tmp_path/<source>, under the test schema, with max_reject_rate 0.5."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    config = {"sources": {}, "alerts": alerts}
    for source in sources:
        (tmp_path / source).mkdir()
        config["sources"][source] = {"landing": {"local": {"path": source, "glob": "*.csv"}}, "schema": "schema.yaml", "max_reject_rate": 0.5}
    return build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())


def sensor_for(alerts: dict, budget_seconds: float = TICK_BUDGET_SECONDS) -> dg.SensorDefinition:
    return alerts_sensor(parse_settings(json.dumps({"alerts": alerts}), base_dir=Path(".")), budget_seconds)


class LogLines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(f"{record.levelname} {record.getMessage()}")


def tick(sensor: dg.SensorDefinition, instance, cursor: str | None) -> tuple[str, str | None, list[str]]:
    """One evaluation with a real context: its skip message, the cursor after it, and what it
    logged on context.log (the tick's log in the UI)."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    log = LogLines()
    context.log.addHandler(log)
    result = sensor(context)
    return result.skip_message, context.cursor, log.lines


@dataclass
class Landed:
    instance: dg.DagsterInstance
    before: str  # the sensor's cursor from before the loads
    runs: dict[str, dg.ExecuteInProcessResult]  # by file
    warned: str  # the source of warn.csv and ragged.csv
    blocked: str  # the source of blocked.csv


@pytest.fixture(scope="module")
def landed(tmp_path_factory, server_url, database_url):
    """A Dagster instance on PostgreSQL storage, as deployed (a database of its own), where one
    source loaded warn.csv (one row of three quarantined, within max_reject_rate: a warning) and
    ragged.csv (the run fails), and another blocked.csv (two rows of three rejected: the gate
    fails, and the run); each source's first profile, so drift has nothing to compare with.
    The sensor tests share it: they only read it, each from the cursor taken before the loads."""
    from harmonizer_pipeline.storage import postgres

    suffix = uuid.uuid4().hex[:12]
    name, warned, blocked = f"alerts_{suffix}", f"aw_{suffix}", f"ab_{suffix}"
    postgres.ensure_database(server_url, name)
    url = postgres.sqlalchemy_url(postgres.with_database(server_url, name), "psycopg2")
    tmp = tmp_path_factory.mktemp("alerts")
    defs = make_defs(tmp, [warned, blocked], {})
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        message, before, _ = tick(sensor_for({"webhook": {"url_env": "HZ_TEST_WEBHOOK"}}), instance, None)
        assert message == "watching for run failures and failed checks from now on"
        (tmp / warned / "warn.csv").write_text("id,name\nC1,ann\nX2,bob\nC3,cy\n")
        (tmp / warned / "ragged.csv").write_text("id,name\nC4,dee\nC5,eve,extra\n")
        (tmp / blocked / "blocked.csv").write_text("id,name\nX6,fay\nX7,gus\nC8,hal\n")
        runs = {r.dagster_run.tags["harmonizer/file"]: r for r in land(defs, instance, warned) + land(defs, instance, blocked)}
        assert {f: r.success for f, r in runs.items()} == {"warn.csv": True, "ragged.csv": False, "blocked.csv": False}
        yield Landed(instance, before, runs, warned, blocked)
    postgres.drop_database(server_url, name)


def test_the_sensor_sends_failed_runs_and_failed_or_warned_checks_with_file_counts_and_link(landed, inbox, smtp_server, alert_env):
    mailbox, port = smtp_server
    warned, blocked = landed.warned, landed.blocked
    message, cursor, log = tick(sensor_for(alert_settings(inbox.url, port)), landed.instance, landed.before)
    assert (message, log) == ("2 failed run(s), 2 failed check(s): 12 alert(s) sent, 0 failed to send", [])
    hooks = inbox.on("/hook")
    assert [(h["event"], h["asset"], h["check"], h["file"]) for h in hooks] == [
        ("run_failure", f"raw/{warned}", None, "ragged.csv"),
        ("run_failure", f"validated/{blocked}", None, "blocked.csv"),
        ("check_warning", f"validated/{warned}", "quarantine", "warn.csv"),
        ("check_failure", f"validated/{blocked}", "schema_gate", "blocked.csv"),
    ]
    ragged, blocked_run, warning, gate = hooks
    # Each alert about a file carries its summary, read once the run had ended.
    gate_narrative = (
        f"blocked.csv arrived in {blocked}: 29 bytes, 3 rows, read as CSV in UTF-8. The schema gate quarantined the file: 2 of 3 rows (66.7%)"
        " failed the schema, more than the 50% allowed. Main reasons: id failed str_matches('^C\\d+$') twice. The profile found no quality"
        " issues. Its rows go no further than validated until a corrected file lands."
    )
    assert [h["narrative"] for h in hooks] == [
        f"ragged.csv arrived in {warned}: 28 bytes. It could not be loaded: ragged.csv: line 3 has 3 fields, the header has 2.",
        gate_narrative,
        f"warn.csv arrived in {warned}: 28 bytes, 3 rows, read as CSV in UTF-8. The schema gate let it through with 1 of 3 rows (33.3%) set"
        " aside in quality.rejected_rows, within the 50% allowed. Main reasons: id failed str_matches('^C\\d+$') once. The profile found no"
        f" quality issues. id is a unique key: it tells all 2 rows that passed the gate apart. It is the first file of {warned}: there is"
        " nothing to compare it with.",
        gate_narrative,
    ]
    assert ragged["message"] == "ragged.csv: line 3 has 3 fields, the header has 2"
    assert ragged["job"] == f"load_{warned}" and ragged["run_url"] == f"http://dagster.example:3000/runs/{landed.runs['ragged.csv'].run_id}"
    assert blocked_run["message"].endswith(f"1 blocking asset check failed with ERROR severity:\nvalidated/{blocked}: schema_gate")
    assert warning["counts"] == {"rows": 3, "rejected_rows": 1, "reject_rate": pytest.approx(1 / 3), "max_reject_rate": 0.5}
    assert warning["severity"] == "WARN" and warning["partition"] == landed.runs["warn.csv"].dagster_run.tags["dagster/partition"]
    run = landed.runs["blocked.csv"]
    run_url, partition = f"http://dagster.example:3000/runs/{run.run_id}", run.dagster_run.tags["dagster/partition"]
    summary = f"harmonizer: check failed: validated/{blocked} check schema_gate (blocked.csv)"
    assert gate == {
        "summary": summary, "event": "check_failure", "run_id": run.run_id, "run_url": run_url, "job": f"load_{blocked}",
        "message": "2 of 3 rows rejected (66.67%), over max_reject_rate 50.00%", "asset": f"validated/{blocked}",
        "partition": partition, "file": "blocked.csv", "check": "schema_gate", "severity": "ERROR",
        "counts": {"max_reject_rate": 0.5, "reject_rate": 2 / 3, "rejected_rows": 2, "rows": 3}, "narrative": gate_narrative,
    }  # fmt: skip
    # Slack: the alerts in the order sent; the gate's fields, its counts (past Slack's 10 a section), its link.
    slack = inbox.on(SLACK_PATH)
    assert [m["text"] for m in slack] == [h["summary"] for h in hooks]
    fields = [f["text"] for block in slack[3]["blocks"] if "fields" in block for f in block["fields"]]
    assert fields == [
        f"*Asset*\nvalidated/{blocked}", "*Check*\nschema_gate", "*Severity*\nERROR", f"*Partition*\n{partition}", "*File*\nblocked.csv",
        f"*Job*\nload_{blocked}", f"*Run id*\n{run.run_id}", "*max_reject_rate*\n0.5", f"*reject_rate*\n{2 / 3}", "*rejected_rows*\n2", "*rows*\n3",
    ]  # fmt: skip
    assert slack[3]["blocks"][1]["text"]["text"] == gate["message"] and slack[3]["blocks"][-1]["elements"][0]["url"] == run_url
    assert slack[3]["blocks"][2]["text"]["text"] == gate_narrative
    # E-mail: one per alert, over TLS; the gate's body in full.
    assert sorted(m["Subject"].strip() for _, _, m, _ in mailbox.messages) == sorted(h["summary"] for h in hooks)
    assert all(over_tls for _, _, _, over_tls in mailbox.messages)
    [body] = [m.get_content() for _, _, m, _ in mailbox.messages if m["Subject"].strip() == summary]
    assert body.splitlines() == [
        summary, "", gate["message"], "", gate_narrative, "", f"Asset: validated/{blocked}", "Check: schema_gate", "Severity: ERROR", f"Partition: {partition}",
        "File: blocked.csv", f"Job: load_{blocked}", f"Run id: {run.run_id}", "max_reject_rate: 0.5", f"reject_rate: {2 / 3}", "rejected_rows: 2",
        "rows: 3", "", f"Run: {run_url}",
    ]  # fmt: skip
    # Nothing new: nothing sent again.
    message, cursor, log = tick(sensor_for(alert_settings(inbox.url, port)), landed.instance, cursor)
    assert message == "0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send" and len(inbox.received) == 8


def test_the_first_tick_watches_from_now_on(landed, inbox, alert_env):
    sensor = sensor_for(alert_settings(inbox.url, None))
    message, cursor, _ = tick(sensor, landed.instance, None)
    assert message == "watching for run failures and failed checks from now on"
    assert tick(sensor, landed.instance, cursor)[0] == "0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send"
    assert inbox.received == []


def not_sent(summaries: list[str], channel: str, first: str) -> list[str]:
    """The log lines of a channel that was unreachable at the first alert: then skipped."""
    skipped = f"skipped: {channel} was unreachable earlier in this tick"
    return [f"WARNING alert {s!r} not sent to {channel}: {first if i == 0 else skipped}" for i, s in enumerate(summaries)]


def test_an_alert_whose_summary_cannot_be_read_goes_without_it_and_says_why(landed, inbox, alert_env, monkeypatch):
    from harmonizer_pipeline.storage import postgres

    closed = free_port()
    monkeypatch.setenv(postgres.DATABASE_URL_ENV, f"postgresql://nobody@127.0.0.1:{closed}/harmonizer")
    message, _, log = tick(sensor_for(alert_settings(inbox.url, None)), landed.instance, landed.before)
    assert message == "2 failed run(s), 2 failed check(s): 8 alert(s) sent, 0 failed to send"
    hooks = inbox.on("/hook")
    assert [h["narrative"] for h in hooks] == [None] * 4
    # One line each, naming the alert and why (the refused connection), never a traceback.
    assert log == [
        f"WARNING alert {h['summary']!r} goes without its summary: OperationalError: connection failed: connection to server at"
        f' "127.0.0.1", port {closed} failed: Connection refused'
        for h in hooks
    ]


def test_failures_to_notify_are_logged_with_channel_and_reason_never_the_secret(landed, inbox, alert_env, monkeypatch):
    monkeypatch.setenv("HZ_TEST_WEBHOOK", "hooks.example.org/T000/B000/SECRET-TOKEN")  # no scheme: urllib's error would quote it
    closed = free_port()
    settings = {**alert_settings(inbox.url, None), "email": plain_email(closed)}
    message, cursor, log = tick(sensor_for(settings), landed.instance, landed.before)
    assert message == "2 failed run(s), 2 failed check(s): 4 alert(s) sent, 8 failed to send"
    summaries = [m["text"] for m in inbox.on(SLACK_PATH)]
    webhook = [f"WARNING alert {s!r} not sent to webhook: {NOT_A_URL}" for s in summaries]  # not unreachable: tried each time
    email_lines = not_sent(summaries, "email", f"cannot reach 127.0.0.1:{closed}: [Errno 111] Connection refused")
    assert log == [line for pair in zip(webhook, email_lines) for line in pair]
    assert len(summaries) == 4 and not any("SECRET-TOKEN" in line for line in log)
    # The tick moved the cursor: nothing is sent twice.
    assert tick(sensor_for(settings), landed.instance, cursor)[0] == "0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send"


def test_a_channel_that_never_answers_is_tried_once_a_tick(landed, inbox, alert_env, monkeypatch):
    with Listener() as silent_http, Listener() as silent_smtp:
        monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{silent_http.port}/hook")
        settings = {**alert_settings(inbox.url, None, timeout_seconds=0.5), "email": plain_email(silent_smtp.port)}
        started = time.monotonic()
        message, cursor, log = tick(sensor_for(settings), landed.instance, landed.before)
        # One wait of 0.5 s a channel, where waiting for every alert would take 4 s.
        assert time.monotonic() - started < 3
        assert (silent_http.connections, silent_smtp.connections) == (1, 1)
    assert message == "2 failed run(s), 2 failed check(s): 4 alert(s) sent, 8 failed to send"
    summaries = [m["text"] for m in inbox.on(SLACK_PATH)]
    webhook = not_sent(summaries, "webhook", "cannot reach the server: timed out")
    email_lines = not_sent(summaries, "email", f"cannot reach 127.0.0.1:{silent_smtp.port}: timed out")
    assert len(summaries) == 4 and log == [line for pair in zip(webhook, email_lines) for line in pair]
    assert tick(sensor_for(settings), landed.instance, cursor)[0] == "0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send"


def test_a_tick_out_of_time_leaves_the_rest_to_the_next(landed, inbox, alert_env):
    # A budget of 0: each tick handles the one record it must (the cursor always moves), then stops.
    sensor = sensor_for(alert_settings(inbox.url, None, on=["run_failure", "check_failure"]), budget_seconds=0)
    out_of_time = "; out of time after 1 record(s), the rest next tick"
    cursor, messages = landed.before, []
    while not messages or messages[-1].endswith(out_of_time):
        message, cursor, _ = tick(sensor, landed.instance, cursor)
        messages.append(message)
    # Each record handled once, in order, each cursor moved past handled records only.
    assert [(h["event"], h["file"]) for h in inbox.on("/hook")] == [
        ("run_failure", "ragged.csv"),
        ("run_failure", "blocked.csv"),
        ("check_failure", "blocked.csv"),
    ]
    assert len(inbox.on(SLACK_PATH)) == 3
    handled = Counter(m.removesuffix(out_of_time) for m in messages)
    assert handled.pop("1 failed run(s), 0 failed check(s): 2 alert(s) sent, 0 failed to send") == 2
    assert handled.pop("0 failed run(s), 1 failed check(s): 2 alert(s) sent, 0 failed to send") == 1  # the gate
    assert handled.pop("0 failed run(s), 1 failed check(s): 0 alert(s) sent, 0 failed to send") == 1  # the warning: not in `on`
    assert list(handled) == ["0 failed run(s), 0 failed check(s): 0 alert(s) sent, 0 failed to send"]  # passed checks
    assert messages[0].endswith(out_of_time) and not messages[-1].endswith(out_of_time)


def test_the_sensor_is_defined_only_with_a_channel(tmp_path, schema):
    source = f"an_{schema.removeprefix('t_')}"
    assert "harmonizer_alerts" not in [s.name for s in make_defs(tmp_path / "none", [source], {}).sensors]
    assert "harmonizer_alerts" in [s.name for s in make_defs(tmp_path / "one", [source], {"webhook": {"url_env": "X"}}).sensors]


def test_an_instance_with_an_event_log_per_run_is_told_to_use_postgres(inbox, alert_env):
    with dg.instance_for_test() as instance:  # SQLite, one event log per run
        message, cursor, _ = tick(sensor_for(alert_settings(inbox.url, None)), instance, None)
    assert (message, cursor) == ("alerts need an instance on PostgreSQL storage (dagster.yaml); this one keeps an event log per run", None)


def test_once_the_tick_is_out_of_time_no_channel_is_tried(inbox, alert_env, monkeypatch):
    # The webhook answers after 0.4 s: the second alert's webhook starts within the 0.6 s, its
    # Slack after them, and the third alert is tried nowhere.
    monkeypatch.setenv("HZ_TEST_WEBHOOK", f"{inbox.url}/slow")
    delivery = Delivery(Alerts.model_validate(alert_settings(inbox.url, None)), deadline=time.monotonic() + 0.6)
    out_of_time = "skipped: this tick ran out of time"
    outcomes = [delivery.send(ALERT) for _ in range(3)]
    assert outcomes == [{"webhook": None, "slack": None}, {"webhook": None, "slack": out_of_time}, {"webhook": out_of_time, "slack": out_of_time}]
    assert (len(inbox.on("/slow")), len(inbox.on(SLACK_PATH))) == (2, 1)


def test_a_webhook_over_https_verifies_the_certificate_and_delivers(tls_context, alert_env, monkeypatch):
    server = Inbox()
    server.server.socket = tls_context.wrap_socket(server.server.socket, server_side=True)
    server.thread.start()
    try:
        port = server.server.server_address[1]
        monkeypatch.setenv("HZ_TEST_WEBHOOK", f"https://localhost:{port}/hook")
        settings = {"ui_url": "http://dagster.example:3000/", "webhook": {"url_env": "HZ_TEST_WEBHOOK"}}
        assert Delivery(Alerts.model_validate(settings)).send(ALERT) == {"webhook": None}
        assert server.on("/hook") == [ALERT.as_json()]
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_a_webhook_answering_a_byte_at_a_time_is_cut_at_the_channel_timeout(alert_env, monkeypatch):
    # A byte every 0.2 s, within the 0.5 s timeout of a socket operation: the answer alone would take ~18 s.
    with SlowHTTP(delay=0.2) as slow:
        monkeypatch.setenv("HZ_TEST_WEBHOOK", f"http://127.0.0.1:{slow.port}/hook")
        settings = {"ui_url": "http://dagster.example:3000/", "timeout_seconds": 0.5, "webhook": {"url_env": "HZ_TEST_WEBHOOK"}}
        started = time.monotonic()
        outcome = Delivery(Alerts.model_validate(settings), deadline=time.monotonic() + 30).send(ALERT)
        elapsed = time.monotonic() - started
    assert outcome == {"webhook": "cannot reach the server: timed out"}
    assert 0.5 <= elapsed < 1.0


def test_an_smtp_server_answering_each_command_just_in_time_is_cut_at_the_channel_timeout(landed, inbox, alert_env):
    # Each answer 0.4 s after its command, within the 0.5 s timeout of a socket operation: the
    # exchange would take 2.4 s an alert, ~10 s for the tick's four, and sent them all.
    with SlowSMTP(delay=0.4) as slow:
        settings = {**alert_settings(inbox.url, None, timeout_seconds=0.5), "email": plain_email(slow.port)}
        started = time.monotonic()
        message, cursor, log = tick(sensor_for(settings, budget_seconds=1.0), landed.instance, landed.before)
        # The budget plus one channel's try, cut at its timeout (the e-mail, hung up at 0.5 s).
        assert time.monotonic() - started < 1.0 + 0.5
        assert slow.connections == 1
    assert message == "2 failed run(s), 2 failed check(s): 8 alert(s) sent, 4 failed to send"
    summaries = [m["text"] for m in inbox.on(SLACK_PATH)]
    assert len(summaries) == 4 and log == not_sent(summaries, "email", f"cannot reach 127.0.0.1:{slow.port}: timed out")
