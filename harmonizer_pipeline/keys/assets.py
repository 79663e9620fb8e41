"""keys/<source> (minimal keys, near-keys, duplicates of each file) and keys/comparison_<source>
(each file against the previous one on the key): Dagster wiring over the steps in keys.analysis."""

from typing import Any

import dagster as dg

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.keys.analysis import Compared, KeyFindings, analyse_file, compare_file
from harmonizer_pipeline.reports.summary import file_text
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import GATED_EAGER, OWNERS, earlier_partitions, failing_as_dagster, table_metadata

SHOWN_KEYS = 50  # keys listed in the UI metadata (all are in keys.unique_keys)


def keys_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    declared = settings.sources[source].key
    options = settings.keys

    @dg.asset(
        key=wiring.key(naming.keys(source)),
        partitions_def=partitions,
        deps=[wiring.key(naming.validated(source))],
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
        with failing_as_dagster():
            found = analyse_file(postgres.tables(), postgres.connect, context.run, source, context.partition_key, declared, options)
        if found.engine_output:
            context.log.debug(f"Desbordante printed:\n{found.engine_output}")
        analysis = found.analysis
        context.log.info(f"{source}: {len(analysis.minimal_keys)} minimal keys in {analysis.seconds} s ({analysis.timings})")
        return dg.MaterializeResult(metadata=_keys_metadata(found))

    return keys


def comparison_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=wiring.key(naming.comparison(source)),
        partitions_def=partitions,
        # After the profile too: the file's summary, in this asset's metadata, tells its findings and drift.
        deps=[wiring.key(naming.keys(source)), wiring.key(naming.profile(source))],
        automation_condition=GATED_EAGER,
        group_name="keys",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"Each {source} file against the previous one on the key: schema differences, keys only in either, keys in "
            "both with changed values (per column), whether the key holds in each; in keys.comparisons. Its metadata `summary` "
            "tells the file's story in plain English: what arrived, the gate, the profile's findings, the key and the drift."
        ),
    )
    def comparison(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        earlier = earlier_partitions(context, partitions)
        with failing_as_dagster():
            compared = compare_file(postgres.tables(), postgres.connect, context.run, source, context.partition_key, settings.sources[source].key, earlier)
            with postgres.connect() as conn:
                summary = file_text(conn, settings, source, context.partition_key)
        return dg.MaterializeResult(metadata={"summary": dg.MetadataValue.md(summary), **_comparison_metadata(compared)})

    return comparison


def _keys_metadata(found: KeyFindings) -> dict[str, Any]:
    analysis = found.analysis
    return {
        "rows": analysis.rows,
        "minimal_key_count": len(analysis.minimal_keys),
        "suggested_key": ", ".join(found.suggested) or "(none)",
        "suggestion": analysis.suggestion.reason,
        "duplicate_rows": analysis.duplicate_rows,
        "key_duplicate_groups": found.key_duplicate_groups,
        "key_duplicate_rows": found.key_duplicate_rows,
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


def _comparison_metadata(compared: Compared) -> dict[str, Any]:
    result, previous = compared.result, compared.previous
    if result is None:
        # Not compared: why, and with which file when the comparison itself failed.
        return {"comparison": compared.reason, **({"previous_partition": previous} if previous else {})}
    return {
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
