"""Tables partitioned by file (or any single key): a PostgreSQL LIST-partitioned table with one
child table per key plus a DEFAULT child. Writing one key COPYs into a staging table over several
connections (from Arrow, or from text PostgreSQL parses itself), then the write's transaction
swaps it in for the key's old child, so a key's rows change all at once (no dagster)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager

import pandas as pd
import psycopg
from psycopg import sql

from harmonizer_pipeline.storage.catalog import columns_sql, comment_columns, drop_table, execute, lock_table, prepare_table, scalar, table_exists
from harmonizer_pipeline.storage.frame_codec import (
    ColumnSpec,
    TableStoreError,
    frame_to_arrow,
    pg_type_sql,
    qualified,
    storage_name,
)
from harmonizer_pipeline.storage.writes import (
    Encoder,
    Staging,
    TextCopy,
    WriteResult,
    copy_in,
    copy_in_parallel,
    goes_parallel,
    staging_table,
    with_constant_columns,
)


def _is_list_partitioned(conn, schema: str, table: str) -> bool:
    name = sql.Literal(qualified(schema, table).as_string(None))
    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass({}))").format(name)
    return scalar(conn, query) is True


def swaps_partitions(conn, schema: str, table: str) -> bool:
    """Whether one key of this table is written by swapping its child table (missing tables
    are created that way), rather than by deleting and appending rows."""
    return not table_exists(conn, schema, table) or _is_list_partitioned(conn, schema, table)


def _child_name(table: str, key: str | None) -> str:
    """The child table of a key (None: the DEFAULT child)."""
    tag = "default" if key is None else "p_" + hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{storage_name(table)[:40]}__{tag}"


def replace_partition(
    conn,
    schema: str,
    table: str,
    column: str,
    key: str,
    chunks: Iterable[pd.DataFrame],
    *,
    connect: Callable[[], AbstractContextManager],
    workers: int,
    connect_text: Callable[[], AbstractContextManager[psycopg.Connection]] | None = None,
    text_copy: TextCopy | None = None,
) -> WriteResult:
    """Write the rows of one partition key of a LIST-partitioned table (creating the table on
    first use). The rows are COPYed by `workers` connections into a staging table that carries
    the key's CHECK constraint; the caller's transaction then drops the key's old child (and
    the key's rows in the DEFAULT child) and attaches the staging table in its place, so the
    key's rows change all at once, and a failure leaves them as they were.

    Given a `text_copy` and `connect_text` (psycopg connections), PostgreSQL parses the text
    itself first; if it refuses or its parse may differ, the chunks are written."""
    refusal = None
    if text_copy is not None and connect_text is not None:
        result, refusal = _replace_partition_from_text(conn, schema, table, column, key, text_copy, connect_text, workers)
        if result is not None:
            return result
    encoder = Encoder(schema, table, chunks, {column: key}, (column,))
    # DDL on the side goes through psycopg when offered: an ADBC connection costs ~50 ms to open.
    setup = connect_text or connect
    _ensure_list_table(setup, schema, table, column, encoder.specs)
    with _partition_staging(setup, schema, table, column, key) as staging:
        if goes_parallel(chunks, encoder, connect, workers, 1):
            copy_in_parallel(connect, workers, schema, staging.name, encoder)
        else:
            copy_in(conn, schema, staging.name, encoder)
        _swap_in_partition(conn, schema, table, column, key, staging)
    if refusal:
        encoder.result.loaded_by += f" (PostgreSQL's CSV parse not used: {refusal})"
    return encoder.result


def _ensure_list_table(connect, schema: str, table: str, column: str, specs: Sequence[ColumnSpec]) -> None:
    """Create the LIST-partitioned table (with its DEFAULT child), or add the columns it lacks;
    committed at once, as staging tables are made LIKE it."""
    with connect() as setup:
        if table_exists(setup, schema, table):
            prepare_table(setup, schema, table, specs)
        else:
            create_list_partitioned(setup, schema, table, column, specs)
        setup.commit()


def create_list_partitioned(conn, schema: str, table: str, column: str, specs: Sequence[ColumnSpec]) -> None:
    """In the caller's transaction: `schema.table` LIST-partitioned by `column`, with its DEFAULT child."""
    execute(
        conn, sql.SQL("CREATE TABLE {} ({}) PARTITION BY LIST ({})").format(qualified(schema, table), columns_sql(specs), sql.Identifier(storage_name(column)))
    )
    comment_columns(conn, schema, table, specs)
    execute(conn, sql.SQL("CREATE TABLE {} PARTITION OF {} DEFAULT").format(qualified(schema, _child_name(table, None)), qualified(schema, table)))


# A file's partition is written once and only read after, so autovacuum's VACUUM after inserts
# (1,000 rows and up) has nothing to clean: it would read each new 1M-row partition whole to set
# its visibility map and freeze it, writing it again (and its WAL), on one of the CPUs the next
# steps run on (bench_incremental: later files' loads 21-27 s against the first's 13.6 s).
# Autoanalyze still keeps the planner's statistics; the anti-wraparound vacuum freezes them in time.
_WRITE_ONCE_STORAGE = sql.SQL(" WITH (autovacuum_vacuum_insert_threshold = -1)")


def _partition_staging(connect, schema: str, table: str, column: str, key: str, defaults: Mapping[str, sql.Composable] | None = None):
    ident = sql.Identifier(storage_name(column))
    like = sql.SQL("LIKE {}, CHECK ({} IS NOT NULL AND {} = {})").format(qualified(schema, table), ident, ident, sql.Literal(key))
    return staging_table(connect, schema, table, like, defaults, _WRITE_ONCE_STORAGE)


def _swap_in_partition(conn, schema: str, table: str, column: str, key: str, staging: Staging) -> None:
    """In the caller's transaction: the staging table becomes the key's child, replacing its old rows."""
    ident, value = sql.Identifier(storage_name(column)), sql.Literal(key)
    execute(conn, sql.SQL("DELETE FROM {} WHERE {} = {}").format(qualified(schema, _child_name(table, None)), ident, value))
    child = _child_name(table, key)
    drop_table(conn, schema, child)
    execute(conn, sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(qualified(schema, table), qualified(schema, staging.name), value))
    execute(conn, sql.SQL("ALTER TABLE {} RENAME TO {}").format(qualified(schema, staging.name), sql.Identifier(child)))
    staging.swapped = True


class _Refused(Exception):
    """The server's parse of a segment may differ from the chunks' (or another segment's did)."""


def _replace_partition_from_text(conn, schema, table, column, key, text_copy: TextCopy, connect_text, workers: int) -> tuple[WriteResult | None, str | None]:
    """The key's rows COPYed from text in parallel segments: (result, None), or (None, why not)."""
    template = with_constant_columns(text_copy.template, {column: key})
    specs = frame_to_arrow(template)[1]
    by_name = {spec.name: spec for spec in specs}
    fields = list(text_copy.source.columns)
    filled = {*fields, text_copy.row_number_column, *text_copy.constants, column}
    if list(template.columns[: len(fields)]) != fields or set(template.columns) != filled:
        raise TableStoreError(
            f"{schema}.{table}: a TextCopy's template must hold the text's columns {fields} first, then only "
            f"{text_copy.row_number_column!r} and the constants {list(text_copy.constants)}; it holds {list(template.columns)}"
        )
    defaults = {
        by_name[name].stored_name: sql.SQL("{}::{}").format(sql.Literal(_plain_value(value)), pg_type_sql(by_name[name].pg_type))
        for name, value in {**text_copy.constants, column: key}.items()
    }
    _ensure_list_table(connect_text, schema, table, column, specs)
    stored_fields = [by_name[name].stored_name for name in fields]
    row_number = by_name[text_copy.row_number_column].stored_name
    # Twice as many streams as workers: a COPY backend parsing text spends part of its time
    # waiting on WAL and buffer writes, and on a 2-core machine 4 streams beat 2 by ~15%.
    segments = text_copy.source.segments(2 * workers)
    with _partition_staging(connect_text, schema, table, column, key, defaults) as staging:
        try:
            rows = _copy_text_segments(connect_text, schema, staging.name, row_number, stored_fields, text_copy.source, segments)
        except _Refused as refused:
            return None, str(refused)
        execute(
            conn,
            sql.SQL("ALTER TABLE {} {}").format(
                qualified(schema, staging.name), sql.SQL(", ").join(sql.SQL("ALTER COLUMN {} DROP DEFAULT").format(sql.Identifier(name)) for name in defaults)
            ),
        )
        _swap_in_partition(conn, schema, table, column, key, staging)
    streams = "one COPY stream" if len(segments) == 1 else f"{len(segments)} parallel COPY streams"
    return WriteResult(rows=rows, columns=specs, loaded_by=f"PostgreSQL's CSV parser ({streams})"), None


def _plain_value(value):
    # psycopg adapts datetimes, not pandas Timestamps' subclass quirks (nanoseconds).
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _copy_text_segments(connect_text, schema: str, table: str, row_number: str, fields: Sequence[str], source, segments) -> int:
    """COPY each segment (lines led by their row number) on its own connection at once, each
    committing its share; the rows in all."""
    stop = threading.Event()
    options = [
        sql.SQL("FORMAT csv"),
        sql.SQL("DELIMITER {}").format(sql.Literal(source.delimiter)),
        sql.SQL("QUOTE {}").format(sql.Literal(source.quotechar)),
        sql.SQL("ENCODING 'UTF8'"),
        sql.SQL("FORCE_NOT_NULL ({})").format(sql.SQL(", ").join(map(sql.Identifier, fields))),
    ]

    def copy_segment(segment) -> int:
        try:
            with connect_text() as session:
                statement = sql.SQL("COPY {} ({}) FROM STDIN ({})").format(
                    qualified(schema, table),
                    sql.SQL(", ").join(map(sql.Identifier, [row_number, *fields])),
                    sql.SQL(", ").join([*options, sql.SQL("HEADER {}").format(sql.SQL("true" if segment.header else "false"))]),
                )
                with session.cursor() as cur:
                    with cur.copy(statement) as copy:
                        for block in segment.blocks(stop):
                            copy.write(block)
                        if segment.refusal or stop.is_set():
                            raise _Refused(segment.refusal or "another segment was refused")
                    rows = cur.rowcount
                expected = segment.lines - (1 if segment.header else 0)
                if rows != expected:
                    raise _Refused(f"COPY read {rows} records from {expected} lines of data: a record spans several lines, or a line is blank")
                return rows
        except psycopg.errors.DataError as err:
            stop.set()
            raise _Refused(f"PostgreSQL: {str(err).splitlines()[0]}") from err
        except BaseException:
            stop.set()
            raise

    with ThreadPoolExecutor(max_workers=len(segments), thread_name_prefix="copy-text") as pool:
        futures = [pool.submit(copy_segment, segment) for segment in segments]
    failures = [failure for f in futures if (failure := f.exception()) is not None]
    if failures:
        # A real error (connection, disk) wins over a refusal: it would fail the exact path too.
        raise min(failures, key=lambda failure: isinstance(failure, _Refused))
    return sum(f.result() for f in futures)


def drop_partition(conn, schema: str, table: str, column: str, key: str) -> int:
    """In the caller's transaction: remove one key's rows (a LIST-partitioned table's child of the
    key, dropped, and the key's rows in its DEFAULT child; a plain table's rows of the key) and
    return how many there were. Writers of the table wait for the transaction (lock_table); a
    missing table holds no rows."""
    if not table_exists(conn, schema, table):
        return 0
    lock_table(conn, schema, table)
    ident, value = sql.Identifier(storage_name(column)), sql.Literal(key)
    rows: int = scalar(conn, sql.SQL("SELECT count(*) FROM {} WHERE {} = {}").format(qualified(schema, table), ident, value)) or 0
    if not _is_list_partitioned(conn, schema, table):
        execute(conn, sql.SQL("DELETE FROM {} WHERE {} = {}").format(qualified(schema, table), ident, value))
        return rows
    execute(conn, sql.SQL("DELETE FROM {} WHERE {} = {}").format(qualified(schema, _child_name(table, None)), ident, value))
    drop_table(conn, schema, _child_name(table, key))
    return rows
