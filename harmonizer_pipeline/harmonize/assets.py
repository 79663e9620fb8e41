"""harmonized/<target>: every mapped source's validated rows in the target's canonical columns,
standardized, one row per business key (survivorship), with lineage; stored by the IO manager
with the business key as primary key, beside its duplicates and fuzzy match candidates."""

import time

import dagster as dg
import pandas as pd
from psycopg import sql

from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.dedup import deduplicate, match_candidates
from harmonizer_pipeline.harmonize.mapping import LINEAGE, REJECTION_COLUMNS, MappingError, map_source
from harmonizer_pipeline.ingest import registry
from harmonizer_pipeline.ingest.assets import PARTITION_COLUMN
from harmonizer_pipeline.ops import audit, metrics
from harmonizer_pipeline.quality import store as quality_store
from harmonizer_pipeline.quality.assets import OWNERS, table_metadata
from harmonizer_pipeline.resources import PostgresResource, table_store
from harmonizer_pipeline.resources.postgres import adbc_connection
from harmonizer_pipeline.resources.table_store import DataFrameChunks
from harmonizer_pipeline.settings import Settings


def _left_out_partitions(conn, sources: list[str], loaded: list) -> dict[str, tuple[list[str], list[str]]]:
    """Per source, (files whose latest gate decision was an error, earlier versions of files
    landed again under the same name): their rows stay out of the target."""
    failed = {(s, p) for s, p, severity, _ in quality_store.latest_gate_results(conn) if severity == "error"}
    # The latest landing of a name is its current version, even when its content is an earlier one's (a revert).
    latest = {(e.source, e.object_key): e.partition_key for e in sorted(loaded, key=lambda e: e.id)}
    return {
        source: (
            sorted(p for s, p in failed if s == source),
            sorted(e.partition_key for e in loaded if e.source == source and latest[(e.source, e.object_key)] != e.partition_key),
        )
        for source in sources
    }


def _validated_rows(url: str, source: str, left_out: list[str]) -> pd.DataFrame | None:
    with adbc_connection(url) as conn:
        if not table_store.table_exists(conn, "validated", source):
            return None
        where = sql.SQL("NOT ({})").format(table_store.partition_filter([(PARTITION_COLUMN, left_out)])) if left_out else None
        return table_store.read_frame(conn, "validated", source, None, where)


# A target is rebuilt when a file of one of its sources passed its gate (a file the gate blocked
# triggers nothing, and its rows stay out anyway). Unlike eager(), files that never loaded do not
# hold the target back: it takes all validated rows there are. A tick may fall between a file's
# materialization and its gate result, so a gate that passes after the load triggers too.
_GATE_PASSED = dg.AutomationCondition.all_checks_match(dg.AutomationCondition.check_passed(), blocking_only=True)
AFTER_GATED_LOADS = (
    dg.AutomationCondition.any_deps_match(
        (dg.AutomationCondition.newly_updated() & _GATE_PASSED) | _GATE_PASSED.newly_true()
    ).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after a gated load")


def harmonized_target_asset(settings: Settings, target_name: str) -> dg.AssetsDefinition:
    target = settings.targets[target_name]
    sources = settings.sources_of(target_name)
    key = list(target.key)

    @dg.asset(
        key=["harmonized", target_name],
        deps=[dg.AssetKey(["validated", s]) for s in sources],
        automation_condition=AFTER_GATED_LOADS,
        group_name="harmonize",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"{target.description or target_name}: the validated rows of {', '.join(sources) or 'no source yet'} mapped into "
            f"{len(target.columns)} canonical columns, standardized, one row per {', '.join(key)} ({target.survivorship} wins), "
            f"with lineage. Duplicates in harmonized.{store.duplicates_table(target_name)}, fuzzy candidates in "
            f"harmonized.{store.candidates_table(target_name)}, values that could not be standardized in quality.rejected_rows."
        ),
    )
    def harmonized(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.Output:
        step = audit.AuditedStep(postgres.connect, audit.entry(context.run, "harmonize", "pending", f"harmonized/{target_name}"))
        with step:
            return harmonize(context, postgres, step)

    def harmonize(context: dg.AssetExecutionContext, postgres: PostgresResource, step: audit.AuditedStep) -> dg.Output:
        started = time.perf_counter()
        url, run_id = postgres.url(), context.run.run_id
        with postgres.connect() as conn:
            registry.ensure_registry(conn)
            quality_store.ensure_quality_tables(conn)
            loaded = [e for e in registry.entries(conn) if e.source in sources and e.status in registry.IN_RAW]
            left_out = _left_out_partitions(conn, sources, loaded)
        # Landing order of every file: the later file is the "latest" for survivorship.
        file_rank = {(e.source, e.object_key): i for i, e in enumerate(sorted(loaded, key=lambda e: e.id))}
        partitions = {(e.source, e.object_key): e.partition_key for e in loaded}
        mapped, rejections, per_source = [], [], []
        for source in sources:
            blocked, superseded = left_out[source]
            frame = _validated_rows(url, source, blocked + superseded)
            if frame is None:
                context.log.info(f"{source}: validated.{source} does not exist yet; nothing to map")
                continue
            try:
                rows = map_source(frame, source, settings.sources[source].mapping, target)
            except MappingError as err:
                raise dg.Failure(str(err)) from None
            del frame  # the source's validated rows are not needed once mapped
            mapped.append(rows.frame)
            rejections.append(rows.rejections.assign(_source=source))
            per_source.append(
                {"source": source, "rows_in": rows.rows_in, "rows_mapped": len(rows.frame), "left_out": rows.rows_left_out,
                 "rejected_values": len(rows.rejections), "blocked_files": len(blocked), "superseded_files": len(superseded)}
            )  # fmt: skip
        columns = [*target.columns, *LINEAGE]
        union = pd.concat(mapped, ignore_index=True) if mapped else pd.DataFrame({c: pd.Series([], dtype="object") for c in columns})
        mapped.clear()
        result = deduplicate(union, target, file_rank)
        rows_mapped = len(union)
        del union
        matches = match_candidates(result.survivors, key, target.match) if target.match else None
        all_rejections = pd.concat(rejections, ignore_index=True) if rejections else pd.DataFrame(columns=["_source", *REJECTION_COLUMNS])
        with postgres.connect() as conn:
            store.replace_rejections(conn, sources, run_id, all_rejections, partitions)

        def finish(conn, _result) -> None:
            # In the write's transaction: the key constraint and the side tables commit with the rows.
            store.add_primary_key(conn, target_name, key)
            store.replace_side_table(conn, store.duplicates_table(target_name), result.duplicates)
            if matches is not None:
                store.replace_side_table(conn, store.candidates_table(target_name), matches.candidates)
            step.done(conn, "done", rows_in=rows_mapped, rows_out=len(result.survivors), detail=f"{result.merged_rows} duplicate rows merged")
            metrics.record(conn, run_id, target_name, None, f"harmonized/{target_name}", {
                "rows": len(result.survivors), "rows_mapped": rows_mapped, "merged_rows": result.merged_rows,
                "rejected_values": len(all_rejections), "duration_seconds": time.perf_counter() - started,
            })  # fmt: skip

        metadata = {
            "business_key": ", ".join(key),
            "survivorship": target.survivorship,
            "rows_mapped": rows_mapped,
            "duplicate_keys": result.groups,
            "merged_rows": result.merged_rows,
            "rejected_values": len(all_rejections),
            "sources": table_metadata(
                per_source,
                [("source", "string"), ("rows_in", "int"), ("rows_mapped", "int"), ("left_out", "int"), ("rejected_values", "int"),
                 ("blocked_files", "int"), ("superseded_files", "int")],
            ),
        }
        if matches is not None:
            metadata |= {"match_candidates": len(matches.candidates), "match_blocks_skipped": matches.skipped_blocks}
        # A write that fails outside finish() is the harmonization's failure too.
        return dg.Output(DataFrameChunks(iter([result.survivors]), on_written=finish, on_closed=step.closed), metadata=metadata)

    return harmonized
