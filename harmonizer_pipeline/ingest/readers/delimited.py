"""Delimited text (csv, tsv, ';' or '|'): detection of delimiter, quote character and header; pyarrow parsing."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from harmonizer_pipeline.arrow_scan import may_contain_byte

from .base import Detection, ReadError
from .columns import header_columns, lineage_table
from .server_csv import ServerCsv
from .text import Head, decoded_blocks, physical_lines, text_encoding

# pyarrow fails on a record longer than two blocks; big blocks make its memory grow with the file, so a file
# is read with small ones and read again with large ones (skipping the rows done) only when a record needs it.
_ARROW_BLOCK_SIZES = (1 << 20, 64 << 20)
_SAMPLE_RECORDS = 100
_DELIMITERS = (",", ";", "\t", "|")

# The csv module (used for sniffing and to pinpoint errors) caps fields at 128 KiB; pyarrow does not.
csv.field_size_limit(sys.maxsize)


class _Delimited:
    """Delimited text: pyarrow parses it fast; the csv module pinpoints the errors pyarrow reports without a line."""

    def __init__(self, head: Head):
        hints = head.hints
        self.path, self.encoding = head.path, text_encoding(head)
        self.delimiter, delimiter_why = _delimiter(head, head.hints.quotechar or '"')
        self.quotechar, quote_why = _quotechar(head, self.delimiter)
        records = _sample_records(head.text, head.complete, self.delimiter, self.quotechar)
        if not records:
            raise ReadError(self.path, "no data: the file holds only blank lines")
        self.width = len(records[0])
        self.header, names, renamed, header_why = header_columns(records[0], hints.header, "the first record")
        self.detection = Detection(
            "tsv" if self.delimiter == "\t" else "csv",
            self.encoding,
            self.delimiter,
            self.quotechar,
            self.header,
            [],
            None,
            names,
            renamed,
            [*head.evidence, delimiter_why, quote_why, *header_why],
        )

    def server_csv(self) -> ServerCsv | None:
        if not ServerCsv.supports(self.encoding, self.delimiter, self.quotechar):
            return None
        return ServerCsv(self.path, self.encoding, self.delimiter, self.quotechar, self.header, self.detection.columns)

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
                    yield lineage_table(self.detection.columns, rows.columns, starts[keep])
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
            source,  # pyright: ignore[reportArgumentType]  # pyarrow-stubs want IO[Any]; pyarrow takes any object with read()
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
            parse_options=pacsv.ParseOptions(delimiter=self.delimiter, quote_char=self.quotechar, newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    def _raise_exact_error(self) -> None:
        """Re-read with the csv module; raise ReadError at the first record that is ragged or never closes its quote."""
        lines = physical_lines(decoded_blocks(self.path, self.encoding))
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
            self._lines = physical_lines(decoded_blocks(self._path, self._encoding))
        while self._number < number:
            self._line, self._number = next(self._lines), self._number + 1
        return not self._line.rstrip("\r\n")


def _record_lines(batch: pa.RecordBatch, first_line: int) -> tuple[np.ndarray, int]:
    """Start line of each record (1 + the line breaks inside its values after the previous one) and the next line."""
    spans = np.ones(batch.num_rows, np.int64)
    # Every column is read as pa.string() (_arrow_reader); RecordBatch.columns is typed as plain
    # Arrays, which pyarrow-stubs' string kernels do not take.
    for column in cast(list[pa.StringArray], batch.columns):
        # Most columns hold no line break at all: a scan of their bytes skips the per-value count.
        if may_contain_byte(column, ord("\n")):
            spans += pc.count_substring(column, "\n").to_numpy()
        if may_contain_byte(column, ord("\r")) and pc.any(pc.match_substring(column, "\r")).as_py():
            spans += pc.subtract(pc.count_substring(column, "\r"), pc.count_substring(column, "\r\n")).to_numpy()
    ends = first_line + np.cumsum(spans)
    return ends - spans, int(ends[-1]) if len(ends) else first_line


def _blank_lines(batch: pa.RecordBatch, starts: np.ndarray, lines: _LineReader) -> np.ndarray:
    """Rows that pyarrow made from blank lines: all values '' and the raw line empty (not ',,' or '\"\"')."""
    empty = None
    for column in batch.columns:
        equal = pc.equal(column, pa.scalar(""))
        empty = equal if empty is None else pc.and_(empty, equal)
        if not pc.any(empty).as_py():
            return np.zeros(batch.num_rows, bool)
    assert empty is not None  # the reader makes at least one column
    candidates = empty.to_numpy(zero_copy_only=False)
    return np.array([bool(is_empty) and lines.is_blank(int(line)) for is_empty, line in zip(candidates, starts)], bool)


def _sample_records(text: str, complete: bool, delimiter: str, quotechar: str) -> list[list[str]]:
    """The first non-blank records of the head (its last record dropped when the head may cut it)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar)
    records = list(itertools.islice(reader, _SAMPLE_RECORDS + 1))
    if len(records) <= _SAMPLE_RECORDS and not complete:
        records = records[:-1]
    return [record for record in records[:_SAMPLE_RECORDS] if record]


def _split_score(head: Head, delimiter: str, quotechar: str) -> tuple[bool, int, int, int]:
    """(splits at all, sample records with the first record's field count, that count, sample records)."""
    widths = [len(record) for record in _sample_records(head.text, head.complete, delimiter, quotechar)] or [0]
    return widths[0] > 1, widths.count(widths[0]), widths[0], len(widths)


def _delimiter(head: Head, quotechar: str) -> tuple[str, str]:
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


def _quotechar(head: Head, delimiter: str) -> tuple[str, str]:
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
