"""The harmonizer code location: assets of every stage, jobs and resources."""

import dagster as dg

from harmonizer_pipeline.ingest.assets import raw_assets
from harmonizer_pipeline.ops.assets import load_summary_asset
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import load_settings

settings = load_settings()
raw = raw_assets(settings)

pipeline_job = dg.define_asset_job(
    "harmonize_all", selection=dg.AssetSelection.all(), description="Every stage on every source."
)

defs = dg.Definitions(
    assets=[*raw, load_summary_asset([a.key.path[-1] for a in raw])],
    jobs=[pipeline_job],
    resources=build_resources(),
)
