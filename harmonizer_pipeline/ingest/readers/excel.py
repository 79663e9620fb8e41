"""Excel workbooks (.xlsx, .xlsm, .xls, .ods) via python-calamine, and cell values as text."""

from __future__ import annotations

import contextlib
import datetime
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import python_calamine

from .base import Detection, ReadError
from .columns import header_columns, record_tables
from .text import Head


class _Excel:
    """Workbooks via python-calamine: each sheet's first non-empty row is its header; blank rows skipped."""

    def __init__(self, head: Head):
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
                header, names, sheet_renamed, why = header_columns(texts, head.hints.header, f"row {number}")
                self._sheets[name] = (header, names)
                renamed |= sheet_renamed
                evidence += [f"sheet {name!r}: {line}" for line in why]
        if not self._sheets:
            raise ReadError(self.path, f"sheet {sheet!r} is empty" if sheet is not None else "every sheet is empty")
        columns = list(dict.fromkeys(itertools.chain.from_iterable(names for _, names in self._sheets.values())))
        self.detection = Detection("excel", None, None, None, all(h for h, _ in self._sheets.values()), list(self._sheets), None, columns, renamed, evidence)

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
        return record_tables(records(), columns, columns, len(self._sheets) > 1, chunk_rows)


def _sheet_rows(path: Path, workbook: python_calamine.CalamineWorkbook, sheet: str) -> Iterator[tuple[int, list[str | None]]]:
    """(sheet row number, cell texts) of the rows that hold a value."""
    try:
        for number, cells in enumerate(workbook.get_sheet_by_name(sheet).iter_rows(), 1):
            texts = [cell_text(cell) for cell in cells]
            if any(text is not None for text in texts):
                yield number, texts
    except python_calamine.CalamineError as err:
        raise ReadError(path, f"sheet {sheet!r} cannot be read: {err}") from err


def cell_text(value: Any) -> str | None:
    """A cell (or any Python scalar) as text; the mapping is in the package docstring."""
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
