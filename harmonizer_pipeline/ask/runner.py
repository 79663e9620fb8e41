"""Runs a question's query, the guard's second line (no dagster): nothing it runs can change the
database or read beyond the role.

The query, already checked by ask.guard, runs in a READ ONLY transaction as the NOLOGIN role
`harmonizer_reader` or `harmonizer_steward` (SET LOCAL ROLE: the database's own privileges, see
bookkeeping.roles), with `statement_timeout` and `search_path` set for the transaction alone,
through a server-side cursor that fetches one row more than the limit (a huge result is never
pulled whole); the transaction is rolled back whatever happens.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from harmonizer_pipeline.bookkeeping.roles import READER, STEWARD

ROLES = {"reader": READER.name, "steward": STEWARD.name}


class QueryFailed(RuntimeError):
    """The query ran and failed (timeout, a privilege the role lacks, an error in it): one line."""


@dataclass(frozen=True)
class Rows:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # more rows than the limit: the rest were not fetched


def run_query(
    connect: Callable[[], AbstractContextManager[psycopg.Connection]], query: str, role: str, timeout_seconds: float, row_limit: int, schema: str
) -> Rows:
    """The query's first `row_limit` rows, run as `role` (reader or steward) with `schema` alone on the search path."""
    with connect() as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            _act_as(conn, ROLES[role])
            conn.execute("SELECT set_config('statement_timeout', %s, true), set_config('search_path', %s, true)", (f"{round(timeout_seconds * 1000)}", schema))
            with conn.cursor(name="harmonizer_ask") as cursor:
                cursor.execute(sql.SQL(query))  # pyright: ignore[reportArgumentType]  # checked by ask.guard: one SELECT
                rows = cursor.fetchmany(row_limit + 1)
                columns = [d.name for d in cursor.description or []]
        except errors.QueryCanceled:
            raise QueryFailed(f"the query ran longer than {timeout_seconds:g} s (ask.statement_timeout_seconds) and was cancelled") from None
        except errors.InsufficientPrivilege as exc:
            raise QueryFailed(f"{ROLES[role]} may not do that: {_line(exc)}") from None
        except psycopg.Error as exc:
            raise QueryFailed(f"the query failed: {_line(exc)}") from None
        finally:
            conn.rollback()
    return Rows(columns, [tuple(r) for r in rows[:row_limit]], len(rows) > row_limit)


def _act_as(conn: psycopg.Connection, role: str) -> None:
    with conn.transaction():  # a savepoint: the one-line reason below, rather than an aborted transaction
        try:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        except (errors.InsufficientPrivilege, errors.InvalidParameterValue) as exc:
            raise QueryFailed(
                f"this login cannot act as {role} ({_line(exc)}): run `harmonizer db roles`, and GRANT {role} TO the pipeline's login"
                " if it is not a superuser (docs/access.md)"
            ) from None


def _line(exc: psycopg.Error) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
