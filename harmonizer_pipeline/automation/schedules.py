"""Schedules from harmonizer.yaml (`schedules:`, `targets.<t>.schedule` and `retention.cron`): each
target harmonized and exported again on its cron, each source's latest file profiled again (weekly
by default), and the retention policy applied daily."""

import dagster as dg

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.settings import Settings


def _status(settings: Settings) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if settings.schedules.running else dg.DefaultScheduleStatus.STOPPED


def harmonize_schedule(settings: Settings, target: str, job) -> dg.ScheduleDefinition | None:
    """harmonize_<target> on the target's own cron, else schedules.harmonize; None when neither is set."""
    cron = settings.targets[target].schedule or settings.schedules.harmonize
    if cron is None:
        return None
    return dg.ScheduleDefinition(
        name=f"harmonize_{target}_schedule",
        job=job,
        cron_schedule=cron,
        execution_timezone=settings.schedules.timezone,
        default_status=_status(settings),
        tags={"harmonizer/launched_by": f"schedule harmonize_{target}_schedule"},
        description=f"{target} harmonized again from every source's validated rows and exported, on {cron} ({settings.schedules.timezone}).",
    )


def full_profile_schedule(settings: Settings, source: str, job, partitions: dg.DynamicPartitionsDefinition) -> dg.ScheduleDefinition | None:
    """profile_<source> on schedules.full_profile, for the source's latest loaded file; None when unset."""
    cron = settings.schedules.full_profile
    if cron is None:
        return None
    name = f"full_profile_{source}"

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone=settings.schedules.timezone,
        default_status=_status(settings),
        description=f"The latest file of {source} profiled again (fresh figures and drift), on {cron} ({settings.schedules.timezone}).",
    )
    def full_profile(context: dg.ScheduleEvaluationContext):
        # The sensor adds a file's partition before loading it: a file whose load failed (or is
        # still running) has nothing to profile, so the latest file raw/<source> holds is taken.
        assert partitions.name is not None  # files_partitions names each one
        files = context.instance.get_dynamic_partitions(partitions.name)
        status = context.instance.get_status_by_partition(wiring.key(naming.raw(source)), files, partitions) or {}
        loaded = [f for f in files if status.get(f) == dg.AssetPartitionStatus.MATERIALIZED]
        if not loaded:
            return dg.SkipReason(f"no file of {source} has been loaded yet")
        tick = context.scheduled_execution_time.isoformat()
        return dg.RunRequest(run_key=f"{loaded[-1]}@{tick}", partition_key=loaded[-1], tags={"harmonizer/launched_by": f"schedule {name}"})

    return full_profile


def retention_schedule(settings: Settings, job) -> dg.ScheduleDefinition:
    """retention_daily on retention.cron; running from the start when some layer has a limit, since
    writing one asks for it (else it waits to be switched on in the UI, as it would remove nothing)."""
    cron = settings.retention.cron
    return dg.ScheduleDefinition(
        name="retention_daily",
        job=job,
        cron_schedule=cron,
        execution_timezone=settings.schedules.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.retention.limited else dg.DefaultScheduleStatus.STOPPED,
        tags={"harmonizer/launched_by": "schedule retention_daily"},
        description=f"The retention policy applied ({naming.retention()}), on {cron} ({settings.schedules.timezone}).",
    )
