"""The keys tables (no dagster); every function takes a psycopg connection.
A file's rows in each table are replaced when it is analysed again.

- keys.key_summary: one row per file — rows, keys found, the suggested key and why, duplicates.
- keys.unique_keys: the file's minimal keys.
- keys.near_keys: its best almost-unique combinations, ranked.
- keys.duplicate_groups: the rows of each group of fully repeated rows (kind `row`) and of each
  group sharing the suggested or declared key (kind `key`), with their lineage, for the export
  stage's unique- and duplicate-record files.
- keys.comparisons: the file against the previous file of its source on the key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
from psycopg import sql
from psycopg.types.json import Jsonb

from harmonizer_pipeline.keys.comparison import FileComparison
from harmonizer_pipeline.keys.discovery import KeyAnalysis

_PER_FILE = ("key_summary", "unique_keys", "near_keys", "duplicate_groups")


def _delete(conn, table: str, source: str, partition_key: str) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {} WHERE source = %s AND partition_key = %s").format(sql.Identifier("keys", table)),
        (source, partition_key),
    )


def _plain(value):
    """A cell as JSON can hold it (numpy scalars, timestamps)."""
    if isinstance(value, (list, tuple)):
        return str(value)
    if value is None or pd.isna(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def save_analysis(conn, source: str, partition_key: str, run_id: str, analysis: KeyAnalysis, groups: pd.DataFrame) -> None:
    """Replace the file's rows: summary, keys, near-keys and duplicate groups (`groups` has
    `_kind`, `_key_columns`, `_group` and the key's columns and lineage, see duplicate_groups)."""
    for table in _PER_FILE:
        _delete(conn, table, source, partition_key)
    suggestion = analysis.suggestion
    key_groups = int(groups.loc[groups["_kind"] == "key", "_group"].nunique()) if len(groups) else 0
    conn.execute(
        "INSERT INTO keys.key_summary (source, partition_key, run_id, rows, columns, minimal_keys, suggested_key,"
        " suggestion_reason, suggested_key_unique, duplicate_rows, key_duplicate_groups, null_equals_null, max_size, seconds)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            source, partition_key, run_id, analysis.rows, len(analysis.columns), len(analysis.minimal_keys),
            list(suggestion.columns) if suggestion.columns else None, suggestion.reason, suggestion.unique,
            analysis.duplicate_rows, key_groups, analysis.null_equals_null, analysis.max_size, analysis.seconds,
        ),
    )  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO keys.unique_keys (source, partition_key, run_id, columns, size, has_nulls) VALUES (%s, %s, %s, %s, %s, %s)",
            [(source, partition_key, run_id, list(k.columns), len(k.columns), k.has_nulls) for k in analysis.minimal_keys],
        )
        cur.executemany(
            "INSERT INTO keys.near_keys (source, partition_key, run_id, rank, columns, uniqueness, duplicate_groups, excess_rows, has_nulls)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (source, partition_key, run_id, rank, list(k.columns), k.uniqueness, k.duplicate_groups, k.excess_rows, k.has_nulls)
                for rank, k in enumerate(analysis.near_keys, start=1)
            ],
        )
        columns = ["source", "partition_key", "run_id", "kind", "key_columns", "group_id", "key_values", "_row_number", "_source_file", "_load_id"]
        statement = sql.SQL("COPY keys.duplicate_groups ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
        with cur.copy(statement) as copy:
            for record in groups.to_dict("records"):
                values = {c: _plain(record[c]) for c in record["_key_columns"]}
                copy.write_row((
                    source, partition_key, run_id, record["_kind"], list(record["_key_columns"]), int(record["_group"]),
                    json.dumps(values, ensure_ascii=False), _plain(record.get("_row_number")), record.get("_source_file"), record.get("_load_id"),
                ))  # fmt: skip


def suggested_key(conn, source: str, partition_key: str) -> list[str] | None:
    row = conn.execute("SELECT suggested_key FROM keys.key_summary WHERE source = %s AND partition_key = %s", (source, partition_key)).fetchone()
    return row[0] if row else None


def save_comparison(conn, source: str, partition_key: str, previous_key: str, run_id: str, result: FileComparison) -> None:
    conn.execute("DELETE FROM keys.comparisons WHERE source = %s AND partition_key = %s", (source, partition_key))
    samples = {kind: [[_plain(v) for v in key] for key in keys] for kind, keys in result.samples.items()}
    conn.execute(
        "INSERT INTO keys.comparisons (source, partition_key, previous_partition_key, run_id, key_columns, added_columns,"
        " removed_columns, type_changes, key_holds_previous, key_holds_current, only_in_previous, only_in_current, in_both,"
        " changed, changed_columns, samples) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            source, partition_key, previous_key, run_id, list(result.key), result.added_columns, result.removed_columns,
            Jsonb([list(t) for t in result.type_changes]), result.key_holds_a, result.key_holds_b, result.only_in_a,
            result.only_in_b, result.in_both, result.changed, Jsonb(result.changed_columns), Jsonb(samples),
        ),
    )  # fmt: skip


def key_summaries(conn) -> list[tuple[str, str, list[str] | None, str, int, int]]:
    """(source, partition_key, suggested key, reason, minimal keys, duplicate rows) of every file."""
    return conn.execute(
        "SELECT source, partition_key, suggested_key, suggestion_reason, minimal_keys, duplicate_rows FROM keys.key_summary ORDER BY source, partition_key"
    ).fetchall()


def analysed_partitions(conn, source: str, partition_keys: Sequence[str]) -> set[str]:
    """Those of the source's partitions whose keys were analysed."""
    rows = conn.execute("SELECT partition_key FROM keys.key_summary WHERE source = %s AND partition_key = ANY(%s)", (source, list(partition_keys)))
    return {partition for (partition,) in rows.fetchall()}
