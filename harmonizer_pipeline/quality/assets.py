"""validated/<source> behind its blocking schema gate, and quality/profile_<source> with its drift check."""

import time

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
from psycopg import sql

from harmonizer_pipeline.bookkeeping import gates, metrics, profiles, registry, rejected
from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.quality.drift import compare_profiles
from harmonizer_pipeline.quality.gate import PartitionValidation, unique_column_sets, uniqueness_rejections, verdict
from harmonizer_pipeline.quality.profiling import FileProfile, count_text, profile_column
from harmonizer_pipeline.quality.recommendations import recommend_column
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.services import audit_file, file_columns
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import stored_columns
from harmonizer_pipeline.storage.frame_codec import qualified
from harmonizer_pipeline.storage.postgres import adbc_connection
from harmonizer_pipeline.storage.reads import partition_filter, read_chunks, read_frame
from harmonizer_pipeline.storage.writes import DataFrameChunks
from harmonizer_pipeline.wiring import OWNERS, file_check_spec, table_metadata

GATE_CHECK = "schema_gate"
QUARANTINE_CHECK = "quarantine"
DRIFT_CHECK = "drift"
PROFILE_READ_CELLS = 20_000_000  # raw values profiled at once: columns are read in groups this size
# Lineage columns the raw step gives every row of a file alike.
FILE_CONSTANTS = {"_source_file", "_load_id", "_ingested_at", PARTITION_COLUMN}


def partition_rows(partition_key: str):
    """SQL condition for one file's rows."""
    return partition_filter([(PARTITION_COLUMN, [partition_key])])


def first_row(source: str, where: sql.Composable) -> sql.Composable:
    """SQL condition for one of the rows `where` selects in raw/<source> (each file's
    _row_number is its own)."""
    row_number = sql.Identifier("_row_number")
    return sql.SQL("{} AND {} = (SELECT {} FROM {} WHERE {} LIMIT 1)").format(where, row_number, row_number, qualified("raw", source), where)


def validated_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey(["validated", source])
    config = settings.sources[source]
    max_reject_rate = config.max_reject_rate
    gate_description = (
        f"Blocks downstream assets when {source}'s file has the wrong columns or its rejected share "
        f"exceeds max_reject_rate ({max_reject_rate:.2%}); warns when rows were quarantined within it."
    )

    @dg.asset(
        key=key,
        partitions_def=partitions,
        deps=[dg.AssetKey(["raw", source])],
        # Not "schema": the IO manager takes that key for the PostgreSQL schema.
        metadata={"partition_expr": PARTITION_COLUMN, "pandera_schema": config.pandera_schema or "(none: rows pass as text)"},
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
        ],
        group_name="quality",
        kinds={"pandera", "postgres"},
        owners=OWNERS,
        description=(
            f"{source}'s raw rows typed and checked by its pandera schema; rows that fail go to quality.rejected_rows with the check and value, never dropped."
        ),
    )
    def validated(context: dg.AssetExecutionContext, postgres: PostgresResource):
        started = time.perf_counter()
        partition_key, run_id = context.partition_key, context.run.run_id
        schema = settings.schema_for(source) or pa.DataFrameSchema()
        with postgres.connect() as conn:
            entry, columns = file_columns(conn, source, partition_key)
        where = partition_rows(partition_key)
        url = postgres.url()
        unique = sorted({c for _, group, _ in unique_column_sets(schema) for c in group if c in columns})
        duplicates = pd.DataFrame()
        if unique:  # uniqueness holds over the whole file: one pass over its unique columns first
            with adbc_connection(url) as conn:
                duplicates = uniqueness_rejections(schema, read_frame(conn, "raw", source, ["_row_number", *unique], where))
        writer = rejected.RejectedRowsWriter(url, source, partition_key, run_id)
        validation = PartitionValidation(schema, duplicates, writer.write)

        def raw_chunks():
            with adbc_connection(url) as conn:
                # The file's own columns and the lineage ones, in the raw table's order.
                wanted = [s.name for s in stored_columns(conn, "raw", source).values() if s.name in columns or s.name.startswith("_")]
                constant = [c for c in wanted if c in FILE_CONSTANTS]
                # Read once, not a million times: the raw step stamps them on every row of the file.
                stamp = read_frame(conn, "raw", source, constant, first_row(source, where)) if constant else None
                per_row = [c for c in wanted if c not in FILE_CONSTANTS]
                for chunk in read_chunks(conn, "raw", source, per_row, where, settings.ingest.chunk_rows):
                    if stamp is not None:
                        chunk = chunk.join(stamp.iloc[np.zeros(len(chunk), np.intp)].set_axis(chunk.index))
                    yield chunk[wanted]

        # Rejected rows commit just before the valid ones, inside the write's transaction.
        yield dg.Output(DataFrameChunks(validation.run(raw_chunks()), on_written=writer.commit, on_closed=writer.close))
        summary = validation.summary
        decision = verdict(summary, max_reject_rate)
        with postgres.connect() as conn:
            gates.record_gate(conn, source, partition_key, run_id, summary, max_reject_rate, decision)
            registry.record_gate(conn, entry.id, decision.passed, f"blocked by its schema gate: {decision.description}")
            audit_file(
                conn, context.run, "gate", f"validated/{source}", entry, decision.severity,
                rows_in=summary.rows, rows_out=summary.rows - summary.rejected_rows, detail=decision.description,
            )  # fmt: skip
            metrics.record(conn, run_id, source, partition_key, f"validated/{source}", {
                "rows": summary.rows, "rejected_rows": summary.rejected_rows, "rejected_share": summary.reject_rate,
                "duration_seconds": time.perf_counter() - started,
            })  # fmt: skip
        failures = [{"check": k, "column": c or "", "count": n} for (k, c), n in sorted(summary.failures.items(), key=str)]
        sample = [{**r, "column": r["column"] or "", "failure_case": r["failure_case"] or ""} for r in summary.sample]
        counts = {"rows": summary.rows, "rejected_rows": summary.rejected_rows, "reject_rate": summary.reject_rate, "max_reject_rate": max_reject_rate}
        yield dg.AssetCheckResult(
            check_name=QUARANTINE_CHECK,
            passed=decision.severity != "warn",
            severity=dg.AssetCheckSeverity.WARN,
            description=decision.description if decision.severity == "warn" else (
                "no row quarantined" if decision.passed else f"the gate blocked the file (see {GATE_CHECK})"),
            metadata=counts,
        )  # fmt: skip
        yield dg.AssetCheckResult(
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

    return validated


def _profile_markdown(profile: FileProfile) -> str:
    lines = [
        f"**{profile.rows} rows, quality score {profile.quality_score}**",
        "",
        "| column | type | nulls | empty | distinct | min | max | shape | PII | score | top values |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in profile.columns:
        top = ", ".join(f"`{v}` ({n})" for v, n in c.top_values[:3])
        shape = f"`{c.patterns[0][0]}`" if c.patterns else ""
        cells = [c.name, c.semantic_type, c.nulls, c.empties, c.distinct, c.minimum or "", c.maximum or "", shape, ", ".join(c.pii), c.quality_score, top]
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def _recommendations_markdown(recommendations) -> str:
    if not recommendations:
        return "No issues found."
    parts = []
    for r in recommendations:
        parts.append(f"### `{r.column}`: {r.issue}\n{r.detail}\n\n```python\n{r.pandas}\n```\n\n```sql\n{r.sql}\n```")
    return "\n\n".join(parts)


def profile_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey(["quality", f"profile_{source}"])

    @dg.asset(
        key=key,
        partitions_def=partitions,
        deps=[dg.AssetKey(["raw", source])],
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
            f"Column profile of each {source} file as landed (types, counts, shapes, PII, quality score) and "
            "recommended fixes; history in quality.column_profiles, quality.recommendations and quality.schema_history."
        ),
    )
    def profile(context: dg.AssetExecutionContext, postgres: PostgresResource):
        started = time.perf_counter()
        partition_key, run_id = context.partition_key, context.run.run_id
        with postgres.connect() as conn:
            entry, columns = file_columns(conn, source, partition_key)
        where = partition_rows(partition_key)
        per_read = max(1, PROFILE_READ_CELLS // max(entry.rows or 1, 1))
        column_profiles, recommendations = [], []
        with adbc_connection(postgres.url()) as conn:
            for start in range(0, len(columns), per_read):
                group = columns[start : start + per_read]
                frame = read_frame(conn, "raw", source, group, where)
                for name in group:
                    text = count_text(frame[name])
                    column_profile = profile_column(name, text)
                    column_profiles.append(column_profile)
                    recommendations.extend(recommend_column(column_profile, text, f"raw.{source}"))
                del frame
        file_profile = FileProfile(entry.rows or 0, column_profiles)
        assert partitions.name is not None  # files_partitions names each one
        keys = context.instance.get_dynamic_partitions(partitions.name)
        earlier = keys[: keys.index(partition_key)] if partition_key in keys else []
        with postgres.connect() as conn:
            previous = profiles.latest_profile(conn, source, earlier)
            profiles.save_profile(conn, source, partition_key, run_id, file_profile, recommendations)
            findings = compare_profiles(previous[1], file_profile) if previous else []
            if previous:
                profiles.record_drift(conn, source, partition_key, previous[0], run_id, findings)
            audit_file(conn, context.run, "profile", f"quality/profile_{source}", entry, rows_in=file_profile.rows, detail=(
                f"quality score {file_profile.quality_score}, {len(recommendations)} recommendation(s)"
                + (f", {len(findings)} change(s) since {previous[0]}" if previous else "")
            ))  # fmt: skip
            metrics.record(conn, run_id, source, partition_key, f"quality/profile_{source}", {
                "quality_score": file_profile.quality_score,
                # Missing: NULL or blank (raw text keeps an empty field as '').
                "null_rate": sum(c.nulls + c.empties for c in column_profiles) / (file_profile.rows * len(column_profiles)) if file_profile.rows and column_profiles else None,
                **{f"null_rate:{c.name}": (c.nulls + c.empties) / file_profile.rows if file_profile.rows else None for c in column_profiles},
                "duration_seconds": time.perf_counter() - started,
            })  # fmt: skip
        if previous is None:
            drift = dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, description="first file of the source: nothing to compare with")
        else:
            drift = dg.AssetCheckResult(
                check_name=DRIFT_CHECK,
                passed=not findings,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{len(findings)} change(s) since {previous[0]}" if findings else f"no drift since {previous[0]}",
                metadata={
                    "previous_partition": previous[0],
                    "findings": table_metadata(
                        [{"kind": f.kind, "column": f.column, "detail": f.detail} for f in findings],
                        [("kind", "string"), ("column", "string"), ("detail", "string")],
                    ),
                },
            )
        column_rows = [
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
            for c in column_profiles
        ]
        return dg.MaterializeResult(
            metadata={
                "rows": file_profile.rows,
                "quality_score": file_profile.quality_score,
                "columns": table_metadata(
                    column_rows,
                    [
                        ("column", "string"),
                        ("semantic_type", "string"),
                        ("nulls", "int"),
                        ("empties", "int"),
                        ("distinct", "int"),
                        ("pattern", "string"),
                        ("pii", "string"),
                        ("quality_score", "float"),
                    ],
                ),  # fmt: skip
                "profile": dg.MetadataValue.md(_profile_markdown(file_profile)),
                "recommendations": dg.MetadataValue.md(_recommendations_markdown(recommendations)),
                "recommendation_count": len(recommendations),
            },
            check_results=[drift],
        )

    return profile
