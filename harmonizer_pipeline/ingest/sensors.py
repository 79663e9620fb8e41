"""One sensor per source: new files in its landing zone become partitions of raw/<source> and
runs; loads whose runs died are recorded failed and requested again (see ingest.discovery)."""

import datetime as dt
import json

import dagster as dg

from harmonizer_pipeline.bookkeeping import registry
from harmonizer_pipeline.ingest.discovery import ATTEMPT_TAG, FILE_ID_TAG, RunVerdict, plan_tick
from harmonizer_pipeline.ingest.retries import RetryPolicy
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings

# Tags Dagster's run retries set: a failed run it will retry, and the retry once launched.
_WILL_RETRY_TAG = "dagster/will_retry"
_RETRY_RUN_TAG = "dagster/auto_retry_run_id"
_RETRY_WAIT = dt.timedelta(minutes=10)  # a retry Dagster promised but never launched is given up on


def judge_load(instance: dg.DagsterInstance, entry: registry.RegistryEntry, heartbeat_timeout: float) -> RunVerdict:
    """What became of the runs of the pending entry's current attempt (Dagster's own retries of
    them included: they keep the tags). A started run with no sign of life for
    `heartbeat_timeout` seconds (no heartbeat from the load, nor a start that recent) lost its
    worker or its database: it is marked failed here, so the UI says so too."""
    records = instance.get_run_records(dg.RunsFilter(tags={FILE_ID_TAG: str(entry.id), ATTEMPT_TAG: str(entry.attempts)}))
    if not records:
        return RunVerdict.none()
    now = dt.datetime.now(dt.UTC)
    lost = None
    for record in records:
        run = record.dagster_run
        if run.is_finished:
            continue
        if run.status != dg.DagsterRunStatus.STARTED:
            return RunVerdict.alive()  # queued or starting: Dagster's start timeout watches it
        signs = [t for t in (entry.heartbeat_at, _at(record.start_time), record.create_timestamp) if t is not None]
        silent = (now - max(signs)).total_seconds()
        if silent <= heartbeat_timeout:
            return RunVerdict.alive()
        message = f"lost: no sign of life for {silent:.0f} s (its run worker or the database died)"
        instance.report_run_failed(run, f"harmonizer: the load of {entry.object_key} {message}")
        reported = instance.get_run_by_id(run.run_id)
        assert reported is not None  # read from the instance above
        if reported.tags.get(_WILL_RETRY_TAG) == "true":
            return RunVerdict.alive()  # Dagster's run retries take it on
        lost = RunVerdict.dead(f"run {run.run_id} {message}", run.run_id)
    if lost is not None:
        return lost
    for record in records:
        tags = record.dagster_run.tags
        ended = _at(record.end_time)
        if _RETRY_RUN_TAG in tags or not ended or now - ended >= _RETRY_WAIT or record.dagster_run.status != dg.DagsterRunStatus.FAILURE:
            continue
        # Dagster's run retries will take it on, or have yet to decide (the tag follows the failure).
        if tags.get(_WILL_RETRY_TAG) == "true" or (_WILL_RETRY_TAG not in tags and instance.run_retries_enabled):
            return RunVerdict.alive()
    latest = max(records, key=lambda r: r.create_timestamp).dagster_run
    return RunVerdict.dead(f"run {latest.run_id} {_how_it_ended(instance, latest)}", latest.run_id)


def _at(timestamp: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp else None


def _how_it_ended(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    if run.status == dg.DagsterRunStatus.CANCELED:
        return "was canceled"
    if run.status == dg.DagsterRunStatus.SUCCESS:
        return "ended without loading the file"
    failures = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    message = failures[-1].message if failures else ""
    return f"failed: {' '.join(message.split())}" if message else "failed"


def landing_sensor(settings: Settings, source: str, job, partitions: dg.DynamicPartitionsDefinition) -> dg.SensorDefinition:
    name = f"{source}_landing"
    ingest = settings.ingest
    retry = RetryPolicy(ingest.max_load_attempts, ingest.retry_backoff_seconds)

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=ingest.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Loads each new file of {source} once (content identity as run key); tries dead loads again.",
    )
    def sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, landing: LandingResource) -> dg.SensorResult:
        start_after = json.loads(context.cursor)["start_after"] if context.cursor else None
        zone = landing.zone(settings, source)
        with postgres.connect() as conn:
            plan = plan_tick(
                conn, zone, source, start_after, ingest.max_listed_per_tick, ingest.max_new_files_per_tick,
                f"sensor {name}",  # as audit.launched_by names a run this sensor launched
                judge=lambda entry: judge_load(context.instance, entry, ingest.load_heartbeat_timeout_seconds),
                retry=retry,
            )  # fmt: skip
        context.log.info(f"{zone.describe()}: listed {plan.listed}, {len(plan.to_load)} to load, {len(plan.duplicates)} duplicate(s)")
        for why in plan.dead:
            context.log.warning(f"load failed: {why}")
        for why in plan.skipped:
            context.log.warning(f"skipped until a later tick: {why}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f.run_key,
                    partition_key=f.partition_key,
                    tags={"harmonizer/source": source, "harmonizer/file": f.object_key[:200], **f.tags},
                )
                for f in plan.to_load
            ],
            dynamic_partitions_requests=[partitions.build_add_request([f.partition_key for f in plan.to_load])],
            cursor=json.dumps({"start_after": plan.next_start_after}),
        )

    return sensor
