"""ops.audit_log: who or what did what, when, to which file (no dagster).

One row per load, gate decision, harmonization and export: the run, what launched it (a
person's re-run, a schedule, a sensor, declarative automation, `make demo`), the asset and
partition, the file and its SHA-256, and the rows that went in and came out. Rows are only
ever added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from psycopg import sql

from harmonizer_pipeline.ops.store import ensure_ops_tables, insert

AUDIT_TABLE = sql.Identifier("ops", "audit_log")
ACTIONS = ("load", "gate", "harmonize", "export")
_COLUMNS = ("action", "status", "run_id", "launched_by", "asset", "partition_key", "file", "sha256", "rows_in", "rows_out", "detail")


@dataclass(frozen=True)
class AuditEntry:
    action: str  # one of ACTIONS
    status: str  # load: loaded/failed/duplicate; gate: ok/warn/error; harmonize, export: done
    run_id: str
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


def record(conn, entry: AuditEntry) -> None:
    """Add one row; on the caller's connection, so it commits with the work it describes."""
    ensure_ops_tables(conn)
    insert(conn, AUDIT_TABLE, list(_COLUMNS), [tuple(getattr(entry, c) for c in _COLUMNS)])


def read(conn, since: dt.datetime | None = None, file: str | None = None) -> pd.DataFrame:
    """The log, oldest first; `file` matches the file's name with or without its folders."""
    ensure_ops_tables(conn)
    conditions, params = [sql.SQL("TRUE")], []
    if since is not None:
        conditions.append(sql.SQL("at >= %s"))
        params.append(since)
    if file is not None:
        conditions.append(sql.SQL("(file = %s OR file LIKE %s)"))
        params += [file, "%/" + file.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")]
    query = sql.SQL("SELECT at, {} FROM {} WHERE {} ORDER BY at, id").format(
        sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), AUDIT_TABLE, sql.SQL(" AND ").join(conditions)
    )
    rows = conn.execute(query, params).fetchall()
    return pd.DataFrame(rows, columns=["at", *_COLUMNS]).astype({"rows_in": "Int64", "rows_out": "Int64"})
