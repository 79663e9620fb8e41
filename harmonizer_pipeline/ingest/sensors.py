"""One sensor per source: new files in its landing zone become partitions of raw/<source> and runs."""

import json

import dagster as dg

from harmonizer_pipeline.ingest import registry
from harmonizer_pipeline.ingest.discovery import plan_tick
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings


def landing_sensor(
    settings: Settings, source: str, job, partitions: dg.DynamicPartitionsDefinition
) -> dg.SensorDefinition:
    name = f"{source}_landing"

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Loads each new file of {source} once (content identity as run key).",
    )
    def sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource, landing: LandingResource) -> dg.SensorResult:
        start_after = json.loads(context.cursor)["start_after"] if context.cursor else None
        zone = landing.zone(settings, source)
        with postgres.connect() as conn:
            registry.ensure_registry(conn)
            plan = plan_tick(
                conn, zone, source, start_after, settings.ingest.max_listed_per_tick, settings.ingest.max_new_files_per_tick,
                f"sensor {name}",  # as audit.launched_by names a run this sensor launched
            )  # fmt: skip
        context.log.info(
            f"{zone.describe()}: listed {plan.listed}, {len(plan.to_load)} to load, {len(plan.duplicates)} duplicate(s)"
        )
        for why in plan.skipped:
            context.log.warning(f"skipped until a later tick: {why}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    # Content identity plus this landing of it: the same file never loads twice,
                    # a fixed re-upload of a failed file still can.
                    run_key=f"{source}:{f.content_id}:{f.object_key}:{f.version}",
                    partition_key=f.partition_key,
                    tags={"harmonizer/source": source, "harmonizer/file": f.object_key[:200]},
                )
                for f in plan.to_load
            ],
            dynamic_partitions_requests=[partitions.build_add_request([f.partition_key for f in plan.to_load])],
            cursor=json.dumps({"start_after": plan.next_start_after}),
        )

    return sensor
