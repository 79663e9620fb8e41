"""Readers: a landed file becomes bounded DataFrame chunks of text exactly as written, plus lineage.

open_table() detects the format (hints, then content — magic bytes, then the first characters —,
then the extension, which only breaks ties and is reported when the content contradicts it), the
encoding, delimiter, quote character and header from the file's head, and returns a TableFile whose
chunks() yields DataFrames of at most chunk_rows rows. Data columns have dtype "str" and hold the
file's text, never parsed: leading zeros, '1.234,50', 'N/A' and '' survive; NULL appears only where
the file holds no value at all. `_row_number` (int64) says where each row came from.

Delimited text (csv, tsv, ';' or '|'): encoding from hints, a BOM (utf-8-sig, utf-16, utf-32), a
strict UTF-8 decode of the first MiB, else cp1252, else latin-1. pyarrow parses every field as a
string. `_row_number` is the physical line where the record starts (the header is line 1; lines end
at \\n, \\r\\n or \\r): a record spans one line plus the line breaks inside its quoted values. Blank
lines are not records and are skipped (a line of only delimiters is a record of ''). pyarrow reports
a ragged record without its line and accepts a quote left open at the end of the file, so on any
parse error, and whenever the file holds an odd number of quote characters, a second pass with the
csv module names the exact line. A record may be up to 128 MiB long.

Excel (.xlsx, .xlsm, .xls, .ods) via python-calamine: every non-empty sheet, or hints.sheet. Leading
empty rows and columns and blank rows are skipped; the first non-empty row is the header when one is
detected. Cells become: text verbatim; integer-valued numbers without '.0' (below 2**53; larger ones
and other numbers as the shortest repr, '0.1', '1e+20'); dates, datetimes and times ISO 8601
('2024-01-02', '2024-01-02T03:04:05', '03:04:00'); durations ISO 8601 ('P0DT1H0M0S'); booleans
TRUE/FALSE; empty cells NULL. `_row_number` is the sheet row; when several sheets are read `_sheet`
names the sheet and the columns are the union of the sheets' headers (NULL where a sheet lacks one).

JSON: an array of objects, an object holding the records (the only top-level key whose value is a
non-empty list of objects — failing that, the only empty list —, or hints.record_path 'a.b'), or
NDJSON (one object per line). Nested objects flatten to parent__child; lists stay compact JSON text;
numbers keep their literal text; true/false become 'true'/'false'; null and absent keys are NULL.
`_row_number` is the record's 1-based index (NDJSON: its line).

XML, parsed by defusedxml only (entity declarations and external entities raise ReadError): the
record element is hints.record_path (a tag name matched at any depth, or a path from the root such as
'export/patients/patient') or detected as the shallowest element repeated under one parent in the
first 20,000 elements (none repeated: the whole document is one record). A leaf's text is the column
named by its path below the record (nested children: parent__child; '' for an empty element; a leaf
record's own text is the column named by its tag); attributes are '@name' columns ('child__@name'
on children); a path repeated within a record holds a JSON list of its texts. Namespaces are dropped;
text beside child elements is ignored. `_row_number` is the record's ordinal.

Parquet: iter_batches, every column cast to text: numbers as Arrow prints them ('1', '0.1'),
timestamps ISO 8601 with 'T' at their unit's precision ('2024-01-02T03:04:05.000'), booleans
'true'/'false', durations ISO 8601, nested types compact JSON, a binary column holding any non-UTF-8
value as PostgreSQL bytea hex ('\\x00ff'). `_row_number` is the 1-based row index.

JSON and XML are streamed twice: open_table reads every record once to learn all columns (and so
reports bad records early), chunks() reads them again, so every chunk has the same columns while
memory stays bounded.

Column names are the headers with surrounding whitespace (and a BOM) stripped; an empty header
becomes column_<n> (1-based position); a duplicate, or a header equal to a lineage column, becomes
name__2, name__3 ... (skipping names the header already uses). Each change is in
Detection.renamed_columns, keyed by the original header (an original renamed more than once is keyed
'<header> (column <n>)' from the second time on), and in Detection.evidence.

Bad input raises only ReadError: one line, '<file name>: <cause>', naming the line or record.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import functools
import io
import itertools
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import python_calamine
from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

_HEAD_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 20
# pyarrow fails on a record longer than two blocks; big blocks make its memory grow with the file, so a file
# is read with small ones and read again with large ones (skipping the rows done) only when a record needs it.
_ARROW_BLOCK_SIZES = (1 << 20, 64 << 20)
_SAMPLE_RECORDS = 100
_XML_SCAN_ELEMENTS = 20_000
_MAX_JSON_RECORD_CHARS = 64 << 20
_DELIMITERS = (",", ";", "\t", "|")
_LINEAGE = ("_row_number", "_sheet")
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' "str"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_SIGNATURES = (
    (b"PAR1", "parquet", "magic bytes PAR1"),
    (b"PK\x03\x04", "excel", "zip signature 50 4B 03 04 (xlsx/ods)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "excel", "OLE2 signature D0 CF 11 E0 (xls)"),
)
_EXTENSIONS = {
    ".csv": "csv", ".txt": "csv", ".tsv": "tsv", ".tab": "tsv",
    ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel", ".ods": "excel",
    ".json": "json", ".ndjson": "json", ".jsonl": "json", ".xml": "xml", ".parquet": "parquet",
}
_JSON_START = re.compile(r"\s*(\[\s*[\[{\"\d\-tfn\]]|\{\s*[\"}])")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_DATA_LIKE = re.compile(
    r"[-+]?\d[\d.,' ]*(?:[eE][-+]?\d+)?%?|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?"
)
_LINE_END = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_XML_DECLARED_ENCODING = re.compile(r"<\?xml[^>]*\bencoding\s*=\s*[\"']([\w.:-]+)")

# The csv module (used for sniffing and to pinpoint errors) caps fields at 128 KiB; pyarrow does not.
csv.field_size_limit(sys.maxsize)


class ReadError(ValueError):
    """A file cannot be read. str(err) is one line, '<file name>: <cause>', naming the line or record where known."""

    def __init__(self, path: Path, cause: str, line: int | None = None):
        self.path, self.line, self._cause = path, line, cause
        super().__init__(f"{path.name}: {' '.join(cause.split())}")

    def __reduce__(self):
        return type(self), (self.path, self._cause, self.line)


@dataclass(frozen=True)
class ReadHints:
    """What the source's configuration says about its files; None means detect."""

    format: Literal["csv", "tsv", "excel", "json", "xml", "parquet"] | None = None  # None = detect
    delimiter: str | None = None
    quotechar: str | None = None
    encoding: str | None = None
    header: bool | None = None  # None = detect
    sheet: str | None = None  # Excel: only this sheet; None = every non-empty sheet
    record_path: str | None = None  # JSON: dotted path to the records list; XML: record tag or path


@dataclass
class Detection:
    """What open_table found, and why."""

    format: str  # csv|tsv|excel|json|ndjson|xml|parquet
    encoding: str | None
    delimiter: str | None
    quotechar: str | None
    header: bool | None
    sheets: list[str]  # Excel sheets read
    record_path: str | None  # JSON/XML record location used
    columns: list[str]  # data columns, in order (without _row_number/_sheet)
    renamed_columns: dict[str, str]  # original header → column name, for headers that had to change
    evidence: list[str]  # what was detected and why


class _Reader(Protocol):
    path: Path
    detection: Detection

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]: ...


class TableFile:
    """A detected file: `detection` says what was found, chunks() streams its rows."""

    def __init__(self, reader: _Reader, chunk_rows: int):
        self.detection = reader.detection
        self._reader, self._chunk_rows = reader, chunk_rows

    def chunks(self) -> Iterator[pd.DataFrame]:
        """DataFrames of at most chunk_rows rows; a file without rows yields one empty frame with the columns."""
        schema = _schema(self.detection.columns, len(self.detection.sheets) > 1)
        with _as_read_error(self._reader.path):
            yield from _rechunk(self._reader.tables(self._chunk_rows), schema, self._chunk_rows)


def open_table(path: Path, hints: ReadHints = ReadHints(), chunk_rows: int = 100_000) -> TableFile:
    """Detect format, encoding, delimiter, header etc. from the file's head; ReadError if it cannot be read."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    with _as_read_error(path):
        head = _read_head(path, hints)
        reader = _READERS[head.format](head)
    return TableFile(reader, chunk_rows)


# ---------------------------------------------------------------- errors, head, format and encoding


@contextlib.contextmanager
def _as_read_error(path: Path) -> Iterator[None]:
    """Turn a library's exception about the file into a one-line ReadError naming it."""
    try:
        yield
    except ReadError:
        raise
    except (OSError, ValueError, csv.Error, ParseError, pa.ArrowException, python_calamine.CalamineError) as err:
        raise ReadError(path, f"{type(err).__name__}: {err}") from err


@dataclass
class _Head:
    """The file's first bytes and what they tell: format, encoding (text formats), decoded text, evidence."""

    path: Path
    hints: ReadHints
    raw: bytes
    complete: bool  # raw is the whole file
    format: str = ""
    encoding: str | None = None
    text: str = ""
    evidence: list[str] = field(default_factory=list)


def _read_head(path: Path, hints: ReadHints) -> _Head:
    """Read the head and settle the format: hints, then signature or text markers; the extension is only reported."""
    try:
        with path.open("rb") as file:
            raw = file.read(_HEAD_BYTES + 1)
    except OSError as err:
        raise ReadError(path, f"cannot open: {err.strerror or err}") from err
    if not raw:
        raise ReadError(path, "empty file (0 bytes)")
    head = _Head(path, hints, raw[:_HEAD_BYTES], len(raw) <= _HEAD_BYTES)
    signature = next(((fmt, why) for magic, fmt, why in _SIGNATURES if raw.startswith(magic)), None)
    if hints.format:
        head.format, why = hints.format, f"format {hints.format} from hints"
    elif signature:
        head.format, why = signature[0], f"{signature[1]} → {signature[0]}"
    if head.format in ("", "csv", "tsv", "json", "xml"):
        _decode_head(head)
    if not head.format:
        head.format, why = _text_format(head.text)
    head.evidence.insert(0, why)
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if not hints.format and by_extension and by_extension.replace("tsv", "csv") != head.format:
        contradiction = f"extension {path.suffix} suggests {by_extension}, but the content is {head.format}: content wins"
        head.evidence.insert(1, contradiction)
    return head


def _text_format(text: str) -> tuple[str, str]:
    """xml, json or delimited, from the first characters."""
    start = text.lstrip()[:1]
    if start == "<":
        return "xml", "text starting with '<' → xml"
    if _JSON_START.match(text):
        return "json", f"text starting with {start!r} → json"
    return "csv", "text that is neither JSON nor XML → delimited"


def _decode_head(head: _Head) -> None:
    """Choose the encoding, decode the head strictly and refuse binary content."""
    head.encoding, why = _guess_encoding(head)
    decoder = codecs.getincrementaldecoder(head.encoding)()
    head.text = _decode(head.path, head.encoding, decoder, head.raw, head.complete, 1)
    sample = head.text[:65536]
    if "\x00" in sample or len(_CONTROL.findall(sample)) > len(sample) // 100:
        raise ReadError(head.path, "binary content that is neither Parquet nor Excel")
    head.evidence.append(why)


def _guess_encoding(head: _Head) -> tuple[str, str]:
    """Hints, else a BOM, else the first of utf-8 / cp1252 that decodes the head strictly, else latin-1."""
    if head.hints.encoding:
        try:
            codecs.lookup(head.hints.encoding)
        except LookupError as err:
            raise ReadError(head.path, f"unknown encoding {head.hints.encoding!r} in hints") from err
        return head.hints.encoding, f"encoding {head.hints.encoding} from hints"
    for bom, encoding in _BOMS:
        if head.raw.startswith(bom):
            return encoding, f"BOM {bom.hex(' ').upper()} → {encoding}"
    failures = []
    for encoding in ("utf-8", "cp1252"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(head.raw, head.complete)
        except UnicodeDecodeError as err:
            failures.append(f"not {encoding} (byte 0x{err.object[err.start]:02x} at offset {err.start})")
            continue
        return encoding, "; ".join([*failures, f"the first {len(head.raw)} bytes decode as {encoding}"])
    return "latin-1", "; ".join([*failures, "latin-1 decodes any byte"])


def _decode(path: Path, encoding: str, decoder: codecs.IncrementalDecoder, data: bytes, final: bool, line: int) -> str:
    """Decode strictly; undecodable bytes raise ReadError naming their line (`line` is where `data` starts)."""
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as err:
        at = line + _count_breaks(err.object[: err.start].decode(err.encoding, "replace"))
        cause = f"line {at}: byte 0x{err.object[err.start:err.start + 1].hex()} is not valid {encoding}"
        raise ReadError(path, cause, at) from err


def _count_breaks(text: str) -> int:
    """Line breaks in text (\\n, \\r\\n and \\r each count once)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _decoded_blocks(path: Path, encoding: str) -> Iterator[str]:
    """The whole file decoded block by block; undecodable bytes raise ReadError with their line."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line, after_cr = 1, False
    with path.open("rb") as file:
        while raw := file.read(_BLOCK_BYTES):
            text = _decode(path, encoding, decoder, raw, False, line)
            line += _count_breaks(text) - (after_cr and text.startswith("\n"))
            after_cr = text.endswith("\r") if text else after_cr
            yield text
        yield _decode(path, encoding, decoder, b"", True, line)


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """Physical lines with their line ends, across block boundaries."""
    pending: list[str] = []  # pieces of a line not ended yet (kept apart: a line can be huge)
    for block in filter(None, blocks):
        if pending and pending[-1].endswith("\r") and not block.startswith("\n"):
            yield "".join(pending)
            pending = []
        *ended, rest = _LINE_END.split(block)
        if block.endswith("\r"):  # may be the first half of \r\n
            rest = ended.pop()
        if ended:
            ended[0] = "".join([*pending, ended[0]])
            pending = []
            yield from ended
        pending.append(rest)
    if any(pending):
        yield "".join(pending)


# ---------------------------------------------------------------- columns, tables, chunks


def _column_names(headers: Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """Column names for raw headers (stripped; empty → column_<n>; duplicates → name__2 ...) and what changed."""
    stripped = [header.strip().lstrip("\ufeff").strip() for header in headers]
    wanted = [name or f"column_{position}" for position, name in enumerate(stripped, 1)]
    reserved, taken = set(wanted) | set(_LINEAGE), set()
    names, renamed, evidence = [], {}, []
    for position, (header, clean, name) in enumerate(zip(headers, stripped, wanted), 1):
        clash = name in taken or name in _LINEAGE
        if clash:
            name = next(f"{name}__{n}" for n in itertools.count(2) if f"{name}__{n}" not in reserved | taken)
        taken.add(name)
        names.append(name)
        if name == header:
            continue
        reasons = [
            reason
            for reason, applies in (
                ("empty header", not clean),
                ("surrounding whitespace", clean and clean != header),
                ("lineage column name", clean in _LINEAGE),
                ("duplicate", clash and clean not in _LINEAGE),
            )
            if applies
        ]
        renamed[f"{header} (column {position})" if header in renamed else header] = name
        evidence.append(f"column {position}: {header!r} → {name!r} ({', '.join(reasons)})")
    return names, renamed, evidence


def _schema(columns: Sequence[str], with_sheet: bool) -> pa.Schema:
    """Data columns as strings, then `_sheet` (when several sheets) and `_row_number`."""
    lineage = [("_sheet", pa.string())] if with_sheet else []
    return pa.schema([*((name, pa.string()) for name in columns), *lineage, ("_row_number", pa.int64())])


def _lineage_table(
    names: Sequence[str], arrays: Sequence[Any], row_numbers: Any, sheets: list[str] | None = None
) -> pa.Table:
    """A table of text columns plus `_sheet` (when given) and `_row_number`."""
    columns = dict(zip(names, arrays))
    if sheets is not None:
        columns["_sheet"] = pa.array(sheets, pa.string())
    columns["_row_number"] = pa.array(row_numbers, pa.int64())
    return pa.table(columns)


def _rechunk(tables: Iterable[pa.Table], schema: pa.Schema, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Regroup tables of any size into frames of exactly chunk_rows rows (the last one shorter)."""
    pending, size, emitted = [], 0, False
    for table in tables:
        pending.append(table)
        size += table.num_rows
        while size >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield _frame(whole.slice(0, chunk_rows))
            pending, size, emitted = [whole.slice(chunk_rows)], size - chunk_rows, True
    if size or not emitted:
        yield _frame(pa.concat_tables(pending) if pending else schema.empty_table())


def _frame(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with text as pandas' "str" dtype."""
    return table.to_pandas(types_mapper={pa.string(): _TEXT, pa.large_string(): _TEXT}.get)


def _record_tables(
    records: Iterator[tuple[int, str | None, dict]], keys: Sequence, names: Sequence[str], with_sheet: bool, chunk_rows: int
) -> Iterator[pa.Table]:
    """Tables of up to chunk_rows (row number, sheet, {key: text}) records; absent keys are NULL."""
    position = {key: index for index, key in enumerate(keys)}
    while True:
        # filled column-wise as records arrive: holding the records themselves makes the cyclic GC crawl
        columns: list[list[str | None]] = [[None] * chunk_rows for _ in keys]
        numbers, sheets = [], []
        for row, (number, sheet, values) in enumerate(itertools.islice(records, chunk_rows)):
            numbers.append(number)
            sheets.append(sheet)
            for key, value in values.items():
                columns[position[key]][row] = value
        if not numbers:
            return
        arrays = [pa.array(column[: len(numbers)], pa.string()) for column in columns]
        yield _lineage_table(names, arrays, numbers, sheets if with_sheet else None)


def _header_columns(
    first: Sequence[str | None], hint: bool | None, where: str
) -> tuple[bool, list[str], dict[str, str], list[str]]:
    """Header or not (hint, else: unless a first-row value looks like data), column names, renames, evidence."""
    data = next((value for value in first if value and _DATA_LIKE.fullmatch(value.strip())), None)
    if hint is not None:
        header, why = hint, f"header={hint} from hints"
    elif data is not None:
        header, why = False, f"no header: {where} holds {data!r}, which looks like data"
    else:
        header, why = True, f"header: {where} holds no numbers or dates"
    if not header:
        return False, [f"column_{n}" for n in range(1, len(first) + 1)], {}, [why]
    names, renamed, evidence = _column_names([value or "" for value in first])
    return True, names, renamed, [why, *evidence]


# ---------------------------------------------------------------- delimited text


class _Delimited:
    """Delimited text: pyarrow parses it fast; the csv module pinpoints the errors pyarrow reports without a line."""

    def __init__(self, head: _Head):
        hints = head.hints
        self.path, self.encoding = head.path, head.encoding
        self.delimiter, delimiter_why = _delimiter(head, head.hints.quotechar or '"')
        self.quotechar, quote_why = _quotechar(head, self.delimiter)
        records = _sample_records(head.text, head.complete, self.delimiter, self.quotechar)
        if not records:
            raise ReadError(self.path, "no data: the file holds only blank lines")
        self.width = len(records[0])
        self.header, names, renamed, header_why = _header_columns(records[0], hints.header, "the first record")
        self.detection = Detection(
            "tsv" if self.delimiter == "\t" else "csv", self.encoding, self.delimiter, self.quotechar, self.header,
            [], None, names, renamed, [*head.evidence, delimiter_why, quote_why, *header_why],
        )

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Record batches with `_row_number` = the physical line where each record starts; blank lines dropped."""
        lines = _LineReader(self.path, self.encoding)
        next_line, header_pending, done = 1, self.header, 0  # done: pyarrow rows already yielded (or dropped)
        for block_size in _ARROW_BLOCK_SIZES:
            source, seen = _Utf8Source(self.path, self.encoding, self.quotechar), 0
            try:
                for batch in self._arrow_reader(source, block_size):
                    seen += batch.num_rows
                    if seen <= done:
                        continue
                    batch, done = batch.slice(max(0, done - seen + batch.num_rows)), seen
                    starts, next_line = _record_lines(batch, next_line)
                    keep = ~_blank_lines(batch, starts, lines)
                    if header_pending and keep.any():
                        keep[np.flatnonzero(keep)[0]], header_pending = False, False
                    rows = batch if keep.all() else batch.filter(pa.array(keep))
                    yield _lineage_table(self.detection.columns, rows.columns, starts[keep])
                break
            except (pa.ArrowInvalid, UnicodeDecodeError) as err:
                too_large = "straddles two block boundaries" in str(err)
                if too_large and block_size != _ARROW_BLOCK_SIZES[-1]:
                    continue
                self._raise_exact_error()
                if too_large:
                    cause = f"a record at or after line {next_line} is longer than {2 * block_size >> 20} MiB"
                    raise ReadError(self.path, cause) from err
                raise ReadError(self.path, f"cannot parse: {err}") from err
            finally:
                source.close()
        if source.quotes % 2:  # an odd count may be a quote left open at the end, which pyarrow accepts
            self._raise_exact_error()

    def _arrow_reader(self, source: _Utf8Source, block_size: int) -> pacsv.CSVStreamingReader:
        """Every field a non-null string; blank lines kept (as empty rows) so line numbers can be counted."""
        names = [f"f{n}" for n in range(self.width)]
        return pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
            parse_options=pacsv.ParseOptions(
                delimiter=self.delimiter, quote_char=self.quotechar, newlines_in_values=True, ignore_empty_lines=False
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _raise_exact_error(self) -> None:
        """Re-read with the csv module; raise ReadError at the first record that is ragged or never closes its quote."""
        lines = _lines(_decoded_blocks(self.path, self.encoding))
        reader = csv.reader(lines, delimiter=self.delimiter, quotechar=self.quotechar, strict=True)
        start, width, first = 1, None, None
        try:
            for fields in reader:
                if fields and width is None:
                    width, first = len(fields), start
                elif fields and len(fields) != width:
                    reference = "the header" if self.header else f"line {first}"
                    cause = f"line {start} has {_fields(len(fields))}, {reference} has {width}"
                    raise ReadError(self.path, cause, start)
                start = reader.line_num + 1
        except csv.Error as err:
            never_closed = "unexpected end of data" in str(err)
            cause = "a quoted field opened in this record is never closed" if never_closed else str(err)
            raise ReadError(self.path, f"line {start}: {cause}", start) from err


def _fields(count: int) -> str:
    """'1 field', '3 fields'."""
    return f"{count} field" if count == 1 else f"{count} fields"


class _Utf8Source:
    """The file as UTF-8 bytes for pyarrow (transcoded when needed), counting quote characters on the way."""

    def __init__(self, path: Path, encoding: str, quotechar: str):
        self._file = path.open("rb")
        utf8 = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")  # pyarrow skips a UTF-8 BOM itself
        self._decoder = None if utf8 else codecs.getincrementaldecoder(encoding)()
        self._quote = quotechar.encode("utf-8")
        self.quotes = 0

    @property
    def closed(self) -> bool:
        return self._file.closed

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        if self._decoder:
            data = self._decoder.decode(data, not data).encode("utf-8")
        self.quotes += data.count(self._quote)
        return data

    def close(self) -> None:
        self._file.close()


class _LineReader:
    """Forward-only access to physical lines by number, for the rare rows that need their raw text checked."""

    def __init__(self, path: Path, encoding: str):
        self._path, self._encoding = path, encoding
        self._lines: Iterator[str] | None = None
        self._number, self._line = 0, ""

    def is_blank(self, number: int) -> bool:
        """Whether physical line `number` (not before the last one asked) is empty."""
        if self._lines is None:
            self._lines = _lines(_decoded_blocks(self._path, self._encoding))
        while self._number < number:
            self._line, self._number = next(self._lines), self._number + 1
        return not self._line.rstrip("\r\n")


def _record_lines(batch: pa.RecordBatch, first_line: int) -> tuple[np.ndarray, int]:
    """Start line of each record (1 + the line breaks inside its values after the previous one) and the next line."""
    spans = np.ones(batch.num_rows, np.int64)
    for column in batch.columns:
        spans += pc.count_substring(column, "\n").to_numpy()
        if pc.any(pc.match_substring(column, "\r")).as_py():
            spans += pc.subtract(pc.count_substring(column, "\r"), pc.count_substring(column, "\r\n")).to_numpy()
    ends = first_line + np.cumsum(spans)
    return ends - spans, int(ends[-1]) if len(ends) else first_line


def _blank_lines(batch: pa.RecordBatch, starts: np.ndarray, lines: _LineReader) -> np.ndarray:
    """Rows that pyarrow made from blank lines: all values '' and the raw line empty (not ',,' or '\"\"')."""
    empty = None
    for column in batch.columns:
        equal = pc.equal(column, "")
        empty = equal if empty is None else pc.and_(empty, equal)
        if not pc.any(empty).as_py():
            return np.zeros(batch.num_rows, bool)
    candidates = empty.to_numpy(zero_copy_only=False)
    return np.array([bool(is_empty) and lines.is_blank(int(line)) for is_empty, line in zip(candidates, starts)], bool)


def _sample_records(text: str, complete: bool, delimiter: str, quotechar: str) -> list[list[str]]:
    """The first non-blank records of the head (its last record dropped when the head may cut it)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    records = list(itertools.islice(reader, _SAMPLE_RECORDS + 1))
    if len(records) <= _SAMPLE_RECORDS and not complete:
        records = records[:-1]
    return [record for record in records[:_SAMPLE_RECORDS] if record]


def _split_score(head: _Head, delimiter: str, quotechar: str) -> tuple[bool, int, int, int]:
    """(splits at all, sample records with the first record's field count, that count, sample records)."""
    widths = [len(record) for record in _sample_records(head.text, head.complete, delimiter, quotechar)] or [0]
    return widths[0] > 1, widths.count(widths[0]), widths[0], len(widths)


def _delimiter(head: _Head, quotechar: str) -> tuple[str, str]:
    """Hints, else the candidate that splits the most sample records into the first record's field count (> 1)."""
    if head.hints.delimiter:
        _check_one_character(head.path, "delimiter", head.hints.delimiter)
        return head.hints.delimiter, "delimiter from hints"
    if head.hints.format == "tsv":
        return "\t", "tab delimiter (format tsv from hints)"
    scores = {delimiter: _split_score(head, delimiter, quotechar) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: scores[d][:3])  # max keeps the first of equals: _DELIMITERS order breaks ties
    if not scores[best][0]:
        return ",", "no candidate delimiter (, ; tab |) splits the first record: one column"

    def summary(delimiter: str) -> str:
        splits, same, width, records = scores[delimiter]
        if not splits:
            return f"{delimiter!r} gives one field"
        return f"{delimiter!r} splits {same} of {records} sample records into {width} fields"

    return best, "; ".join(summary(d) for d in sorted(_DELIMITERS, key=lambda d: d != best))


def _quotechar(head: _Head, delimiter: str) -> tuple[str, str]:
    """'"' unless no '"' occurs, values are wrapped in "'" and parse at least as consistently with it."""
    if head.hints.quotechar:
        _check_one_character(head.path, "quotechar", head.hints.quotechar)
        return head.hints.quotechar, "quote character from hints"
    separator = re.escape(delimiter)
    wrapped = re.search(rf"(?:^|{separator})'[^'\r\n]*'(?={separator}|\r|\n|$)", head.text, re.MULTILINE)
    single, double = _split_score(head, delimiter, "'"), _split_score(head, delimiter, '"')
    if '"' not in head.text and wrapped and single[:3] >= double[:3]:
        return "'", "values wrapped in ' and no \" anywhere → quote character '"
    return '"', 'quote character " (the default)'


def _check_one_character(path: Path, name: str, value: str) -> None:
    """pyarrow and the csv module take a single character."""
    if len(value) != 1:
        raise ReadError(path, f"{name} in hints must be one character, got {value!r}")


# ---------------------------------------------------------------- Excel


class _Excel:
    """Workbooks via python-calamine: each sheet's first non-empty row is its header; blank rows skipped."""

    def __init__(self, head: _Head):
        self.path, sheet = head.path, head.hints.sheet
        self._sheets: dict[str, tuple[bool, list[str]]] = {}  # sheet → (has a header row, its column names)
        renamed, evidence = {}, list(head.evidence)
        with self._open() as workbook:
            if sheet is not None and sheet not in workbook.sheet_names:
                listed = ", ".join(map(repr, workbook.sheet_names))
                raise ReadError(self.path, f"no sheet {sheet!r}; the sheets are {listed}")
            for name in [sheet] if sheet is not None else workbook.sheet_names:
                first = next(_sheet_rows(self.path, workbook, name), None)
                if first is None:
                    evidence.append(f"sheet {name!r} is empty: skipped")
                    continue
                number, texts = first
                header, names, sheet_renamed, why = _header_columns(texts, head.hints.header, f"row {number}")
                self._sheets[name] = (header, names)
                renamed |= sheet_renamed
                evidence += [f"sheet {name!r}: {line}" for line in why]
        if not self._sheets:
            raise ReadError(self.path, f"sheet {sheet!r} is empty" if sheet is not None else "every sheet is empty")
        columns = list(dict.fromkeys(itertools.chain.from_iterable(names for _, names in self._sheets.values())))
        self.detection = Detection("excel", None, None, None, all(h for h, _ in self._sheets.values()),
                                   list(self._sheets), None, columns, renamed, evidence)

    def _open(self) -> contextlib.closing[python_calamine.CalamineWorkbook]:
        """The workbook, closed on leaving the with block."""
        try:
            return contextlib.closing(python_calamine.CalamineWorkbook.from_path(str(self.path)))
        except python_calamine.CalamineError as err:
            raise ReadError(self.path, f"not a readable Excel workbook: {err}") from err

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """The sheets' rows after their headers, keyed by column name."""

        def records() -> Iterator[tuple[int, str, dict]]:
            with self._open() as workbook:
                for sheet, (header, names) in self._sheets.items():
                    rows = _sheet_rows(self.path, workbook, sheet)
                    if header:
                        next(rows)
                    for number, texts in rows:
                        yield number, sheet, dict(zip(names, texts))

        columns = self.detection.columns
        return _record_tables(records(), columns, columns, len(self._sheets) > 1, chunk_rows)


def _sheet_rows(
    path: Path, workbook: python_calamine.CalamineWorkbook, sheet: str
) -> Iterator[tuple[int, list[str | None]]]:
    """(sheet row number, cell texts) of the rows that hold a value."""
    try:
        for number, cells in enumerate(workbook.get_sheet_by_name(sheet).iter_rows(), 1):
            texts = [_cell_text(cell) for cell in cells]
            if any(text is not None for text in texts):
                yield number, texts
    except python_calamine.CalamineError as err:
        raise ReadError(path, f"sheet {sheet!r} cannot be read: {err}") from err


def _cell_text(value: Any) -> str | None:
    """A cell (or any Python scalar) as text; the mapping is in the module docstring."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return pd.Timedelta(value).isoformat()
    return None if value is None else str(value)


# ---------------------------------------------------------------- JSON and XML


class _RecordReader:
    """Shared by JSON and XML: one streaming pass learns every flattened key, so all chunks have the same columns."""

    path: Path
    detection: Detection

    def _records(self) -> Iterator[tuple[int, str | None, dict[tuple[str, ...], str | None]]]:
        """(row number, sheet, {key path: text}) per record."""
        raise NotImplementedError

    def _learn_columns(self) -> tuple[list[str], dict[str, str], list[str]]:
        """Read every record once; the keys in order of first appearance become the columns."""
        keys: dict[tuple[str, ...], None] = {}
        for _, _, values in self._records():
            keys.update(dict.fromkeys(values))
        self._keys = list(keys)
        return _column_names(["__".join(key) for key in self._keys])

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """The records again, as tables with every learned column."""
        return _record_tables(self._records(), self._keys, self.detection.columns, False, chunk_rows)


class _Literal(str):
    """A JSON number, kept as the text it was written as."""


_JSON = json.JSONDecoder(parse_int=_Literal, parse_float=_Literal, parse_constant=_Literal)
_END = object()


class _Json(_RecordReader):
    """A JSON array of objects, an object holding the list of records, or NDJSON."""

    def __init__(self, head: _Head):
        self.path, self.encoding, self._record_path = head.path, head.encoding, head.hints.record_path
        self._ndjson, why = _is_ndjson(head)
        self._found: str | None = None  # the records' key, set by _document_records when it ends
        names, renamed, name_why = self._learn_columns()
        if self._found is not None:
            why = f"key {self._found!r} holds the records"
        self.detection = Detection("ndjson" if self._ndjson else "json", self.encoding, None, None, None, [],
                                   self._found, names, renamed, [*head.evidence, why, *name_why])

    def _records(self) -> Iterator[tuple[int, None, dict]]:
        """Flattened records numbered by index (NDJSON: by line)."""
        for number, record in self._ndjson_records() if self._ndjson else self._document_records():
            yield number, None, _flatten_json(record)

    def _ndjson_records(self) -> Iterator[tuple[int, dict]]:
        """(line, object) for each non-blank line."""
        for number, line in enumerate(_lines(_decoded_blocks(self.path, self.encoding)), 1):
            if not line.strip():
                continue
            try:
                record = _JSON.decode(line)
            except json.JSONDecodeError as err:
                cause = f"line {number}: invalid JSON: {err.msg} (column {err.colno})"
                raise ReadError(self.path, cause, number) from err
            if not isinstance(record, dict):
                raise ReadError(self.path, f"line {number} is not a JSON object", number)
            yield number, record

    def _document_records(self) -> Iterator[tuple[int, dict]]:
        """(index, object) for each record of an array or of the records list inside an object."""
        scanner = _JsonScanner(self.path, _decoded_blocks(self.path, self.encoding))
        if scanner.expect("[{") == "[":
            if self._record_path:
                raise ReadError(self.path, f"record_path {self._record_path!r} given, but the document is an array")
            items = scanner.items()
        else:
            items = scanner.object_records(self._record_path.split(".") if self._record_path else None)
        for number, record in enumerate(items, 1):
            if not isinstance(record, dict):
                line = scanner.line()
                raise ReadError(self.path, f"record {number} (line {line}) is not a JSON object", line)
            yield number, record
        scanner.expect_end()
        self._found = scanner.found


def _is_ndjson(head: _Head) -> tuple[bool, str]:
    """NDJSON when a complete object is followed by more on a later line (or one object in a .ndjson/.jsonl file)."""
    text = head.text.lstrip()
    if text.startswith("["):
        return False, "a JSON array: its elements are the records"
    try:
        _, end = _JSON.raw_decode(text)
    except json.JSONDecodeError:
        return False, "one JSON object"
    rest = text[end:]
    if rest.strip():
        if "\n" in rest[: len(rest) - len(rest.lstrip())]:
            return True, "one JSON object per line → ndjson"
        return False, "one JSON object"
    if head.path.suffix.lower() in (".ndjson", ".jsonl"):
        return True, f"a single JSON object in a {head.path.suffix} file → ndjson"
    return False, "one JSON object"


def _flatten_json(
    record: dict, prefix: tuple[str, ...] = (), flat: dict | None = None
) -> dict[tuple[str, ...], str | None]:
    """{key path: text}: nested objects flattened, everything else as text."""
    flat = {} if flat is None else flat
    for key, value in record.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            _flatten_json(value, path, flat)
        else:
            flat[path] = value if isinstance(value, str) else _json_text(value)
    return flat


def _json_text(value: Any) -> str | None:
    """A JSON scalar as its text (numbers literal, true/false), null as NULL, a list as compact JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else _json_dump(value)


def _json_dump(value: Any) -> str:
    """Compact JSON text that writes numbers as they were written."""
    if isinstance(value, _Literal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_json_dump, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_dump(key)}:{_json_dump(item)}" for key, item in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


class _JsonScanner:
    """Reads a JSON document value by value from decoded blocks, holding only the current value in memory."""

    def __init__(self, path: Path, blocks: Iterator[str]):
        self.path, self._blocks = path, blocks
        self._text, self._pos, self._line = "", 0, 1
        self.found: str | None = None

    def line(self) -> int:
        """The line of the current position."""
        return self._line + self._text.count("\n", 0, self._pos)

    def error(self, message: str, pos: int | None = None) -> ReadError:
        """A ReadError naming the line of pos (default: the current position)."""
        line = self._line + self._text.count("\n", 0, self._pos if pos is None else pos)
        return ReadError(self.path, f"line {line}: {message}", line)

    def _more(self) -> bool:
        """Append the next block, dropping what was consumed."""
        block = next(self._blocks, None)
        if block is None:
            return False
        self._line += self._text.count("\n", 0, self._pos)
        self._text, self._pos = self._text[self._pos:] + block, 0
        return True

    def peek(self) -> str:
        """The next non-space character ('' at the end)."""
        while True:
            self._pos = _JSON_SPACE.match(self._text, self._pos).end()
            if self._pos < len(self._text):
                return self._text[self._pos]
            if not self._more():
                return ""

    def expect(self, chars: str) -> str:
        """Consume and return the next non-space character, which must be one of chars."""
        char = self.peek()
        if not char or char not in chars:
            found = repr(char) if char else "the end of the file"
            raise self.error(f"invalid JSON: expected {' or '.join(map(repr, chars))}, found {found}")
        self._pos += 1
        return char

    def expect_end(self) -> None:
        """Only whitespace may follow the document."""
        if self.peek():
            raise self.error("invalid JSON: more data after the document")

    def value(self) -> Any:
        """The next complete JSON value, reading more blocks until it is whole."""
        self.peek()
        while True:
            try:
                value, end = _JSON.raw_decode(self._text, self._pos)
            except json.JSONDecodeError as err:
                if len(self._text) - self._pos < _MAX_JSON_RECORD_CHARS and self._more():
                    continue  # the value may just be cut by the block end
                raise self.error(f"invalid JSON: {err.msg}", err.pos) from err
            if end < len(self._text) or not self._more():  # a number at the block end may go on
                self._pos = end
                return value

    def items(self) -> Iterator[Any]:
        """After '[': each element up to the closing ']'."""
        if self.peek() == "]":
            self._pos += 1
            return
        while True:
            yield self.value()
            if self.expect(",]") == "]":
                return

    def _members(self) -> Iterator[str]:
        """After '{': each key, positioned at its value, which the caller consumes."""
        if self.peek() == "}":
            self._pos += 1
            return
        while True:
            if self.peek() != '"':
                raise self.error("invalid JSON: expected a property name in double quotes")
            key = self.value()
            self.expect(":")
            yield key
            if self.expect(",}") == "}":
                return

    def object_records(self, path: list[str] | None, prefix: str = "") -> Iterator[Any]:
        """After '{': the items of the list at path, or of the only key whose value is a list of objects."""
        empty_lists = []
        for key in self._members():
            if path is None and self.peek() == "[":
                self._pos += 1
                items = self.items()
                first = next(items, _END)
                if not isinstance(first, dict):
                    empty_lists += [key] if first is _END else []
                    for _ in items:
                        pass
                    continue
                if self.found is not None:
                    raise self.error(f"keys {self.found!r} and {key!r} both hold lists of objects; set record_path")
                self.found = key
                yield first
                yield from items
            elif path and key == path[0]:
                self.found = prefix + key
                if len(path) == 1:
                    if self.peek() != "[":
                        raise self.error(f"record_path {self.found!r} does not lead to a list")
                    self._pos += 1
                    yield from self.items()
                else:
                    self.expect("{")
                    yield from self.object_records(path[1:], f"{prefix}{key}.")
            else:
                self.value()
        if path is None and self.found is None:
            if len(empty_lists) != 1:
                raise self.error("no top-level key holds a list of objects; set record_path")
            self.found = empty_lists[0]
        if path is not None and not prefix and self.found != ".".join(path):
            raise self.error(f"record_path {'.'.join(path)!r} not found")


class _Xml(_RecordReader):
    """XML records via defusedxml's iterparse, each record element cleared once flattened."""

    def __init__(self, head: _Head):
        self.path, self._encoding = head.path, head.hints.encoding
        if head.hints.record_path:
            self._match = tuple(head.hints.record_path.strip("/").split("/"))
            self._by_tag, why = len(self._match) == 1, f"record element {head.hints.record_path!r} from hints"
        else:
            (self._match, why), self._by_tag = self._detect_record(), False
        names, renamed, name_why = self._learn_columns()
        encoding, encoding_why = _xml_encoding(head)
        self.detection = Detection("xml", encoding, None, None, None, [], "/".join(self._match or ()) or None,
                                   names, renamed, [*head.evidence, encoding_why, why, *name_why])

    def _events(self) -> Iterator[tuple[str, Element]]:
        """iterparse start/end events; entities and syntax errors become ReadError with the line."""
        parser = SafeElementTree.DefusedXMLParser(target=TreeBuilder(), encoding=self._encoding)
        try:
            yield from SafeElementTree.iterparse(str(self.path), events=("start", "end"), parser=parser)
        except DefusedXmlException as err:
            line = parser.parser.CurrentLineNumber
            name, system = getattr(err, "name", None), getattr(err, "sysid", None)
            what = f"entity {name!r}" if name else "an external reference"
            what += f" with SYSTEM {system!r}" if system else ""
            raise ReadError(self.path, f"line {line}: XML entities are forbidden (declares {what})", line) from err
        except ParseError as err:
            line, column = err.position
            reason = re.sub(r": line \d+, column \d+$", "", str(err))
            raise ReadError(self.path, f"line {line}, column {column}: invalid XML: {reason}", line) from err

    def _detect_record(self) -> tuple[tuple[str, ...] | None, str]:
        """The shallowest element repeated under one parent in the first elements; none: the document is one record."""
        children: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        tags: list[str] = []
        root = ""
        with contextlib.closing(self._events()) as events:
            for event, element in itertools.islice(events, 2 * _XML_SCAN_ELEMENTS):
                if event == "end":
                    tags.pop()
                    continue
                if tags:
                    children[tuple(tags)][_local(element.tag)] += 1
                else:
                    root = _local(element.tag)
                tags.append(_local(element.tag))
        repeated = [(len(parent), -count, parent + (tag,)) for parent, counts in children.items()
                    for tag, count in counts.items() if count > 1]
        if repeated:
            record = min(repeated)[2]
            return record, f"<{record[-1]}> repeats under {'/'.join(record[:-1])}: one record each"
        if not children:
            return None, f"root <{root}> has no child elements: no records"
        return (root,), "no element repeats: the document is one record"

    def _is_record(self, tags: list[str]) -> bool:
        """Whether the element at the end of the open-tag path is a record."""
        return tags[-1] == self._match[-1] if self._by_tag else tuple(tags) == self._match

    def _records(self) -> Iterator[tuple[int, None, dict]]:
        """Each record element flattened, then removed from the tree."""
        if self._match is None:
            return
        tags: list[str] = []
        elements: list[Element] = []
        record_depth, ordinal = None, 0
        for event, element in self._events():
            if event == "start":
                tags.append(_local(element.tag))
                elements.append(element)
                if record_depth is None and self._is_record(tags):
                    record_depth = len(tags)
                continue
            if len(tags) == record_depth:
                ordinal, record_depth = ordinal + 1, None
                yield ordinal, None, _flatten_xml(element)
            if record_depth is None and len(elements) > 1:
                elements[-2].remove(element)  # done with it: keeps memory flat
            tags.pop()
            elements.pop()


def _xml_encoding(head: _Head) -> tuple[str, str]:
    """The encoding the XML parser uses: hints, a BOM, the XML declaration, else UTF-8."""
    if head.hints.encoding or head.raw.startswith(tuple(bom for bom, _ in _BOMS)):
        return head.encoding, f"the XML parser reads {head.encoding}"
    declared = _XML_DECLARED_ENCODING.search(head.text[:1024])
    if declared:
        return declared.group(1), f"the XML declaration says {declared.group(1)}"
    return "utf-8", "no BOM or declared encoding: the XML parser reads utf-8"


def _local(tag: str) -> str:
    """A tag or attribute name without its namespace."""
    return tag.rpartition("}")[2]


def _flatten_xml(record: Element) -> dict[tuple[str, ...], str]:
    """(path below the record, text) for leaves and attributes; a repeated path holds a JSON list."""
    texts: dict[tuple[str, ...], list[str]] = defaultdict(list)

    def visit(element: Element, path: tuple[str, ...]) -> None:
        for name, value in element.attrib.items():
            texts[(*path, "@" + _local(name))].append(value)
        for child in element:
            visit(child, (*path, _local(child.tag)))
        if not len(element):
            texts[path or (_local(element.tag),)].append(element.text or "")

    visit(record, ())
    return {key: values[0] if len(values) == 1 else _json_dump(values) for key, values in texts.items()}


# ---------------------------------------------------------------- Parquet


class _Parquet:
    """Parquet row by row group batches, every column cast to text."""

    def __init__(self, head: _Head):
        self.path = head.path
        try:
            with pq.ParquetFile(self.path) as file:
                schema, rows, groups = file.schema_arrow, file.metadata.num_rows, file.num_row_groups
        except (pa.ArrowException, OSError) as err:
            raise ReadError(self.path, f"not a readable Parquet file: {err}") from err
        names, renamed, name_why = _column_names(schema.names)
        evidence = [*head.evidence, f"{rows} rows in {groups} row groups", *name_why]
        self.detection = Detection("parquet", None, None, None, None, [], None, names, renamed, evidence)

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """Batches of at most chunk_rows rows, numbered from 1."""
        first = 1
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(batch_size=chunk_rows):
                arrays = [_arrow_text(column) for column in batch.columns]
                yield _lineage_table(self.detection.columns, arrays, np.arange(first, first + batch.num_rows))
                first += batch.num_rows


def _arrow_text(array: pa.Array) -> pa.Array:
    """A column as text (see the module docstring)."""
    kind = array.type
    if pa.types.is_timestamp(kind):
        return pc.replace_substring(array.cast(pa.string()), " ", "T", max_replacements=1)
    if pa.types.is_duration(kind):
        return pa.array([_cell_text(value) for value in array.to_pylist()], pa.string())
    if pa.types.is_nested(kind):
        dump = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), default=_cell_text)
        return pa.array([None if value is None else dump(value) for value in array.to_pylist()], pa.string())
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        try:
            return array.cast(pa.string())
        except pa.ArrowInvalid:
            return pa.array([None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string())
    return array.cast(pa.string())


_READERS = {"csv": _Delimited, "tsv": _Delimited, "excel": _Excel, "json": _Json, "xml": _Xml, "parquet": _Parquet}
