"""How the stages read and write their tables: one file's partition of raw, validated and staged, and
the harmonized tables, named by their asset (`naming.StageAsset`), never by hand (no dagster).

The stages' services get a `StageTables` from the `tables` resource. A write runs in one
transaction that the service's bookkeeping joins (`TableWrite.connection`), so a file's registry,
audit and metrics rows commit or roll back with its rows; that is why the stages write here and
not through the IO manager, which owns its transaction (docs/io-manager.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import psycopg
from psycopg import sql

from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.storage.catalog import delete_rows, ensure_schema, lock_table, stored_columns
from harmonizer_pipeline.storage.frame_codec import ColumnSpec, qualified
from harmonizer_pipeline.storage.partitions import replace_partition, swaps_partitions
from harmonizer_pipeline.storage.postgres import adbc_connection, libpq_url
from harmonizer_pipeline.storage.reads import DEFAULT_CHUNK_ROWS, partition_filter, read_chunks, read_frame
from harmonizer_pipeline.storage.writes import TextCopy, WriteResult, write_frames


class Table(Protocol):
    """A stage asset's table (naming.StageAsset): its schema, its name, and whether it holds one
    partition per file in PARTITION_COLUMN."""

    @property
    def schema(self) -> str: ...
    @property
    def table(self) -> str: ...
    @property
    def by_file(self) -> bool: ...


def _rows_of(table: Table, partition_key: str | None, where: sql.Composable | None) -> sql.Composable | None:
    conditions = [where] if where is not None else []
    if partition_key is not None:
        assert table.by_file, f"{table.schema}.{table.table} has no partition per file"
        conditions.insert(0, partition_filter([(PARTITION_COLUMN, [partition_key])]))
    return sql.SQL(" AND ").join(conditions) if conditions else None


@dataclass
class TableReader:
    """Reads on one open connection (several reads of a step share it: an ADBC connection takes
    ~50 ms to open)."""

    connection: object
    chunk_rows: int

    def columns(self, table: Table) -> list[ColumnSpec]:
        """The table's columns in its order, with their types."""
        return list(stored_columns(self.connection, table.schema, table.table).values())

    def frame(self, table: Table, columns: Sequence[str] | None = None, partition_key: str | None = None, where: sql.Composable | None = None) -> pd.DataFrame:
        """The rows (of one file's partition, matching `where`) as one DataFrame."""
        return read_frame(self.connection, table.schema, table.table, columns, _rows_of(table, partition_key, where))

    def chunks(
        self,
        table: Table,
        columns: Sequence[str] | None = None,
        partition_key: str | None = None,
        order_by: Sequence[str] = (),
        where: sql.Composable | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The rows in DataFrames of `chunk_rows` rows, streamed."""
        yield from read_chunks(self.connection, table.schema, table.table, columns, _rows_of(table, partition_key, where), self.chunk_rows, order_by)

    def first_row(self, table: Table, columns: Sequence[str], partition_key: str) -> pd.DataFrame:
        """`columns` of one row of the partition: for columns a write stamps alike on every row of a
        file (its lineage), read once instead of once per row."""
        where = partition_filter([(PARTITION_COLUMN, [partition_key])])
        row_number = sql.Identifier("_row_number")
        one = sql.SQL("{} AND {} = (SELECT {} FROM {} WHERE {} LIMIT 1)").format(where, row_number, row_number, qualified(table.schema, table.table), where)
        return read_frame(self.connection, table.schema, table.table, columns, one)


@dataclass
class TableWrite:
    """A write of one file's partition; `connection` is its transaction, for bookkeeping that must
    commit with the rows."""

    connection: object
    table: Table
    partition_key: str
    url: str
    workers: int

    def rows(self, chunks: Iterable[pd.DataFrame], text_copy: TextCopy | None = None) -> WriteResult:
        """Replace the partition's rows with `chunks` (a frame without the partition column gets it)."""
        return write_partition(
            self.connection, self.table.schema, self.table.table, PARTITION_COLUMN, self.partition_key, chunks, self.url, self.workers, text_copy
        )


def write_partition(
    conn, schema: str, table: str, column: str, key: str, chunks: Iterable[pd.DataFrame], url: str, workers: int, text_copy: TextCopy | None = None
) -> WriteResult:
    """Replace the rows of one key of `column` in the transaction of `conn`. A LIST-partitioned
    table (every stage table) swaps in a new child table for the key, COPYed by `workers`
    connections; a `text_copy` is offered to PostgreSQL's own CSV parser first."""
    if swaps_partitions(conn, schema, table):
        return replace_partition(
            conn, schema, table, column, key, chunks, connect=lambda: adbc_connection(url), workers=workers,
            connect_text=lambda: psycopg.connect(libpq_url(url)), text_copy=text_copy,
        )  # fmt: skip
    # A table made before tables were partitioned by file: its rows are deleted and appended.
    delete_rows(conn, schema, table, partition_filter([(column, [key])]))
    return write_frames(conn, schema, table, chunks, constant_columns={column: key}, required_columns=[column])


def default_workers() -> int:
    """Connections for one large read or write: one per CPU core, at most 4."""
    return min(os.cpu_count() or 1, 4)


@dataclass(frozen=True)
class StageTables:
    """The stage tables of one database; `workers` connections COPY one large write."""

    url: str
    workers: int
    chunk_rows: int = DEFAULT_CHUNK_ROWS

    @contextmanager
    def reading(self) -> Iterator[TableReader]:
        with adbc_connection(self.url) as conn:
            yield TableReader(conn, self.chunk_rows)

    def frame(self, table: Table, **selection) -> pd.DataFrame:
        """TableReader.frame on a connection of its own."""
        with self.reading() as reader:
            return reader.frame(table, **selection)

    def chunks(self, table: Table, **selection) -> Iterator[pd.DataFrame]:
        """TableReader.chunks on a connection of its own, open while the chunks are read."""
        with self.reading() as reader:
            yield from reader.chunks(table, **selection)

    @contextmanager
    def writing(self, table: Table, partition_key: str) -> Iterator[TableWrite]:
        """A transaction replacing one file's partition of `table`: commits when the block ends,
        rolls back when it raises."""
        # The schema commits at once on its own connection, so that parallel COPY workers see it;
        # then the write's transaction takes the table's lock before anything else.
        with psycopg.connect(libpq_url(self.url)) as own:
            ensure_schema(own, table.schema)
        with adbc_connection(self.url) as conn:
            try:
                lock_table(conn, table.schema, table.table)
                yield TableWrite(conn, table, partition_key, self.url, self.workers)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
