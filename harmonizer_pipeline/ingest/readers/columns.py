"""Column names, the chunk schema, lineage columns, rechunking, and record tables with every learned column."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .base import Detection

_LINEAGE = ("_row_number", "_sheet")
_TEXT = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' "str"
_DATA_LIKE = re.compile(r"[-+]?\d[\d.,' ]*(?:[eE][-+]?\d+)?%?|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?")


def column_names(headers: Sequence[str]) -> tuple[list[str], dict[str, str], list[str]]:
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


def chunk_schema(columns: Sequence[str], with_sheet: bool) -> pa.Schema:
    """Data columns as strings, then `_sheet` (when several sheets) and `_row_number`."""
    lineage = [("_sheet", pa.string())] if with_sheet else []
    return pa.schema([*((name, pa.string()) for name in columns), *lineage, ("_row_number", pa.int64())])


def lineage_table(names: Sequence[str], arrays: Sequence[Any], row_numbers: Any, sheets: list[str] | None = None) -> pa.Table:
    """A table of text columns plus `_sheet` (when given) and `_row_number`."""
    columns = dict(zip(names, arrays))
    if sheets is not None:
        columns["_sheet"] = pa.array(sheets, pa.string())
    columns["_row_number"] = pa.array(row_numbers, pa.int64())
    return pa.table(columns)


def rechunk(tables: Iterable[pa.Table], schema: pa.Schema, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Regroup tables of any size into frames of exactly chunk_rows rows (the last one shorter)."""
    pending, size, emitted = [], 0, False
    for table in tables:
        pending.append(table)
        size += table.num_rows
        while size >= chunk_rows:
            whole = pa.concat_tables(pending)
            yield frame(whole.slice(0, chunk_rows))
            pending, size, emitted = [whole.slice(chunk_rows)], size - chunk_rows, True
    if size or not emitted:
        yield frame(pa.concat_tables(pending) if pending else schema.empty_table())


def frame(table: pa.Table) -> pd.DataFrame:
    """Arrow to pandas with text as pandas' "str" dtype."""
    return table.to_pandas(types_mapper={pa.string(): _TEXT, pa.large_string(): _TEXT}.get)


def record_tables(
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
        yield lineage_table(names, arrays, numbers, sheets if with_sheet else None)


def header_columns(first: Sequence[str | None], hint: bool | None, where: str) -> tuple[bool, list[str], dict[str, str], list[str]]:
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
    names, renamed, evidence = column_names([value or "" for value in first])
    return True, names, renamed, [why, *evidence]


class RecordReader:
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
        return column_names(["__".join(key) for key in self._keys])

    def tables(self, chunk_rows: int) -> Iterator[pa.Table]:
        """The records again, as tables with every learned column."""
        return record_tables(self._records(), self._keys, self.detection.columns, False, chunk_rows)
