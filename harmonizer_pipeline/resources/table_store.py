"""Store pandas DataFrames in PostgreSQL tables and read them back with their exact dtypes.

Plain module (no dagster): the IO manager wires it into Dagster. Data moves through Arrow and
ADBC, whose ingest is a binary COPY and whose reads stream COPY output, never row-by-row SQL.
How columns are encoded is `frame_codec`'s business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
from psycopg import sql

from harmonizer_pipeline.resources.frame_codec import (
    ColumnSpec,
    TableStoreError,
    arrow_to_frame,
    frame_to_arrow,
    qualified,
    storage_name,
)

BLOCK_BYTES = 8192
PARALLEL_MIN_BYTES = 64 << 20  # below this, extra connections cost more than they save
DEFAULT_CHUNK_ROWS = 100_000


class DataFrameChunks(Iterator[pd.DataFrame]):
    """A stream of DataFrames sharing one set of columns.

    Return it from an asset to have each chunk COPYed as it comes (one transaction), or annotate
    an input with it to read the table chunk by chunk, so no table has to sit in memory whole.
    """

    def __init__(self, chunks: Iterable[pd.DataFrame]):
        self._chunks = iter(chunks)

    def __next__(self) -> pd.DataFrame:
        return next(self._chunks)


# --- catalog --------------------------------------------------------------------------------


def _scalar(conn, query: sql.Composable):
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        row = cur.fetchone()
    return row[0] if row else None


def _execute(conn, query: sql.Composable) -> None:
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))


def table_exists(conn, schema: str, table: str) -> bool:
    name = qualified(schema, table).as_string(None)
    return _scalar(conn, sql.SQL("SELECT to_regclass({}) IS NOT NULL").format(sql.Literal(name))) is True


def stored_columns(conn, schema: str, table: str) -> dict[str, ColumnSpec]:
    """Specs of the table's columns, by stored name, in table order."""
    query = sql.SQL(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) "
        "FROM pg_attribute a WHERE a.attrelid = to_regclass({}) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    ).format(sql.Literal(qualified(schema, table).as_string(None)))
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        rows = cur.fetchall()
    return {stored_name: ColumnSpec.from_catalog(stored_name, pg_type, comment) for stored_name, pg_type, comment in rows}


def _restorable(specs: Mapping[str, ColumnSpec]) -> dict[str, ColumnSpec]:
    # Columns without our comment (made by someone else) come back with Arrow's own mapping.
    return {k: v for k, v in specs.items() if v.pandas_dtype}


# --- writing --------------------------------------------------------------------------------


def lock_table(conn, schema: str, table: str) -> None:
    """Serialise writers of one table (and creators of its schema) until the transaction ends."""
    for key in (f"schema:{schema}", f"table:{schema}.{table}"):
        _execute(conn, sql.SQL("SELECT pg_advisory_xact_lock(hashtextextended({}, 0))").format(sql.Literal(key)))


def ensure_schema(conn, schema: str) -> None:
    _execute(conn, sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))


def drop_table(conn, schema: str, table: str) -> None:
    _execute(conn, sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(schema, table)))


def delete_rows(conn, schema: str, table: str, where: sql.Composable) -> None:
    if table_exists(conn, schema, table):
        _execute(conn, sql.SQL("DELETE FROM {} WHERE {}").format(qualified(schema, table), where))


def _comment_columns(conn, schema: str, table: str, specs: Iterable[ColumnSpec]) -> None:
    for spec in specs:
        _execute(
            conn,
            sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(
                qualified(schema, table), sql.Identifier(spec.stored_name), sql.Literal(spec.comment())
            ),
        )


def _create_table(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(s.stored_name), sql.SQL(s.pg_type)) for s in specs
    )
    _execute(conn, sql.SQL("CREATE TABLE {} ({})").format(qualified(schema, table), columns))
    _comment_columns(conn, schema, table, specs)


def _add_columns(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> None:
    for spec in specs:
        _execute(
            conn,
            sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                qualified(schema, table), sql.Identifier(spec.stored_name), sql.SQL(spec.pg_type)
            ),
        )
    _comment_columns(conn, schema, table, specs)


def _with_constant_columns(frame: pd.DataFrame, constants: Mapping[str, object]) -> pd.DataFrame:
    missing = {k: v for k, v in constants.items() if k not in frame.columns}
    if not missing:
        return frame
    return frame.assign(**{k: pd.Series([v] * len(frame), index=frame.index) for k, v in missing.items()})


@dataclass
class WriteResult:
    rows: int = 0
    columns: list[ColumnSpec] = field(default_factory=list)

    @property
    def renamed(self) -> dict[str, str]:
        return {c.name: c.stored_name for c in self.columns if c.name != c.stored_name}


def write_frames(
    conn,
    schema: str,
    table: str,
    chunks: Iterable[pd.DataFrame],
    constant_columns: Mapping[str, object] | None = None,
    required_columns: Sequence[str] = (),
) -> WriteResult:
    """Append DataFrame chunks to `schema.table` through ADBC's binary COPY, creating the table
    from the first chunk or adding columns it lacks. Runs in the caller's transaction.

    `constant_columns` fills columns a chunk does not carry (e.g. its partition key);
    `required_columns` must be present after that (e.g. partition columns).
    """
    constants = dict(constant_columns or {})
    iterator = iter(chunks)
    first = next(iterator, None)
    if first is None:
        raise TableStoreError(f"{schema}.{table}: the asset produced no DataFrame chunk at all")
    first = _with_constant_columns(first, constants)
    missing = [c for c in required_columns if c not in first.columns]
    if missing:
        raise TableStoreError(
            f"{schema}.{table}: the rows lack partition column(s) {missing}, and the run covers several "
            "partitions, so they cannot be filled in; add the column(s) to the DataFrame"
        )
    first_table, specs = frame_to_arrow(first)
    existing = stored_columns(conn, schema, table) if table_exists(conn, schema, table) else None
    if existing is None:
        _create_table(conn, schema, table, specs)
        table_types = {s.stored_name: s.pg_type for s in specs}
    else:
        table_types = {name: spec.pg_type for name, spec in existing.items()}
        _check_compatible(schema, table, specs, table_types)
        new = [s for s in specs if s.stored_name not in existing]
        if new:
            _add_columns(conn, schema, table, new)
            table_types.update({s.stored_name: s.pg_type for s in new})
    target = conn.adbc_get_table_schema(storage_name(table), db_schema_filter=schema)
    names = [s.stored_name for s in specs]
    write_schema = pa.schema([target.field(n).remove_metadata() for n in names])
    result = WriteResult(columns=specs)

    failures: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        arrow_table = first_table
        try:
            while True:
                result.rows += arrow_table.num_rows
                yield from _cast(arrow_table, write_schema, schema, table).to_batches()
                frame = next(iterator, None)
                if frame is None:
                    return
                arrow_table, chunk_specs = frame_to_arrow(_with_constant_columns(frame, constants))
                if [s.stored_name for s in chunk_specs] != names:
                    raise TableStoreError(
                        f"{schema}.{table}: a later chunk has columns {[s.name for s in chunk_specs]}, "
                        f"the first had {[s.name for s in specs]}"
                    )
                _check_compatible(schema, table, chunk_specs, table_types)
        except BaseException as exc:
            failures.append(exc)
            raise

    reader = pa.RecordBatchReader.from_batches(write_schema, batches())
    with conn.cursor() as cur:
        try:
            cur.adbc_ingest(storage_name(table), reader, mode="append", db_schema_name=schema)
        except Exception:
            # ADBC wraps errors raised while producing chunks; surface the original one.
            if failures:
                raise failures[0] from None
            raise
    return result


def _check_compatible(schema: str, table: str, specs: Sequence[ColumnSpec], table_types: Mapping[str, str]) -> None:
    for spec in specs:
        old = table_types.get(spec.stored_name)
        if old is None or spec.only_nulls or old == spec.pg_type or _widens(old, spec.pg_type):
            continue
        raise TableStoreError(
            f"{schema}.{table}: column {spec.name!r} is {old} in the table but the new rows "
            f"hold {spec.pg_type} ({spec.pandas_dtype}); convert the column, or re-materialize "
            "everything in the table if its type really changed"
        )


_WIDER = {"smallint": 0, "integer": 1, "bigint": 2}


def _widens(old: str, new: str) -> bool:
    # Smaller integers go into a wider integer column, single precision into double.
    if old in _WIDER and new in _WIDER:
        return _WIDER[new] <= _WIDER[old]
    return (old, new) in {("double precision", "real")}


def _cast(arrow_table: pa.Table, target: pa.Schema, schema: str, table: str) -> pa.Table:
    try:
        return arrow_table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TableStoreError(f"{schema}.{table}: rows do not fit the table's column types: {exc}") from exc


# --- reading --------------------------------------------------------------------------------


def _select(schema: str, table: str, stored: Sequence[str] | None, where: sql.Composable | None) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in stored) if stored else sql.SQL("*")
    query = sql.SQL("SELECT {} FROM {}").format(columns, qualified(schema, table))
    if where is not None:
        query = sql.SQL("{} WHERE {}").format(query, where)
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
        return _restorable(specs), None
    by_name = {s.name: s.stored_name for s in specs.values()}
    unknown = [c for c in columns if c not in by_name]
    if unknown:
        raise TableStoreError(f"{schema}.{table} has no column(s) {unknown}; it has {list(by_name)}")
    return _restorable(specs), [by_name[c] for c in columns]


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
    return int(_scalar(conn, query) or 0)


def _fetch_in_parallel(conn, connect, workers, blocks, schema, table, stored, where) -> pa.Table:
    conn.commit()  # the snapshot must open a fresh repeatable-read transaction
    _execute(conn, sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
    snapshot = _scalar(conn, sql.SQL("SELECT pg_export_snapshot()"))
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
            _execute(worker, sql.SQL("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            _execute(worker, sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
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
) -> Iterator[pd.DataFrame]:
    """Yield the table in DataFrames of about `chunk_rows` rows, streamed from COPY output."""
    specs, stored = _plan_read(conn, schema, table, columns)
    with conn.cursor() as cur:
        cur.execute(_select(schema, table, stored, where).as_string(None))
        reader = cur.fetch_record_batch()
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        yielded = False
        for batch in reader:
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
    conditions = []
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
