"""What the summaries of a file and of a merge read from the bookkeeping tables (no dagster):
each function takes a psycopg connection and returns plain values; reports.summary writes the
sentences. A file's rows are those of its latest gate decision, profile, key analysis and
comparison."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.storage.catalog import table_exists


@dataclass(frozen=True)
class FileEntry:
    object_key: str
    status: str
    size: int | None
    rows: int | None
    format: str | None
    encoding: str | None
    error: str | None


@dataclass(frozen=True)
class ProfileFindings:
    findings: list[tuple[str, str, int]]  # (column, issue, rows)
    drift: list[tuple[str, str, str | None, str | None]]  # (kind, column, before, after)
    pii: dict[str, list[str]]  # column -> the kinds the profile flagged


@dataclass(frozen=True)
class KeyRow:
    columns: list[str]
    unique: bool
    rows: int
    breaking_rows: int
    example: dict[str, object] | None
    duplicate_rows: int


@dataclass(frozen=True)
class MergeRow:
    rebuild: bool
    files_added: int
    files_removed: int
    keys_affected: int
    inserted: int
    updated: int
    deleted: int
    rows: int
    duplicate_keys: int
    merged_rows: int


def file_entry(conn, source: str, partition_key: str) -> FileEntry | None:
    """The registry's latest version (not a duplicate) loading into the partition."""
    row = conn.execute(
        "SELECT object_key, status, size, rows, detected_format, detected_encoding, error FROM ops.file_registry"
        " WHERE source = %s AND partition_key = %s AND status <> 'duplicate' ORDER BY id DESC LIMIT 1",
        (source, partition_key),
    ).fetchone()
    return None if row is None else FileEntry(*row)


def file_name(conn, source: str, partition_key: str) -> str:
    entry = file_entry(conn, source, partition_key)
    return partition_key if entry is None else entry.object_key


def latest_files(conn, sources: Sequence[str]) -> list[tuple[str, str]]:
    """(source, partition_key) of the file each source registered last (a duplicate set aside aside)."""
    return conn.execute(
        "SELECT DISTINCT ON (source) source, partition_key FROM ops.file_registry WHERE source = ANY(%s) AND status <> 'duplicate' ORDER BY source, id DESC",
        (list(sources),),
    ).fetchall()


def files_named(conn, sources: Sequence[str], name: str) -> list[tuple[str, str]]:
    """(source, partition_key) of the latest version of the file called `name` (with or without its folders) in each source."""
    pattern = "%/" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return conn.execute(
        "SELECT DISTINCT ON (source) source, partition_key FROM ops.file_registry WHERE source = ANY(%s) AND status <> 'duplicate'"
        " AND (object_key = %s OR object_key LIKE %s) ORDER BY source, id DESC",
        (list(sources), name, pattern),
    ).fetchall()


def previous_partition(conn, source: str, partition_key: str) -> str | None:
    """The partition of the file the source loaded before this one (registry order), if any."""
    row = conn.execute(
        "SELECT partition_key FROM ops.file_registry WHERE source = %s AND status NOT IN ('duplicate', 'failed') AND partition_key <> %s"
        " AND id < (SELECT min(id) FROM ops.file_registry WHERE source = %s AND partition_key = %s) ORDER BY id DESC LIMIT 1",
        (source, partition_key, source, partition_key),
    ).fetchone()
    return None if row is None else row[0]


def gate(conn, source: str, partition_key: str) -> tuple | None:
    """(rows, rejected_rows, max_reject_rate, severity, description, failures) of the latest gate decision."""
    row = conn.execute(
        "SELECT rows, rejected_rows, max_reject_rate, severity, description, failures FROM quality.gate_results"
        " WHERE source = %s AND partition_key = %s ORDER BY checked_at DESC LIMIT 1",
        (source, partition_key),
    ).fetchone()
    if row is None:
        return None
    failures = tuple((f["check"], f["column"] or "", int(f["count"])) for f in row[5])
    return (*row[:5], failures)


def profile_findings(conn, source: str, partition_key: str) -> ProfileFindings | None:
    """The findings, drift and PII flags of the file's latest profile; None when never profiled."""
    latest = conn.execute(
        "SELECT run_id FROM quality.column_profiles WHERE source = %s AND partition_key = %s ORDER BY profiled_at DESC LIMIT 1",
        (source, partition_key),
    ).fetchone()
    if latest is None:
        return None
    where = (latest[0], source, partition_key)
    findings = conn.execute(
        "SELECT column_name, issue, rows FROM quality.recommendations WHERE run_id = %s AND source = %s AND partition_key = %s", where
    ).fetchall()
    drift = conn.execute(
        "SELECT kind, column_name, previous_value, current_value FROM quality.schema_history WHERE run_id = %s AND source = %s"
        " AND partition_key = %s ORDER BY kind, column_name",
        where,
    ).fetchall()
    pii = conn.execute("SELECT column_name, pii FROM quality.column_profiles WHERE run_id = %s AND source = %s AND partition_key = %s", where)
    return ProfileFindings(findings, drift, {column: list(kinds) for column, kinds in pii.fetchall()})


def key(conn, source: str, partition_key: str) -> KeyRow | None:
    """The key the file was analysed on: the suggested (or declared) one, else its best near-key."""
    summary = conn.execute(
        "SELECT suggested_key, suggested_key_unique, rows, duplicate_rows FROM keys.key_summary WHERE source = %s AND partition_key = %s",
        (source, partition_key),
    ).fetchone()
    if summary is None:
        return None
    columns, unique, rows, duplicate_rows = summary
    if not columns:
        return KeyRow([], False, rows, 0, None, duplicate_rows)
    if unique:
        return KeyRow(list(columns), True, rows, 0, None, duplicate_rows)
    # Rows beyond the first of each group sharing a value of the key, and the first group's value.
    found = conn.execute(
        "SELECT count(*) - count(DISTINCT group_id), (array_agg(key_values ORDER BY group_id, _row_number))[1]"
        " FROM keys.duplicate_groups WHERE source = %s AND partition_key = %s AND kind = 'key'",
        (source, partition_key),
    ).fetchone()
    breaking, example = found if found else (0, None)
    example = json.loads(example) if isinstance(example, str) else example
    return KeyRow(list(columns), False, rows, int(breaking), example, duplicate_rows)


def comparison(conn, source: str, partition_key: str) -> tuple | None:
    """(previous partition, key, added, removed, changed, unchanged, added columns, removed columns)
    of the file against the previous one."""
    row = conn.execute(
        "SELECT previous_partition_key, key_columns, only_in_current, only_in_previous, changed, in_both - changed, added_columns,"
        " removed_columns FROM keys.comparisons WHERE source = %s AND partition_key = %s",
        (source, partition_key),
    ).fetchone()
    if row is None:
        return None
    previous, key_columns, *counts, added, removed = row
    return (previous, tuple(key_columns), *counts, tuple(added), tuple(removed))


def not_compared(conn, source: str, partition_key: str) -> str | None:
    """Why the file was not compared with the previous one (the comparison's latest audit row)."""
    row = conn.execute(
        "SELECT detail FROM ops.audit_log WHERE action = 'compare' AND asset = %s AND partition_key = %s ORDER BY at DESC, id DESC LIMIT 1",
        (f"keys/comparison_{source}", partition_key),
    ).fetchone()
    return None if row is None else row[0]


def latest_merge(conn, target: str) -> MergeRow | None:
    row = conn.execute(
        "SELECT rebuild, files_added, files_removed, keys_affected, inserted, updated, deleted, coalesce(rows, 0),"
        " coalesce(duplicate_keys, 0), coalesce(merged_rows, 0) FROM ops.merges WHERE target = %s ORDER BY merge_id DESC LIMIT 1",
        (target,),
    ).fetchone()
    return None if row is None else MergeRow(*row)


def merged_files(conn, target: str) -> list[tuple[str, str]]:
    """(source, partition_key) of each file the target reflects, in the order they landed."""
    return conn.execute("SELECT source, partition_key FROM ops.merged_files WHERE target = %s ORDER BY file_id", (target,)).fetchall()


def merged_file_count(conn, target: str) -> int:
    return conn.execute("SELECT count(*) FROM ops.merged_files WHERE target = %s", (target,)).fetchone()[0]


def match_candidates(conn, target: str) -> int:
    """The fuzzy match candidates of the target; 0 before its table exists."""
    if not table_exists(conn, store.SCHEMA, store.candidates_table(target)):
        return 0
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(store.SCHEMA, store.candidates_table(target)))).fetchone()[0]
