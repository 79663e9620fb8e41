"""`harmonizer_alerts`: run failures and failed or warned asset checks, as they land in Dagster's
event log, sent to the channels of `alerts:` in harmonizer.yaml."""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace

import dagster as dg
import psycopg

from harmonizer_pipeline.bookkeeping.audit import one_line
from harmonizer_pipeline.monitoring.notifications import Alert, Delivery
from harmonizer_pipeline.reports.summary import alert_narrative
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.postgres import resolve_database_url

BATCH = 200  # records read per query; the cursors resume after the last one handled
# Dagster abandons a sensor evaluation after 60 s, cursor update and all: a tick tries no channel
# after this long and leaves the rest to the next one. A channel tried before then is cut at what
# is left of it (a second at least; notifications.Delivery): the worst case is this plus one
# channel's second, plus the last record's queries (an HTTP request may wait that second a few
# times over: connecting, sending, the answer), which leaves ~15 s of the 60 for a slow database.
TICK_BUDGET_SECONDS = 40.0


def _run_link(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def _counts(metadata) -> dict[str, float | None]:
    return {name: value.value for name, value in metadata.items() if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue))}


def run_failure_alert(instance: dg.DagsterInstance, record, ui_url: str) -> Alert:
    """The run, the step that failed first (the asset) and its error."""
    run = instance.get_run_by_id(record.run_id)
    tags = run.tags if run else {}
    failures = instance.all_logs(record.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    step = failures[0].dagster_event if failures else None
    failure = step.step_failure_data if step else None
    # A dg.Failure's own description (a file's one-line read error), else the exception's message.
    described = failure.user_failure_data.description if failure and failure.user_failure_data else None
    message = described or (failure.error.message.strip() if failure and failure.error else None) or record.event_log_entry.message or "the run failed"
    return Alert(
        event="run_failure",
        run_id=record.run_id,
        run_url=_run_link(ui_url, record.run_id),
        job=run.job_name if run else "",
        message=message,
        asset=step.step_key.replace("__", "/") if step and step.step_key else None,
        partition=tags.get("dagster/partition"),
        file=tags.get("harmonizer/file"),
    )


def check_alert(instance: dg.DagsterInstance, record, ui_url: str) -> Alert:
    evaluation = record.event_log_entry.dagster_event.event_specific_data
    run = instance.get_run_by_id(record.run_id)
    tags = run.tags if run else {}
    warn = evaluation.severity == dg.AssetCheckSeverity.WARN
    return Alert(
        event="check_warning" if warn else "check_failure",
        run_id=record.run_id,
        run_url=_run_link(ui_url, record.run_id),
        job=run.job_name if run else "",
        message=evaluation.description or "",
        asset=evaluation.asset_key.to_user_string(),
        partition=evaluation.partition or tags.get("dagster/partition"),
        file=tags.get("harmonizer/file"),
        check=evaluation.check_name,
        severity=evaluation.severity.value,
        counts=_counts(evaluation.metadata),
    )


# Check evaluations are read from the event log in storage-id order (the order they were
# stored): the asset check executions table is not, its rows are created when a run is planned.
# Storage ids are global on PostgreSQL, the instance storage harmonizer deploys with.
def _run_failures(instance: dg.DagsterInstance, after: int | None, limit: int) -> list:
    records_filter = dg.RunStatusChangeRecordsFilter(dg.DagsterEventType.RUN_FAILURE, after_storage_id=after)
    return list(instance.fetch_run_status_changes(records_filter, limit=limit, ascending=after is not None).records)


def _check_evaluations(instance: dg.DagsterInstance, after: int) -> list:
    records_filter = dg.EventRecordsFilter(dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after)
    # The instance's get_event_records is deprecated and no fetch_* method reads check evaluations
    # across runs; the event log storage's own method is the one Dagster's daemons use.
    return list(instance.event_log_storage.get_event_records(records_filter, limit=BATCH, ascending=True))


def _records_after(instance: dg.DagsterInstance, cursor: dict, ui_url: str) -> Iterator[tuple[str, int, Alert | None]]:
    """(cursor key, storage id, its alert or None for a passed check) of each record after the
    cursors, in the order handled; each alert is built only when its record is reached."""
    for record in _run_failures(instance, cursor["runs"], BATCH):
        yield "runs", record.storage_id, run_failure_alert(instance, record, ui_url)
    for record in _check_evaluations(instance, cursor["checks"]):
        passed = record.event_log_entry.dagster_event.event_specific_data.passed
        yield "checks", record.storage_id, None if passed else check_alert(instance, record, ui_url)


class _Narratives:
    """The summaries of a tick's alerts, each read when its alert is sent (the run has ended, so
    every fact is recorded), on one connection opened at the first: with a connection of its own a
    file's summary took 27 ms of the tick's budget, on a shared one 4 ms (measured on the test
    run of harmonizer_tests/reports). An alert whose summary cannot be read goes as it is, said in
    one line: alerting goes on."""

    def __init__(self, settings: Settings, warn: Callable[[str], None]):
        self.settings, self.warn = settings, warn
        self.conn: psycopg.Connection | None = None

    def add_to(self, alert: Alert) -> Alert:
        try:
            if self.conn is None:
                # Autocommit: a read that fails leaves no aborted transaction for the next alert's.
                self.conn = psycopg.connect(resolve_database_url(), autocommit=True)
            narrative = alert_narrative(self.conn, self.settings, alert.job, alert.partition)
        except Exception as exc:
            self.warn(f"alert {alert.summary!r} goes without its summary: {one_line(exc)}")
            return alert
        return replace(alert, narrative=narrative)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def alerts_sensor(settings: Settings, budget_seconds: float = TICK_BUDGET_SECONDS) -> dg.SensorDefinition | None:
    options = settings.alerts
    if not options.channels():
        return None

    @dg.sensor(
        name="harmonizer_alerts",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends run failures and failed or warned asset checks to the alert channels of harmonizer.yaml.",
    )
    def harmonizer_alerts(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        instance = context.instance
        if instance.event_log_storage.is_run_sharded:
            return dg.SkipReason("alerts need an instance on PostgreSQL storage (dagster.yaml); this one keeps an event log per run")
        if context.cursor is None:
            # Started now: alerts are about what happens from here on, not the instance's past.
            latest_run = _run_failures(instance, None, 1)
            cursor = {"runs": latest_run[0].storage_id if latest_run else 0, "checks": instance.event_log_storage.get_maximum_record_id() or 0}
            context.update_cursor(json.dumps(cursor))
            return dg.SkipReason("watching for run failures and failed checks from now on")
        cursor = json.loads(context.cursor)
        delivery = Delivery(options, deadline=time.monotonic() + budget_seconds)
        found = {"runs": 0, "checks": 0}
        handled = sent = failed = 0
        stopped = ""
        with closing(_Narratives(settings, context.log.warning)) as narratives:
            for key, storage_id, alert in _records_after(instance, cursor, options.ui_url):
                if handled and delivery.out_of_time():  # at least one record a tick: the cursor always moves
                    stopped = f"; out of time after {handled} record(s), the rest next tick"
                    break
                if alert is not None:
                    found[key] += 1
                if alert is not None and alert.event in options.on:
                    alert = narratives.add_to(alert)
                    for channel, problem in delivery.send(alert).items():
                        if problem is None:
                            sent += 1
                        else:
                            failed += 1
                            context.log.warning(f"alert {alert.summary!r} not sent to {channel}: {problem}")
                cursor[key] = storage_id  # past this record only: what is left is the next tick's
                handled += 1
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"{found['runs']} failed run(s), {found['checks']} failed check(s): {sent} alert(s) sent, {failed} failed to send{stopped}")

    return harmonizer_alerts
