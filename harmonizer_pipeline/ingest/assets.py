"""raw/<source>: each landed file as one partition of text rows plus lineage, in PostgreSQL. The
load itself is ingest.load's; this is its Dagster asset."""

from typing import Any

import dagster as dg

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.ingest.load import load_file, read_hints
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings

__all__ = ["files_partitions", "raw_source_asset", "read_hints"]  # read_hints: importable here as before


def files_partitions(source: str) -> dg.DynamicPartitionsDefinition:
    """One partition per landed file of the source (added by its sensor)."""
    return dg.DynamicPartitionsDefinition(name=naming.files_partitions_name(source))


def raw_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    description = settings.sources[source].description or f"Files landed for {source}"
    raw = naming.raw(source)

    @dg.asset(
        key=wiring.key(raw),
        partitions_def=partitions,
        output_required=False,  # a run that does not load the file (superseded, loaded meanwhile, a duplicate) materializes nothing
        group_name="ingest",
        kinds={"pandas", "postgres"},
        owners=wiring.OWNERS,
        description=f"{description}: every value as text exactly as read, one partition per file.",
    )
    def raw_source(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource):
        tables = postgres.tables()
        with wiring.failing_as_dagster():
            loaded = load_file(
                settings, source, context.partition_key, context.run, postgres.connect, tables,
                zone=lambda: landing.zone(settings, source), log=context.log.info,
            )  # fmt: skip
        if loaded is None:
            return
        detection = loaded.detection
        metadata: dict[str, Any] = {
            "file": loaded.file,
            "sha256": loaded.sha256,
            "format": detection.format,
            "encoding": detection.encoding or "",
            "delimiter": detection.delimiter or "",
            "detection": dg.MetadataValue.md("\n".join(f"- {line}" for line in detection.evidence)),
            **wiring.file_written(context, tables, raw, loaded.written),
        }
        yield dg.MaterializeResult(metadata=metadata)

    return raw_source
