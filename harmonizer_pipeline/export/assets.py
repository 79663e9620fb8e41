"""export/<target>: its Dagster wiring; the work (change files, the files people open, uploads,
their audit) is in export.service."""

from pathlib import Path

import dagster as dg

from harmonizer_pipeline import naming
from harmonizer_pipeline.export.service import CHUNK_ROWS, SCHEDULE_WAIT, export_target
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import OWNERS, failing_as_dagster, key, keys, table_metadata

# Tags of a run that automation launched: such a run waits for the schedule to export in full
# where export.full is `schedule`.
AUTOMATION_CONDITION_TAG = "dagster/from_automation_condition"
SENSOR_NAME_TAG = "dagster/sensor_name"

# Exported after each harmonization; the keys sheet's assets only wait to be done, they trigger nothing.
AFTER_HARMONIZED = (
    dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("keys")).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after harmonized")


def export_target_asset(settings: Settings, target_name: str) -> dg.AssetsDefinition:
    sources = settings.sources_of(target_name)
    options = settings.export
    # A blocking relation of harmonizer.yaml on harmonized/<target> stops the export when it fails.
    gated = any(r.blocking and r.from_.table == target_name for r in settings.relations)

    @dg.asset(
        key=naming.export(target_name).path,
        deps=[key(naming.harmonized(target_name)), *keys([naming.keys(s) for s in sources])],
        automation_condition=AFTER_HARMONIZED & dg.AutomationCondition.all_deps_blocking_checks_passed() if gated else AFTER_HARMONIZED,
        group_name="export",
        kinds={{"csv": "csv", "parquet": "parquet", "xlsx": "excel"}[f] for f in options.formats},
        owners=OWNERS,
        description=(
            f"{naming.harmonized(target_name).qualified} as {', '.join(options.formats)} under {settings.export_directory()}/{target_name}/<run date>/, with "
            "its unique-record file (keys that occurred once) and duplicate-record file (every row of a key that occurred "
            "more than once, the kept row first), its HTML report (<target>_report.html: the harmonized table profiled, the latest merge told)"
            + (", a zip of the lot" if options.zip else "")
            + (f"; uploaded to b2://{options.b2.bucket}/{options.b2.prefix}" if options.b2 else "")
            + "."
        ),
    )
    def export(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        automatic = any(tag in context.run.tags for tag in (AUTOMATION_CONDITION_TAG, SENSOR_NAME_TAG))
        with failing_as_dagster():
            outcome = export_target(
                settings, target_name, postgres.tables(chunk_rows=CHUNK_ROWS), postgres.connect, context.run,
                automatic=automatic, b2_api=landing.b2_api, log=context.log.info,
            )  # fmt: skip
        directory, change_files = dg.MetadataValue.path(str(outcome.directory)), _files(outcome.change_files)
        if not outcome.full:
            return dg.MaterializeResult(metadata={"directory": directory, "change_files": change_files, "full_export": SCHEDULE_WAIT})
        return dg.MaterializeResult(
            metadata={
                "directory": directory,
                "report": dg.MetadataValue.path(str(outcome.report)),
                "files": _files(outcome.files),
                "change_files": change_files,
                "rows": table_metadata([{"output": k, "rows": v} for k, v in outcome.written.items()], [("output", "string"), ("rows", "int")]),
                "uploaded": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in outcome.uploaded) or "not configured"),
            }
        )

    return export


def _files(paths: list[Path]) -> dg.TableMetadataValue:
    """The files written, with their sizes."""
    return table_metadata([{"file": f.name, "bytes": f.stat().st_size} for f in paths], [("file", "string"), ("bytes", "int")])
