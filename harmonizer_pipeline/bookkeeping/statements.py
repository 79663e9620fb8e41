"""Statements on bookkeeping tables composed with literals and run through a DB-API cursor, so
they work on a psycopg connection and on the ADBC connection of a table write alike (a load's
registry and audit rows then commit in the same transaction as its rows).
"""

from __future__ import annotations

from psycopg import sql

UNDEFINED_TABLE = "42P01"


class NotMigrated(RuntimeError):
    """A bookkeeping table is missing: nobody ran the migrations on this database."""


def execute(conn, statement: sql.Composable) -> list[tuple]:
    """Rows of the statement (none for one that returns none). A missing table means the database
    was never migrated, which the error then says in one line."""
    with conn.cursor() as cursor:
        try:
            cursor.execute(statement.as_string(None))
        except Exception as error:
            # psycopg's UndefinedTable and ADBC's ProgrammingError both carry the SQLSTATE.
            if getattr(error, "sqlstate", None) == UNDEFINED_TABLE:
                raise NotMigrated(
                    "the bookkeeping tables (ops.file_registry, ops.audit_log, ...) are not in this database: run `harmonizer db migrate` against it first"
                ) from error
            raise
        return cursor.fetchall() if cursor.description else []


def insert(conn, table: sql.Identifier, columns: list[str], rows: list[tuple]) -> None:
    if not rows:
        return
    values = sql.SQL(", ").join(sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Literal, row))) for row in rows)
    execute(conn, sql.SQL("INSERT INTO {} ({}) VALUES {}").format(table, sql.SQL(", ").join(map(sql.Identifier, columns)), values))
