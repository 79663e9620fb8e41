"""Sensors of operations: `harmonizer_alerts` (run failures and failed or warned asset checks,
as they land in Dagster's event log, sent to the channels of `alerts:` in harmonizer.yaml), and
the declarative automation sensors, one per source and one per target."""

import json

import dagster as dg
from dagster._core.events import DagsterEventType

from harmonizer_pipeline.ops.notifications import Alert, deliver
from harmonizer_pipeline.settings import Settings

BATCH = 200  # records read per query; the cursors resume after the last one handled


def _run_link(ui_url: str, run_id: str) -> str:
    return f"{ui_url.rstrip('/')}/runs/{run_id}"


def _counts(metadata) -> dict[str, float]:
    return {name: value.value for name, value in metadata.items() if isinstance(value, (dg.IntMetadataValue, dg.FloatMetadataValue))}


def run_failure_alert(instance: dg.DagsterInstance, record, ui_url: str) -> Alert:
    """The run, the step that failed first (the asset) and its error."""
    run = instance.get_run_by_id(record.run_id)
    tags = run.tags if run else {}
    failures = instance.all_logs(record.run_id, of_type=DagsterEventType.STEP_FAILURE)
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
        asset=step.step_key.replace("__", "/") if step else None,
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
    records_filter = dg.RunStatusChangeRecordsFilter(DagsterEventType.RUN_FAILURE, after_storage_id=after)
    return list(instance.fetch_run_status_changes(records_filter, limit=limit, ascending=after is not None).records)


def _check_evaluations(instance: dg.DagsterInstance, after: int) -> list:
    records_filter = dg.EventRecordsFilter(DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=after)
    return list(instance.get_event_records(records_filter, limit=BATCH, ascending=True))


def alerts_sensor(settings: Settings) -> dg.SensorDefinition | None:
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
        runs = _run_failures(instance, cursor["runs"], BATCH)
        checks = _check_evaluations(instance, cursor["checks"])
        failed_checks = [r for r in checks if not r.event_log_entry.dagster_event.event_specific_data.passed]
        alerts = [run_failure_alert(instance, r, options.ui_url) for r in runs]
        alerts += [check_alert(instance, r, options.ui_url) for r in failed_checks]
        sent = failed = 0
        for alert in alerts:
            if alert.event not in options.on:
                continue
            for channel, problem in deliver(alert, options).items():
                if problem is None:
                    sent += 1
                else:
                    failed += 1
                    context.log.warning(f"alert {alert.summary!r} not sent to {channel}: {problem}")
        context.update_cursor(json.dumps({
            "runs": runs[-1].storage_id if runs else cursor["runs"], "checks": checks[-1].storage_id if checks else cursor["checks"],
        }))  # fmt: skip
        return dg.SkipReason(f"{len(runs)} failed run(s), {len(failed_checks)} failed check(s): {sent} alert(s) sent, {failed} failed to send")

    return harmonizer_alerts


def automation_sensors(settings: Settings) -> list[dg.AutomationConditionSensorDefinition]:
    """Automation runs carry the tag of their source or target, as the jobs' runs do, so the
    instance's per-source and per-target run limits hold for them too; declared running, where
    Dagster's default automation sensor would wait to be switched on in the UI."""
    sensors = []
    for kind, names in (("source", settings.sources), ("target", settings.targets)):
        for name in names:
            if kind == "source":
                selection = dg.AssetSelection.assets(
                    ["raw", name], ["validated", name], ["quality", f"profile_{name}"], ["keys", name], ["keys", f"comparison_{name}"],
                    ["ops", f"trends_{name}"],
                )  # fmt: skip
            else:
                selection = dg.AssetSelection.assets(["harmonized", name], ["export", name])
            sensors.append(
                dg.AutomationConditionSensorDefinition(
                    f"automation_{name}",
                    target=selection,
                    run_tags={f"harmonizer/{kind}": name},
                    default_status=dg.DefaultSensorStatus.RUNNING,
                    minimum_interval_seconds=30,
                    description=f"Declarative automation of the {kind} {name}'s assets.",
                )
            )
    return sensors
