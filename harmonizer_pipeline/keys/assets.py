"""keys/<source> (minimal keys, near-keys, duplicates of each file), keys/comparison_<source>
(each file against the previous one on the key) and keys/file_comparisons (two files of a source
chosen in the run config of the job compare_files): Dagster wiring over the steps in keys.analysis."""

from typing import Any

import dagster as dg

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.keys.analysis import Compared, FilesCompared, KeyFindings, analyse_file, compare_file, compare_files
from harmonizer_pipeline.keys.comparison import Comparison, Difference
from harmonizer_pipeline.keys.violations import Violation
from harmonizer_pipeline.relations.dependencies import VIOLATION_LIMIT, BrokenRow, described
from harmonizer_pipeline.reports.pages import publish_file_page
from harmonizer_pipeline.reports.summary import file_text
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.services import StageError
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import GATED_EAGER, OWNERS, earlier_partitions, failing_as_dagster, page_metadata, table_metadata

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
            f"{source} file's validated rows (also the rows breaking each near-key) and its functional dependencies, exact and approximate "
            "(with the rows breaking them); in keys.key_summary, keys.unique_keys, keys.near_keys, keys.duplicate_groups, keys.dependencies, "
            "keys.dependency_rows."
        ),
    )
    def keys(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        with failing_as_dagster():
            found = analyse_file(postgres.tables(), postgres.connect, context.run, source, context.partition_key, declared, options, settings.privacy)
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
            f"Each {source} file against the previous one on the key: schema differences, rows added, removed, changed (per "
            "column) and unchanged; counts in keys.comparisons, every difference in keys.comparison_rows. Its metadata `summary` "
            "tells the file's story in plain English: what arrived, the gate, the profile's findings, the key and the drift; `report` "
            f"is the file's HTML page, under {settings.export_directory()}/pages/{source}/."
        ),
    )
    def comparison(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        earlier = earlier_partitions(context, partitions)
        with failing_as_dagster():
            compared = compare_file(
                postgres.tables(), postgres.connect, context.run, source, context.partition_key, settings.sources[source].key, earlier, settings.privacy
            )
            with postgres.connect() as conn:
                summary = file_text(conn, settings, source, context.partition_key)
            page = publish_file_page(settings, postgres.connect, source, context.partition_key, landing.b2_api)
        return dg.MaterializeResult(metadata={"summary": dg.MetadataValue.md(summary), **page_metadata(page), **_comparison_metadata(compared)})

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
        "near_key_violations": dg.MetadataValue.md(_violations_markdown(found.near_key_sample)),
        "functional_dependencies": table_metadata(
            [
                {"lhs": ", ".join(d.lhs), "rhs": d.rhs, "exact": d.exact, "error": round(d.error, 6), "violating_rows": d.violating_rows}
                for d in found.dependencies
            ],
            [("lhs", "string"), ("rhs", "string"), ("exact", "bool"), ("error", "float"), ("violating_rows", "int")],
        ),
        "dependency_violations": dg.MetadataValue.md(_broken_markdown(found.broken_sample)),
    }


def _broken_markdown(sample: list[BrokenRow]) -> str:
    """The first rows breaking each approximate dependency (values as analyse_file masked them)."""
    rows = [[described(r), str(r.row_number), ", ".join(f"{c}={_cell(v)}" for c, v in r.lhs_values.items()), _cell(r.value), _cell(r.majority)] for r in sample]
    return _markdown(
        ["dependency", "row", "LHS values", "value", "most rows hold"], rows, "no approximate functional dependency (or none is broken)",
        f"Every such row (up to {VIOLATION_LIMIT:,} per dependency): keys.dependency_rows.",
    )  # fmt: skip


def _violations_markdown(sample: list[Violation]) -> str:
    """The first groups breaking each near-key (values as analyse_file masked them)."""
    rows = [[", ".join(g.columns), str(g.group), ", ".join(f"{c}={_cell(v)}" for c, v in g.values.items()), ", ".join(map(str, g.rows))] for g in sample]
    return _markdown(
        ["near-key", "group", "values", "rows"],
        rows,
        "no near-key is broken (or there are no near-keys)",
        "Every group: keys.duplicate_groups, kind `near_key`.",
    )


def _markdown(header: list[str], rows: list[list[str]], empty: str, footer: str) -> str:
    """A markdown table for the UI, then a line saying where every row is; `empty` without rows."""
    if not rows:
        return empty
    lines = [f"| {' | '.join(header)} |", f"|{' --- |' * len(header)}", *(f"| {' | '.join(row)} |" for row in rows)]
    return "\n".join(lines) + f"\n\n{footer}"


def _cell(value: object) -> str:
    """A value in a markdown table cell: NULL as NULL, text quoted, pipes escaped."""
    return "NULL" if value is None else repr(value).replace("|", "\\|")


def _comparison_metadata(compared: Compared) -> dict[str, Any]:
    result, previous = compared.result, compared.previous
    if result is None:
        # Not compared: why, and with which file when the comparison itself failed.
        return {"comparison": compared.reason, **({"previous_partition": previous} if previous else {})}
    return {"previous_partition": previous, **_counts_metadata(result)}


def _counts_metadata(result: Comparison) -> dict[str, Any]:
    """A comparison's counts and schema differences (no values)."""
    return {
        "key": ", ".join(result.key),
        **result.counts,
        "added_columns": ", ".join(result.added_columns) or "(none)",
        "removed_columns": ", ".join(result.removed_columns) or "(none)",
        "retyped_columns": table_metadata(
            [{"column": c, "type_before": before, "type_after": after} for c, before, after in result.retyped_columns],
            [("column", "string"), ("type_before", "string"), ("type_after", "string")],
        ),
        "changed_columns": table_metadata(
            [{"column": c, "changed_rows": n} for c, n in result.changed_columns.items()], [("column", "string"), ("changed_rows", "int")]
        ),
    }


class CompareFilesConfig(dg.Config):
    source: str
    """The source both files landed in."""
    file_a: str
    """The earlier file ("before"): its name (object key) or its partition key."""
    file_b: str
    """The later file ("after"): its name (object key) or its partition key."""
    key: list[str] | None = None
    """The key columns; default: the source's declared key, else the key suggested for file_b."""


def file_comparisons_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=wiring.key(naming.file_comparisons()),
        group_name="keys",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            "Two files of a source, chosen in the run config of the job compare_files, compared on a key: rows added, removed, "
            "changed (per column) and unchanged, schema differences; in keys.file_comparisons and keys.comparison_rows."
        ),
    )
    def file_comparisons(context: dg.AssetExecutionContext, config: CompareFilesConfig, postgres: PostgresResource) -> dg.MaterializeResult:
        with failing_as_dagster():
            if config.source not in settings.sources:
                raise StageError(f"source: no source {config.source!r} in harmonizer.yaml (sources: {', '.join(settings.sources) or 'none'})")
            compared = compare_files(
                postgres.tables(), postgres.connect, context.run, config.source, config.file_a, config.file_b, config.key,
                settings.sources[config.source].key, settings.privacy,
            )  # fmt: skip
        context.log.info(f"comparison {compared.comparison_id}: {compared.result.counts}")
        return dg.MaterializeResult(metadata=_files_metadata(config.source, compared))

    return file_comparisons


def _files_metadata(source: str, compared: FilesCompared) -> dict[str, Any]:
    return {
        "comparison_id": compared.comparison_id,
        "source": source,
        "file_a": compared.file_a,
        "file_b": compared.file_b,
        **_counts_metadata(compared.result),
        "differences_sample": dg.MetadataValue.md(_differences_markdown(compared.sample)),
    }


def _differences_markdown(sample: list[Difference]) -> str:
    """The first differences of each kind (PII values masked by compare_files)."""
    rows = []
    for r in sample:
        changed = r.kind == "changed"
        key = ", ".join(f"{c}={_cell(v)}" for c, v in r.key.items())
        rows.append([r.kind, key, r.column or "", _cell(r.before) if changed else "", _cell(r.after) if changed else ""])
    return _markdown(["kind", "key", "column", "before", "after"], rows, "no differences", "Every difference: keys.comparison_rows, by comparison_id.")
