"""keys/<source> (minimal keys, near-keys, duplicates of each file) and keys/comparison_<source>
(each file against the previous one on the key)."""

import time
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from harmonizer_pipeline.bookkeeping import keys as key_tables
from harmonizer_pipeline.bookkeeping import metrics
from harmonizer_pipeline.bookkeeping.registry import RegistryEntry
from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.keys.comparison import ComparisonError, compare_frames
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, KeyDiscoveryError, analyze, duplicate_groups
from harmonizer_pipeline.quality.assets import partition_rows
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.services import audit_file, file_columns
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import stored_columns
from harmonizer_pipeline.storage.postgres import adbc_connection
from harmonizer_pipeline.storage.reads import read_frame
from harmonizer_pipeline.wiring import GATED_EAGER, OWNERS, table_metadata

LINEAGE = ["_row_number", "_source_file", "_load_id"]
SHOWN_KEYS = 50  # keys listed in the UI metadata (all are in keys.unique_keys)


def _validated_file(postgres: PostgresResource, source: str, partition_key: str, lineage: Sequence[str]) -> tuple[pd.DataFrame, list[str], RegistryEntry]:
    """The file's validated rows (its own columns, typed, and the `lineage` columns asked for), those
    columns and its registry entry."""
    with postgres.connect() as conn:
        entry, columns = file_columns(conn, source, partition_key)
        stored = {spec.name for spec in stored_columns(conn, "validated", source).values()}
    columns = [c for c in columns if c in stored]
    with adbc_connection(postgres.url()) as conn:
        frame = read_frame(conn, "validated", source, [*columns, *lineage], partition_rows(partition_key))
    return frame, columns, entry


def _with_lineage(postgres: PostgresResource, source: str, partition_key: str, groups: pd.DataFrame) -> pd.DataFrame:
    """The grouped rows with the rest of their lineage, by `_row_number` (which is unique in a
    file). Read only once there are groups: on the bench's 1M rows the two text columns were a
    third of the read's 1.5 s."""
    with adbc_connection(postgres.url()) as conn:
        lineage = read_frame(conn, "validated", source, LINEAGE, partition_rows(partition_key))
    found = lineage.set_index("_row_number").reindex(groups["_row_number"])
    return groups.assign(**{name: found[name].array for name in LINEAGE[1:]})


def _groups(frame: pd.DataFrame, kind: str, columns: list[str]) -> pd.DataFrame:
    found = duplicate_groups(frame, columns)
    # pandas-stubs type assign's values as scalars or sequences of scalars; pandas takes any
    # list-like, and a list of lists makes the object column wanted here.
    return found.assign(_kind=kind, _key_columns=[columns] * len(found))  # pyright: ignore[reportArgumentType]


def keys_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    declared = settings.sources[source].key
    options = settings.keys

    @dg.asset(
        key=["keys", source],
        partitions_def=partitions,
        deps=[dg.AssetKey(["validated", source])],
        automation_condition=GATED_EAGER,
        group_name="keys",
        kinds={"desbordante", "postgres"},
        owners=OWNERS,
        description=(
            f"Minimal unique keys (exact, HPIValid's method; Desbordante's for wide tables), near-keys, the suggested key and duplicate groups of each "
            f"{source} file's validated rows; in keys.key_summary, keys.unique_keys, keys.near_keys, keys.duplicate_groups."
        ),
    )
    def keys(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        started = time.perf_counter()
        partition_key, run_id = context.partition_key, context.run.run_id
        frame, columns, entry = _validated_file(postgres, source, partition_key, ["_row_number"])
        try:
            with captured_output(ENGINE_LOGGERS) as engine:
                analysis = analyze(frame[columns], options.max_size, declared, options.null_equals_null)
        except KeyDiscoveryError as err:
            raise dg.Failure(f"{source}: {err}") from None
        if engine.text.strip():
            context.log.debug(f"Desbordante printed:\n{engine.text.strip()}")
        # Without repeated rows (the analysis counted them) there are no row groups to look for, nor
        # key groups under a key that tells every row apart with NULL equal to NULL, as groups take it.
        groups = [_groups(frame if analysis.duplicate_rows else frame.iloc[:0], "row", columns)]
        suggested = list(analysis.suggestion.columns or [])
        if suggested:
            key_holds = analysis.suggestion.unique and analysis.null_equals_null
            groups.append(_groups(frame.iloc[:0] if key_holds else frame, "key", suggested))
        all_groups = pd.concat(groups, ignore_index=True)
        if len(all_groups):
            all_groups = _with_lineage(postgres, source, partition_key, all_groups)
        key_groups = all_groups[all_groups["_kind"] == "key"]
        # The share of rows the suggested key tells apart (1.0 for a key; NaN without one).
        excess = len(key_groups) - key_groups["_group"].nunique()
        uniqueness = 1 - excess / analysis.rows if suggested and analysis.rows else float("nan")
        with postgres.connect() as conn:
            key_tables.save_analysis(conn, source, partition_key, run_id, analysis, all_groups)
            audit_file(conn, context.run, "keys", f"keys/{source}", entry, rows_in=analysis.rows, detail=(
                f"key {', '.join(suggested) or '(none)'}; {len(analysis.minimal_keys)} minimal keys, {analysis.duplicate_rows} repeated rows"
            ))  # fmt: skip
            metrics.record(conn, run_id, source, partition_key, f"keys/{source}", {
                "key_uniqueness": uniqueness, "minimal_keys": len(analysis.minimal_keys), "duplicate_rows": analysis.duplicate_rows,
                "duration_seconds": time.perf_counter() - started,
            })  # fmt: skip
        context.log.info(f"{source}: {len(analysis.minimal_keys)} minimal keys in {analysis.seconds} s ({analysis.timings})")
        return dg.MaterializeResult(
            metadata={
                "rows": analysis.rows,
                "minimal_key_count": len(analysis.minimal_keys),
                "suggested_key": ", ".join(suggested) or "(none)",
                "suggestion": analysis.suggestion.reason,
                "duplicate_rows": analysis.duplicate_rows,
                "key_duplicate_groups": int(key_groups["_group"].nunique()),
                "key_duplicate_rows": len(key_groups),
                "seconds": analysis.seconds,
                "minimal_keys": table_metadata(
                    [{"columns": ", ".join(k.columns), "size": len(k.columns), "has_nulls": k.has_nulls} for k in analysis.minimal_keys[:SHOWN_KEYS]],
                    [("columns", "string"), ("size", "int"), ("has_nulls", "bool")],
                ),
                "near_keys": table_metadata(
                    [
                        {"columns": ", ".join(k.columns), "uniqueness": k.uniqueness, "duplicate_groups": k.duplicate_groups, "excess_rows": k.excess_rows}
                        for k in analysis.near_keys
                    ],
                    [("columns", "string"), ("uniqueness", "float"), ("duplicate_groups", "int"), ("excess_rows", "int")],
                ),
            }
        )

    return keys


def comparison_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=["keys", f"comparison_{source}"],
        partitions_def=partitions,
        deps=[dg.AssetKey(["keys", source])],
        automation_condition=GATED_EAGER,
        group_name="keys",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"Each {source} file against the previous one on the key: schema differences, keys only in either, keys in "
            "both with changed values (per column), whether the key holds in each; in keys.comparisons."
        ),
    )
    def comparison(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        partition_key, run_id = context.partition_key, context.run.run_id
        asset = f"keys/comparison_{source}"
        assert partitions.name is not None  # files_partitions names each one
        keys = context.instance.get_dynamic_partitions(partitions.name)
        earlier = keys[: keys.index(partition_key)] if partition_key in keys else []
        with postgres.connect() as conn:
            key = settings.sources[source].key or key_tables.suggested_key(conn, source, partition_key)
            analysed = key_tables.analysed_partitions(conn, source, earlier)
            previous = next((p for p in reversed(earlier) if p in analysed), None)
            if previous is None or not key:
                # Not compared: the audit row says why.
                reason = "first file of the source: nothing to compare with" if previous is None else "no key to compare on"
                audit_file(conn, context.run, "compare", asset, file_columns(conn, source, partition_key)[0], detail=reason)
                return dg.MaterializeResult(metadata={"comparison": reason})
        before, _, _ = _validated_file(postgres, source, previous, [])
        after, _, entry = _validated_file(postgres, source, partition_key, [])
        try:
            result = compare_frames(before, after, key)
        except ComparisonError as err:
            with postgres.connect() as conn:
                audit_file(conn, context.run, "compare", asset, entry, detail=str(err))
            return dg.MaterializeResult(metadata={"comparison": str(err), "previous_partition": previous})
        with postgres.connect() as conn:
            # The audit row commits with the comparison it describes.
            key_tables.save_comparison(conn, source, partition_key, previous, run_id, result)
            audit_file(conn, context.run, "compare", asset, entry, detail=(
                f"{result.only_in_a} key(s) only in {previous}, {result.only_in_b} only in this file, {result.changed} changed"
            ))  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "previous_partition": previous,
                "key": ", ".join(result.key),
                "only_in_previous": result.only_in_a,
                "only_in_current": result.only_in_b,
                "in_both": result.in_both,
                "changed": result.changed,
                "key_holds_previous": result.key_holds_a,
                "key_holds_current": result.key_holds_b,
                "added_columns": ", ".join(result.added_columns) or "(none)",
                "removed_columns": ", ".join(result.removed_columns) or "(none)",
                "changed_columns": table_metadata(
                    [{"column": c, "changed_keys": n} for c, n in result.changed_columns.items()],
                    [("column", "string"), ("changed_keys", "int")],
                ),
            }
        )

    return comparison
