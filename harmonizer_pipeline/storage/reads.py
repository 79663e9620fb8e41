"""PostgreSQL tables back as DataFrames with their exact dtypes: whole (in parallel over block
ranges of one exported snapshot for large tables) or streamed in chunks from COPY output (no
dagster)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

import pandas as pd
import pyarrow as pa
from psycopg import sql

from harmonizer_pipeline.storage.catalog import execute, restorable, scalar, stored_columns, table_exists
from harmonizer_pipeline.storage.frame_codec import (
    ColumnSpec,
    TableStoreError,
    arrow_to_frame,
    qualified,
    storage_name,
)
from harmonizer_pipeline.storage.streams import READ_AHEAD_BATCHES, read_ahead

BLOCK_BYTES = 8192


PARALLEL_MIN_BYTES = 64 << 20  # reads: below this, extra connections cost more than they save


DEFAULT_CHUNK_ROWS = 100_000


def _select(schema: str, table: str, stored: Sequence[str] | None, where: sql.Composable | None, order_by: Sequence[str] = ()) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in stored) if stored else sql.SQL("*")
    query = sql.SQL("SELECT {} FROM {}").format(columns, qualified(schema, table))
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
    if order_by:
        query = sql.SQL("{} ORDER BY {}").format(query, sql.SQL(", ").join(sql.Identifier(storage_name(c)) for c in order_by))
    return query


def select_statement(schema: str, table: str, columns: Sequence[str] | None = None, where: sql.Composable | None = None) -> str:
    """The SQL a person can paste into psql to see the same rows."""
    stored = [storage_name(c) for c in columns] if columns else None
    return _select(schema, table, stored, where).as_string(None)


def _plan_read(conn, schema: str, table: str, columns: Sequence[str] | None) -> tuple[dict[str, ColumnSpec], list[str] | None]:
    if not table_exists(conn, schema, table):
        raise TableStoreError(f"table {schema}.{table} does not exist yet: materialize its asset first")
    specs = stored_columns(conn, schema, table)
    if not columns:
        return restorable(specs), None
    by_name = {s.name: s.stored_name for s in specs.values()}
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        raise TableStoreError(f"{schema}.{table} has no column(s) {unknown}; it has {list(by_name)}")
    return restorable(specs), [by_name[c] for c in columns]


def read_frame(
    conn,
    schema: str,
    table: str,
    columns: Sequence[str] | None = None,
    where: sql.Composable | None = None,
    *,
    connect: Callable[[], AbstractContextManager] | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """The table (or the rows matching `where`) as one DataFrame.

    With `connect` and `workers` > 1, a table of over PARALLEL_MIN_BYTES is read by that many
    connections at once, each scanning its own range of blocks, all in one exported snapshot
    (as `pg_dump --jobs` does), so the result is the same consistent table a single read gives.
    """
    specs, stored = _plan_read(conn, schema, table, columns)
    blocks = _block_count(conn, schema, table)
    if connect is None or workers < 2 or blocks * BLOCK_BYTES < PARALLEL_MIN_BYTES:
        arrow_table = _fetch(conn, _select(schema, table, stored, where))
    else:
        arrow_table = _fetch_in_parallel(conn, connect, workers, blocks, schema, table, stored, where)
    return arrow_to_frame(arrow_table, specs)


def _fetch(conn, query: sql.Composable) -> pa.Table:
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        return cur.fetch_arrow_table()


def _block_count(conn, schema: str, table: str) -> int:
    name = sql.Literal(qualified(schema, table).as_string(None))
    query = sql.SQL("SELECT pg_relation_size(to_regclass({})) / current_setting('block_size')::bigint").format(name)
    return int(scalar(conn, query) or 0)


def _fetch_in_parallel(conn, connect, workers, blocks, schema, table, stored, where) -> pa.Table:
    conn.commit()  # the snapshot must open a fresh repeatable-read transaction
    execute(conn, sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    snapshot = scalar(conn, sql.SQL("SELECT pg_export_snapshot()"))
    starts = [blocks * i // workers for i in range(workers)]
    ranges = list(zip(starts, [*starts[1:], None]))

    def fetch(block_range: tuple[int, int | None]) -> pa.Table:
        low, high = block_range
        condition = [sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({low},0)"))]
        if high is not None:  # the last range is open: rows appended meanwhile are not in the snapshot anyway
            condition.append(sql.SQL("ctid < {}::tid").format(sql.Literal(f"({high},0)")))
        if where is not None:
            condition.insert(0, sql.SQL("({})").format(where))
        with connect() as worker:
            execute(worker, sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            execute(worker, sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            return _fetch(worker, _select(schema, table, stored, sql.SQL(" AND ").join(condition)))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return pa.concat_tables(pool.map(fetch, ranges))


def read_chunks(
    conn,
    schema: str,
    table: str,
    columns: Sequence[str] | None = None,
    where: sql.Composable | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    order_by: Sequence[str] = (),
) -> Iterator[pd.DataFrame]:
    """Yield the table in DataFrames of about `chunk_rows` rows, streamed from COPY output
    (ordered by the columns `order_by` names) and read ahead while the caller works on a chunk."""
    specs, stored = _plan_read(conn, schema, table, columns)
    with conn.cursor() as cur:
        cur.execute(_select(schema, table, stored, where, order_by).as_string(None))
        reader = cur.fetch_record_batch()
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        yielded = False
        for batch in read_ahead(reader, READ_AHEAD_BATCHES):
            pending.append(batch)
            pending_rows += batch.num_rows
            while pending_rows >= chunk_rows:
                combined = pa.Table.from_batches(pending).combine_chunks()
                yield arrow_to_frame(combined.slice(0, chunk_rows), specs)
                yielded = True
                rest = combined.slice(chunk_rows)
                pending, pending_rows = rest.to_batches(), rest.num_rows
        if pending_rows or not yielded:
            # An empty table still yields one empty frame, so consumers see its columns.
            yield arrow_to_frame(pa.Table.from_batches(pending, schema=reader.schema), specs)


def partition_filter(dimensions: Sequence[tuple[str, Sequence[str] | tuple[object, object]]]) -> sql.Composable:
    """WHERE condition for partition dimensions: key lists (`col IN (...)`) or time windows
    given as `(start, end)` tuples (`start <= col < end`). Columns and values are quoted by psycopg."""
    conditions: list[sql.Composable] = []
    for column, selection in dimensions:
        ident = sql.Identifier(storage_name(column))
        if isinstance(selection, tuple):
            start, end = selection
            conditions.append(sql.SQL("({} >= {} AND {} < {})").format(ident, sql.Literal(start), ident, sql.Literal(end)))
        elif selection:
            conditions.append(sql.SQL("{} IN ({})").format(ident, sql.SQL(", ").join(sql.Literal(k) for k in selection)))
        else:
            conditions.append(sql.SQL("FALSE"))
    return sql.SQL(" AND ").join(conditions)
