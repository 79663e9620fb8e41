"""ops/retention: its Dagster wiring; the work (layers emptied, targets merged, export folders
removed, their audit) is in retention.expiry. Dagster's dynamic partitions of files that expired
or were erased are deleted here."""

import datetime as dt

import dagster as dg

from harmonizer_pipeline import naming
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.retention.expiry import apply_retention, gone_partitions
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import OWNERS, failing_as_dagster, table_metadata


def forget_gone_partitions(instance: dg.DagsterInstance, settings: Settings, postgres: PostgresResource) -> list[str]:
    """Delete the dynamic partitions whose files all expired or were erased; `<source>/<partition>` of each."""
    forgotten = []
    for source in settings.sources:
        name = naming.files_partitions_name(source)
        keys = list(instance.get_dynamic_partitions(name))
        if not keys:
            continue
        with postgres.connect() as conn:
            gone = gone_partitions(conn, source, keys)
        for key in gone:
            instance.delete_dynamic_partition(name, key)
            forgotten.append(f"{source}/{key}")
    return forgotten


def retention_asset(settings: Settings) -> dg.AssetsDefinition:
    limits = settings.retention
    described = ", ".join(f"{layer} {days} days" for layer, days in limits.layer_days.items()) or "no file layer has a limit"
    exports = f"; export folders {limits.exports} days" if limits.exports is not None else ""

    @dg.asset(
        key=naming.retention().path,
        group_name="retention",
        kinds={"postgres"},
        owners=OWNERS,
        description=(
            f"The retention policy applied ({described}{exports}): each file's rows leave the layers whose limit they outlived, one file per "
            "transaction, audited (action expire); a file no layer holds any more is `expired` in ops.file_registry and its partition deleted."
        ),
    )
    def retention(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        with failing_as_dagster():
            outcome = apply_retention(settings, postgres.connect, context.run, dt.datetime.now(dt.UTC), landing.b2_api if settings.export.b2 else None)
        forgotten = forget_gone_partitions(context.instance, settings, postgres)
        context.log.info(f"{outcome.summary}; {len(forgotten)} dynamic partition(s) deleted")
        return dg.MaterializeResult(
            metadata={
                "summary": outcome.summary,
                "removed": table_metadata(
                    [{"asset": r.asset, "partition": r.partition_key or "", "file": r.file, "rows": r.rows} for r in outcome.removals],
                    [("asset", "string"), ("partition", "string"), ("file", "string"), ("rows", "int")],
                ),
                "files_expired": len(outcome.expired),
                "partitions_deleted": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in forgotten) or "none"),
            }
        )

    return retention
