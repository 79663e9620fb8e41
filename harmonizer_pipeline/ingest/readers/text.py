"""The file's head, its format and encoding, and strict decoding of the whole file into physical lines."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .base import ReadError, ReadHints
from .encoding import BINARY, choose_encoding

_HEAD_BYTES = 1 << 20
_BLOCK_BYTES = 1 << 20
_SIGNATURES = (
    (b"PAR1", "parquet", "magic bytes PAR1"),
    (b"PK\x03\x04", "excel", "zip signature 50 4B 03 04 (xlsx/ods)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "excel", "OLE2 signature D0 CF 11 E0 (xls)"),
)
_EXTENSIONS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".ods": "excel",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
    ".xml": "xml",
    ".parquet": "parquet",
}
_JSON_START = re.compile(r"\s*(\[\s*[\[{\"\d\-tfn\]]|\{\s*[\"}])")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LINE_END = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


@dataclass
class Head:
    """The file's first bytes and what they tell: format, encoding (text formats), decoded text, evidence."""

    path: Path
    hints: ReadHints
    raw: bytes
    complete: bool  # raw is the whole file
    format: str = ""
    encoding: str | None = None
    text: str = ""
    evidence: list[str] = field(default_factory=list)


def text_encoding(head: Head) -> str:
    """The encoding read_head chose for a text format (csv, tsv, json, xml)."""
    assert head.encoding is not None  # read_head decodes the head of every text format
    return head.encoding


def read_head(path: Path, hints: ReadHints) -> Head:
    """Read the head and settle the format: hints, then signature or text markers; the extension is only reported."""
    try:
        with path.open("rb") as file:
            raw = file.read(_HEAD_BYTES + 1)
    except OSError as err:
        raise ReadError(path, f"cannot open: {err.strerror or err}") from err
    if not raw:
        raise ReadError(path, "empty file (0 bytes)")
    head = Head(path, hints, raw[:_HEAD_BYTES], len(raw) <= _HEAD_BYTES)
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


def _decode_head(head: Head) -> None:
    """Choose the encoding, decode the head strictly and refuse binary content."""
    head.encoding, why = choose_encoding(head.path, head.raw, head.complete, head.hints.encoding)
    decoder = codecs.getincrementaldecoder(head.encoding)()
    head.text = _decode(head.path, head.encoding, decoder, head.raw, head.complete, 1)
    sample = head.text[:65536]
    if "\x00" in sample or len(_CONTROL.findall(sample)) > len(sample) // 100:
        raise ReadError(head.path, BINARY)
    head.evidence.append(why)


def _decode(path: Path, encoding: str, decoder: codecs.IncrementalDecoder, data: bytes, final: bool, line: int) -> str:
    """Decode strictly; undecodable bytes raise ReadError naming their line (`line` is where `data` starts)."""
    try:
        return decoder.decode(data, final)
    except UnicodeDecodeError as err:
        at = line + _count_breaks(err.object[: err.start].decode(err.encoding, "replace"))
        cause = f"line {at}: byte 0x{err.object[err.start : err.start + 1].hex()} is not valid {encoding}"
        raise ReadError(path, cause, at) from err


def _count_breaks(text: str) -> int:
    """Line breaks in text (\\n, \\r\\n and \\r each count once)."""
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def decoded_blocks(path: Path, encoding: str) -> Iterator[str]:
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


def physical_lines(blocks: Iterable[str]) -> Iterator[str]:
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
