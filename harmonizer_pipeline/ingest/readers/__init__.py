"""Readers: a landed file becomes bounded DataFrame chunks of text exactly as written, plus lineage.

open_table() detects the format (hints, then content — magic bytes, then the first characters —,
then the extension, which only breaks ties and is reported when the content contradicts it), the
encoding, delimiter, quote character and header from the file's head, and returns a TableFile whose
chunks() yields DataFrames of at most chunk_rows rows. Data columns have dtype "str" and hold the
file's text, never parsed: leading zeros, '1.234,50', 'N/A' and '' survive; NULL appears only where
the file holds no value at all. `_row_number` (int64) says where each row came from.

Text (delimited, JSON, XML): encoding from hints, a BOM (utf-8-sig, utf-16, utf-32), UTF-16/UTF-32
without one by its NUL bytes, a strict UTF-8 decode of the first MiB, else detection (encoding.py),
which fails the file rather than guess when it is unsure. Delimited text (csv, tsv, ';' or '|'):
pyarrow parses every field as a string. `_row_number` is the physical line where the record starts (the header is line 1; lines end
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

Delimited text may instead go to PostgreSQL as it is, for COPY to parse (TableFile.server_csv(),
see server_csv.py): only where that parse provably gives the same rows, which is checked while the
bytes go out and by the row count COPY reports.

Bad input raises only ReadError: one line, '<file name>: <cause>', naming the line or record.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from xml.etree.ElementTree import ParseError

import pandas as pd
import pyarrow as pa
import python_calamine

from .base import Detection, ReadError, ReadHints
from .columns import chunk_schema, frame, rechunk
from .delimited import _Delimited
from .excel import _Excel
from .json_records import _Json
from .parquet import _Parquet
from .server_csv import ServerCsv
from .text import read_head
from .xml_records import _Xml


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
        with _as_read_error(self._reader.path):
            yield from rechunk(self._reader.tables(self._chunk_rows), self._schema(), self._chunk_rows)

    def empty_frame(self) -> pd.DataFrame:
        """No rows, the columns and dtypes of every chunk."""
        return frame(self._schema().empty_table())

    def server_csv(self) -> ServerCsv | None:
        """The file as text PostgreSQL's COPY can parse into the same rows, where its dialect allows."""
        return self._reader.server_csv() if isinstance(self._reader, _Delimited) else None

    def _schema(self) -> pa.Schema:
        return chunk_schema(self.detection.columns, len(self.detection.sheets) > 1)


def open_table(path: Path, hints: ReadHints = ReadHints(), chunk_rows: int = 100_000) -> TableFile:
    """Detect format, encoding, delimiter, header etc. from the file's head; ReadError if it cannot be read."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    path = Path(path)
    with _as_read_error(path):
        head = read_head(path, hints)
        reader = _READERS[head.format](head)
    return TableFile(reader, chunk_rows)


@contextlib.contextmanager
def _as_read_error(path: Path) -> Iterator[None]:
    """Turn a library's exception about the file into a one-line ReadError naming it."""
    try:
        yield
    except ReadError:
        raise
    except (OSError, ValueError, csv.Error, ParseError, pa.ArrowException, python_calamine.CalamineError) as err:
        raise ReadError(path, f"{type(err).__name__}: {err}") from err


_READERS = {"csv": _Delimited, "tsv": _Delimited, "excel": _Excel, "json": _Json, "xml": _Xml, "parquet": _Parquet}
