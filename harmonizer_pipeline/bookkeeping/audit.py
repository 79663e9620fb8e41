"""ops.audit_log: who or what did what, when, to which file (no dagster).

One row per load (and per duplicate the landing sensor set aside), gate decision, profile, key
analysis, file comparison, harmonization, exported file, trend report, layer a file expired from
(retention) and erasure (`harmonizer erase`, with who asked for it), and one per failure of
a load, harmonization or export: the run, what launched it (a person's re-run, an automatic
retry, a schedule, a sensor, declarative automation, `make demo`), the asset and partition, the
file and its SHA-256, and the rows that went in and came out. Rows are only ever added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Literal, TypeGuard

import pandas as pd
from psycopg import sql

from harmonizer_pipeline.bookkeeping.statements import execute, insert

AUDIT_TABLE = sql.Identifier("ops", "audit_log")
ACTIONS = ("load", "gate", "profile", "keys", "compare", "harmonize", "export", "trends", "expire", "erase", "ask")
_COLUMNS = ("action", "status", "run_id", "launched_by", "asset", "partition_key", "file", "sha256", "rows_in", "rows_out", "detail")


@dataclass(frozen=True)
class AuditEntry:
    action: str  # one of ACTIONS
    status: str  # load: loaded/failed/duplicate; gate: ok/warn/error; the others: done; load, harmonize, export: failed
    run_id: str  # empty for a duplicate the landing sensor set aside: no run saw it
    launched_by: str
    asset: str
    partition_key: str | None = None
    file: str | None = None
    sha256: str | None = None
    rows_in: int | None = None
    rows_out: int | None = None
    detail: str | None = None


def launched_by(tags: Mapping[str, str], parent_run_id: str | None = None) -> str:
    """Who or what started a run, from its parent (a re-execution) and its tags (Dagster's own
    and `harmonizer/launched_by`)."""
    parent = parent_run_id or tags.get("dagster/parent_run_id")
    original = _launcher(tags)
    if parent and "dagster/retry_number" in tags:
        # The retry daemon (run_retries) tags its re-executions with their number; it also copies
        # the parent's tags, so whoever launched the first run is still named.
        return f"automatic retry {tags['dagster/retry_number']} of {parent}" + (f" ({original})" if original else "")
    if parent:
        # A re-execution copies the parent's tags, so this comes first: a person re-ran it.
        return f"re-run of {parent}" + (f" by {tags['user']}" if "user" in tags else "")
    return original or "manual (UI, CLI or API)"


def _launcher(tags: Mapping[str, str]) -> str | None:
    if "harmonizer/launched_by" in tags:
        return tags["harmonizer/launched_by"]
    if "dagster/schedule_name" in tags:
        return f"schedule {tags['dagster/schedule_name']}"
    if tags.get("dagster/from_automation_condition") == "true" or "dagster/auto_materialize" in tags:
        return "declarative automation"
    if "dagster/sensor_name" in tags:
        return f"sensor {tags['dagster/sensor_name']}"
    if "dagster/backfill" in tags:
        return f"backfill {tags['dagster/backfill']}"
    if "user" in tags:
        return f"user {tags['user']}"
    return None


def entry(run, action: str, status: str, asset: str, partition_key: str | None = None, **fields) -> AuditEntry:
    """The entry of a step of `run` (a DagsterRun: its id, tags and parent)."""
    return AuditEntry(action, status, run.run_id, launched_by(run.tags, run.parent_run_id), asset, partition_key, **fields)


def one_line(error: BaseException, most: int = 500) -> str:
    """The error's message on one line of at most `most` characters. A database error adds lines
    of context after its first, so only that line is kept; an error written for people (dagster's
    Failure, with its description) is its whole message, its lines joined; any other is led by
    its type. ADBC quotes the whole statement
    before PostgreSQL's error, so a long message loses its middle, not its end."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    if getattr(error, "description", None):
        # Every line of a message written for people counts (a reader's error names the file, then the cause).
        message = " ".join(line for line in lines if line)
    else:
        message = lines[0] if lines else ""
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(message) > most:
        head = most // 3
        message = message[:head] + " … " + message[-(most - head - 3) :]
    return message


class AuditedStep:
    """A load, harmonization or export and its entry, completed as the step learns more (file,
    SHA-256) through `update`. `done` records it in the caller's transaction, with the work it
    describes.

    Used as a context manager around the work, it records an error as `failed` with its message,
    in a transaction of its own (so the row survives the rollback of the failed work), and lets
    the error go on, so the run still fails. `also(conn, message, error)` records more in that
    transaction (the file registry's status) and may return the detail to record instead (the
    message with what happens next)."""

    def __init__(self, connect: Callable[[], AbstractContextManager], entry: AuditEntry):
        self.connect, self.entry = connect, entry
        self.also: Callable[[object, str, BaseException], str | None] | None = None

    def update(self, also: Callable[[object, str, BaseException], str | None] | None = None, **fields) -> None:
        """Complete the entry (file, sha256, ...) and set `also` as the step learns them."""
        self.entry = replace(self.entry, **fields)
        if also is not None:
            self.also = also

    def outcome(self, status: str, **fields) -> AuditEntry:
        """The entry as the step ended, to record with others in one `record`."""
        return replace(self.entry, status=status, **fields)

    def done(self, conn, status: str, **fields) -> None:
        record(conn, self.outcome(status, **fields))

    def __enter__(self) -> AuditedStep:
        return self

    def __exit__(self, kind, error, traceback) -> Literal[False]:
        if _failure(error):
            self._failed_with(error)
        return False

    def _failed_with(self, error: BaseException) -> None:
        message = one_line(error)
        try:
            with self.connect() as conn:
                if self.also is not None:
                    message = self.also(conn, message, error) or message
                record(conn, replace(self.entry, status="failed", detail=message))
        except Exception as unrecorded:
            # The step's own error is the one to raise; this one is said beside it.
            error.add_note(f"ops.audit_log could not record this failure: {one_line(unrecorded)}")


def _failure(error: BaseException | None) -> TypeGuard[BaseException]:
    # A run terminated (dagster raises a BaseException) failed too; a GeneratorExit is a suspended
    # step being closed, not a failure.
    return error is not None and not isinstance(error, GeneratorExit)


def record(conn, *entries: AuditEntry) -> None:
    """Add rows; on the caller's connection, so they commit with the work they describe."""
    insert(conn, AUDIT_TABLE, list(_COLUMNS), [tuple(getattr(entry, c) for c in _COLUMNS) for entry in entries])


def read(conn, since: dt.datetime | None = None, file: str | None = None) -> pd.DataFrame:
    """The log, oldest first; `file` matches the file's name with or without its folders."""
    conditions: list[sql.Composable] = [sql.SQL("TRUE")]
    if since is not None:
        conditions.append(sql.SQL("at >= {}").format(sql.Literal(since)))
    if file is not None:
        pattern = "%/" + file.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(sql.SQL("(file = {} OR file LIKE {})").format(sql.Literal(file), sql.Literal(pattern)))
    query = sql.SQL("SELECT at, {} FROM {} WHERE {} ORDER BY at, id").format(
        sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), AUDIT_TABLE, sql.SQL(" AND ").join(conditions)
    )
    rows = execute(conn, query)
    return pd.DataFrame(rows, columns=["at", *_COLUMNS]).astype({"rows_in": "Int64", "rows_out": "Int64"})
