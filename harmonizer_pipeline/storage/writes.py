"""DataFrames into PostgreSQL tables through Arrow and ADBC, whose ingest is a binary COPY, never
row-by-row SQL: appends in the caller's transaction, whole-table replacements COPYed by several
connections into a staging table that the caller's transaction renames into place (no dagster).
How columns are encoded is `frame_codec`'s business."""

from __future__ import annotations

import hashlib
import queue
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
from psycopg import sql

from harmonizer_pipeline.storage.catalog import check_compatible, columns_sql, comment_columns, drop_table, execute, prepare_table, scalar
from harmonizer_pipeline.storage.frame_codec import (
    ColumnSpec,
    TableStoreError,
    frame_to_arrow,
    qualified,
    storage_name,
)
from harmonizer_pipeline.storage.streams import offer

PARALLEL_MIN_ROWS = 100_000  # writes: likewise


PARALLEL_BATCH_ROWS = 50_000  # rows per batch handed to a COPY worker


class DataFrameChunks(Iterator[pd.DataFrame]):
    """A stream of DataFrames sharing one set of columns.

    Return it from an asset to have each chunk COPYed as it comes (one transaction), or annotate
    an input with it to read the table chunk by chunk, so no table has to sit in memory whole.
    The IO manager closes it (and so the stream, with what it holds open) once the write is over.
    """

    def __init__(self, chunks: Iterable[pd.DataFrame]):
        self._chunks = iter(chunks)

    def __next__(self) -> pd.DataFrame:
        return next(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


@dataclass
class TextCopy:
    """The rows of a write as delimited text that PostgreSQL parses itself (COPY ... FORMAT csv): faster
    than parsing here, and used only where the server's parse equals the chunks'.

    `source` is an ingest.readers.ServerCsv: `columns`, `delimiter`, `quotechar`, and segments(n)
    for n parallel COPY streams, each with blocks(stop) (lines led by their row number), header,
    and after blocks() `refusal` (why its parse may differ) and `lines`. `template` is a zero-row
    frame with the chunks' columns and dtypes: its first columns are `source.columns`,
    `row_number_column` takes the leading field, and `constants` fill the others."""

    source: Any
    template: pd.DataFrame
    constants: Mapping[str, object]
    row_number_column: str


def with_constant_columns(frame: pd.DataFrame, constants: Mapping[str, object]) -> pd.DataFrame:
    missing = {k: v for k, v in constants.items() if k not in frame.columns}
    if not missing:
        return frame
    return frame.assign(**{k: pd.Series([v] * len(frame), index=frame.index) for k, v in missing.items()})


@dataclass
class WriteResult:
    rows: int = 0
    columns: list[ColumnSpec] = field(default_factory=list)
    loaded_by: str = "binary COPY from Arrow"  # how the rows went in, and why, for the run's metadata

    @property
    def renamed(self) -> dict[str, str]:
        return {c.name: c.stored_name for c in self.columns if c.name != c.stored_name}


class Encoder:
    """The DataFrame chunks of one write as Arrow tables shaped like the target table.

    The first chunk decides the columns; every later chunk must bring the same ones, with
    types the table can hold. Counts rows into `result` as they go out."""

    def __init__(self, schema: str, table: str, chunks: Iterable[pd.DataFrame], constants: Mapping[str, object], required: Sequence[str]):
        self.label = f"{schema}.{table}"
        self.constants = dict(constants)
        self.chunks = iter(chunks)
        first = next(self.chunks, None)
        if first is None:
            raise TableStoreError(f"{self.label}: the asset produced no DataFrame chunk at all")
        first = with_constant_columns(first, self.constants)
        missing = [c for c in required if c not in first.columns]
        if missing:
            raise TableStoreError(
                f"{self.label}: the rows lack partition column(s) {missing}, and the run covers several "
                "partitions, so they cannot be filled in; add the column(s) to the DataFrame"
            )
        self.first_table, self.specs = frame_to_arrow(first)
        self.first_rows = len(first)
        self.result = WriteResult(columns=self.specs)

    def tables(self, write_schema: pa.Schema, table_types: Mapping[str, str]) -> Iterator[pa.Table]:
        names = [s.stored_name for s in self.specs]
        arrow_table = self.first_table
        while True:
            self.result.rows += arrow_table.num_rows
            yield _cast(arrow_table, write_schema, self.label)
            frame = next(self.chunks, None)
            if frame is None:
                return
            arrow_table, chunk_specs = frame_to_arrow(with_constant_columns(frame, self.constants))
            if [s.stored_name for s in chunk_specs] != names:
                raise TableStoreError(f"{self.label}: a later chunk has columns {[s.name for s in chunk_specs]}, the first had {[s.name for s in self.specs]}")
            check_compatible(self.label, chunk_specs, table_types)


def _write_schema(conn, schema: str, table: str, specs: Sequence[ColumnSpec]) -> pa.Schema:
    # The Arrow types ADBC's COPY needs for the table's columns, in the chunk's column order.
    target = conn.adbc_get_table_schema(storage_name(table), db_schema_filter=schema)
    return pa.schema([target.field(s.stored_name).remove_metadata() for s in specs])


def _ingest(conn, schema: str, table: str, write_schema: pa.Schema, tables: Iterable[pa.Table]) -> None:
    """COPY the tables into `schema.table` on `conn`; errors raised while producing them surface as themselves."""
    failures: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            for arrow_table in tables:
                yield from arrow_table.to_batches()
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
    return copy_in(conn, schema, table, Encoder(schema, table, chunks, constant_columns or {}, required_columns))


def copy_in(conn, schema: str, table: str, encoder: Encoder) -> WriteResult:
    """COPY the encoder's chunks into `schema.table` on `conn` alone, creating or widening it."""
    table_types = prepare_table(conn, schema, table, encoder.specs)
    write_schema = _write_schema(conn, schema, table, encoder.specs)
    _ingest(conn, schema, table, write_schema, encoder.tables(write_schema, table_types))
    return encoder.result


@dataclass
class Staging:
    name: str
    swapped: bool = False  # set once the caller's transaction has renamed it into place


@contextmanager
def staging_table(
    connect,
    schema: str,
    table: str,
    definition: sql.Composable,
    defaults: Mapping[str, sql.Composable] | None = None,
    storage: sql.Composable = sql.SQL(""),
) -> Iterator[Staging]:
    """A committed, empty table `(definition)` under a private name, with column `defaults`
    (stored name → expression) and `storage` (a WITH clause), dropped on the way out unless the
    caller swapped it into place."""
    prefix = _staging_prefix(table)
    staging = Staging(prefix + secrets.token_hex(4))
    with connect() as setup:
        _drop_leftover_staging(setup, schema, prefix)
        execute(setup, sql.SQL("CREATE TABLE {} ({}){}").format(qualified(schema, staging.name), definition, storage))
        for name, expression in (defaults or {}).items():
            execute(setup, sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(qualified(schema, staging.name), sql.Identifier(name), expression))
        setup.commit()
    try:
        yield staging
    finally:
        if not staging.swapped:
            with connect() as cleanup:
                drop_table(cleanup, schema, staging.name)
                cleanup.commit()


def copy_in_parallel(connect, workers: int, schema: str, staging: str, encoder: Encoder) -> None:
    with connect() as probe:
        write_schema = _write_schema(probe, schema, staging, encoder.specs)
    table_types = {s.stored_name: s.pg_type for s in encoder.specs}
    _ingest_in_parallel(connect, workers, schema, staging, write_schema, encoder.tables(write_schema, table_types))


def goes_parallel(chunks, encoder: Encoder, connect, workers: int, parallel_min_rows: int) -> bool:
    # A stream (any iterable but a list or tuple of frames) or a large frame.
    streamed = not isinstance(chunks, (list, tuple))
    return connect is not None and workers > 1 and (streamed or encoder.first_rows >= parallel_min_rows)


def replace_table(
    conn,
    schema: str,
    table: str,
    chunks: Iterable[pd.DataFrame],
    *,
    connect: Callable[[], AbstractContextManager] | None = None,
    workers: int = 1,
    parallel_min_rows: int = PARALLEL_MIN_ROWS,
) -> WriteResult:
    """Write the whole content of `schema.table` (the caller's transaction has dropped the old one).

    Small writes go through `conn` alone. A stream, or a frame of `parallel_min_rows` rows or
    more, is COPYed by `workers` connections at once into a staging table, which the caller's
    transaction then renames into place: until it commits, readers see the old table, and a
    failure leaves the old table as it was.
    """
    encoder = Encoder(schema, table, chunks, {}, ())
    if not goes_parallel(chunks, encoder, connect, workers, parallel_min_rows):
        return copy_in(conn, schema, table, encoder)
    with staging_table(connect, schema, table, columns_sql(encoder.specs)) as staging:
        copy_in_parallel(connect, workers, schema, staging.name, encoder)
        drop_table(conn, schema, table)
        execute(conn, sql.SQL("ALTER TABLE {} RENAME TO {}").format(qualified(schema, staging.name), sql.Identifier(storage_name(table))))
        staging.swapped = True
        comment_columns(conn, schema, table, encoder.specs)
    return encoder.result


def _staging_prefix(table: str) -> str:
    return f"_harmonizer_load_{hashlib.sha256(table.encode()).hexdigest()[:8]}_"


def drop_dead_staging(conn, schema: str, table: str) -> bool:
    """Drop the staging tables that dead writes of `schema.table` left behind (a parallel COPY
    commits its shares into them), unless a live write holds the table: it drops them itself.
    In the caller's transaction; True when they were dropped."""
    taken = scalar(conn, sql.SQL("SELECT pg_try_advisory_xact_lock(hashtextextended({}, 0))").format(sql.Literal(f"table:{schema}.{table}")))
    if taken:
        _drop_leftover_staging(conn, schema, _staging_prefix(table))
    return bool(taken)


def _drop_leftover_staging(conn, schema: str, prefix: str) -> None:
    # Staging tables of this table that a crashed write left behind: the writer that calls
    # this holds the table's lock, so no live write owns them.
    query = sql.SQL("SELECT tablename FROM pg_tables WHERE schemaname = {} AND starts_with(tablename, {})").format(sql.Literal(schema), sql.Literal(prefix))
    with conn.cursor() as cur:
        cur.execute(query.as_string(None))
        leftovers = [name for (name,) in cur.fetchall()]
    for name in leftovers:
        drop_table(conn, schema, name)


def _ingest_in_parallel(connect, workers: int, schema: str, table: str, write_schema: pa.Schema, tables: Iterable[pa.Table]) -> None:
    """COPY the tables into `schema.table` over `workers` connections, each committing its share.

    The calling thread converts; worker threads COPY (ADBC releases the GIL), fed record
    batches through a bounded queue, so memory stays at a few batches per worker."""
    work: queue.Queue = queue.Queue(maxsize=workers * 2)
    stop = threading.Event()
    failures: list[BaseException] = []

    def batches() -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = work.get(timeout=0.1)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            if batch is None:
                return
            yield batch

    def copy_share() -> None:
        try:
            with connect() as worker:
                with worker.cursor() as cur:
                    reader = pa.RecordBatchReader.from_batches(write_schema, batches())
                    cur.adbc_ingest(storage_name(table), reader, mode="append", db_schema_name=schema)
                worker.commit()
        except BaseException as exc:
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=copy_share, name=f"copy-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    try:
        for arrow_table in tables:
            if not all(offer(work, batch, stop) for batch in arrow_table.to_batches(max_chunksize=PARALLEL_BATCH_ROWS)):
                break
    except BaseException as exc:
        failures.insert(0, exc)
        stop.set()
    finally:
        for _ in threads:
            offer(work, None, stop)
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]


def _cast(arrow_table: pa.Table, target: pa.Schema, label: str) -> pa.Table:
    try:
        return arrow_table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise TableStoreError(f"{label}: rows do not fit the table's column types: {exc}") from exc
