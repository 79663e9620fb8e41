"""raw/<source>: every file of a source's landing folder as text, one table per source."""

import dagster as dg
import pandas as pd

from harmonizer_pipeline.ingest.readers import read_delimited_text
from harmonizer_pipeline.settings import Settings


def raw_source_asset(settings: Settings, source: str) -> dg.AssetsDefinition:
    hints = settings.sources[source].format

    @dg.asset(
        key=["raw", source],
        group_name="ingest",
        kinds={"pandas", "postgres"},
        owners=["team:data-engineering"],
        description=settings.sources[source].description or f"Files landed for {source}, as text.",
    )
    def raw_source(context: dg.AssetExecutionContext) -> pd.DataFrame:
        folder = settings.landing_path(source)
        files = sorted(p for p in folder.glob(settings.sources[source].landing.local.glob) if p.is_file())
        if not files:
            raise dg.Failure(f"no files match {settings.sources[source].landing.local.glob!r} in {folder}")
        frames = [
            read_delimited_text(path, delimiter=hints.delimiter or ",", encoding=hints.encoding or "utf-8")
            for path in files
        ]
        context.log.info(f"read {len(files)} file(s) from {folder}")
        return pd.concat(frames, ignore_index=True)

    return raw_source


def raw_assets(settings: Settings) -> list[dg.AssetsDefinition]:
    return [raw_source_asset(settings, name) for name, s in settings.sources.items() if s.landing.local]
