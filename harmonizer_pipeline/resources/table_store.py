"""Store pandas DataFrames in PostgreSQL tables and read them back with their exact dtypes.

Plain module (no dagster): the IO manager wires it into Dagster. Data moves through Arrow and
ADBC, whose ingest is a binary COPY and whose reads stream COPY output, never row-by-row SQL.

What survives a round trip, and how:
- Each column's pandas dtype (and its original name, when it had to be shortened) is kept as
  JSON in the column's PostgreSQL comment, so reads restore `Int64`, `boolean`, `Float64`,
  `string`, `str`, `category`, tz-aware datetimes (same instant, same zone), dates, ...
- NULL stays NULL and '' stays '' (Arrow keeps validity separately from values).
- Integers never pass through float64: Arrow integers map to nullable pandas integers first.
- Limits of PostgreSQL itself: timestamps keep microseconds (nanoseconds are truncated);
  nested values (lists, dicts) are stored as JSON text and come back as Python objects.
"""

from __future__ import annotations

import decimal
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
BLOCK_BYTES = 8192
PARALLEL_MIN_BYTES = 64 << 20  # below this, extra connections cost more than they save
_HASH_CHARS = 8
DEFAULT_CHUNK_ROWS = 100_000


class TableStoreError(Exception):
    """A DataFrame cannot be stored or read as asked; the message says which table or column."""


class DataFrameChunks(Iterator[pd.DataFrame]):
    """A stream of DataFrames sharing one set of columns.

    Return it from an asset to have each chunk COPYed as it comes (one transaction), or annotate
    an input with it to read the table chunk by chunk, so no table has to sit in memory whole.
    """

    def __init__(self, chunks: Iterable[pd.DataFrame]):
        self._chunks = iter(chunks)

    def __next__(self) -> pd.DataFrame:
        return next(self._chunks)


# --- identifiers --------------------------------------------------------------------------


def storage_name(name: str) -> str:
    """`name` if PostgreSQL can hold it, else a deterministic shortened form.

    Names over 63 bytes keep a prefix cut at a character boundary plus `_` and eight hex
    digits of the name's SHA-256, so two long names that share a prefix stay distinct.
    """
    if "\x00" in name:
        raise TableStoreError(f"column name {name!r} contains a NUL character, which PostgreSQL cannot store")
    encoded = name.encode("utf-8")
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:_HASH_CHARS]
    prefix = encoded[: MAX_IDENTIFIER_BYTES - _HASH_CHARS - 1].decode("utf-8", errors="ignore")
    return f"{prefix}_{digest}"


def storage_names(names: Sequence[str]) -> dict[str, str]:
    """Map each original column name to the name stored in PostgreSQL, refusing any collision."""
    seen: dict[str, str] = {}
    mapping: dict[str, str] = {}
    for name in names:
        if name in mapping:
            raise TableStoreError(f"duplicate column name {name!r}; every column needs its own name")
        stored = storage_name(name)
        if stored in seen:
            raise TableStoreError(
                f"columns {seen[stored]!r} and {name!r} would both be stored as {stored!r}; rename one"
            )
        seen[stored] = name
        mapping[name] = stored
    return mapping


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(storage_name(table)))


# --- dtypes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One stored column: its names, its PostgreSQL type and the pandas dtype to restore."""

    name: str
    stored_name: str
    pg_type: str
    pandas_dtype: str
    categories: list | None = None
    ordered: bool = False
    json_values: bool = False
    only_nulls: bool = False  # this chunk carries no value for it, so any column type fits

    def comment(self) -> str:
        info: dict = {"pandas_dtype": self.pandas_dtype}
        if self.name != self.stored_name:
            info["name"] = self.name
        if self.categories is not None:
            info["categories"] = self.categories
            info["ordered"] = self.ordered
        if self.json_values:
            info["json"] = True
        return json.dumps(info, ensure_ascii=False, default=str)


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_int8(arrow_type) or pa.types.is_int16(arrow_type) or pa.types.is_uint8(arrow_type):
        return "smallint"
    if pa.types.is_int32(arrow_type) or pa.types.is_uint16(arrow_type):
        return "integer"
    if pa.types.is_integer(arrow_type):
        return "bigint"
    if pa.types.is_float16(arrow_type) or pa.types.is_float32(arrow_type):
        return "real"
    if pa.types.is_floating(arrow_type):
        return "double precision"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return "text"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "bytea"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp with time zone" if arrow_type.tz else "timestamp without time zone"
    if pa.types.is_time(arrow_type):
        return "time without time zone"
    if pa.types.is_duration(arrow_type):
        return "interval"
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    raise TableStoreError(f"no PostgreSQL type for Arrow type {arrow_type}")


def _storable_arrow_type(arrow_type: pa.DataType) -> pa.DataType:
    """The Arrow type ADBC's COPY can write for values of `arrow_type`."""
    if pa.types.is_dictionary(arrow_type):
        return _storable_arrow_type(arrow_type.value_type)
    if pa.types.is_null(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_uint8(arrow_type):
        return pa.int16()
    if pa.types.is_uint16(arrow_type):
        return pa.int32()
    if pa.types.is_uint32(arrow_type) or pa.types.is_uint64(arrow_type):
        return pa.int64()
    if pa.types.is_float16(arrow_type):
        return pa.float32()
    if pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        return pa.timestamp("us", tz=arrow_type.tz)
    if pa.types.is_large_binary(arrow_type):
        return pa.binary()
    return arrow_type


def _as_json(series: pd.Series) -> pa.Array:
    return pa.array(
        [None if _is_missing(v) else json.dumps(v, ensure_ascii=False, default=str) for v in series], pa.string()
    )


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _column_to_arrow(series: pd.Series, column: str) -> tuple[pa.Array, bool]:
    """Arrow array for one column; nested values become JSON text (second item True)."""
    try:
        array = pa.Array.from_pandas(series)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError) as exc:
        if series.map(lambda v: isinstance(v, (dict, list, tuple))).any():
            return _as_json(series), True
        kinds = sorted({type(v).__name__ for v in series.dropna().head(1000)})
        raise TableStoreError(
            f"column {column!r} cannot be stored: its values mix Python types ({', '.join(kinds)}); "
            f"convert it to one type first ({exc})"
        ) from exc
    if pa.types.is_nested(array.type):
        return _as_json(series), True
    target = _storable_arrow_type(array.type)
    if pa.types.is_string(target) and not pa.types.is_null(array.type):
        _reject_nul(array, column)
    if target != array.type:
        try:
            # safe=False only matters for ns → us timestamps: PostgreSQL keeps microseconds.
            array = array.cast(target, safe=not pa.types.is_timestamp(target))
        except pa.ArrowInvalid as exc:
            raise TableStoreError(f"column {column!r}: {exc}") from exc
    return array, False


def _reject_nul(array: pa.Array, column: str) -> None:
    # PostgreSQL text cannot hold U+0000; say where it is instead of failing inside COPY.
    values = array.dictionary if pa.types.is_dictionary(array.type) else array
    hits = pc.match_substring(values, "\x00")
    if pc.any(hits).as_py():
        if pa.types.is_dictionary(array.type):
            hits = pc.take(hits, array.indices)
        row = pc.index(hits, True).as_py()
        raise TableStoreError(
            f"column {column!r}, row {row}: text contains a NUL character (U+0000), which PostgreSQL cannot store"
        )


def _with_index_as_columns(frame: pd.DataFrame) -> pd.DataFrame:
    # A meaningful index (e.g. a groupby key) is data: keep it as columns, as to_sql does.
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        return frame
    return frame.reset_index()


def frame_to_arrow(frame: pd.DataFrame) -> tuple[pa.Table, list[ColumnSpec]]:
    """Arrow table (stored column names) and the column specs for one DataFrame."""
    frame = _with_index_as_columns(frame)
    names = [str(c) for c in frame.columns]
    mapping = storage_names(names)
    arrays: list[pa.Array] = []
    specs: list[ColumnSpec] = []
    for position, name in enumerate(names):
        series = frame.iloc[:, position]
        array, json_values = _column_to_arrow(series, name)
        dtype = series.dtype
        categorical = isinstance(dtype, pd.CategoricalDtype)
        specs.append(
            ColumnSpec(
                name=name,
                stored_name=mapping[name],
                pg_type=_pg_type(array.type),
                pandas_dtype=str(dtype),
                categories=[_plain(v) for v in dtype.categories] if categorical else None,
                ordered=bool(dtype.ordered) if categorical else False,
                json_values=json_values,
                only_nulls=array.null_count == len(array),
            )
        )
        arrays.append(array)
    table = pa.Table.from_arrays(arrays, names=[s.stored_name for s in specs])
    return table, specs


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


_READ_DTYPES = {
    # Integers and booleans with NULLs must not detour through float64/object ...
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
    # ... and text stays in Arrow memory (pandas' default `str` dtype) instead of Python objects.
    pa.string(): pd.StringDtype("pyarrow", na_value=np.nan),
    pa.large_string(): pd.StringDtype("pyarrow", na_value=np.nan),
}


def _restore_column(array: pa.ChunkedArray, spec: ColumnSpec | None) -> pd.Series:
    if spec is not None and spec.json_values:
        return pd.Series([None if v is None else json.loads(v) for v in array.to_pylist()], dtype=object)
    if spec is not None and spec.pandas_dtype == "object":
        return _restore_objects(array, spec)
    series = array.to_pandas(types_mapper=_READ_DTYPES.get)
    if spec is None:
        return series
    if spec.categories is not None:
        return series.astype(pd.CategoricalDtype(spec.categories, ordered=spec.ordered))
    target = pandas_dtype(spec.pandas_dtype)
    if isinstance(target, pd.DatetimeTZDtype):
        return series.dt.tz_convert(target.tz).astype(target)
    if series.dtype == target:
        return series
    if target.kind in "iub" and series.hasnans:
        # Rows appended later (another partition) brought NULLs: keep the nullable dtype.
        return series
    return series.astype(target)


def _restore_objects(array: pa.ChunkedArray, spec: ColumnSpec) -> pd.Series:
    """Python objects as the frame held them: str, datetime.date, Decimal, ... and None."""
    if pa.types.is_date(array.type):
        return array.to_pandas(date_as_object=True)
    if spec.pg_type.startswith("numeric"):
        # ADBC hands NUMERIC over as text; the frame held Decimals.
        return pd.Series([None if v is None else decimal.Decimal(v) for v in array.to_pylist()], dtype=object)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return pd.Series(array.to_numpy(zero_copy_only=False), dtype=object)
    return pd.Series(array.to_pylist(), dtype=object)


def pandas_dtype(name: str):
    try:
        return pd.api.types.pandas_dtype(name)
    except TypeError:
        # an extension dtype whose package is not installed in this environment
        return np.dtype(object)


def arrow_to_frame(table: pa.Table, specs: Mapping[str, ColumnSpec]) -> pd.DataFrame:
    """DataFrame with original names and dtypes from a table read back from PostgreSQL."""
    columns = {}
    for stored_name, array in zip(table.column_names, table.columns):
        spec = specs.get(stored_name)
        columns[spec.name if spec else stored_name] = _restore_column(array, spec)
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(table.num_rows))
    frame = pd.DataFrame(columns, copy=False)
    frame.index = pd.RangeIndex(len(frame))
    return frame


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
    specs: dict[str, ColumnSpec] = {}
    for stored_name, pg_type, comment in rows:
        info = _parse_comment(comment)
        specs[stored_name] = ColumnSpec(
            name=info.get("name", stored_name),
            stored_name=stored_name,
            pg_type=pg_type,
            pandas_dtype=info.get("pandas_dtype", ""),
            categories=info.get("categories"),
            ordered=bool(info.get("ordered", False)),
            json_values=bool(info.get("json", False)),
        )
    return specs


def _parse_comment(comment: str | None) -> dict:
    if not comment:
        return {}
    try:
        info = json.loads(comment)
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) and "pandas_dtype" in info else {}


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
