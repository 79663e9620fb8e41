"""Delimited text handed to PostgreSQL to parse itself (COPY ... FORMAT csv), in segments for parallel streams.

Parsing on the server skips the client's parse and re-encode; the raw layer can use it only where the
server's parse provably equals the exact reader's (see readers/__init__). PostgreSQL's CSV parser opens
a quoted section at any quote, the exact reader only at the start of a field; the exact reader numbers
records by the physical line they start on and skips blank lines. What goes out is the file's lines,
each prefixed with its line number as a first field (numbering here costs less than a sequence on the
server), blank lines left out. The two parses agree on a segment when:

- every quote opens at the start of a field or closes at its end (an opening quote follows a delimiter,
  a line break, the segment's start or a closing quote — `""` inside a quoted value —; a closing quote
  precedes a delimiter, a line break, the end or an opening quote), and the segment holds an even number
  of quotes, so it starts and ends outside a quoted value;
- lines end in \n or \r\n only (a lone \r ends a line for the exact reader, not for the numbering);
- the rows COPY reports equal the lines sent (less the header): every line is one record, so no line
  was numbered inside a quoted value and no blank line left out belonged to one.

The first two are checked here as the bytes go out; the row count is the caller's to compare with
`CsvSegment.lines`. A segment that fails a check stops early with `refusal` saying why, and the caller
falls back to the exact reader, which also names the line of any real error.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from harmonizer_pipeline.arrow_scan import buffer_view, join_element_wise, numpy_buffer

_BLOCK_BYTES = 4 << 20
_MIN_SEGMENT_BYTES = 32 << 20  # smaller files go in one stream: a connection costs more than it saves
_SINGLE_BYTE = ("cp1252", "iso8859-1", "ascii")  # codecs names; transcoded by block, line breaks stay 0A/0D


@dataclass
class CsvSegment:
    """A byte range of the file, starting at a line start and (but for the last) ending after a line break."""

    text: ServerCsv
    index: int
    start: int
    end: int
    header: bool  # the first segment of a file with a header: COPY skips its first line
    refusal: str | None = None  # why the server's parse may differ, once blocks() stopped early
    lines: int = 0  # lines sent (header included, blank ones not), once blocks() finished

    def blocks(self, stop: threading.Event | None = None) -> Iterator[memoryview]:
        """The segment's non-blank lines as UTF-8, each after its line number and a delimiter; stops
        early, with `refusal` set, at the first sign of a different parse."""
        scan = _QuoteScan(self.text.delimiter, self.text.quotechar)
        numbering = _LineNumbering(self.text.delimiter, self.text.line_at(self.index))
        carry = b""
        for data in self.text.read(self.start, self.end, bom=self.index == 0 and self.text.utf8_encoded):
            if stop is not None and stop.is_set():
                return
            try:
                data = self.text.utf8(data)
            except UnicodeDecodeError as err:
                self.refusal = f"a byte {self.text.encoding} lacks ({err.reason})"
                return
            if not scan.feed(data):
                self.refusal = scan.refusal
                return
            cut = data.rfind(b"\n") + 1
            whole, carry = (carry + data[:cut], data[cut:]) if cut else (b"", carry + data)
            if whole:
                if b"\r" in whole and whole.count(b"\r") != whole.count(b"\r\n"):
                    self.refusal = "a line ends in a lone \\r"
                    return
                yield numbering.number(whole)
        if not scan.finish():
            self.refusal = scan.refusal
            return
        if carry:  # the file's last line, without a line break
            if b"\r" in carry:
                self.refusal = "a line ends in a lone \\r"
                return
            yield numbering.number(carry + b"\n")
        self.lines = numbering.sent


class ServerCsv:
    """A delimited file whose dialect PostgreSQL's COPY can take; splits it into segments for parallel COPY."""

    def __init__(self, path: Path, encoding: str, delimiter: str, quotechar: str, header: bool, columns: list[str]):
        self.path, self.encoding, self.delimiter, self.quotechar = path, encoding, delimiter, quotechar
        self.header, self.columns = header, columns
        self._starts: list[int] = []
        self._line_at: dict[int, int] = {0: 1}
        self._lock = threading.Lock()
        self.min_segment_bytes = _MIN_SEGMENT_BYTES

    @property
    def utf8_encoded(self) -> bool:
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")

    @staticmethod
    def supports(encoding: str, delimiter: str, quotechar: str) -> bool:
        """Whether COPY can parse this dialect the way the exact reader does (else: the exact reader alone)."""
        name = codecs.lookup(encoding).name
        ascii_marks = all(len(c) == 1 and c.isascii() and c not in "\r\n0123456789" for c in (delimiter, quotechar))
        return ascii_marks and delimiter != quotechar and (name in ("utf-8", "utf-8-sig") or name in _SINGLE_BYTE)

    def segments(self, count: int) -> list[CsvSegment]:
        """Up to `count` segments of at least `min_segment_bytes`, each cut just after a line feed."""
        size = self.path.stat().st_size
        count = max(1, min(count, size // self.min_segment_bytes))
        starts = [0]
        with self.path.open("rb") as file:
            for n in range(1, count):
                file.seek(max(size * n // count, starts[-1]))
                file.readline()  # to just after the next \n (a \r\n file cuts after its \n)
                if file.tell() >= size:
                    break
                starts.append(file.tell())
        self._starts = starts
        bounds = [*starts, size]
        return [CsvSegment(self, i, bounds[i], bounds[i + 1], self.header and i == 0) for i in range(len(starts))]

    def line_at(self, index: int) -> int:
        """The physical line segment `index` starts on: 1 + the line breaks before it (counted once, on demand)."""
        with self._lock:
            for i in range(1, index + 1):
                if i not in self._line_at:
                    # Only \n counts: a lone \r (another line end to the exact reader) is refused anyway.
                    breaks = sum(data.count(b"\n") for data in self.read(self._starts[i - 1], self._starts[i], bom=False))
                    self._line_at[i] = self._line_at[i - 1] + breaks
            return self._line_at[index]

    def read(self, start: int, end: int, bom: bool) -> Iterator[bytes]:
        """Bytes [start, end) as they are in the file, a leading UTF-8 BOM dropped when `bom`."""
        with self.path.open("rb") as file:
            file.seek(start)
            left = end - start
            while left > 0 and (data := file.read(min(_BLOCK_BYTES, left))):
                if bom and left == end - start and data.startswith(codecs.BOM_UTF8):
                    data = data[len(codecs.BOM_UTF8) :]
                    left -= len(codecs.BOM_UTF8)
                left -= len(data)
                yield data

    def utf8(self, data: bytes) -> bytes:
        """A block as UTF-8 (UnicodeDecodeError for a byte the encoding lacks)."""
        name = codecs.lookup(self.encoding).name
        return data.decode(name).encode("utf-8") if name in _SINGLE_BYTE else data


class _LineNumbering:
    """Prefixes lines with their physical line numbers (zero-padded, then the delimiter) and drops blank
    ones, block by block, in Arrow's and numpy's vectorised kernels."""

    def __init__(self, delimiter: str, first_line: int):
        self._delimiter, self._next = ord(delimiter), first_line
        self.sent = 0  # lines sent

    def number(self, whole: bytes) -> memoryview:
        """Whole lines (`whole` ends with \\n), numbered; blank ones left out."""
        array = np.frombuffer(whole, np.uint8)
        ends = np.flatnonzero(array == ord("\n")) + 1
        starts = np.concatenate(([0], ends[:-1]))
        numbers = np.arange(self._next, self._next + len(ends))
        self._next += len(ends)
        lengths = ends - starts
        keep = (lengths > 2) | ((lengths == 2) & (array[starts] != ord("\r")))
        lines = pa.BinaryArray.from_buffers(pa.binary(), len(ends), [None, numpy_buffer(_offsets(ends)), pa.py_buffer(whole)])
        if not keep.all():
            lines, numbers = lines.filter(pa.array(keep)), numbers[keep]
        self.sent += len(numbers)
        width = len(str(int(numbers[-1]))) if len(numbers) else 1
        prefixes = np.empty((len(numbers), width + 1), np.uint8)
        prefixes[:, :width] = numbers[:, None] // 10 ** np.arange(width - 1, -1, -1) % 10 + ord("0")
        prefixes[:, width] = self._delimiter
        prefix_array = pa.BinaryArray.from_buffers(
            pa.binary(), len(numbers), [None, numpy_buffer(np.arange(len(numbers) + 1, dtype=np.int32) * (width + 1)), numpy_buffer(prefixes)]
        )
        joined = join_element_wise(prefix_array, lines, separator=b"")
        offsets, data = joined.buffers()[1:3]
        size = int(buffer_view(offsets, np.int32, 1, 4 * len(joined))[0]) if offsets is not None and len(joined) else 0
        return memoryview(data)[:size] if data is not None and size else memoryview(b"")


def _offsets(ends: np.ndarray) -> np.ndarray:
    return np.concatenate(([0], ends)).astype(np.int32)


@dataclass
class _QuoteScan:
    """Checks, block by block, that every quote opens or closes a whole field (see the module docstring)."""

    delimiter: str
    quotechar: str
    refusal: str | None = None
    quotes: int = 0  # quotes seen so far: an odd count means inside a quoted value
    _previous: int = ord("\n")  # the byte before the next block (the segment starts at a line start)
    _close_pending: bool = False  # the last block ended with a closing quote: the next byte must fit it
    _around: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._quote = ord(self.quotechar)
        self._around = np.zeros(256, bool)  # bytes allowed before an opening and after a closing quote
        self._around[[ord(self.delimiter), ord("\n"), ord("\r"), self._quote]] = True

    def feed(self, data: bytes) -> bool:
        if not data:
            return True
        if self._close_pending and not self._around[data[0]]:
            return self._refuse(f"a closing {self.quotechar} is followed by {chr(data[0])!r}")
        self._close_pending = False
        if data.find(self.quotechar.encode()) < 0:
            self._previous = data[-1]
            return True
        array = np.frombuffer(data, np.uint8)
        at = np.flatnonzero(array == self._quote)
        opening = (self.quotes + np.arange(len(at))) % 2 == 0
        before = array[np.maximum(at - 1, 0)]
        before[at == 0] = self._previous
        bad_open = opening & ~self._around[before]
        after_at = np.minimum(at + 1, len(array) - 1)
        bad_close = ~opening & (at + 1 < len(array)) & ~self._around[array[after_at]]
        self.quotes += len(at)
        self._previous = data[-1]
        self._close_pending = bool(len(at)) and at[-1] == len(array) - 1 and not opening[-1]
        if bad_open.any():
            return self._refuse(f"a {self.quotechar} opens a quoted section inside a field")
        if bad_close.any():
            return self._refuse(f"a closing {self.quotechar} is followed by more of its field")
        return True

    def finish(self) -> bool:
        if self.quotes % 2:
            return self._refuse(f"an odd number of {self.quotechar} characters: a quoted value is never closed")
        return True

    def _refuse(self, why: str) -> bool:
        self.refusal = why
        return False
