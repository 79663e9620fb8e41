"""XML records via defusedxml: the record element hinted or detected, each record flattened to text."""

from __future__ import annotations

import contextlib
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Generator, Iterator
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

from defusedxml import ElementTree as SafeElementTree
from defusedxml.common import DefusedXmlException

from .base import Detection, ReadError
from .columns import RecordReader
from .encoding import BOMS
from .json_records import json_dump
from .text import Head, text_encoding

_XML_SCAN_ELEMENTS = 20_000
_XML_DECLARED_ENCODING = re.compile(r"<\?xml[^>]*\bencoding\s*=\s*[\"']([\w.:-]+)")


class _Xml(RecordReader):
    """XML records via defusedxml's iterparse, each record element cleared once flattened."""

    def __init__(self, head: Head):
        self.path, self._encoding = head.path, head.hints.encoding
        if head.hints.record_path:
            self._match = tuple(head.hints.record_path.strip("/").split("/"))
            self._by_tag, why = len(self._match) == 1, f"record element {head.hints.record_path!r} from hints"
        else:
            (self._match, why), self._by_tag = self._detect_record(), False
        names, renamed, name_why = self._learn_columns()
        encoding, encoding_why = _xml_encoding(head)
        self.detection = Detection(
            "xml", encoding, None, None, None, [], "/".join(self._match or ()) or None, names, renamed, [*head.evidence, encoding_why, why, *name_why]
        )

    def _events(self) -> Generator[tuple[str, Element], None, None]:
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
        repeated = [(len(parent), -count, parent + (tag,)) for parent, counts in children.items() for tag, count in counts.items() if count > 1]
        if repeated:
            record = min(repeated)[2]
            return record, f"<{record[-1]}> repeats under {'/'.join(record[:-1])}: one record each"
        if not children:
            return None, f"root <{root}> has no child elements: no records"
        return (root,), "no element repeats: the document is one record"

    def _is_record(self, tags: list[str], match: tuple[str, ...]) -> bool:
        """Whether the element at the end of the open-tag path is a record (`match`: the record's path)."""
        return tags[-1] == match[-1] if self._by_tag else tuple(tags) == match

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
                if record_depth is None and self._is_record(tags, self._match):
                    record_depth = len(tags)
                continue
            if len(tags) == record_depth:
                ordinal, record_depth = ordinal + 1, None
                yield ordinal, None, _flatten_xml(element)
            if record_depth is None and len(elements) > 1:
                elements[-2].remove(element)  # done with it: keeps memory flat
            tags.pop()
            elements.pop()


def _xml_encoding(head: Head) -> tuple[str, str]:
    """The encoding the XML parser uses: hints, a BOM, the XML declaration, else UTF-8."""
    if head.hints.encoding or head.raw.startswith(tuple(bom for bom, _ in BOMS)):
        return text_encoding(head), f"the XML parser reads {head.encoding}"
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
    return {key: values[0] if len(values) == 1 else json_dump(values) for key, values in texts.items()}
