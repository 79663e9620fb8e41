"""quality.gate_results: each schema gate decision, with its run, counts, threshold and severity (no dagster)."""

from __future__ import annotations

from psycopg.types.json import Jsonb

from harmonizer_pipeline.quality.gate import GateSummary, Verdict


def record_gate(conn, source: str, partition_key: str, run_id: str, summary: GateSummary, max_reject_rate: float, decision: Verdict) -> None:
    failures = [{"check": check, "column": column, "count": count} for (check, column), count in sorted(summary.failures.items(), key=str)]
    conn.execute(
        "INSERT INTO quality.gate_results (source, partition_key, run_id, rows, valid_rows, rejected_rows, reject_rate,"
        " max_reject_rate, severity, description, failures) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            source, partition_key, run_id, summary.rows, summary.valid_rows, summary.rejected_rows, summary.reject_rate,
            max_reject_rate, decision.severity, decision.description, Jsonb(failures),
        ),
    )  # fmt: skip


def latest_gate_results(conn) -> list[tuple[str, str, str, str]]:
    """(source, partition_key, severity, description) of each file's latest gate decision."""
    return conn.execute(
        "SELECT source, partition_key, severity, description FROM ("
        " SELECT DISTINCT ON (source, partition_key) * FROM quality.gate_results"
        " ORDER BY source, partition_key, checked_at DESC) latest ORDER BY source, partition_key"
    ).fetchall()
