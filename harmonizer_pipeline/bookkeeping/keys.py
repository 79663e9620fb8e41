"""The keys tables (no dagster); every function takes a psycopg connection.
A file's rows in each table are replaced when it is analysed again.

- keys.key_summary: one row per file — rows, keys found, the suggested key and why, duplicates.
- keys.unique_keys: the file's minimal keys.
- keys.near_keys: its best almost-unique combinations, ranked.
- keys.duplicate_groups: the rows of each group of fully repeated rows (kind `row`), of each
  group sharing the suggested or declared key (kind `key`) and of each group breaking a near-key
  (kind `near_key`, the near-key in key_columns), with their lineage.
- keys.dependencies: the file's functional dependencies, ranked (exact, or approximate with their
  g3 error and the rows breaking them); keys.dependency_rows: those rows (up to a limit per
  dependency) with their LHS values, the value seen and the group's majority value, as text.
- keys.comparisons: the file against the previous file of its source on the key (counts).
- keys.file_comparisons: two files of a source chosen for the job compare_files (counts).
- keys.comparison_rows: the differences of each comparison of either kind: rows added (B's row
  number), removed (A's) and each changed value, before and after, as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
from psycopg import sql
from psycopg.types.json import Jsonb

from harmonizer_pipeline.keys.comparison import Comparison, value_text
from harmonizer_pipeline.keys.discovery import Key, KeyAnalysis, NearKey, Suggestion
from harmonizer_pipeline.relations.dependencies import BrokenRow, Dependency

_PER_FILE = ("key_summary", "unique_keys", "near_keys", "duplicate_groups", "dependencies", "dependency_rows")


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
        key_columns = [tuple(c) for c in groups["_key_columns"]]
        key_values: list[str] = [""] * len(groups)
        positions_of: dict[tuple, list[int]] = {}
        for position, key in enumerate(key_columns):
            positions_of.setdefault(key, []).append(position)
        for columns_of_key, positions in positions_of.items():
            for position, text in zip(positions, _json_objects(groups.iloc[positions], columns_of_key)):
                key_values[position] = text
        lineage = [_plain_column(groups, c) for c in ("_row_number", "_source_file", "_load_id")]
        with cur.copy(statement) as copy:
            for kind, key, group, values, row_number, source_file, load_id in zip(
                groups["_kind"].tolist(), key_columns, groups["_group"].tolist(), key_values, *lineage
            ):
                copy.write_row((source, partition_key, run_id, kind, list(key), int(group), values, row_number, source_file, load_id))


def _plain_column(frame: pd.DataFrame, column: str) -> list:
    """The column's values as plain Python values (NULL as None); all None when it is absent."""
    return [_plain(v) for v in frame[column].tolist()] if column in frame.columns else [None] * len(frame)


def _json_objects(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """Each row's values of `columns` as the JSON object json.dumps({column: _plain(value)}) writes,
    built column by column: a dict and a dumps per row took most of a 400,000-row save."""
    parts = [[f"{json.dumps(c, ensure_ascii=False)}: {json.dumps(_plain(v), ensure_ascii=False)}" for v in frame[c].tolist()] for c in columns]
    return ["{" + ", ".join(row) + "}" for row in zip(*parts)] if parts else ["{}"] * len(frame)


def save_dependencies(conn, source: str, partition_key: str, run_id: str, dependencies: Sequence[Dependency], rows: Sequence[BrokenRow]) -> None:
    """Replace the file's functional dependencies and the rows breaking its approximate ones."""
    for table in ("dependencies", "dependency_rows"):
        _delete(conn, table, source, partition_key)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO keys.dependencies (source, partition_key, run_id, rank, lhs, rhs, exact, error, violating_rows)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(source, partition_key, run_id, rank, list(d.lhs), d.rhs, d.exact, d.error, d.violating_rows) for rank, d in enumerate(dependencies, start=1)],
        )
        columns = ["source", "partition_key", "run_id", "lhs", "rhs", "position", "_row_number", "lhs_values", "value", "majority_value"]
        statement = sql.SQL("COPY keys.dependency_rows ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
        with cur.copy(statement) as copy:
            for position, r in enumerate(rows, start=1):
                copy.write_row((
                    source, partition_key, run_id, list(r.lhs), r.rhs, position, r.row_number,
                    json.dumps({c: _plain(v) for c, v in r.lhs_values.items()}, ensure_ascii=False), _text(r.value), _text(r.majority),
                ))  # fmt: skip


def load_dependencies(conn, source: str, partition_key: str, rows_each: int | None = None) -> tuple[list[Dependency], list[BrokenRow]] | None:
    """The file's stored dependencies, ranked, and the first `rows_each` rows breaking each
    approximate one (all when None), values as text; None when its keys were never analysed."""
    where = (source, partition_key)
    if conn.execute("SELECT FROM keys.key_summary WHERE source = %s AND partition_key = %s", where).fetchone() is None:
        return None
    found = conn.execute(
        "SELECT lhs, rhs, error, violating_rows, exact FROM keys.dependencies WHERE source = %s AND partition_key = %s ORDER BY rank", where
    ).fetchall()
    rows = conn.execute(
        "SELECT lhs, rhs, _row_number, lhs_values, value, majority_value FROM ("
        " SELECT *, row_number() OVER (PARTITION BY lhs, rhs ORDER BY position) AS n FROM keys.dependency_rows WHERE source = %s AND partition_key = %s"
        ") r WHERE %s::bigint IS NULL OR n <= %s ORDER BY position",
        (*where, rows_each, rows_each),
    ).fetchall()
    dependencies = [Dependency(tuple(lhs), rhs, error, violating, exact) for lhs, rhs, error, violating, exact in found]
    return dependencies, [BrokenRow(tuple(lhs), rhs, number, dict(values), value, majority) for lhs, rhs, number, values, value, majority in rows]


def load_analysis(conn, source: str, partition_key: str, columns: Sequence[str]) -> KeyAnalysis | None:
    """The file's stored key analysis (`columns`: the file's, which the summary only counts); None
    when never analysed."""
    where = (source, partition_key)
    summary = conn.execute(
        "SELECT rows, suggested_key, suggestion_reason, suggested_key_unique, duplicate_rows, null_equals_null, max_size, seconds"
        " FROM keys.key_summary WHERE source = %s AND partition_key = %s",
        where,
    ).fetchone()
    if summary is None:
        return None
    rows, suggested, reason, unique, duplicate_rows, null_equals_null, max_size, seconds = summary
    minimal = conn.execute("SELECT columns, has_nulls FROM keys.unique_keys WHERE source = %s AND partition_key = %s ORDER BY size, columns", where).fetchall()
    near = conn.execute(
        "SELECT columns, uniqueness, duplicate_groups, excess_rows, has_nulls FROM keys.near_keys WHERE source = %s AND partition_key = %s ORDER BY rank",
        where,
    ).fetchall()
    return KeyAnalysis(
        rows=rows,
        columns=list(columns),
        minimal_keys=[Key(tuple(c), nulls) for c, nulls in minimal],
        near_keys=[NearKey(tuple(c), u, g, e, nulls) for c, u, g, e, nulls in near],
        suggestion=Suggestion(tuple(suggested) if suggested else None, reason, unique),
        duplicate_rows=duplicate_rows,
        seconds=seconds,
        null_equals_null=null_equals_null,
        max_size=max_size,
    )


def suggested_key(conn, source: str, partition_key: str) -> list[str] | None:
    row = conn.execute("SELECT suggested_key FROM keys.key_summary WHERE source = %s AND partition_key = %s", (source, partition_key)).fetchone()
    return row[0] if row else None


def save_comparison(conn, source: str, partition_key: str, previous_key: str, run_id: str, result: Comparison) -> int:
    """Replace the file's comparison with the previous file, and its difference rows; its comparison id."""
    old = conn.execute("DELETE FROM keys.comparisons WHERE source = %s AND partition_key = %s RETURNING comparison_id", (source, partition_key)).fetchall()
    conn.execute("DELETE FROM keys.comparison_rows WHERE comparison_id = ANY(%s)", ([i for (i,) in old],))
    # The count columns keep the meaning they had before difference rows were kept (summaries read
    # them); both keys are unique now, or there is no comparison.
    (comparison_id,) = conn.execute(
        "INSERT INTO keys.comparisons (source, partition_key, previous_partition_key, run_id, key_columns, added_columns,"
        " removed_columns, type_changes, key_holds_previous, key_holds_current, only_in_previous, only_in_current, in_both,"
        " changed, changed_columns) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, true, %s, %s, %s, %s, %s) RETURNING comparison_id",
        (
            source, partition_key, previous_key, run_id, list(result.key), result.added_columns, result.removed_columns,
            Jsonb([list(t) for t in result.retyped_columns]), result.removed, result.added, result.changed + result.unchanged,
            result.changed, Jsonb(result.changed_columns),
        ),
    ).fetchone()  # fmt: skip
    save_difference_rows(conn, comparison_id, source, previous_key, partition_key, result)
    return comparison_id


def save_file_comparison(conn, source: str, partition_key_a: str, partition_key_b: str, run_id: str, result: Comparison) -> int:
    """Record a comparison of two chosen files of the source, and its difference rows; its comparison id."""
    (comparison_id,) = conn.execute(
        "INSERT INTO keys.file_comparisons (source, partition_key_a, partition_key_b, run_id, key_columns, added_columns, removed_columns,"
        " retyped_columns, rows_a, rows_b, added, removed, changed, unchanged, changed_columns)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING comparison_id",
        (
            source, partition_key_a, partition_key_b, run_id, list(result.key), result.added_columns, result.removed_columns,
            Jsonb([list(t) for t in result.retyped_columns]), result.rows_a, result.rows_b, result.added, result.removed,
            result.changed, result.unchanged, Jsonb(result.changed_columns),
        ),
    ).fetchone()  # fmt: skip
    save_difference_rows(conn, comparison_id, source, partition_key_a, partition_key_b, result)
    return comparison_id


_ROW_COLUMNS = [
    "comparison_id", "source", "partition_key_a", "partition_key_b", "kind", "key_values", "column_name", "before", "after", "_row_number_a", "_row_number_b",
]  # fmt: skip


def save_difference_rows(conn, comparison_id: int, source: str, partition_key_a: str, partition_key_b: str, result: Comparison) -> None:
    """COPY every difference into keys.comparison_rows: added rows (B's row number), removed rows
    (A's), and one row per changed value with its text before and after. The frames compared
    carry `_row_number`."""
    statement = sql.SQL("COPY keys.comparison_rows ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, _ROW_COLUMNS)))
    fixed = (comparison_id, source, partition_key_a, partition_key_b)
    key = list(result.key)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for kind, rows in (("added", result.added_rows()), ("removed", result.removed_rows())):
            for chunk in rows:
                for key_values, number in zip(_json_objects(chunk, key), _plain_column(chunk, "_row_number")):
                    copy.write_row((*fixed, kind, key_values, None, None, None, *((None, number) if kind == "added" else (number, None))))
        for chunk in result.changed_cells(extra=["_row_number"]):
            for key_values, column, before, after, number_a, number_b in zip(
                _json_objects(chunk, key),
                chunk["column"].tolist(),
                [_text(v) for v in chunk["before"].tolist()],
                [_text(v) for v in chunk["after"].tolist()],
                _plain_column(chunk, "_row_number_a"),
                _plain_column(chunk, "_row_number_b"),
            ):
                copy.write_row((*fixed, "changed", key_values, column, before, after, number_a, number_b))


def _text(value) -> str | None:
    """A value as the text column before/after holds it (NULL stays NULL)."""
    plain = _plain(value)
    return None if plain is None else value_text(plain)  # pyright: ignore[reportReturnType]


def key_summaries(conn) -> list[tuple[str, str, list[str] | None, str, int, int]]:
    """(source, partition_key, suggested key, reason, minimal keys, duplicate rows) of every file."""
    return conn.execute(
        "SELECT source, partition_key, suggested_key, suggestion_reason, minimal_keys, duplicate_rows FROM keys.key_summary ORDER BY source, partition_key"
    ).fetchall()


def analysed_partitions(conn, source: str, partition_keys: Sequence[str]) -> set[str]:
    """Those of the source's partitions whose keys were analysed."""
    rows = conn.execute("SELECT partition_key FROM keys.key_summary WHERE source = %s AND partition_key = ANY(%s)", (source, list(partition_keys)))
    return {partition for (partition,) in rows.fetchall()}
