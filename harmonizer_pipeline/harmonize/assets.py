"""staged/<source> (each file mapped into its target's columns, once) and harmonized/<target>
(the merge in PostgreSQL of what changed since the last one); the stage's work is in mapping,
merge and candidates."""

import time

import dagster as dg

from harmonizer_pipeline.bookkeeping import audit, merges, metrics, rejected
from harmonizer_pipeline.harmonize import candidates, store
from harmonizer_pipeline.harmonize.mapping import MappingError, map_source
from harmonizer_pipeline.harmonize.merge import MergeResult, merge
from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.quality.assets import partition_rows
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.services import audit_file, file_columns
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.postgres import adbc_connection
from harmonizer_pipeline.storage.reads import read_chunks
from harmonizer_pipeline.storage.writes import DataFrameChunks
from harmonizer_pipeline.wiring import OWNERS, column_schema, table_metadata


def staged_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    config = settings.sources[source]
    target_name = config.target
    assert target_name is not None  # only sources with a target are staged (definitions.py)
    target = settings.targets[target_name]

    @dg.asset(
        key=["staged", source],
        deps=[dg.AssetKey(["validated", source])],
        partitions_def=partitions,
        group_name="harmonize",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        metadata={"partition_expr": PARTITION_COLUMN},
        description=(
            f"Each file of {source} that passed its gate, mapped into {target_name}'s {len(target.columns)} columns and standardized, "
            "once, with lineage; values that could not be standardized in quality.rejected_rows (checks harmonize:<rule>)."
        ),
    )
    def staged(context: dg.AssetExecutionContext, postgres: PostgresResource):
        partition_key, run_id, url = context.partition_key, context.run.run_id, postgres.url()
        with postgres.connect() as conn:
            entry, columns = file_columns(conn, source, partition_key)
            store.ensure_staged_table(conn, source, target, PARTITION_COLUMN)
        step = audit.AuditedStep(
            postgres.connect, audit.entry(context.run, "stage", "pending", f"staged/{source}", partition_key, file=entry.object_key, sha256=entry.sha256)
        )
        counts = {"rows_in": 0, "rows_staged": 0, "rows_left_out": 0, "rejected_values": 0}
        load_ids: set[str] = set()
        own = set(columns)
        writer = rejected.RejectedRowsWriter(url, source, partition_key, run_id, harmonize=True)

        def mapped_chunks():
            with adbc_connection(url) as conn:
                for chunk in read_chunks(conn, "validated", source, None, partition_rows(partition_key), settings.ingest.chunk_rows):
                    # The file's own columns: validated.<source> holds every file's, NULL where a file lacks them.
                    chunk = chunk[[c for c in chunk.columns if c in own or c.startswith("_")]]
                    try:
                        rows = map_source(chunk, source, config.mapping, target)
                    except MappingError as err:
                        raise dg.Failure(f"{entry.object_key}: {err}") from None
                    writer.write(rows.rejections)
                    load_ids.update(rows.frame["_load_id"].dropna().unique())
                    counts["rows_in"] += rows.rows_in
                    counts["rows_staged"] += len(rows.frame)
                    counts["rows_left_out"] += rows.rows_left_out
                    counts["rejected_values"] += len(rows.rejections)
                    yield rows.frame

        def written(_conn, _result) -> None:
            # Committed just before the rows, with the rejections: what the partition holds, for the merge.
            books = writer.connection()
            merges.record_staged(books, source, partition_key, target_name, min(load_ids, default=None), run_id, counts)
            audit_file(books, context.run, "stage", f"staged/{source}", entry, rows_in=counts["rows_in"], rows_out=counts["rows_staged"],
                       detail=f"{counts['rejected_values']} values rejected, {counts['rows_left_out']} rows left out")  # fmt: skip
            writer.commit()

        def closed() -> None:
            writer.close()
            step.closed()

        with step:
            yield dg.Output(DataFrameChunks(mapped_chunks(), on_written=written, on_closed=closed), metadata=dict(counts))

    return staged


# A target is merged after any of its sources staged a file; staging runs only for a file whose
# schema gate passed, so a blocked file triggers nothing.
AFTER_STAGED = (
    dg.AutomationCondition.any_deps_updated().since_last_handled() & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
).with_label("after a file is staged")


class HarmonizeConfig(dg.Config):
    rebuild: bool = False
    """Recompute every key from the staged rows of every current file, not just what changed."""


def harmonized_target_asset(settings: Settings, target_name: str) -> dg.AssetsDefinition:
    target = settings.targets[target_name]
    sources = settings.sources_of(target_name)
    key = list(target.key)

    @dg.asset(
        key=["harmonized", target_name],
        deps=[dg.AssetKey(["staged", s]) for s in sources],
        automation_condition=AFTER_STAGED,
        group_name="harmonize",
        kinds={"postgres"},
        owners=OWNERS,
        description=(
            f"{target.description or target_name}: the staged rows of {', '.join(sources) or 'no source yet'}, one row per "
            f"{', '.join(key)} ({target.survivorship} wins), with lineage; merged in PostgreSQL, recomputing only the keys that "
            f"files added, superseded, blocked or removed since the last merge touch. Duplicates in harmonized."
            f"{store.duplicates_table(target_name)}, fuzzy candidates in harmonized.{store.candidates_table(target_name)}, "
            f"each merge's changes in harmonized.{store.changes_table(target_name)}"
            + (f", every version in harmonized.{store.history_table(target_name)}" if target.history else "")
            + "."
        ),
    )
    def harmonized(context: dg.AssetExecutionContext, config: HarmonizeConfig, postgres: PostgresResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        run_id = context.run.run_id
        step = audit.AuditedStep(
            postgres.connect, audit.entry(context.run, "rebuild" if config.rebuild else "harmonize", "pending", f"harmonized/{target_name}")
        )
        with step, postgres.connect() as conn:
            result = merge(conn, settings, target_name, run_id, rebuild=config.rebuild)
            every_block = config.rebuild or result.only_new_rows
            matches = candidates.refresh(conn, target_name, target, result.merge_id, every_block) if target.match and result.merge_id else None
            duration = time.perf_counter() - started
            step.done(conn, "done", rows_in=result.keys_affected, rows_out=result.rows, detail=_summary(result))
            metrics.record(conn, run_id, target_name, None, f"harmonized/{target_name}", {
                "rows": result.rows, "keys_affected": result.keys_affected, "inserted": result.inserted, "updated": result.updated,
                "deleted": result.deleted, "merged_rows": result.merged_rows, "duration_seconds": duration,
            })  # fmt: skip
            rejected_values = rejected.count_harmonize_rejections(conn, sources)
        context.log.info(f"{target_name}: {_summary(result)}")
        metadata = {
            "dagster/row_count": result.rows,
            "dagster/column_schema": column_schema(store.target_specs(target)),
            "business_key": ", ".join(key),
            "survivorship": target.survivorship,
            "rebuild": config.rebuild,
            "files_added": result.files_added,
            "files_removed": result.files_removed,
            "keys_affected": result.keys_affected,
            "rows_inserted": result.inserted,
            "rows_updated": result.updated,
            "rows_deleted": result.deleted,
            "history_versions": result.history_versions,
            "duration_seconds": round(duration, 3),
            "rows_mapped": sum(r["rows_mapped"] for r in result.per_source),
            "duplicate_keys": result.duplicate_keys,
            "merged_rows": result.merged_rows,
            "rejected_values": rejected_values,
            "sources": table_metadata(
                result.per_source,
                [
                    ("source", "string"),
                    ("files", "int"),
                    ("rows_in", "int"),
                    ("rows_mapped", "int"),
                    ("left_out", "int"),
                    ("rejected_values", "int"),
                    ("files_added", "int"),
                    ("files_removed", "int"),
                ],
            ),  # fmt: skip
        }
        if matches is not None:
            metadata |= {"match_candidates": matches.candidates, "match_blocks_compared": matches.blocks, "match_blocks_skipped": matches.skipped_blocks}
        return dg.MaterializeResult(metadata=metadata)

    return harmonized


def _summary(result: MergeResult) -> str:
    if result.merge_id is None:
        return f"nothing changed since the last merge; {result.rows} rows"
    return (
        f"{result.files_added} file(s) added, {result.files_removed} removed; {result.keys_affected} keys recomputed: "
        f"{result.inserted} inserted, {result.updated} updated, {result.deleted} deleted; {result.rows} rows"
    )
