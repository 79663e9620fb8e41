"""The merge bookkeeping in ops (no dagster): staged_files (what each staged partition holds),
merged_files (which staged files a target reflects) and merges (one row per merge, with its
counts and when its changes were exported). Statements run in the caller's transaction (the
merge's, under its advisory lock) through statements.execute, like the registry's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from psycopg import sql

from harmonizer_pipeline.bookkeeping.statements import execute

_STAGED = ("rows_in", "rows_staged", "rows_left_out", "rejected_values")
MERGED_FILE = ("source", "partition_key", "file_id", "load_id", "staged_run_id")
# What a merge found; recorded once its delta is known (the row is inserted first, for its id).
MERGE_COUNTS = ("inserted", "updated", "deleted", "history_versions", "rows", "duplicate_keys", "merged_rows")


def _literals(values: Iterable) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Literal, values))


def record_staged(conn, source: str, partition_key: str, target: str, load_id: str | None, run_id: str, counts: dict[str, int]) -> None:
    execute(
        conn,
        sql.SQL(
            "INSERT INTO ops.staged_files (source, partition_key, target, load_id, run_id, rows_in, rows_staged, rows_left_out, rejected_values)"
            " VALUES ({}) ON CONFLICT (source, partition_key) DO UPDATE SET target = EXCLUDED.target,"
            " load_id = EXCLUDED.load_id, run_id = EXCLUDED.run_id, rows_in = EXCLUDED.rows_in, rows_staged = EXCLUDED.rows_staged,"
            " rows_left_out = EXCLUDED.rows_left_out, rejected_values = EXCLUDED.rejected_values, staged_at = now()"
        ).format(_literals([source, partition_key, target, load_id, run_id, *(counts[c] for c in _STAGED)])),
    )


def forget_staged(conn, source: str, partition_key: str) -> None:
    execute(conn, sql.SQL("DELETE FROM ops.staged_files WHERE source = {} AND partition_key = {}").format(sql.Literal(source), sql.Literal(partition_key)))


def staged_files(conn, target: str) -> dict[tuple[str, str], tuple[str | None, str]]:
    """(load_id, run_id) of each staged partition of the target, by (source, partition_key)."""
    rows = execute(conn, sql.SQL("SELECT source, partition_key, load_id, run_id FROM ops.staged_files WHERE target = {}").format(sql.Literal(target)))
    return {(source, partition): (load_id, run_id) for source, partition, load_id, run_id in rows}


def staged_counts(conn, sources: Sequence[str]) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """(rows_in, rows_staged, rows_left_out, rejected_values) of each staged partition of the sources."""
    rows = execute(
        conn,
        sql.SQL("SELECT source, partition_key, {} FROM ops.staged_files WHERE source = ANY({})").format(
            sql.SQL(", ").join(map(sql.Identifier, _STAGED)), sql.Literal(list(sources))
        ),
    )
    return {(source, partition): tuple(counts) for source, partition, *counts in rows}


def merged_files(conn, target: str) -> list[tuple]:
    """MERGED_FILE of each staged file the target reflects, by registry id."""
    return execute(
        conn,
        sql.SQL("SELECT {} FROM ops.merged_files WHERE target = {} ORDER BY file_id").format(
            sql.SQL(", ").join(map(sql.Identifier, MERGED_FILE)), sql.Literal(target)
        ),
    )


def replace_merged_files(conn, target: str, files: Iterable[Sequence]) -> None:
    """The target now reflects these files (MERGED_FILE each)."""
    forget_merged_files(conn, target)
    with conn.cursor().copy(sql.SQL("COPY ops.merged_files (target, {}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, MERGED_FILE)))) as copy:
        for file in files:
            copy.write_row((target, *file))


def forget_merged_files(conn, target: str) -> None:
    execute(conn, sql.SQL("DELETE FROM ops.merged_files WHERE target = {}").format(sql.Literal(target)))


def start_merge(conn, target: str, run_id: str, rebuild: bool, files_added: int, files_removed: int, keys_affected: int) -> int:
    """Record a merge (its counts zero until record_counts) and return its id."""
    return execute(
        conn,
        sql.SQL(
            "INSERT INTO ops.merges (target, run_id, rebuild, files_added, files_removed, keys_affected, inserted, updated, deleted,"
            " history_versions) VALUES ({}, 0, 0, 0, 0) RETURNING merge_id"
        ).format(_literals([target, run_id, rebuild, files_added, files_removed, keys_affected])),
    )[0][0]


def record_counts(conn, merge_id: int, counts: dict[str, int]) -> None:
    """MERGE_COUNTS of the merge."""
    assignments = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(counts[c])) for c in MERGE_COUNTS)
    execute(conn, sql.SQL("UPDATE ops.merges SET {} WHERE merge_id = {}").format(assignments, sql.Literal(merge_id)))


def totals_after_last_merge(conn, target: str, before_merge: int | None) -> tuple[int, int, int] | None:
    """(rows, duplicate keys, merged rows) of the target after its last merge (before `before_merge`)."""
    earlier = sql.SQL("TRUE") if before_merge is None else sql.SQL("merge_id < {}").format(sql.Literal(before_merge))
    found = execute(
        conn,
        sql.SQL("SELECT rows, duplicate_keys, merged_rows FROM ops.merges WHERE target = {} AND {} ORDER BY merge_id DESC LIMIT 1").format(
            sql.Literal(target), earlier
        ),
    )
    return None if not found or None in found[0] else found[0]


def unexported_merges(conn, target: str) -> list[tuple[int, dt.datetime, int]]:
    """(merge_id, merged_at, rows changed) of the target's merges whose changes were not exported yet, oldest first."""
    return execute(
        conn,
        sql.SQL("SELECT merge_id, merged_at, inserted + updated + deleted FROM ops.merges WHERE target = {} AND exported_at IS NULL ORDER BY merge_id").format(
            sql.Literal(target)
        ),
    )


def mark_exported(conn, merge_ids: Sequence[int]) -> None:
    execute(conn, sql.SQL("UPDATE ops.merges SET exported_at = now() WHERE merge_id = ANY({})").format(sql.Literal(list(merge_ids))))
