"""Readers that turn a landed file into text columns exactly as written, plus lineage."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

LINEAGE_COLUMNS = ("_source_file", "_row_number")


class ReadError(ValueError):
    """A file cannot be read; the message names the file and the cause."""


def read_delimited_text(path: Path, delimiter: str = ",", encoding: str = "utf-8") -> pd.DataFrame:
    """Every field as text (no NA guessing: '' and 'N/A' stay as written) plus `_source_file`
    and `_row_number`, the 1-based line number of the row in the file (the header is line 1)."""
    try:
        frame = pd.read_csv(
            path, sep=delimiter, encoding=encoding, dtype=str, keep_default_na=False, na_filter=False
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReadError(f"{path.name}: {exc}") from exc
    frame.insert(len(frame.columns), "_source_file", path.name)
    frame.insert(len(frame.columns), "_row_number", pd.RangeIndex(2, len(frame) + 2, dtype="int64"))
    return frame
