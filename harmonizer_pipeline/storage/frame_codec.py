"""How a pandas DataFrame becomes PostgreSQL columns (through Arrow) and comes back exactly.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import LiteralString, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from harmonizer_pipeline.arrow_scan import may_contain_byte

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1
_HASH_CHARS = 8


class TableStoreError(Exception):
    """A DataFrame cannot be stored or read as asked; the message says which table or column."""


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
            raise TableStoreError(f"columns {seen[stored]!r} and {name!r} would both be stored as {stored!r}; rename one")
        seen[stored] = name
        mapping[name] = stored
    return mapping


def qualified(schema: str, table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(storage_name(table)))


def pg_type_sql(pg_type: str) -> sql.SQL:
    """A column type (ColumnSpec.pg_type) as SQL text."""
    # psycopg types SQL() as LiteralString to keep data out of SQL text; a pg_type is not data:
    # it comes from _pg_type's table, from the code, or from PostgreSQL's own catalog.
    return sql.SQL(cast(LiteralString, pg_type))


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

    @classmethod
    def from_catalog(cls, stored_name: str, pg_type: str, comment: str | None) -> ColumnSpec:
        """The spec of a stored column; without our comment (a table made elsewhere) the
        pandas dtype is left empty and Arrow's own mapping applies."""
        info = _parse_comment(comment)
        return cls(
            name=info.get("name", stored_name),
            stored_name=stored_name,
            pg_type=pg_type,
            pandas_dtype=info.get("pandas_dtype", ""),
            categories=info.get("categories"),
            ordered=bool(info.get("ordered", False)),
            json_values=bool(info.get("json", False)),
        )


def _parse_comment(comment: str | None) -> dict:
    if not comment:
        return {}
    try:
        info = json.loads(comment)
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) and "pandas_dtype" in info else {}


_PG_TYPES = (
    # (test on the Arrow type, PostgreSQL type); the first that matches wins.
    (pa.types.is_boolean, "boolean"),
    (lambda t: pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t), "smallint"),
    (lambda t: pa.types.is_int32(t) or pa.types.is_uint16(t), "integer"),
    (pa.types.is_integer, "bigint"),
    (lambda t: pa.types.is_float16(t) or pa.types.is_float32(t), "real"),
    (pa.types.is_floating, "double precision"),
    (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t), "text"),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "bytea"),
    (pa.types.is_date, "date"),
    (lambda t: pa.types.is_timestamp(t) and t.tz is not None, "timestamp with time zone"),
    (pa.types.is_timestamp, "timestamp without time zone"),
    (pa.types.is_time, "time without time zone"),
    (pa.types.is_duration, "interval"),
)


def _pg_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    for matches, pg_type in _PG_TYPES:
        if matches(arrow_type):
            return pg_type
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
    return pa.array([None if _is_missing(v) else json.dumps(v, ensure_ascii=False, default=str) for v in series], pa.string())


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
            f"column {column!r} cannot be stored: its values mix Python types ({', '.join(kinds)}); convert it to one type first ({exc})"
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
    values = array.dictionary if isinstance(array, pa.DictionaryArray) else array
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not may_contain_byte(values, 0):
        return
    hits = pc.match_substring(values, "\x00")
    if pc.any(hits).as_py():
        if isinstance(array, pa.DictionaryArray):
            hits = pc.take(hits, array.indices)
        row = pc.index(hits, True).as_py()
        raise TableStoreError(f"column {column!r}, row {row}: text contains a NUL character (U+0000), which PostgreSQL cannot store")


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
