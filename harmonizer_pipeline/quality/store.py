"""The quality tables in PostgreSQL (no dagster); every function takes a psycopg connection.

- quality.rejected_rows: every failing value of a file's rows, with the check and message;
  a file's records are replaced when it is validated again.
- quality.gate_results: each gate decision (run, counts, threshold, severity).
- quality.column_profiles: one row per column per profiling run, the whole profile as JSON beside
  the figures people query most.
- quality.recommendations: the fixes suggested with each profile.
- quality.schema_history: drift findings between a file and the previous file of its source.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from harmonizer_pipeline.quality.drift import DriftFinding
from harmonizer_pipeline.quality.gate import GateSummary, Verdict
from harmonizer_pipeline.quality.profiling import ColumnProfile, FileProfile
from harmonizer_pipeline.quality.recommendations import Recommendation

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS quality",
    """CREATE TABLE IF NOT EXISTS quality.rejected_rows (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        _row_number bigint,
        column_name text,
        check_name text NOT NULL,
        failure_case text,
        message text NOT NULL,
        rejected_at timestamptz NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS rejected_rows_partition ON quality.rejected_rows (source, partition_key, _row_number)",
    """CREATE TABLE IF NOT EXISTS quality.gate_results (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        rows bigint NOT NULL,
        valid_rows bigint NOT NULL,
        rejected_rows bigint NOT NULL,
        reject_rate double precision NOT NULL,
        max_reject_rate double precision NOT NULL,
        severity text NOT NULL CHECK (severity IN ('ok', 'warn', 'error')),
        description text NOT NULL,
        failures jsonb NOT NULL,
        checked_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS quality.column_profiles (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        position integer NOT NULL,
        column_name text NOT NULL,
        semantic_type text NOT NULL,
        rows bigint NOT NULL,
        nulls bigint NOT NULL,
        empties bigint NOT NULL,
        distinct_values bigint NOT NULL,
        minimum text,
        maximum text,
        pattern text,
        pii text[] NOT NULL,
        quality_score double precision NOT NULL,
        file_quality_score double precision NOT NULL,
        profile jsonb NOT NULL,
        profiled_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, source, partition_key, position)
    )""",
    "CREATE INDEX IF NOT EXISTS column_profiles_partition ON quality.column_profiles (source, partition_key, profiled_at)",
    """CREATE TABLE IF NOT EXISTS quality.recommendations (
        source text NOT NULL,
        partition_key text NOT NULL,
        run_id text NOT NULL,
        column_name text NOT NULL,
        issue text NOT NULL,
        detail text NOT NULL,
        rows bigint NOT NULL,
        pandas_fix text NOT NULL,
        sql_fix text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS quality.schema_history (
        source text NOT NULL,
        partition_key text NOT NULL,
        previous_partition_key text NOT NULL,
        run_id text NOT NULL,
        kind text NOT NULL,
        column_name text NOT NULL,
        detail text NOT NULL,
        previous_value text,
        current_value text,
        detected_at timestamptz NOT NULL DEFAULT now()
    )""",
]


def ensure_quality_tables(conn) -> None:
    """Create the quality schema and tables if missing (concurrent runs wait for each other)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('quality.tables', 0))")
    for statement in _DDL:
        conn.execute(statement)


def delete_rejected(conn, source: str, partition_key: str, harmonize: bool = False) -> None:
    """Delete the file's records of validation, or of harmonization (checks `harmonize:<rule>`)."""
    conn.execute(
        "DELETE FROM quality.rejected_rows WHERE source = %s AND partition_key = %s AND (check_name LIKE 'harmonize:%%') = %s",
        (source, partition_key, harmonize),
    )


def copy_rejected(conn, source: str, partition_key: str, run_id: str, rejected: pd.DataFrame) -> None:
    """Append rejected-row records (validation.REJECTED_COLUMNS) with COPY."""
    columns = ["source", "partition_key", "run_id", "_row_number", "column_name", "check_name", "failure_case", "message"]
    statement = sql.SQL("COPY quality.rejected_rows ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row_number, column, check, value, message in zip(
            rejected["_row_number"], rejected["column"], rejected["check"], rejected["failure_case"], rejected["message"]
        ):
            copy.write_row((source, partition_key, run_id, None if pd.isna(row_number) else int(row_number), column, check, value, message))


class RejectedRowsWriter:
    """Replaces a file's records in quality.rejected_rows over one transaction of its own: the old
    records are deleted when the first chunk's arrive (or at commit), each chunk's are COPYed as
    they come, and nothing is visible until commit(); close() without commit() leaves the old ones."""

    def __init__(self, url: str, source: str, partition_key: str, run_id: str, harmonize: bool = False):
        self.url, self.source, self.partition_key, self.run_id, self.harmonize = url, source, partition_key, run_id, harmonize
        self._conn: psycopg.Connection | None = None

    def connection(self) -> psycopg.Connection:
        """The records' transaction (bookkeeping that describes them may join it)."""
        if self._conn is None:
            self._conn = psycopg.connect(self.url)
            delete_rejected(self._conn, self.source, self.partition_key, self.harmonize)
        return self._conn

    def write(self, rejected: pd.DataFrame) -> None:
        copy_rejected(self.connection(), self.source, self.partition_key, self.run_id, rejected)

    def commit(self, *_) -> None:
        self.connection().commit()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # rolls back what was not committed
            self._conn = None


def rejected_rows(conn, source: str, partition_key: str) -> pd.DataFrame:
    """The file's rejected-row records, in row order."""
    cur = conn.execute(
        "SELECT _row_number, column_name, check_name, failure_case, message FROM quality.rejected_rows"
        " WHERE source = %s AND partition_key = %s ORDER BY _row_number, column_name, check_name",
        (source, partition_key),
    )
    return pd.DataFrame(cur.fetchall(), columns=["_row_number", "column", "check", "failure_case", "message"])


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


def save_profile(conn, source: str, partition_key: str, run_id: str, profile: FileProfile, recommendations: Sequence[Recommendation]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.column_profiles (source, partition_key, run_id, position, column_name, semantic_type, rows,"
            " nulls, empties, distinct_values, minimum, maximum, pattern, pii, quality_score, file_quality_score, profile)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    source, partition_key, run_id, position, c.name, c.semantic_type, c.rows, c.nulls, c.empties,
                    c.distinct, c.minimum, c.maximum, c.patterns[0][0] if c.patterns else None, c.pii,
                    c.quality_score, profile.quality_score, Jsonb(dataclasses.asdict(c)),
                )  # fmt: skip
                for position, c in enumerate(profile.columns)
            ],
        )
        cur.executemany(
            "INSERT INTO quality.recommendations (source, partition_key, run_id, column_name, issue, detail, rows, pandas_fix, sql_fix)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(source, partition_key, run_id, r.column, r.issue, r.detail, r.rows, r.pandas, r.sql) for r in recommendations],
        )


def latest_profile(conn, source: str, partition_keys: Sequence[str]) -> tuple[str, FileProfile] | None:
    """The newest profile of the last of `partition_keys` (oldest first) that has one."""
    found = conn.execute(
        "SELECT DISTINCT ON (partition_key) partition_key, run_id FROM quality.column_profiles"
        " WHERE source = %s AND partition_key = ANY(%s) ORDER BY partition_key, profiled_at DESC",
        (source, list(partition_keys)),
    ).fetchall()
    runs = dict(found)
    key = next((k for k in reversed(partition_keys) if k in runs), None)
    if key is None:
        return None
    rows = conn.execute(
        "SELECT profile FROM quality.column_profiles WHERE run_id = %s AND source = %s AND partition_key = %s ORDER BY position",
        (runs[key], source, key),
    ).fetchall()
    columns = [_column_profile(profile) for (profile,) in rows]
    return key, FileProfile(columns[0].rows if columns else 0, columns)


def _column_profile(stored: dict | str) -> ColumnProfile:
    fields = json.loads(stored) if isinstance(stored, str) else dict(stored)
    fields["top_values"] = [tuple(pair) for pair in fields["top_values"]]
    fields["patterns"] = [tuple(pair) for pair in fields["patterns"]]
    return ColumnProfile(**fields)


def record_drift(conn, source: str, partition_key: str, previous_key: str, run_id: str, findings: Sequence[DriftFinding]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.schema_history (source, partition_key, previous_partition_key, run_id, kind, column_name,"
            " detail, previous_value, current_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(source, partition_key, previous_key, run_id, f.kind, f.column, f.detail, f.previous, f.current) for f in findings],
        )


def latest_gate_results(conn) -> list[tuple[str, str, str, str]]:
    """(source, partition_key, severity, description) of each file's latest gate decision."""
    return conn.execute(
        "SELECT source, partition_key, severity, description FROM ("
        " SELECT DISTINCT ON (source, partition_key) * FROM quality.gate_results"
        " ORDER BY source, partition_key, checked_at DESC) latest ORDER BY source, partition_key"
    ).fetchall()


def latest_profile_scores(conn) -> list[tuple[str, str, float, int, int]]:
    """(source, partition_key, file quality score, columns, recommendations) of each file's latest profile."""
    return conn.execute(
        "SELECT p.source, p.partition_key, p.file_quality_score, count(*),"
        " (SELECT count(*) FROM quality.recommendations r WHERE r.run_id = p.run_id AND r.source = p.source"
        "  AND r.partition_key = p.partition_key)"
        " FROM quality.column_profiles p WHERE p.run_id = ("
        "  SELECT q.run_id FROM quality.column_profiles q WHERE q.source = p.source AND q.partition_key = p.partition_key"
        "  ORDER BY q.profiled_at DESC LIMIT 1)"
        " GROUP BY p.source, p.partition_key, p.file_quality_score, p.run_id ORDER BY p.source, p.partition_key"
    ).fetchall()
