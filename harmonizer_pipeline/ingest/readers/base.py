"""What every reader shares: the one error it raises, the hints it takes and the Detection it reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal


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
