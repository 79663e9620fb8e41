"""JSON: an array of objects, an object holding the records, or NDJSON, streamed and flattened to text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Detection, ReadError
from .columns import RecordReader
from .text import Head, decoded_blocks, physical_lines, text_encoding

_MAX_JSON_RECORD_CHARS = 64 << 20
_JSON_SPACE = re.compile(r"[ \t\n\r]*")


class _Literal(str):
    """A JSON number, kept as the text it was written as."""


_JSON = json.JSONDecoder(parse_int=_Literal, parse_float=_Literal, parse_constant=_Literal)
_END = object()


class _Json(RecordReader):
    """A JSON array of objects, an object holding the list of records, or NDJSON."""

    def __init__(self, head: Head):
        self.path, self.encoding, self._record_path = head.path, text_encoding(head), head.hints.record_path
        self._ndjson, why = _is_ndjson(head)
        self._found: str | None = None  # the records' key, set by _document_records when it ends
        names, renamed, name_why = self._learn_columns()
        if self._found is not None:
            why = f"key {self._found!r} holds the records"
        self.detection = Detection(
            "ndjson" if self._ndjson else "json", self.encoding, None, None, None, [], self._found, names, renamed, [*head.evidence, why, *name_why]
        )

    def _records(self) -> Iterator[tuple[int, None, dict]]:
        """Flattened records numbered by index (NDJSON: by line)."""
        for number, record in self._ndjson_records() if self._ndjson else self._document_records():
            yield number, None, _flatten_json(record)

    def _ndjson_records(self) -> Iterator[tuple[int, dict]]:
        """(line, object) for each non-blank line."""
        for number, line in enumerate(physical_lines(decoded_blocks(self.path, self.encoding)), 1):
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
        scanner = _JsonScanner(self.path, decoded_blocks(self.path, self.encoding))
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


def _is_ndjson(head: Head) -> tuple[bool, str]:
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


def _flatten_json(record: dict, prefix: tuple[str, ...] = (), flat: dict | None = None) -> dict[tuple[str, ...], str | None]:
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
    return value if isinstance(value, str) else json_dump(value)


def json_dump(value: Any) -> str:
    """Compact JSON text that writes numbers as they were written."""
    if isinstance(value, _Literal):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(json_dump, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json_dump(key)}:{json_dump(item)}" for key, item in value.items()) + "}"
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
        self._text, self._pos = self._text[self._pos :] + block, 0
        return True

    def peek(self) -> str:
        """The next non-space character ('' at the end)."""
        while True:
            space = _JSON_SPACE.match(self._text, self._pos)
            assert space is not None  # the pattern matches the empty string too
            self._pos = space.end()
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
