"""The operations tables ops.audit_log and ops.run_metrics (no dagster).

Statements are composed with literals and run through a DB-API cursor, so they work on a
psycopg connection and on the ADBC connection of a table write alike (a load's audit row then
commits in the same transaction as its rows).
"""

from __future__ import annotations

from psycopg import sql

_DDL = [
    "CREATE SCHEMA IF NOT EXISTS ops",
    """CREATE TABLE IF NOT EXISTS ops.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        action text NOT NULL,
        status text NOT NULL,
        run_id text NOT NULL,
        launched_by text NOT NULL,
        asset text NOT NULL,
        partition_key text,
        file text,
        sha256 text,
        rows_in bigint,
        rows_out bigint,
        detail text
    )""",
    "CREATE INDEX IF NOT EXISTS audit_log_at ON ops.audit_log (at)",
    "CREATE INDEX IF NOT EXISTS audit_log_file ON ops.audit_log (file)",
    """CREATE TABLE IF NOT EXISTS ops.run_metrics (
        id bigserial PRIMARY KEY,
        recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        run_id text NOT NULL,
        subject text NOT NULL,
        partition_key text,
        asset text NOT NULL,
        metric text NOT NULL,
        value double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS run_metrics_subject ON ops.run_metrics (subject, recorded_at)",
]


def ensure_ops_tables(conn) -> None:
    """Create the tables once. Callers write inside their own (long) transactions, so the lock
    that keeps concurrent creators apart is taken only while the tables are missing."""
    present = execute(conn, sql.SQL("SELECT to_regclass('ops.audit_log') IS NOT NULL AND to_regclass('ops.run_metrics') IS NOT NULL"))
    if present[0][0]:
        return
    execute(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended('ops.tables', 0))"))
    for statement in _DDL:
        execute(conn, sql.SQL(statement))


def execute(conn, statement: sql.Composable) -> list[tuple]:
    with conn.cursor() as cursor:
        cursor.execute(statement.as_string(None))
        return cursor.fetchall() if cursor.description else []


def insert(conn, table: sql.Identifier, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    values = sql.SQL(", ").join(sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Literal, row))) for row in rows)
    execute(conn, sql.SQL("INSERT INTO {} ({}) VALUES {}").format(table, sql.SQL(", ").join(map(sql.Identifier, columns)), values))
