"""The harmonizer code location: assets, jobs and sensors of every stage, and the resources."""

import dagster as dg

from harmonizer_pipeline.ingest.assets import files_partitions, raw_source_asset
from harmonizer_pipeline.ingest.sensors import landing_sensor
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import Settings, load_settings


def build_definitions(settings: Settings, resources: dict[str, object] | None = None) -> dg.Definitions:
    """Per source: raw/<source> partitioned by file, the job that loads one file, its sensor."""
    assets, jobs, sensors = [], [], []
    for source in settings.sources:
        partitions = files_partitions(source)
        raw = raw_source_asset(settings, source, partitions)
        job = dg.define_asset_job(f"load_{source}", selection=[raw.key], partitions_def=partitions)
        assets.append(raw)
        jobs.append(job)
        sensors.append(landing_sensor(settings, source, job, partitions))
    return dg.Definitions(assets=assets, jobs=jobs, sensors=sensors, resources=resources or build_resources())


settings = load_settings()
defs = build_definitions(settings)
