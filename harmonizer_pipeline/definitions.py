"""The harmonizer code location: assets, jobs and sensors of every stage, and the resources."""

import dagster as dg

from harmonizer_pipeline import naming
from harmonizer_pipeline.ask.job import ask_job
from harmonizer_pipeline.automation.schedules import full_profile_schedule, harmonize_schedule, retention_schedule
from harmonizer_pipeline.automation.sensors import automation_sensors
from harmonizer_pipeline.export.assets import export_target_asset
from harmonizer_pipeline.harmonize.assets import harmonized_target_asset, staged_source_asset
from harmonizer_pipeline.ingest.assets import files_partitions, raw_source_asset
from harmonizer_pipeline.ingest.sensors import landing_sensor
from harmonizer_pipeline.keys.assets import comparison_source_asset, file_comparisons_asset, keys_source_asset
from harmonizer_pipeline.monitoring.assets import trends_source_asset
from harmonizer_pipeline.monitoring.sensors import alerts_sensor
from harmonizer_pipeline.quality.assets import profile_source_asset, validated_source_asset
from harmonizer_pipeline.relations.assets import relations_asset, relations_job
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.retention.assets import retention_asset
from harmonizer_pipeline.settings import Settings, SettingsError, load_settings
from harmonizer_pipeline.storage.postgres import DeploymentError, require_deployment_database


def build_definitions(settings: Settings, resources: dict[str, object] | None = None) -> dg.Definitions:
    """Per source: raw/<source> partitioned by file, validated/<source> behind its schema gate,
    quality/profile_<source>, keys/<source> and keys/comparison_<source>; the job that loads,
    validates, profiles and analyses the keys of one file and stages it for its target (staged/<source>); its sensor; the job `profile_<source>`
    and its schedule; ops/trends_<source>. Per target: harmonized/<target> and export/<target>, the job
    `harmonize_<target>` that merges and exports, `rebuild_<target>` that recomputes every key, and the schedule; the job `ask` (questions in plain language). The job `ops_trends`; ops/retention, its job
    `retention` and the schedule retention_daily; keys/file_comparisons and its job `compare_files` (two chosen files of a source); keys/relations and its job `find_relations`
    (foreign-key candidates between the latest file of every source and every target, no automation); the alerts sensor when channels are set;
    an automation sensor per source and per target."""
    assets, jobs, sensors, schedules = [], [], [], []
    for source in settings.sources:
        partitions = files_partitions(source)
        stage = [
            raw_source_asset(settings, source, partitions),
            validated_source_asset(settings, source, partitions),
            profile_source_asset(settings, source, partitions),
            keys_source_asset(settings, source, partitions),
            comparison_source_asset(settings, source, partitions),
        ]
        if settings.sources[source].target is not None:
            stage.append(staged_source_asset(settings, source, partitions))
        job = dg.define_asset_job(f"load_{source}", selection=[a.key for a in stage])
        assets.extend([*stage, trends_source_asset(settings, source)])
        jobs.append(job)
        sensors.append(landing_sensor(settings, source, job, partitions))
        profile_job = dg.define_asset_job(f"profile_{source}", selection=[stage[2].key])
        jobs.append(profile_job)
        schedules.append(full_profile_schedule(settings, source, profile_job, partitions))
    for target in settings.targets:
        stage = [harmonized_target_asset(settings, target), export_target_asset(settings, target)]
        assets.extend(stage)
        job = dg.define_asset_job(f"harmonize_{target}", selection=[a.key for a in stage], tags={"harmonizer/target": target})
        rebuild = dg.define_asset_job(
            f"rebuild_{target}",
            selection=[a.key for a in stage],
            tags={"harmonizer/target": target},
            config={"ops": {stage[0].op.name: {"config": {"rebuild": True}}}},
            description=f"Recompute {naming.harmonized(target)} from the staged rows of every current file (the oracle of the incremental merge), then export it.",
        )
        jobs += [job, rebuild]
        schedules.append(harmonize_schedule(settings, target, job))
    if settings.targets:
        jobs.append(ask_job(settings))
    if settings.sources:
        jobs.append(dg.define_asset_job("ops_trends", selection=dg.AssetSelection.groups("ops")))
        retention = retention_asset(settings)
        assets.append(retention)
        jobs.append(dg.define_asset_job("retention", selection=[retention.key]))
        schedules.append(retention_schedule(settings, jobs[-1]))
        comparisons = file_comparisons_asset(settings)
        assets.append(comparisons)
        jobs.append(
            dg.define_asset_job(
                "compare_files",
                selection=[comparisons.key],
                description="Compare two files of a source on a key (run config: source, file_a, file_b, optional key): keys/file_comparisons.",
            )
        )
        relations = relations_asset(settings)
        assets.append(relations)
        jobs.append(relations_job(relations))
    sensors += [alerts_sensor(settings), *automation_sensors(settings)]
    return dg.Definitions(
        assets=assets,
        jobs=jobs,
        sensors=[s for s in sensors if s is not None],
        schedules=[s for s in schedules if s is not None],
        resources=resources or build_resources(),
    )


try:
    require_deployment_database()
    settings = load_settings()
except (DeploymentError, SettingsError) as exc:
    # Dagster shows the message, then the frames the error came through: the settings loader's
    # say nothing about a bad field, so only this line is left under the one line per field.
    raise exc.with_traceback(None) from None  # a deployment without its database, or invalid settings (one line per bad field)
defs = build_definitions(settings)
