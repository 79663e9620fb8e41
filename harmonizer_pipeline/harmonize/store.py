"""The data tables of the harmonize stage, shaped by harmonizer.yaml (no dagster).

Per source with a target:
- staged.<source>: each file's validated rows mapped into the target's columns, LIST-partitioned
  by file like raw and validated (written by harmonize.staging; created here with the target's
  types, so a column a file leaves empty still has its type).

Per target:
- harmonized.<target>: one row per business key (its primary key), with lineage and
  `_duplicates` (rows merged into it);
- harmonized.<target>_duplicate_rows: every row of a key that has more than one, `_position` 0
  for the surviving row; the view harmonized.<target>_duplicates numbers its groups by key
  (`_group`, 1, 2, ...) and lists the kept row first, as people read it;
- harmonized.<target>_match_candidates: likely fuzzy duplicates, for review;
- harmonized.<target>_changes: each merge's delta (insert / update / delete) until export/<target>
  wrote it to change files;
- harmonized.<target>_history (with `history: true`): a type-2 slowly changing dimension.

Their bookkeeping (ops.staged_files, ops.merged_files, ops.merges) is in bookkeeping.merges; values
that could not be standardized are in quality.rejected_rows under checks named `harmonize:<rule>`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import merges, rejected
from harmonizer_pipeline.harmonize.mapping import LINEAGE
from harmonizer_pipeline.harmonize.settings import Target
from harmonizer_pipeline.storage.catalog import stored_columns, table_exists
from harmonizer_pipeline.storage.frame_codec import ColumnSpec, frame_to_arrow, pg_type_sql, qualified, storage_name
from harmonizer_pipeline.storage.partitions import create_list_partitioned

# The schemas of harmonized/<target> (every table of a target is in it) and staged/<source>.
SCHEMA = naming.harmonized("").schema
STAGED_SCHEMA = naming.staged("").schema
HISTORY_COLUMNS = ["valid_from", "valid_to", "is_current", "_run_id"]

_SAMPLES = {
    "text": pd.Series(["x"], dtype="str"),
    "integer": pd.array([1], dtype="Int64"),
    "float": pd.array([1.5], dtype="Float64"),
    "boolean": pd.array([True], dtype="boolean"),
    "date": pd.Series([dt.date(2000, 1, 1)], dtype=object),
    "datetime": pd.Series([pd.Timestamp("2000-01-01", tz="UTC")]).astype("datetime64[us, UTC]"),
}
_LINEAGE_SAMPLES = {"_source": pd.Series(["s"], dtype="str"), "_source_file": pd.Series(["f"], dtype="str"),
                    "_row_number": pd.array([1], dtype="Int64"), "_load_id": pd.Series(["r"], dtype="str")}  # fmt: skip


def duplicates_table(target: str) -> str:
    """The view people read: groups numbered by key, the kept row first."""
    return f"{target}_duplicates"


def duplicates_view(target: str) -> naming.StageAsset:
    """The duplicates view, to read as a table (its rows are in duplicate_rows_table)."""
    return naming.StageAsset(SCHEMA, duplicates_table(target))


def duplicate_rows_table(target: str) -> str:
    return f"{target}_duplicate_rows"


def candidates_table(target: str) -> str:
    return f"{target}_match_candidates"


def changes_table(target: str) -> str:
    return f"{target}_changes"


def changes(target: str) -> naming.StageAsset:
    """The changes table, to read as a table: each merge's delta, `_merge_id` naming the merge."""
    return naming.StageAsset(SCHEMA, changes_table(target))


def drop_exported_changes(conn, target: str, merge_id: int) -> None:
    """Drop the delta of merge `merge_id` once its change files are written: TRUNCATE when it is
    the table's only one (0.05 s where a DELETE of a 1M-row delta took 0.3-0.6 s and left its dead
    rows for autovacuum, in front of the next merge's delta), else DELETE. The lock waits for a
    merge still writing its delta, so the check then sees it."""
    table = qualified(SCHEMA, changes_table(target))
    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    others = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE _merge_id < %s OR _merge_id > %s)").format(table), (merge_id, merge_id)).fetchone()[0]
    if others:
        conn.execute(sql.SQL("DELETE FROM {} WHERE _merge_id = %s").format(table), (merge_id,))
    else:
        conn.execute(sql.SQL("TRUNCATE {}").format(table))


def history_table(target: str) -> str:
    return f"{target}_history"


def _lock(conn, name: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (name,))


def value_specs(target: Target) -> list[ColumnSpec]:
    """The target's columns, then LINEAGE, as the table store encodes them."""
    sample = pd.DataFrame({**{name: _SAMPLES[spec.type] for name, spec in target.columns.items()}, **_LINEAGE_SAMPLES})
    return frame_to_arrow(sample)[1]


def target_specs(target: Target) -> list[ColumnSpec]:
    """harmonized.<target>'s columns."""
    return [*value_specs(target), _extra("_duplicates", "bigint", "Int64")]


def _columns(specs: Sequence[ColumnSpec], key: Sequence[str] = ()) -> list[sql.Composable]:
    # Text key columns compare bytewise, so the primary key's order is the order Python sorts in.
    return [
        sql.SQL("{} {}{}").format(
            sql.Identifier(s.stored_name), pg_type_sql(s.pg_type), sql.SQL(' COLLATE "C"' if s.name in key and s.pg_type == "text" else "")
        )
        for s in specs
    ]


def _create(conn, schema: str, table: str, columns: Sequence[sql.Composable], specs: Sequence[ColumnSpec], suffix: sql.Composable = sql.SQL("")) -> None:
    conn.execute(sql.SQL("CREATE TABLE {} ({}){}").format(qualified(schema, table), sql.SQL(", ").join(columns), suffix))
    for spec in specs:
        conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(qualified(schema, table), sql.Identifier(spec.stored_name), sql.Literal(spec.comment())))


def _extra(name: str, pg_type: str, pandas_dtype: str) -> ColumnSpec:
    return ColumnSpec(name=name, stored_name=name, pg_type=pg_type, pandas_dtype=pandas_dtype)


def ensure_staged_table(conn, source: str, target: Target, partition_column: str) -> None:
    """staged.<source>, LIST-partitioned by `partition_column`, typed as the target's columns; a
    column the target gained is added (NULL in files staged before: `harmonizer rebuild --restage`)."""
    specs = [*value_specs(target), _extra(partition_column, "text", "str")]
    if table_exists(conn, STAGED_SCHEMA, source):
        _add_missing_columns(conn, source, specs, STAGED_SCHEMA)
        return
    _lock(conn, f"schema:{STAGED_SCHEMA}")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(STAGED_SCHEMA)))
    if not table_exists(conn, STAGED_SCHEMA, source):
        create_list_partitioned(conn, STAGED_SCHEMA, source, partition_column, specs)


def key_columns(target: Target) -> list[sql.Identifier]:
    return [sql.Identifier(storage_name(c)) for c in target.key]


def value_columns(target: Target) -> list[sql.Identifier]:
    return [sql.Identifier(storage_name(c)) for c in [*target.columns, *LINEAGE]]


def _is_current_layout(conn, target_name: str, target: Target) -> bool:
    """The target's tables exist in this layout, with the columns, types and key the settings give."""
    if not table_exists(conn, SCHEMA, duplicate_rows_table(target_name)):
        return False
    stored = {name: spec.pg_type for name, spec in stored_columns(conn, SCHEMA, target_name).items()}
    wanted = {s.stored_name: s.pg_type for s in target_specs(target)}
    key = conn.execute(
        "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
        (qualified(SCHEMA, target_name).as_string(None),),
    ).fetchone()[0]
    return stored == wanted and key == [storage_name(k) for k in target.key]


def ensure_target_tables(conn, target_name: str, target: Target) -> bool:
    """The target's tables, in the caller's transaction; True when they were (re)created empty.
    Tables of an earlier layout (the release that rebuilt them whole on each run, or other
    columns, types or key than the settings now give) are replaced, and the merge that follows
    fills them from every current file's staged rows."""
    # Locks of this target only: merges of other targets go on meanwhile.
    _lock(conn, f"tables:{SCHEMA}.{target_name}")
    if conn.execute("SELECT to_regnamespace(%s) IS NULL", (SCHEMA,)).fetchone()[0]:
        _lock(conn, f"schema:{SCHEMA}")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    created = False
    if not _is_current_layout(conn, target_name, target):
        # The history is kept: it gains the new columns below.
        for table in (target_name, duplicates_table(target_name), duplicate_rows_table(target_name), candidates_table(target_name), changes_table(target_name)):
            kind = sql.SQL("VIEW" if _is_view(conn, table) else "TABLE")
            conn.execute(sql.SQL("DROP {} IF EXISTS {}").format(kind, qualified(SCHEMA, table)))
        merges.forget_merged_files(conn, target_name)
        _create_target_tables(conn, target_name, target)
        created = True
    if target.history and not table_exists(conn, SCHEMA, history_table(target_name)):
        _create_history(conn, target_name, target)
    elif target.history:
        _add_missing_columns(conn, history_table(target_name), value_specs(target))
    if target.match:
        _ensure_candidates_table(conn, target_name, target)
    return created


def _ensure_candidates_table(conn, target_name: str, target: Target) -> None:
    table = qualified(SCHEMA, candidates_table(target_name))
    types = {s.name: s.pg_type for s in value_specs(target)}
    pairs = [(f"{side}_{k}", types[k]) for side in ("left", "right") for k in target.key]
    definition: list[sql.Composable] = [sql.SQL("{} {}").format(sql.Identifier(storage_name(c)), pg_type_sql(pg_type)) for c, pg_type in pairs]
    definition.append(sql.SQL("left_text text, right_text text, score bigint, block text"))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table, sql.SQL(", ").join(definition)))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (block)").format(sql.Identifier(f"{candidates_table(target_name)[:50]}_block"), table))


def _is_view(conn, table: str) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (qualified(SCHEMA, table).as_string(None),)).fetchone()
    return row is not None and row[0] == "v"


def _create_target_tables(conn, target_name: str, target: Target) -> None:
    specs, key = value_specs(target), list(target.key)
    keys, lineage_index = sql.SQL(", ").join(key_columns(target)), sql.SQL("(_source, _load_id)")
    table_specs = target_specs(target)
    duplicates = table_specs[-1]
    _create(conn, SCHEMA, target_name, [*_columns(table_specs, key), sql.SQL("PRIMARY KEY ({})").format(keys)], table_specs)
    conn.execute(sql.SQL("CREATE INDEX ON {} {}").format(qualified(SCHEMA, target_name), lineage_index))
    rows = duplicate_rows_table(target_name)
    position = [_extra("_kept", "boolean", "boolean"), _extra("_position", "bigint", "Int64")]
    _create(conn, SCHEMA, rows, [*_columns(specs, key), *_columns(position)], [*specs, *position])
    conn.execute(sql.SQL("CREATE INDEX ON {} ({})").format(qualified(SCHEMA, rows), keys))
    conn.execute(sql.SQL("CREATE INDEX ON {} {}").format(qualified(SCHEMA, rows), lineage_index))
    values = sql.SQL(", ").join(value_columns(target))
    conn.execute(
        sql.SQL("CREATE VIEW {} AS SELECT dense_rank() OVER (ORDER BY {}) AS _group, {}, _kept FROM {} ORDER BY {}, _position").format(
            qualified(SCHEMA, duplicates_table(target_name)), keys, values, qualified(SCHEMA, rows), keys
        )
    )
    view_specs = [_extra("_group", "bigint", "Int64"), *specs, position[0]]
    for spec in view_specs:
        conn.execute(
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                qualified(SCHEMA, duplicates_table(target_name)), sql.Identifier(spec.stored_name), sql.Literal(spec.comment())
            )
        )
    change = [_extra("_merge_id", "bigint", "Int64"), _extra("_operation", "text", "str")]
    _create(conn, SCHEMA, changes_table(target_name), [*_columns(change), *_columns(specs, key), *_columns([duplicates])], [*change, *specs, duplicates])
    conn.execute(sql.SQL("CREATE INDEX ON {} (_merge_id)").format(qualified(SCHEMA, changes_table(target_name))))


def _add_missing_columns(conn, table: str, specs: Sequence[ColumnSpec], schema: str = SCHEMA) -> None:
    """Columns the settings gained; rows already there hold NULL in them."""
    stored = stored_columns(conn, schema, table)
    for spec in (s for s in specs if s.stored_name not in stored):
        conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(qualified(schema, table), sql.Identifier(spec.stored_name), pg_type_sql(spec.pg_type)))
        conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(qualified(schema, table), sql.Identifier(spec.stored_name), sql.Literal(spec.comment())))


def _create_history(conn, target_name: str, target: Target) -> None:
    """The history table, started with a version of every current row."""
    specs, table = value_specs(target), history_table(target_name)
    extra = [_extra("valid_from", "timestamp with time zone", "datetime64[us, UTC]"), _extra("valid_to", "timestamp with time zone", "datetime64[us, UTC]"),
             _extra("is_current", "boolean", "boolean"), _extra("_run_id", "text", "str")]  # fmt: skip
    _create(conn, SCHEMA, table, [*_columns(specs, target.key), *_columns(extra)], [*specs, *extra])
    keys = sql.SQL(", ").join(key_columns(target))
    conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} ({}) WHERE is_current").format(qualified(SCHEMA, table), keys))
    values = sql.SQL(", ").join(value_columns(target))
    conn.execute(
        sql.SQL("INSERT INTO {} ({}, valid_from, valid_to, is_current, _run_id) SELECT {}, now(), NULL, true, 'initial' FROM {}").format(
            qualified(SCHEMA, table), values, values, qualified(SCHEMA, target_name)
        )
    )


def drop_staged(conn, source: str, partition_key: str) -> None:
    """Forget a file's staged rows, its bookkeeping and its harmonize rejections (a removed or
    erased file); the next merge takes its keys out of the target."""
    conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(qualified(STAGED_SCHEMA, source), sql.Identifier(naming.PARTITION_COLUMN)), (partition_key,))
    merges.forget_staged(conn, source, partition_key)
    rejected.delete_rejected(conn, source, partition_key, harmonize=True)
