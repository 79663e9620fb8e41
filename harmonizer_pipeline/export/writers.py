"""Export files written from a stream of DataFrame chunks (no dagster).

- `write_csv`: UTF-8 CSV (with a BOM on request, for Excel), the header once, NULL and '' as empty
  fields, ISO dates, ISO 8601 datetimes with their UTC offset, true/false, integers without ".0".
- `write_parquet`: one Parquet file; the first chunk fixes the schema and later chunks are cast to it.
- `write_workbook`: one .xlsx of typed cells with a bold, frozen, filtered header, its worksheets
  streamed into the zip as SpreadsheetML built with Arrow kernels, a slice of rows at a time. A sheet
  whose rows exceed Excel's row limit continues on "<name> (2)", "<name> (3)", ... each with the header again.
- `write_zip`: the files, deflated (those compressed already stored), by base name.
- `upload_to_b2`: the files to a prefix of a B2 bucket.

Zip members (the workbook's sheets too) are deflated in blocks on all CPUs with ISA-L's deflate
(the `isal` package), whose level 1 measured 3.7x zlib's level 1 for 9 % smaller output.

Every writer consumes its chunk iterable once and holds one chunk at a time, so memory is bounded by
the chunk, not the table. A file is written under a temporary name and renamed when complete: a
failed export never leaves a file that looks finished. Failures raise `ExportError` naming the file
(and sheet).
"""

import collections
import datetime as dt
import decimal
import json
import os
import queue
import re
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from b2sdk.v2 import Bucket
from b2sdk.v2.exception import B2Error
from isal import isal_zlib as deflate

from harmonizer_pipeline.arrow_scan import buffer_view, join_element_wise, numpy_buffer, utf8_bytes

EXCEL_MAX_ROWS = 1_048_576  # Excel's row limit, header included

_BOM = b"\xef\xbb\xbf"
_COMPRESSED_ALREADY = {".parquet", ".xlsx", ".zip", ".gz"}
_FAILURES = (OSError, ValueError, TypeError, pa.ArrowException)

# Characters XML 1.0 (so Excel) cannot hold: control characters other than \t \n \r, lone surrogates.
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ILLEGAL_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")
_SHEET_NAME_MAX = 31  # UTF-16 code units, as Excel counts
# Excel keeps 15 significant digits: larger integers (IDs) would be silently rounded, so they go as text.
_EXCEL_EXACT_INT = 10**15
_EXCEL_EPOCH = dt.date(1900, 1, 1)  # earlier dates have no Excel serial number: written as ISO text
# Timestamp unit: (digits of its fraction, units per minute).
_TIMESTAMP_UNITS = {"s": (0, 60), "ms": (3, 60_000), "us": (6, 60_000_000), "ns": (9, 60_000_000_000)}
_WIDTH_SAMPLE_ROWS = 1_000
_XML_ROWS = 25_000  # rows built into XML at a time
_WIDTH_MIN, _WIDTH_MAX = 8, 60
_FILTER_BUTTON = 2  # header cells need room for the autofilter drop-down


class ExportError(Exception):
    """An export file could not be written or uploaded; the message names the file and why."""


@dataclass
class Sheet:
    name: str
    chunks: Iterable[pd.DataFrame]


def export_directory(root: Path, target: str, run_date: dt.date) -> Path:
    """`root/target/<run date>`, created."""
    directory = root / target / run_date.isoformat()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@contextmanager
def _writing(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed to it on success, removed on failure; known
    failures become ExportError naming `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_path = path.with_name(f".{path.name}.partial")
    try:
        yield partial_path
        partial_path.replace(path)
    except BaseException as exc:
        partial_path.unlink(missing_ok=True)
        if isinstance(exc, _FAILURES):
            raise ExportError(f"{path}: {exc}") from exc
        raise


def _column_names(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns]


def _json_default(value: Any) -> object:
    if hasattr(value, "tolist"):  # numpy arrays and scalars (list columns read back from Arrow)
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _is_nested(value: object) -> bool:
    return isinstance(value, (list, tuple, dict, set, frozenset, np.ndarray))


# CSV


def _text(value: object) -> str | None:
    """A value of a column Arrow cannot type (mixed or nested objects) as CSV text."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if _is_nested(value):
        return _json(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    return str(value) or None


def _iso_timestamps(array: pa.Array) -> pa.Array:
    """ISO 8601 text: 2024-01-02T03:04:05[.fraction][+01:00], local time of the zone with its offset.

    Built from Arrow's naive cast to string: its tz-aware cast and strftime are five times slower
    (1.4 s per million values)."""
    digits, per_minute = _TIMESTAMP_UNITS[array.type.unit]
    # A timestamp array (_csv_array checks); pyarrow-stubs' local_timestamp takes no plain Array.
    local = array if array.type.tz is None else pc.local_timestamp(cast(pa.TimestampArray, array))
    text = local.cast(pa.string())  # "2024-01-02 03:04:05.000000": the unit fixes the fraction's width
    if digits:
        text = pc.replace_substring(text, "." + "0" * digits, "")  # a zero fraction is noise, as in isoformat()
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    if array.type.tz is None:
        return text
    minutes = pc.divide(pc.subtract(local.cast(pa.int64()), array.cast(pa.int64())), per_minute)
    offsets = pc.unique(minutes)  # a zone has few offsets: format each once
    labels = pa.array(
        [None if m is None else f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}" for m in offsets.to_pylist()],
        pa.string(),
    )
    return join_element_wise(text, pc.take(labels, pc.index_in(minutes, offsets)), separator="")


def _csv_array(series: pd.Series) -> pa.Array:
    """One column as the CSV shows it; types Arrow's CSV writer already prints as wanted pass through."""
    array: pa.Array | None
    try:
        array = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or pa.types.is_nested(array.type):
        return pa.array([_text(v) for v in series], pa.string())
    if isinstance(array, pa.DictionaryArray):
        array = array.dictionary_decode()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        # '' and NULL both as an empty field (Arrow would write "" for ''); most chunks have no ''.
        empty = pc.equal(array, pa.scalar(""))
        return pc.if_else(empty, pa.scalar(None, array.type), array) if pc.any(empty).as_py() else array
    if pa.types.is_timestamp(array.type):
        return _iso_timestamps(array)
    return array


def write_csv(chunks: Iterable[pd.DataFrame], path: Path, *, bom: bool = False, delimiter: str = ",") -> int:
    """Write the chunks as one CSV file; returns the number of data rows."""
    header: list[str] | None = None
    rows = 0
    with _writing(path) as partial_path, pa.OSFile(str(partial_path), "wb") as sink:
        if bom:
            sink.write(_BOM)
        for chunk in chunks:
            names = _column_names(chunk)
            if header is not None and names != header:
                raise ValueError(f"a chunk has columns {names}, the header {header}")
            table = pa.Table.from_arrays([_csv_array(chunk.iloc[:, i]) for i in range(len(names))], names=names)
            # One write per chunk (not one CSVWriter): a chunk's all-NULL column may come with another type.
            pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=header is None, delimiter=delimiter))
            header = names
            rows += len(chunk)
    return rows


# Parquet


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` cast to the file's schema, or a ValueError naming the column that does not fit."""
    if table.schema.equals(schema, check_metadata=False):
        return table
    if table.column_names != schema.names:
        raise ValueError(f"a chunk has columns {table.column_names}, the first chunk {schema.names}")
    columns = []
    for field, column in zip(schema, table.columns):
        try:
            columns.append(column.cast(field.type))
        except pa.ArrowException as exc:
            raise ValueError(f"column {field.name!r}: {column.type} does not fit the first chunk's {field.type}: {exc}") from exc
    return pa.Table.from_arrays(columns, schema=schema)


def write_parquet(chunks: Iterable[pd.DataFrame], path: Path) -> int:
    """Write the chunks as one Parquet file (a row group per chunk); returns the number of rows."""
    rows = 0
    with _writing(path) as partial_path:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(partial_path, table.schema)
                # pyarrow-stubs type ParquetWriter.schema as a ParquetSchema; pyarrow keeps the Arrow schema it was given.
                writer.write_table(_conform(table, writer.schema))  # pyright: ignore[reportArgumentType]
                rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            pq.write_table(pa.table({}), partial_path)
    return rows


# Excel
#
# The workbook is SpreadsheetML written column by column with Arrow kernels and streamed into the
# zip: XlsxWriter (constant_memory) takes 4.6 µs a cell in its own code (1.7M cells in 7.8 s), so
# 80 s for a 1M-row × 17-column sheet; openpyxl (write_only) is twice as slow again. Cells carry
# inline strings (no shared-strings table to hold in memory), numbers, booleans, and dates and
# datetimes as serial numbers with a date format. A chunk's rows are one Arrow join of the columns'
# values and their literal tags; a cell names its position only after a gap, and text is escaped
# only where a value needs it (one RE2 match per column). On the 1M-row × 17-column bench target
# that took the workbook from 15.5 to 4.8 CPU-s and its sheet from 1.14 GB of XML (134 MB deflated)
# to 0.72 GB (83 MB); openpyxl and calamine read the same cells back.


def _clean(text: str) -> str:
    return _ILLEGAL_XML.sub("", text)


def _cell(value: object) -> tuple[str, object] | None:
    """(kind, value) for one cell; None for NULL (an empty cell)."""
    if value is None:
        return None
    cls = type(value)
    if type(value) is str:
        # Cut at Excel's 32,767 UTF-16 units by _cut, with the column's other strings.
        return "string", _clean(value)
    if cls is bool or cls is np.bool_:
        return "boolean", bool(value)
    if isinstance(value, (int, np.integer)):
        return ("number", int(value)) if abs(value) < _EXCEL_EXACT_INT else ("string", str(value))
    if isinstance(value, (float, np.floating, decimal.Decimal)):
        return None if value != value else ("number", float(value))
    if value is pd.NaT:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return ("datetime", value) if value.date() >= _EXCEL_EPOCH else ("string", value.isoformat())
    if isinstance(value, dt.date):
        return ("date", value) if value >= _EXCEL_EPOCH else ("string", value.isoformat())
    if _is_nested(value):
        return "string", _clean(_json(value))
    return "string", _clean(str(value))


def _excel_values(series: pd.Series) -> np.ndarray:
    """A column as Python objects with None for NULL; tz-aware datetimes as naive UTC (Excel has no zones)."""
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    # pandas-stubs leave None out of na_value's types; pandas takes it.
    return series.to_numpy(dtype=object, na_value=None)  # pyright: ignore[reportCallIssue, reportArgumentType]


def _shown_width(kind: str, value: object) -> int:
    if kind == "string":
        assert isinstance(value, str)
        return max(len(line) for line in value.split("\n"))
    if kind == "number":
        return len(format(value, ".10g"))  # about what Excel's General format shows
    return {"boolean": 5, "date": 10, "datetime": 19}[kind]


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _sheet_name(wanted: str, taken: set[str], first_number: int = 1) -> str:
    """A legal Excel sheet name from `wanted`, numbered " (n)" from `first_number` on until it is not
    in `taken` (lower-cased: Excel compares names case-insensitively); added to `taken`."""
    base = _ILLEGAL_SHEET_NAME.sub("_", _clean(wanted)).strip("'") or "Sheet"
    number = first_number
    while True:
        suffix = "" if number == 1 else f" ({number})"
        stem = base
        while _utf16_len(stem) > _SHEET_NAME_MAX - len(suffix):
            stem = stem[:-1]
        name = stem.rstrip("'") + suffix
        if name.lower() not in taken:
            taken.add(name.lower())
            return name
        number += 1


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
_PROLOG = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Cell formats: 0 General, 1 bold (header), 2 date, 3 date and time.
_STYLES = (
    f'{_PROLOG}<styleSheet xmlns="{_MAIN}"><numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy-mm-dd"/>'
    '<numFmt numFmtId="165" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
)
_STYLE = {"date": 2, "datetime": 3}
_EXCEL_SERIAL_1970 = 25_569  # 1970-01-01 as an Excel serial day
_FIRST_TRUE_SERIAL = 61  # Excel counts 1900-02-29, which never was: earlier serials are one day less
_ILLEGAL_XML_RE2 = "[\\x{0}-\\x{8}\\x{b}\\x{c}\\x{e}-\\x{1f}\\x{fffe}\\x{ffff}]"
# Text _inline_text escapes or preserves: characters to drop or escape, a literal _xHHHH_, white space at an end.
_SPECIAL_CHARACTERS_RE2 = "[&<>\\r\\x{0}-\\x{8}\\x{b}\\x{c}\\x{e}-\\x{1f}\\x{fffe}\\x{ffff}]|_x[0-9A-Fa-f]{4}_"
_SPECIAL_TEXT_RE2 = _SPECIAL_CHARACTERS_RE2 + "|^\\s|\\s$"
_WHITE_SPACE = np.isin(np.arange(256), list(b"\t\n\f\r "))  # RE2's \s, by byte
_EXCEL_STRING_MAX = 32_767  # UTF-16 units


def _letters(column: int) -> str:
    letters = ""
    column += 1
    while column:
        column, remainder = divmod(column - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _escaped(text: pa.Array) -> pa.Array:
    """Text as XML character data Excel reads back unchanged: illegal characters dropped, <, >, &
    escaped, and a literal _xHHHH_ protected from Excel's own unescaping."""
    text = pc.replace_substring_regex(text, _ILLEGAL_XML_RE2, "")
    text = pc.replace_substring_regex(text, "_(x[0-9A-Fa-f]{4}_)", "_x005F_\\1")
    for raw, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "_x000D_")):
        text = pc.replace_substring(text, raw, entity)
    return text


def _cut(text: pa.Array) -> pa.Array:
    """Strings cut at Excel's 32,767 UTF-16 units (the rare long ones one by one)."""
    # Text cells are pa.string() arrays; pyarrow-stubs' binary_length takes no plain Array.
    long = pc.greater(pc.binary_length(cast(pa.StringArray, text)), pa.scalar(_EXCEL_STRING_MAX // 2))  # fewer bytes than that: fewer units too
    if not pc.any(long).as_py():
        return text
    values = text.to_pylist()
    for index in np.flatnonzero(long.to_numpy(zero_copy_only=False)):
        value = values[index]
        assert value is not None  # a NULL is not long
        encoded = value.encode("utf-16-le")[: 2 * _EXCEL_STRING_MAX]
        values[index] = encoded.decode("utf-16-le", errors="ignore")
    return pa.array(values, pa.string())


def _may_be_special(text: pa.Array) -> bool:
    """False when no value needs escaping nor has white space at an end: one RE2 scan of the
    column's bytes as a whole (a match across two values only sends it the slow way) and a look at
    each value's first and last byte; a third of the time of matching value by value."""
    offsets, data = utf8_bytes(text)
    if not len(data):
        return False
    whole = pa.Array.from_buffers(pa.string(), 1, [None, numpy_buffer(np.array([0, len(data)], np.int32)), numpy_buffer(data)])
    if pc.match_substring_regex(whole, _SPECIAL_CHARACTERS_RE2)[0].as_py():
        return True
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    return bool(_WHITE_SPACE[data[starts[filled]]].any() or _WHITE_SPACE[data[ends[filled] - 1]].any())


def _inline_text(text: pa.Array) -> list[str | pa.Array]:
    """The rest of a <t> element's start tag and its content, for text cells: a value that needs
    escaping or has white space at an end (which readers trim without xml:space) gets escaped and
    preserved, one by one among the column's others; when none does, the text goes as it is."""
    text = _cut(text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text)
    if not _may_be_special(text):
        return [">", text]
    special = pc.match_substring_regex(text, _SPECIAL_TEXT_RE2)
    if not pc.any(special).as_py():
        return [">", text]
    special = pc.fill_null(special, False)  # pyright: ignore[reportArgumentType]  # pyarrow-stubs give it coalesce's types; it takes a Python fill value
    preserved = join_element_wise(' xml:space="preserve">', _escaped(pc.filter(text, special)), separator="")
    return [pc.replace_with_mask(join_element_wise(">", text, separator=""), special, preserved)]


def _cell_pieces(refs: pa.Array | None, kind: str, values: pa.Array) -> list[str | pa.Array]:
    """One kind's cells as pieces to join: literal tags around `values` (text); with `refs`, each
    cell names its position."""
    start: list[str | pa.Array] = ["<c", ' r="', refs, '"'] if refs is not None else ["<c"]
    if kind == "string":
        return [*start, ' t="inlineStr"><is><t', *_inline_text(values), "</t></is></c>"]
    attributes = {"boolean": ' t="b"', "error": ' t="e"'}.get(kind, f' s="{_STYLE[kind]}"' if kind in _STYLE else "")
    return [*start, f"{attributes}><v>", values, "</v></c>"]


def _joined(pieces: Sequence[str | pa.Array]) -> pa.Array:
    """binary_join_element_wise of the pieces, neighbouring literals merged first."""
    merged: list[str | pa.Array] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return join_element_wise(*[pa.scalar(p) if isinstance(p, str) else p for p in merged], separator="")


def _column_pieces(parts: list[tuple[str, pa.Array]], refs: pa.Array | None) -> tuple[Sequence[str | pa.Array], bool]:
    """A column's cells as pieces of the row join, and whether a row lacks its cell (then the next
    column's cells name their position). A column of one kind in every row gives its literal tags
    and its values, joined with the row's other pieces in one pass; else its cells ("" where none)."""
    if len(parts) == 1 and parts[0][1].null_count == 0:
        return _cell_pieces(refs, *parts[0]), False
    if not parts:
        return [], True
    cells = [_joined(_cell_pieces(refs, kind, values)) for kind, values in parts]
    cells = pc.coalesce(*cells) if len(cells) > 1 else cells[0]
    return [pc.fill_null(cells, "")], cells.null_count > 0  # pyright: ignore[reportArgumentType]  # as in _inline_text


def _serials(days: np.ndarray) -> np.ndarray:
    """Excel serial numbers of days since 1970-01-01 (whole or fractional)."""
    serial = days + _EXCEL_SERIAL_1970
    return np.where(serial < _FIRST_TRUE_SERIAL, serial - 1, serial)


def _iso_text(where: np.ndarray, values: pd.Series) -> pa.Array:
    """The values' ISO text where `where` (those before 1900, which have no serial number), NULL elsewhere."""
    return pa.array(np.where(where, values.map(lambda v: v.isoformat(), na_action="ignore").to_numpy(dtype=object), None), pa.string())


def _where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    """`values` where `mask`, NULL elsewhere."""
    return values if mask.all() else pc.if_else(pa.array(mask), values, pa.scalar(None, values.type))


def _typed_cells(series: pd.Series, sample: int) -> tuple[list[tuple[str, pa.Array]], list[tuple[str, int]]]:
    """A column's cell values as text by kind (each NULL where its rows hold another kind or no
    value), vectorized by dtype (mixed object columns value by value), and the (kind, shown width)
    of its first `sample` rows for the column width."""
    dtype = series.dtype
    present = series.notna().to_numpy()
    parts: list[tuple[str, pa.Array]]
    if pd.api.types.is_bool_dtype(dtype):
        text = pa.array(np.where(series.fillna(False).to_numpy(dtype=bool), "1", "0"), pa.string())
        return [("boolean", _where(present, text))], [("boolean", 5)] * int(present[:sample].sum())
    if pd.api.types.is_integer_dtype(dtype):
        numbers = series.astype("Int64")
        exact = (numbers.abs() < _EXCEL_EXACT_INT).fillna(False).to_numpy()
        text = pc.cast(pa.array(numbers), pa.string())
        parts = [("number", _where(exact, text))]
        if (present & ~exact).any():  # beyond Excel's 15 digits: text
            parts.append(("string", _where(present & ~exact, text)))
        # pc.cast's string arrays are StringArrays; pyarrow-stubs' binary_length does not take its own cast's result.
        return parts, [("number", n) for n in pc.binary_length(cast(pa.StringArray, text[:sample])).to_pylist() if n is not None]
    if pd.api.types.is_float_dtype(dtype):
        numbers = series.astype("float64").to_numpy(na_value=np.nan)
        finite = np.isfinite(numbers)
        parts = [("number", _where(finite, pc.cast(pa.array(numbers, from_pandas=True), pa.string())))]
        if np.isinf(numbers).any():
            # numpy's stubs leave None out of ArrayLike; np.where takes it as an object value.
            parts.append(("error", pa.array(np.where(np.isinf(numbers), "#NUM!", None), pa.string())))  # pyright: ignore[reportCallIssue, reportArgumentType]
        return parts, [("number", len(format(v, ".10g"))) for v in numbers[:sample] if np.isfinite(v)]
    if pd.api.types.is_object_dtype(dtype) and _holds_only_dates(series):
        days = pc.cast(pa.array(series, pa.date32(), from_pandas=True), pa.int32()).to_numpy(zero_copy_only=False)
        serial = _serials(np.where(present, days, 0).astype(np.int64))
        dated = present & (serial >= 1)
        parts = [("date", _where(dated, pc.cast(pa.array(serial), pa.string())))]
        if (present & ~dated).any():  # before 1900: no serial number, ISO text
            parts.append(("string", _iso_text(present & ~dated, series)))
        return parts, [("date", 10)] * int(present[:sample].sum())
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        naive = series.dt.tz_convert("UTC").dt.tz_localize(None) if isinstance(series.dtype, pd.DatetimeTZDtype) else series
        micros = naive.astype("datetime64[us]").to_numpy().astype("int64")
        serial = _serials(micros / 86_400_000_000)
        dated = present & (serial >= 1)
        # numpy's stubs leave None out of ArrayLike; np.where takes it as an object value.
        parts = [("datetime", pa.array(np.where(dated, np.char.mod("%.17g", serial), None), pa.string()))]  # pyright: ignore[reportCallIssue, reportArgumentType]
        if (present & ~dated).any():  # before 1900: no serial number, ISO text
            parts.append(("string", _iso_text(present & ~dated, naive)))
        return parts, [("datetime", 19)] * int(present[:sample].sum())
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        text = pc.cast(pa.array(series, from_pandas=True), pa.string())
        return [("string", text)], [("string", _shown_width("string", v)) for v in text[:sample].to_pylist() if v is not None]
    return _object_cells(series, sample)


def _holds_only_dates(series: pd.Series) -> bool:
    """Whether every value is a date (not a datetime) or NULL, and one is there at all."""
    values = series.dropna()
    return bool(len(values)) and all(type(v) is dt.date for v in values)


def _object_cells(series: pd.Series, sample: int) -> tuple[list[tuple[str, pa.Array]], list[tuple[str, int]]]:
    """Cell values of a column of Python objects (dates, mixed or nested values), value by value."""
    kinds: dict[str, list] = {}
    widths = []
    for index, value in enumerate(_excel_values(series)):
        cell = _cell(value)
        if cell is None:
            continue
        kind, value = cell
        if kind in ("date", "datetime"):
            assert isinstance(value, dt.date)
            moment = value if isinstance(value, dt.datetime) else dt.datetime(value.year, value.month, value.day)
            value = repr(float(_serials(np.array([(moment - dt.datetime(1970, 1, 1)) / dt.timedelta(days=1)]))[0]))
        elif kind == "boolean":
            value = "1" if value else "0"
        elif kind == "number":
            value = repr(value) if isinstance(value, float) else str(value)
        if kind not in kinds:
            kinds[kind] = [None] * len(series)
        kinds[kind][index] = value
        if index < sample:
            widths.append((kind, _shown_width(kind, cell[1])))
    return [(kind, pa.array(values, pa.string())) for kind, values in kinds.items()], widths


class _Worksheet:
    """One worksheet streamed into the workbook's zip: frozen bold header, column widths from
    the first rows, rows, then the autofilter over what was written."""

    def __init__(self, open_member: Callable[[str], IO[bytes]], number: int, name: str, header: list[str], widths: list[int]):
        self.number, self.name, self.header, self.rows = number, name, header, 0
        self.stream = open_member(f"xl/worksheets/sheet{number}.xml")
        columns = "".join(
            f'<col min="{i}" max="{i}" width="{min(max(w + 1, _WIDTH_MIN), _WIDTH_MAX) + 0.7109375}" customWidth="1"/>' for i, w in enumerate(widths, start=1)
        )
        title = "".join(f'<c r="{_letters(i)}1" t="inlineStr" s="1"><is><t xml:space="preserve">{_xml_text(h)}</t></is></c>' for i, h in enumerate(header))
        self.stream.write(
            (
                f'{_PROLOG}<worksheet xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><sheetViews><sheetView workbookViewId="0">'
                '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
                f'<sheetFormatPr defaultRowHeight="15"/>{"<cols>" + columns + "</cols>" if columns else ""}<sheetData>'
                + (f'<row r="1">{title}</row>' if header else "")
            ).encode()
        )

    @property
    def filter_range(self) -> str | None:
        return f"A1:{_letters(len(self.header) - 1)}{self.rows + 1}" if self.header else None

    def write(self, rows: pa.Array) -> None:
        """`rows`: one <row> element per row, no NULLs."""
        rows = rows.combine_chunks() if isinstance(rows, pa.ChunkedArray) else rows
        offsets, data = rows.buffers()[1], rows.buffers()[2]
        assert offsets is not None and data is not None  # rows of text, none NULL
        first, last = buffer_view(offsets, np.int32)[[rows.offset, rows.offset + len(rows)]]
        self.stream.write(memoryview(data)[first:last])
        self.rows += len(rows)

    def close(self) -> None:
        if self.stream.closed:
            return
        end = "</sheetData>" + (f'<autoFilter ref="{self.filter_range}"/>' if self.filter_range else "") + "</worksheet>"
        self.stream.write(end.encode())
        self.stream.close()


def _xml_text(text: str) -> str:
    return _clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


class _SheetStream:
    """One Sheet's rows, continuing on "<name> (2)", ... whenever a worksheet is full."""

    def __init__(self, open_member: Callable[[str], IO[bytes]], worksheets: list[_Worksheet], name: str, taken: set[str], max_rows: int):
        self.open_member, self.worksheets, self.name, self.taken, self.max_rows = open_member, worksheets, name, taken, max_rows
        self.header: list[str] | None = None
        self.widths: list[int] = []
        self.own: list[_Worksheet] = []

    def _open(self) -> _Worksheet:
        if self.own:
            self.own[-1].close()  # the zip takes one part at a time
        name = self.name if not self.own else _sheet_name(self.name, self.taken, first_number=2)
        worksheet = _Worksheet(self.open_member, len(self.worksheets) + 1, name, self.header or [], self.widths)
        self.worksheets.append(worksheet)
        self.own.append(worksheet)
        return worksheet

    def write_chunk(self, chunk: pd.DataFrame) -> None:
        rows = len(chunk)
        if self.header is None:
            self.header = [_clean(name) for name in _column_names(chunk)]
            self.widths = [len(title) + _FILTER_BUTTON for title in self.header]
            self._rows(chunk.iloc[:_WIDTH_SAMPLE_ROWS], 2)  # the widths come before the rows in a worksheet
        done = 0
        while done < rows or not self.own:
            sheet = self.own[-1] if self.own and self.own[-1].rows < self.max_rows - 1 else self._open()
            take = min(rows - done, self.max_rows - 1 - sheet.rows)
            if take:
                # Built a slice at a time: a chunk's XML, several times its data, is never whole in memory.
                for start in range(done, done + take, _XML_ROWS):
                    part = chunk.iloc[start : min(start + _XML_ROWS, done + take)]
                    sheet.write(self._rows(part, sheet.rows + 2, sample=max(0, _WIDTH_SAMPLE_ROWS - (start - done))))
            done += take

    def _rows(self, part: pd.DataFrame, first_row: int, sample: int | None = None) -> pa.Array:
        """The rows' XML; the column widths grow to fit the first `sample` rows' values (all the
        first _WIDTH_SAMPLE_ROWS when None), however the rows were sliced."""
        sample = _WIDTH_SAMPLE_ROWS if sample is None else sample
        numbers = pc.cast(pa.array(np.arange(first_row, first_row + len(part))), pa.string())
        pieces: list[str | pa.Array] = ['<row r="', numbers, '">']
        # A cell names its position only where the row lacks the cell before it: readers count on
        # from the last one (a third of the sheet's bytes were positions).
        gaps = False
        for index in range(part.shape[1]):
            parts, shown = _typed_cells(part.iloc[:, index], min(len(part), sample))
            refs = join_element_wise(pa.scalar(_letters(index)), numbers, separator="") if gaps else None
            column, gaps = _column_pieces(parts, refs)
            pieces += column
            for _, width in shown:
                self.widths[index] = max(self.widths[index], width)
        return _joined([*pieces, "</row>"])

    def finish(self) -> dict[str, int]:
        if not self.own:
            self._open()
        self.own[-1].close()
        return {sheet.name: sheet.rows for sheet in self.own}


def _package(archive: zipfile.ZipFile, worksheets: list[_Worksheet]) -> None:
    """The parts around the worksheets: content types, relationships, the workbook, styles."""
    sheets = "".join(f'<sheet name="{_xml_text(w.name)}" sheetId="{w.number}" r:id="rId{w.number}"/>' for w in worksheets)
    filters = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{w.number - 1}" hidden="1">'
        f"{_xml_text(chr(39) + w.name.replace(chr(39), chr(39) * 2) + chr(39))}!{_absolute(w.filter_range)}</definedName>"
        for w in worksheets if w.filter_range
    )  # fmt: skip
    parts = {
        "[Content_Types].xml": (
            f'{_PROLOG}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{w.number}.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                for w in worksheets
            )
            + "</Types>"
        ),
        "_rels/.rels": (
            f'{_PROLOG}<Relationships xmlns="{_PACKAGE}"><Relationship Id="rId1" '
            f'Type="{_RELATIONSHIPS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'{_PROLOG}<Relationships xmlns="{_PACKAGE}">'
            + "".join(f'<Relationship Id="rId{w.number}" Type="{_RELATIONSHIPS}/worksheet" Target="worksheets/sheet{w.number}.xml"/>' for w in worksheets)
            + f'<Relationship Id="rId{len(worksheets) + 1}" Type="{_RELATIONSHIPS}/styles" Target="styles.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'{_PROLOG}<workbook xmlns="{_MAIN}" xmlns:r="{_RELATIONSHIPS}"><bookViews><workbookView/></bookViews>'
            f"<sheets>{sheets}</sheets>{'<definedNames>' + filters + '</definedNames>' if filters else ''}</workbook>"
        ),
        "xl/styles.xml": _STYLES,
    }
    for name, text in parts.items():
        archive.writestr(name, text)


def _absolute(reference: str) -> str:
    first, last = reference.split(":")

    def split(ref: str) -> tuple[str, ...]:
        cell = re.match(r"([A-Z]+)(\d+)", ref)
        assert cell is not None  # references are made by filter_range
        return cell.groups()

    return ":".join(f"${column}${row}" for column, row in (split(first), split(last)))


def write_workbook(path: Path, sheets: Sequence[Sheet], *, max_rows: int = EXCEL_MAX_ROWS) -> dict[str, int]:
    """Write the sheets into one .xlsx; returns {sheet name written: data rows}, continuation sheets included."""
    if not 2 <= max_rows <= EXCEL_MAX_ROWS:
        raise ValueError(f"max_rows must be within 2..{EXCEL_MAX_ROWS}, not {max_rows}")
    taken: set[str] = set()
    # All Sheets' names first, so a continuation sheet never takes a name a later Sheet asked for.
    names = [_sheet_name(sheet.name, taken) for sheet in sheets]
    written: dict[str, int] = {}
    worksheets: list[_Worksheet] = []
    with (
        _writing(path) as partial_path,
        zipfile.ZipFile(partial_path, "w", zipfile.ZIP_DEFLATED, compresslevel=_DEFLATE_LEVEL) as archive,
        _deflating(archive) as open_member,
    ):
        for sheet, name in zip(sheets, names):
            stream = _SheetStream(open_member, worksheets, name, taken, max_rows)
            try:
                for chunk in sheet.chunks:
                    stream.write_chunk(chunk)
                written.update(stream.finish())
            except BaseException as exc:
                if worksheets:
                    worksheets[-1].stream.close()  # lets the zip close; the partial file is removed
                if isinstance(exc, _FAILURES):
                    raise ExportError(f"{path}, sheet {name!r}: {exc}") from exc
                raise
        _package(archive, worksheets)
    return written


# One read, several files

_END, _ABORT = object(), object()


_Written = TypeVar("_Written")


def write_all(chunks: Iterable[pd.DataFrame], writers: Sequence[Callable[[Iterator[pd.DataFrame]], _Written]]) -> list[_Written]:
    """Each writer consumes the same chunks, read once, each in a thread of its own (Arrow's CSV,
    Parquet and string kernels release the GIL); returns their results in order. A writer that
    fails stops getting chunks; its error is raised once the others are done."""
    inboxes = [queue.Queue(maxsize=2) for _ in writers]  # bounded: a few chunks in memory at most

    def fed(inbox: queue.Queue) -> Iterator[pd.DataFrame]:
        while (item := inbox.get()) is not _END:
            if item is _ABORT:  # the read failed: the writer fails too and leaves no file
                raise ExportError("reading the rows failed")
            yield item

    def offer(inbox: queue.Queue, future, item: object) -> None:
        while not future.done():  # a writer that stopped takes nothing more
            try:
                inbox.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    with ThreadPoolExecutor(max_workers=len(writers)) as pool:
        futures = [pool.submit(writer, fed(inbox)) for writer, inbox in zip(writers, inboxes)]
        end = _ABORT
        try:
            for chunk in chunks:
                for inbox, future in zip(inboxes, futures):
                    offer(inbox, future, chunk)
            end = _END
        finally:  # when reading fails, the writers are stopped and the reader's error is raised
            for inbox, future in zip(inboxes, futures):
                offer(inbox, future, end)
        return [future.result() for future in futures]


# ZIP and B2


# Level 1 of ISA-L deflates the bench's CSV at 3.7x zlib level 1's speed (0.35 against 1.29 CPU-s
# per 200 MB) into 9 % less (23.1 % of the CSV, zlib 25.4 %; sheet XML 10.9 %, zlib 11.6 %); zlib's
# level 1 is itself 3.3x faster than its default 6 for 18 % more. Both let go of the GIL while they deflate.
_DEFLATE_LEVEL = 1
_DEFLATE_BLOCK = 4 << 20  # bytes of a member deflated as one job
_DEFLATE_WINDOW = 32 << 10  # deflate's window: what a block may refer back to


def _raw_deflater(**options):
    """A compressor of raw deflate (no zlib header), as zip members hold."""
    return deflate.compressobj(_DEFLATE_LEVEL, deflate.DEFLATED, -zlib.MAX_WBITS, **options)


def _deflated_block(block: memoryview | bytes, before: bytes) -> bytes:
    compressor = _raw_deflater(**({"zdict": before} if before else {}))
    return compressor.compress(block) + compressor.flush(deflate.Z_SYNC_FLUSH)


class _ParallelDeflate:
    """A zip member's compressor that deflates blocks of it on a pool's threads, as pigz does: each
    block primed with the 32 KiB before it and ended by a sync flush (byte-aligned, not final), so
    the blocks in order are one deflate stream, which an empty final block ends. Deflate lets go of the
    GIL while it deflates; a few blocks are in flight at most."""

    def __init__(self, pool: ThreadPoolExecutor, workers: int):
        self.pool, self.in_flight = pool, 2 * workers
        self.jobs: collections.deque = collections.deque()
        self.pending = bytearray()  # the start of the next block
        self.before = b""

    def _submit(self, block: memoryview | bytes) -> None:
        self.jobs.append(self.pool.submit(_deflated_block, block, self.before))
        self.before = bytes(block[-_DEFLATE_WINDOW:])

    def _finished(self) -> bytes:
        done = []
        while self.jobs and (self.jobs[0].done() or len(self.jobs) > self.in_flight):
            done.append(self.jobs.popleft().result())
        return b"".join(done)

    def compress(self, data) -> bytes:
        data = memoryview(data).cast("B")
        start = 0
        if self.pending:
            start = _DEFLATE_BLOCK - len(self.pending)
            self.pending += data[:start]
            if len(self.pending) < _DEFLATE_BLOCK:
                return self._finished()
            self._submit(bytes(self.pending))
            self.pending = bytearray()
        while len(data) - start >= _DEFLATE_BLOCK:
            self._submit(bytes(data[start : start + _DEFLATE_BLOCK]))  # a copy: the caller may free its buffer
            start += _DEFLATE_BLOCK
        self.pending += data[start:]
        return self._finished()

    def flush(self) -> bytes:
        if self.pending:
            self._submit(bytes(self.pending))
        rest = b"".join(job.result() for job in self.jobs)
        self.jobs.clear()
        return rest + _raw_deflater().flush()


@contextmanager
def _deflating(archive: zipfile.ZipFile) -> Iterator[Callable[[zipfile.ZipInfo | str], IO[bytes]]]:
    """`open_member(member)`: a member of `archive` open for writing, deflated on all CPUs."""
    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def open_member(member: zipfile.ZipInfo | str) -> IO[bytes]:
            stream = archive.open(member, "w", force_zip64=True)
            # typeshed gives the writer as IO[bytes]; _zinfo and _compressor are attributes of zipfile's private _ZipWriteFile.
            if stream._zinfo.compress_type == zipfile.ZIP_DEFLATED:  # pyright: ignore[reportAttributeAccessIssue]
                stream._compressor = _ParallelDeflate(pool, workers)  # pyright: ignore[reportAttributeAccessIssue]  # zipfile has no public hook for it
            return stream

        yield open_member


def write_zip(paths: Sequence[Path], zip_path: Path, texts: Mapping[str, str] | None = None) -> Path:
    """A deflated ZIP of the files, each stored under its base name, and of `texts` (member name:
    its text, UTF-8, e.g. summary.md); returns `zip_path`."""
    texts = texts or {}
    names = [path.name for path in paths] + list(texts)
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ExportError(f"{zip_path}: more than one file named {', '.join(duplicates)}")
    # Files that are compressed already (Parquet, xlsx, zip) are stored as they are.
    with (
        _writing(zip_path) as partial_path,
        zipfile.ZipFile(partial_path, "w", zipfile.ZIP_DEFLATED, compresslevel=_DEFLATE_LEVEL) as archive,
        _deflating(archive) as open_member,
    ):
        for path in paths:
            member = zipfile.ZipInfo.from_file(path, arcname=path.name)
            member.compress_type = zipfile.ZIP_STORED if path.suffix.lower() in _COMPRESSED_ALREADY else zipfile.ZIP_DEFLATED
            with path.open("rb") as source, open_member(member) as target:
                shutil.copyfileobj(source, target, _DEFLATE_BLOCK)
        for name, text in texts.items():
            archive.writestr(name, text.encode(), compress_type=zipfile.ZIP_DEFLATED)
    return zip_path


def upload_to_b2(bucket: Bucket, prefix: str, paths: Sequence[Path]) -> list[str]:
    """Upload the files to `bucket` (a b2sdk v2 Bucket) as `<prefix>/<base name>`; returns the B2 file names.

    b2sdk splits large files into parts and retries transient errors itself."""
    folder = prefix.rstrip("/")
    uploaded = []
    for path in paths:
        name = f"{folder}/{path.name}" if folder else path.name
        try:
            bucket.upload_local_file(local_file=str(path), file_name=name)
        except (B2Error, OSError) as exc:
            raise ExportError(f"upload of {path} to b2://{bucket.name}/{name} failed: {exc}") from exc
        uploaded.append(name)
    return uploaded
