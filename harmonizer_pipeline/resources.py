"""The Dagster resources of the code location, and nothing else: the database (`PostgresResource`),
the landing zones (`LandingResource`) and the PostgreSQL IO manager for pandas DataFrames.

The IO manager is built on Dagster's database IO manager framework, the way dagster-duckdb-pandas
is: a `DbClient` (connections, schemas, partition slices) and `DbTypeHandler`s (DataFrame,
DataFrameChunks) under Dagster's `DbIOManager`. The storage itself is `harmonizer_pipeline.storage`
(no dagster imports).

- Asset `raw/clinic_a` → table `raw.clinic_a`; `columns` input metadata selects columns.
- Partitioned assets name their partition column with `partition_expr` metadata (a column
  name; per dimension for multi-partitions). Writing a partition deletes exactly its rows and
  COPYs the new ones in one transaction; a frame without that column gets it filled in.
- An unpartitioned asset is replaced whole (drop + create + COPY in one transaction), so
  changing its columns never breaks the next write (dagster issue 17058).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import dagster as dg
import pandas as pd
import psycopg
from dagster import (
    ConfigurableIOManagerFactory,
    InputContext,
    OutputContext,
    TimeWindow,
)
from dagster._core.storage.db_io_manager import DbClient, DbIOManager, DbTypeHandler, TableSlice
from pydantic import Field

from harmonizer_pipeline.ask.providers import LlmSettings
from harmonizer_pipeline.ingest.landing import LandingZone, LocalLanding
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import delete_rows, drop_table, ensure_schema, lock_table
from harmonizer_pipeline.storage.partitions import swaps_partitions
from harmonizer_pipeline.storage.postgres import DATABASE_URL_ENV, adbc_connection, database_of, libpq_url, resolve_database_url
from harmonizer_pipeline.storage.reads import DEFAULT_CHUNK_ROWS, partition_filter, read_chunks, read_frame, select_statement
from harmonizer_pipeline.storage.tables import StageTables, default_workers, write_partition
from harmonizer_pipeline.storage.writes import DataFrameChunks, WriteResult, replace_table, write_frames
from harmonizer_pipeline.wiring import log_write, write_metadata


def _dimensions(table_slice: TableSlice) -> list[tuple[str, Sequence[str] | tuple[dt.datetime, dt.datetime]]]:
    dims = []
    for dim in table_slice.partition_dimensions or []:
        if isinstance(dim.partitions, TimeWindow):
            dims.append((dim.partition_expr, (dim.partitions.start, dim.partitions.end)))
        else:
            dims.append((dim.partition_expr, list(dim.partitions)))
    return dims


def _where(table_slice: TableSlice):
    dims = _dimensions(table_slice)
    return partition_filter(dims) if dims else None


def _single_key(table_slice: TableSlice) -> tuple[str, str] | None:
    """(column, key) when the slice is exactly one key of one static or dynamic dimension."""
    dims = _dimensions(table_slice)
    if len(dims) == 1 and isinstance(dims[0][1], list) and len(dims[0][1]) == 1:
        return dims[0][0], dims[0][1][0]
    return None


def _swaps(table_slice: TableSlice, connection) -> tuple[str, str] | None:
    # One key of a file-like partitioning: written by swapping its child table (see storage.partitions).
    single = _single_key(table_slice)
    if single and swaps_partitions(connection, table_slice.schema, table_slice.table):
        return single
    return None


def _partition_constants(table_slice: TableSlice) -> dict[str, object]:
    """Values for partition columns a frame may leave out: the key, or the window's start."""
    constants: dict[str, object] = {}
    for column, selection in _dimensions(table_slice):
        if isinstance(selection, tuple):
            constants[column] = pd.Timestamp(selection[0])
        elif len(selection) == 1:
            constants[column] = selection[0]
    return constants


class PostgresClient(DbClient):
    """Connections and table slices for one PostgreSQL database."""

    def __init__(self, url: str):
        self.url = url

    def delete_table_slice(self, context: OutputContext, table_slice: TableSlice, connection) -> None:
        where = _where(table_slice)
        if where is None:
            drop_table(connection, table_slice.schema, table_slice.table)
        elif not _swaps(table_slice, connection):  # a swapped key replaces its rows itself
            delete_rows(connection, table_slice.schema, table_slice.table, where)

    def get_select_statement(self, table_slice: TableSlice) -> str:
        return select_statement(table_slice.schema, table_slice.table, table_slice.columns, _where(table_slice))

    def ensure_schema_exists(self, context: OutputContext, table_slice: TableSlice, connection) -> None:
        # The schema is committed at once on its own connection, so that parallel COPY workers
        # see it; then the write's own transaction takes the table's lock before anything else.
        with psycopg.connect(libpq_url(self.url)) as own:  # commits on exit
            ensure_schema(own, table_slice.schema)
        lock_table(connection, table_slice.schema, table_slice.table)

    @contextmanager
    def connect(self, context, table_slice: TableSlice) -> Iterator:
        with adbc_connection(self.url) as conn:
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


def _output_metadata(context: OutputContext, result: WriteResult) -> Mapping[str, object]:
    return write_metadata(result, [str(k) for k in context.asset_partition_keys] if context.has_asset_partitions else None)


def _write(context: OutputContext, table_slice: TableSlice, chunks, connection, url: str, workers: int) -> Mapping[str, object]:
    result = _store(table_slice, chunks, connection, url, workers)
    log_write(context.log, f"{table_slice.schema}.{table_slice.table}", result)
    return _output_metadata(context, result)


def _store(table_slice: TableSlice, chunks, connection, url: str, workers: int) -> WriteResult:
    single = _single_key(table_slice)
    if single:
        return write_partition(connection, table_slice.schema, table_slice.table, *single, chunks, url, workers)
    if table_slice.partition_dimensions:
        # Deleting the partition's rows and appending the new ones must commit together: one connection.
        return write_frames(
            connection,
            table_slice.schema,
            table_slice.table,
            chunks,
            constant_columns=_partition_constants(table_slice),
            required_columns=[column for column, _ in _dimensions(table_slice)],
        )
    return replace_table(
        connection,
        table_slice.schema,
        table_slice.table,
        chunks,
        connect=lambda: adbc_connection(url),
        workers=workers,
    )


class DataFrameTypeHandler(DbTypeHandler[pd.DataFrame]):
    """Whole DataFrames: COPYed in, read back with their dtypes (large tables by several connections)."""

    def __init__(self, url: str, workers: int):
        self.url = url
        self.workers = workers

    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection):
        return _write(context, table_slice, [obj], connection, self.url, self.workers)

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> pd.DataFrame:
        return read_frame(
            connection,
            table_slice.schema,
            table_slice.table,
            table_slice.columns,
            _where(table_slice),
            connect=lambda: adbc_connection(self.url),
            workers=self.workers,
        )

    @property
    def supported_types(self):
        return [pd.DataFrame]


class DataFrameChunksTypeHandler(DbTypeHandler[DataFrameChunks]):
    """Streams of DataFrames: COPYed chunk by chunk, read back chunk by chunk."""

    def __init__(self, url: str, workers: int, chunk_rows: int):
        self.url = url
        self.workers = workers
        self.chunk_rows = chunk_rows

    def handle_output(self, context: OutputContext, table_slice: TableSlice, obj: DataFrameChunks, connection):
        return _write(context, table_slice, obj, connection, self.url, self.workers)

    def load_input(self, context: InputContext, table_slice: TableSlice, connection) -> DataFrameChunks:
        # The framework closes `connection` when load_input returns; the stream needs its own.
        chunk_rows = int((context.definition_metadata or {}).get("chunk_rows", self.chunk_rows))

        def chunks() -> Iterator[pd.DataFrame]:
            with adbc_connection(self.url) as conn:
                yield from read_chunks(conn, table_slice.schema, table_slice.table, table_slice.columns, _where(table_slice), chunk_rows)

        return DataFrameChunks(chunks())

    @property
    def supported_types(self):
        return [DataFrameChunks]


class _ClosingDbIOManager(DbIOManager):
    """Closes a DataFrameChunks output once the whole write is over (committed or rolled back,
    whichever step failed), so a stream reading from a database lets go of its connection then."""

    def handle_output(self, context: OutputContext, obj: object) -> None:
        try:
            super().handle_output(context, obj)
        finally:
            if isinstance(obj, DataFrameChunks):
                obj.close()


class PostgresPandasIOManager(ConfigurableIOManagerFactory):
    """Stores pandas DataFrames (or DataFrameChunks) in PostgreSQL tables named by asset key."""

    database_url: str | None = Field(
        default=None,
        description="libpq URL of the database; unset means HARMONIZER_DATABASE_URL or the embedded server.",
    )
    chunk_rows: int = Field(
        default=DEFAULT_CHUNK_ROWS,
        gt=0,
        description="Rows per DataFrame when an input is read as DataFrameChunks (input metadata `chunk_rows` overrides).",
    )

    parallel_connections: int = Field(
        default=0,
        ge=0,
        description=(
            "Connections that read or write one large table at once; 0 means one per CPU core, at most 4 "
            "(text that PostgreSQL parses itself goes in over twice as many). "
            "Partition writes always use one, so deleting and appending commit together."
        ),
    )

    def create_io_manager(self, context) -> DbIOManager:
        url = resolve_database_url(self.database_url)
        workers = self.parallel_connections or default_workers()
        return _ClosingDbIOManager(
            type_handlers=[DataFrameTypeHandler(url, workers), DataFrameChunksTypeHandler(url, workers, self.chunk_rows)],
            db_client=PostgresClient(url),
            database=database_of(url),
            io_manager_name="PostgresPandasIOManager",
            default_load_type=pd.DataFrame,
        )


B2_KEY_ID_ENV = "B2_APPLICATION_KEY_ID"
B2_KEY_ENV = "B2_APPLICATION_KEY"


class PostgresResource(dg.ConfigurableResource):
    """The harmonizer database: the stage tables (`tables()`, see storage.tables) and bookkeeping
    (file registry, quality tables) through `connect()`."""

    database_url: str | None = Field(default=None, description="libpq URL; unset means HARMONIZER_DATABASE_URL or the embedded server.")
    parallel_connections: int = Field(default=0, ge=0, description="Connections that COPY one file's rows at once; 0 means one per CPU core, at most 4.")

    def url(self) -> str:
        return resolve_database_url(self.database_url)

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        """A psycopg connection in a transaction that commits on success."""
        with psycopg.connect(self.url()) as conn:
            yield conn

    def tables(self, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> StageTables:
        """Reads and writes of the stage tables, streamed in frames of `chunk_rows` rows."""
        return StageTables(self.url(), self.parallel_connections or default_workers(), chunk_rows)


class LandingResource(dg.ConfigurableResource):
    """Builds each source's landing zone; B2 credentials come from the environment only."""

    b2_application_key_id: str | None = None
    b2_application_key: str | None = None

    def b2_api(self):
        from harmonizer_pipeline.ingest.b2 import b2_api

        if not (self.b2_application_key_id and self.b2_application_key):
            raise dg.Failure(f"a source lands in B2 but {B2_KEY_ID_ENV} / {B2_KEY_ENV} are not set")
        return b2_api(self.b2_application_key_id, self.b2_application_key)

    def zone(self, settings: Settings, source: str) -> LandingZone:
        landing = settings.sources[source].landing
        if landing.local is not None:
            return LocalLanding(settings.landing_path(source), landing.local.glob)
        from harmonizer_pipeline.ingest.b2 import B2Landing

        b2 = landing.b2
        assert b2 is not None  # a landing is either local or b2
        return B2Landing(self.b2_api(), b2.bucket, b2.prefix, b2.glob)


def _env(name: str) -> dg.EnvVar | None:
    # Secrets go to Dagster as EnvVars, so they are never stored in run config or shown in the UI.
    return dg.EnvVar(name) if os.environ.get(name) else None


class LanguageModelResource(dg.ConfigurableResource):
    """The language model of the job `ask`: each of its environment variables (ask.providers) as
    an EnvVar when set where the definitions load, read when a run starts; unset, the run fails
    with the one line naming what to set."""

    provider: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout: str | None = None
    max_retries: str | None = None

    def llm_settings(self) -> LlmSettings:
        return LlmSettings.from_env({variable: value for name, variable in LLM_ENV.items() if (value := getattr(self, name)) is not None})


# The resource's fields, by the environment variable each comes from (LlmSettings.from_env reads them).
LLM_ENV = {name: f"HARMONIZER_LLM_{name.upper()}" for name in ("provider", "base_url", "model", "api_key", "timeout", "max_retries")}


def build_resources() -> dict[str, object]:
    url = _env(DATABASE_URL_ENV)
    return {
        "io_manager": PostgresPandasIOManager(database_url=url),
        "postgres": PostgresResource(database_url=url),
        "landing": LandingResource(b2_application_key_id=_env(B2_KEY_ID_ENV), b2_application_key=_env(B2_KEY_ENV)),
        "language_model": LanguageModelResource(**{name: _env(variable) for name, variable in LLM_ENV.items()}),
    }
