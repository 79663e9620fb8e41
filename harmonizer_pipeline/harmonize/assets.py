"""staged/<source> (each file mapped into its target's columns, once) and harmonized/<target>
(the merge in PostgreSQL of what changed since the last one): their Dagster wiring; the work is
in harmonize.staging and harmonize.harmonization."""

import dagster as dg

from harmonizer_pipeline import naming
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.harmonization import harmonize_target
from harmonizer_pipeline.harmonize.staging import stage_file
from harmonizer_pipeline.relations.enforcement import check_relation, enforced_relations
from harmonizer_pipeline.reports.summary import merge_facts, merge_summary
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import (
    OWNERS,
    column_schema,
    failing_as_dagster,
    file_written,
    key,
    keys,
    relation_check_result,
    relation_check_specs,
    table_metadata,
)


def staged_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    target_name = settings.sources[source].target
    assert target_name is not None  # only sources with a target are staged (definitions.py)
    target = settings.targets[target_name]
    asset = naming.staged(source)

    @dg.asset(
        key=asset.path,
        deps=[key(naming.validated(source))],
        partitions_def=partitions,
        group_name="harmonize",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"Each file of {source} that passed its gate, mapped into {target_name}'s {len(target.columns)} columns and standardized, "
            "once, with lineage; values that could not be standardized in quality.rejected_rows (checks harmonize:<rule>)."
        ),
    )
    def staged(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        tables = postgres.tables(chunk_rows=settings.ingest.chunk_rows)
        with failing_as_dagster():
            outcome = stage_file(settings, source, context.partition_key, postgres.connect, tables, context.run)
        return dg.MaterializeResult(metadata={**outcome.counts, **file_written(context, tables, asset, outcome.written)})

    return staged


# A target is merged after any of its sources staged a file; staging runs only for a file whose
# schema gate passed, so a blocked file triggers nothing.
AFTER_STAGED = (
    dg.AutomationCondition.any_deps_updated().since_last_handled() & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
).with_label("after a file is staged")


class HarmonizeConfig(dg.Config):
    rebuild: bool = False
    """Recompute every key from the staged rows of every current file, not just what changed."""


# The columns of the `sources` table of a merge's metadata: one row per source of the target.
SOURCE_COLUMNS = [
    ("source", "string"),
    ("files", "int"),
    ("rows_in", "int"),
    ("rows_mapped", "int"),
    ("left_out", "int"),
    ("rejected_values", "int"),
    ("files_added", "int"),
    ("files_removed", "int"),
]


def harmonized_target_asset(settings: Settings, target_name: str) -> dg.AssetsDefinition:
    target = settings.targets[target_name]
    sources = settings.sources_of(target_name)
    business_key = list(target.key)
    relations = enforced_relations(settings, naming.harmonized(target_name))

    @dg.asset(
        key=naming.harmonized(target_name).path,
        deps=keys([naming.staged(s) for s in sources]),
        check_specs=relation_check_specs(relations, key(naming.harmonized(target_name))),
        automation_condition=AFTER_STAGED,
        group_name="harmonize",
        kinds={"postgres"},
        owners=OWNERS,
        description=(
            f"{target.description or target_name}: the staged rows of {', '.join(sources) or 'no source yet'}, one row per "
            f"{', '.join(business_key)} ({target.survivorship} wins), with lineage; merged in PostgreSQL, recomputing only the keys that "
            f"files added, superseded, blocked or removed since the last merge touch. Duplicates in {store.SCHEMA}."
            f"{store.duplicates_table(target_name)}, fuzzy candidates in {store.SCHEMA}.{store.candidates_table(target_name)}, "
            f"each merge's changes in {store.SCHEMA}.{store.changes_table(target_name)}"
            + (f", every version in {store.SCHEMA}.{store.history_table(target_name)}" if target.history else "")
            + "."
        ),
    )
    def harmonized(context: dg.AssetExecutionContext, config: HarmonizeConfig, postgres: PostgresResource) -> dg.MaterializeResult:
        with failing_as_dagster():
            outcome = harmonize_target(settings, target_name, postgres.connect, context.run, rebuild=config.rebuild)
            with postgres.connect() as conn:
                summary = merge_summary(merge_facts(conn, settings, target_name, changed=outcome.result.merge_id is not None))
                related = [relation_check_result(check_relation(conn, settings, e)) for e in relations]
        result = outcome.result
        context.log.info(f"{target_name}: {outcome.summary}")
        metadata = {
            "summary": dg.MetadataValue.md(summary),
            "dagster/row_count": result.rows,
            "dagster/column_schema": column_schema(store.target_specs(target)),
            "business_key": ", ".join(business_key),
            "survivorship": target.survivorship,
            "rebuild": config.rebuild,
            "files_added": result.files_added,
            "files_removed": result.files_removed,
            "keys_affected": result.keys_affected,
            "rows_inserted": result.inserted,
            "rows_updated": result.updated,
            "rows_deleted": result.deleted,
            "history_versions": result.history_versions,
            "duration_seconds": round(outcome.duration, 3),
            "rows_mapped": sum(r["rows_mapped"] for r in result.per_source),
            "duplicate_keys": result.duplicate_keys,
            "merged_rows": result.merged_rows,
            "rejected_values": outcome.rejected_values,
            "sources": table_metadata(result.per_source, SOURCE_COLUMNS),
        }
        if outcome.matches is not None:
            matches = outcome.matches
            metadata |= {"match_candidates": matches.candidates, "match_blocks_compared": matches.blocks, "match_blocks_skipped": matches.skipped_blocks}
        return dg.MaterializeResult(metadata=metadata, check_results=related)

    return harmonized
