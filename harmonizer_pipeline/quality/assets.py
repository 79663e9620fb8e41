"""validated/<source> behind its blocking schema gate, and quality/profile_<source> with its drift
check: Dagster wiring over the steps in quality.validate and quality.profile."""

import dagster as dg
import pandera.pandas as pa

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.privacy.masking import mask_quoted
from harmonizer_pipeline.privacy.policy import MASKED, source_columns
from harmonizer_pipeline.quality.profile import Profiled, profile_file
from harmonizer_pipeline.quality.profiling import FileProfile
from harmonizer_pipeline.quality.statistics_display import statistics_markdown
from harmonizer_pipeline.quality.validate import Validation, validate_file
from harmonizer_pipeline.relations.enforcement import Enforced, check_file, enforced_relations
from harmonizer_pipeline.reports.pages import publish_file_page
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import (
    OWNERS,
    earlier_partitions,
    failing_as_dagster,
    file_check_spec,
    file_written,
    page_metadata,
    relation_check_result,
    relation_check_specs,
    table_metadata,
)

GATE_CHECK = "schema_gate"
QUARANTINE_CHECK = "quarantine"
DRIFT_CHECK = "drift"


def validated_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    key = wiring.key(naming.validated(source))
    config = settings.sources[source]
    max_reject_rate = config.max_reject_rate
    relations = enforced_relations(settings, naming.validated(source))
    gate_description = (
        f"Blocks downstream assets when {source}'s file has the wrong columns or its rejected share "
        f"exceeds max_reject_rate ({max_reject_rate:.2%}); warns when rows were quarantined within it."
    )

    @dg.asset(
        key=key,
        partitions_def=partitions,
        deps=[wiring.key(naming.raw(source))],
        metadata={"pandera_schema": config.pandera_schema or "(none: rows pass as text)"},
        check_specs=[
            file_check_spec(GATE_CHECK, key, partitions, gate_description, blocking=True),
            # The gate passes a file with rows quarantined within max_reject_rate (downstream goes on);
            # this check is where that shows as a warning, in the UI and to the alert channels.
            file_check_spec(
                QUARANTINE_CHECK,
                key,
                partitions,
                f"Warns when some of {source}'s rows were quarantined in quality.rejected_rows and the gate still let the file through.",
            ),
            *relation_check_specs(relations, key, partitions),
        ],
        group_name="quality",
        kinds={"pandera", "postgres"},
        owners=OWNERS,
        description=(
            f"{source}'s raw rows typed and checked by its pandera schema; rows that fail go to quality.rejected_rows with the check and value, never dropped."
        ),
    )
    def validated(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        schema = settings.schema_for(source) or pa.DataFrameSchema()
        tables = postgres.tables(chunk_rows=settings.ingest.chunk_rows)
        with failing_as_dagster():
            outcome = validate_file(tables, postgres.connect, context.run, source, context.partition_key, schema, max_reject_rate, settings.privacy)
            related = _relation_checks(settings, postgres, relations, source, context.partition_key, outcome.verdict.passed)
            page = publish_file_page(settings, postgres.connect, source, context.partition_key, landing.b2_api)
        metadata = file_written(context, tables, naming.validated(source), outcome.written) | page_metadata(page)
        return dg.MaterializeResult(metadata=metadata, check_results=[*_gate_checks(outcome), *related])

    return validated


def _relation_checks(
    settings: Settings, postgres: PostgresResource, relations: list[Enforced], source: str, partition_key: str, gate_passed: bool
) -> list[dg.AssetCheckResult]:
    """The file's enforced relationships (relations: in harmonizer.yaml), checked once it is validated."""
    if not relations:
        return []
    with postgres.connect() as conn:
        return [relation_check_result(o) for o in check_file(conn, settings, relations, source, partition_key, gate_passed=gate_passed)]


def _gate_checks(outcome: Validation) -> list[dg.AssetCheckResult]:
    """The quarantine warning and the blocking gate, as the validated step judged the file."""
    summary, decision, max_reject_rate = outcome.summary, outcome.verdict, outcome.max_reject_rate
    failures = [{"check": k, "column": c or "", "count": n} for (k, c), n in sorted(summary.failures.items(), key=str)]
    # Values leave the database for people here: PII ones masked, the message quoting them too.
    masked = [MASKED.failure(r, outcome.sample_pii.get(r["column"])) for r in summary.sample]
    sample = [{**r, "column": r["column"] or "", "failure_case": r["failure_case"] or ""} for r in masked]
    counts = {"rows": summary.rows, "rejected_rows": summary.rejected_rows, "reject_rate": summary.reject_rate, "max_reject_rate": max_reject_rate}
    quarantine = dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=decision.severity != "warn",
        severity=dg.AssetCheckSeverity.WARN,
        description=decision.description if decision.severity == "warn" else (
            "no row quarantined" if decision.passed else f"the gate blocked the file (see {GATE_CHECK})"),
        metadata=counts,
    )  # fmt: skip
    gate = dg.AssetCheckResult(
        check_name=GATE_CHECK,
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.WARN if decision.severity == "warn" else dg.AssetCheckSeverity.ERROR,
        description=decision.description,
        metadata={
            **counts,
            "structure_errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in summary.structure_errors) or "none"),
            "failures": table_metadata(failures, [("check", "string"), ("column", "string"), ("count", "int")]),
            "failing_rows_sample": table_metadata(
                sample, [("_row_number", "int"), ("column", "string"), ("check", "string"), ("failure_case", "string"), ("message", "string")]
            ),
        },
    )
    return [quarantine, gate]


def _drift_check(outcome: Profiled, pii: dict[str, str]) -> dg.AssetCheckResult:
    previous, findings = outcome.previous, outcome.findings
    if previous is None:
        return dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, description="first file of the source: nothing to compare with")
    return dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not findings,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(findings)} change(s) since {previous}" if findings else f"no drift since {previous}",
        metadata={
            "previous_partition": previous,
            "findings": table_metadata(
                [
                    {"kind": f.kind, "column": f.column, "detail": _masked_detail(f.detail, pii.get(f.column) if f.kind == "new_categories" else None)}
                    for f in findings
                ],
                [("kind", "string"), ("column", "string"), ("detail", "string")],
            ),
        },
    )


def _masked_detail(detail: str, kind: str | None) -> str:
    """A finding's or recommendation's words, the values they quote masked when the column is PII
    (new categories and clashing spellings are the ones that quote values)."""
    return detail if kind is None else mask_quoted(detail, kind)


def _columns_table(profile: FileProfile) -> dg.TableMetadataValue:
    rows = [
        {
            "column": c.name,
            "semantic_type": c.semantic_type,
            "nulls": c.nulls,
            "empties": c.empties,
            "distinct": c.distinct,
            "pattern": c.patterns[0][0] if c.patterns else "",
            "pii": ", ".join(c.pii),
            "quality_score": c.quality_score,
        }  # fmt: skip
        for c in profile.columns
    ]
    types = [
        ("column", "string"),
        ("semantic_type", "string"),
        ("nulls", "int"),
        ("empties", "int"),
        ("distinct", "int"),
        ("pattern", "string"),
        ("pii", "string"),
        ("quality_score", "float"),
    ]
    return table_metadata(rows, types)


def _profile_markdown(profile: FileProfile, pii: dict[str, str]) -> str:
    lines = [
        f"**{profile.rows} rows, quality score {profile.quality_score}**",
        "",
        "| column | type | nulls | empty | distinct | min | max | shape | PII | score | top values |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in profile.columns:
        kind = pii.get(c.name)

        def shown(value: str | None, kind: str | None = kind) -> object:
            return value if kind is None else MASKED.value(value, kind)

        top = ", ".join(f"`{shown(v)}` ({n})" for v, n in c.top_values[:3])
        shape = f"`{c.patterns[0][0]}`" if c.patterns else ""
        extremes = [shown(c.minimum) or "", shown(c.maximum) or ""]
        cells = [c.name, c.semantic_type, c.nulls, c.empties, c.distinct, *extremes, shape, ", ".join(c.pii), c.quality_score, top]
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _recommendations_markdown(recommendations, pii: dict[str, str]) -> str:
    if not recommendations:
        return "No issues found."
    parts = []
    for r in recommendations:
        parts.append(f"### `{r.column}`: {r.issue}\n{_masked_detail(r.detail, pii.get(r.column))}\n\n```python\n{r.pandas}\n```\n\n```sql\n{r.sql}\n```")
    return "\n\n".join(parts)


def profile_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    key = wiring.key(naming.profile(source))

    @dg.asset(
        key=key,
        partitions_def=partitions,
        deps=[wiring.key(naming.raw(source))],
        check_specs=[
            file_check_spec(
                DRIFT_CHECK,
                key,
                partitions,
                "Warns when the file's columns, types, missing or distinct shares, or categories differ from the previous file's.",
            )
        ],
        group_name="quality",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"Column profile of each {source} file as landed (types, counts, shapes, PII, quality score, statistics) and "
            "recommended fixes; history in quality.column_profiles, quality.column_statistics, quality.recommendations and quality.schema_history."
        ),
    )
    def profile(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        tables = postgres.tables(chunk_rows=settings.ingest.chunk_rows)
        earlier = earlier_partitions(context, partitions)
        with failing_as_dagster():
            outcome = profile_file(tables, postgres.connect, context.run, source, context.partition_key, earlier)
            page = publish_file_page(settings, postgres.connect, source, context.partition_key, landing.b2_api)
        file_profile, recommendations = outcome.profile, outcome.recommendations
        pii = source_columns(settings.privacy, source, {c.name: c.pii for c in file_profile.columns})
        return dg.MaterializeResult(
            metadata={
                "rows": file_profile.rows,
                "quality_score": file_profile.quality_score,
                "columns": _columns_table(file_profile),
                "profile": dg.MetadataValue.md(_profile_markdown(file_profile, pii)),
                "statistics": dg.MetadataValue.md(statistics_markdown(outcome.statistics, pii, MASKED)),
                "recommendations": dg.MetadataValue.md(_recommendations_markdown(recommendations, pii)),
                "recommendation_count": len(recommendations),
                **page_metadata(page),
            },
            check_results=[_drift_check(outcome, pii)],
        )

    return profile
