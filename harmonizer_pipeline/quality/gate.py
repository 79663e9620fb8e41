"""The quality gate of one partition (one landed file): validate it chunk by chunk, keep every
rejected row, and decide whether its rows may flow downstream (no dagster).

Uniqueness is a property of the whole file, not of a chunk, so it is checked in a first pass
over the unique columns only (`uniqueness_rejections`), and the chunks are then validated
with the schema's uniqueness switched off. Semantics of that pass, as pandera's `unique`
options say, with one addition: values are compared after the column's coercion (so `007` and
`7` are the same integer), and NULL is not equal to NULL — a row whose unique column(s) hold
a NULL is never a duplicate (SQL's UNIQUE), because a missing value identifies nothing; a
`nullable: false` column rejects those rows anyway.
Checks: `field_uniqueness` (a column's `unique: true`) and `multiple_fields_uniqueness` (the
schema's `unique: [a, b]`, one record per column), honouring `report_duplicates`
(`all`, `exclude_first`, `exclude_last`).

The gate's verdict (`verdict`): ERROR (blocks downstream) when the file's structure is wrong
(missing or unexpected columns) or the rejected share exceeds the source's `max_reject_rate`;
WARN when some rows were quarantined within it; OK when none were.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa

from harmonizer_pipeline.quality.validation import (
    REJECTED_COLUMNS,
    ChunkValidation,
    blank_as_missing,
    coerce_column,
    failure_message,
    validate_chunk,
    with_nullable_dtypes,
)

SAMPLE_ROWS = 20  # rejected records kept for the check's metadata
_KEEP = {"all": False, "exclude_first": "first", "exclude_last": "last"}


def unique_column_sets(schema: pa.DataFrameSchema) -> list[tuple[str, list[str], str]]:
    """(check, columns, report_duplicates) for every uniqueness rule of the schema."""
    rules = [("field_uniqueness", [name], column.report_duplicates) for name, column in schema.columns.items() if column.unique]
    if schema.unique:
        groups = [schema.unique] if all(isinstance(c, str) for c in schema.unique) else schema.unique
        rules += [("multiple_fields_uniqueness", list(group), schema.report_duplicates) for group in groups]
    return rules


def without_uniqueness(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """A copy of the schema that leaves uniqueness to `uniqueness_rejections`."""
    copy = schema.update_columns({name: {"unique": False} for name, column in schema.columns.items() if column.unique})
    copy.unique = None
    return copy


def uniqueness_rejections(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """Rejected-row records (REJECTED_COLUMNS) for every uniqueness rule, over the whole file.
    `frame` needs `_row_number` and the unique columns (the file's text); rules naming a
    column the file lacks are left to the structure check."""
    schema = with_nullable_dtypes(schema)
    records = []
    typed: dict[str, pd.Series] = {}
    for check, columns, report in unique_column_sets(schema):
        if not all(c in frame.columns for c in columns):
            continue
        for c in columns:
            if c not in typed:
                # As objects, so that aligning the columns never turns big integers into floats.
                typed[c] = coerce_column(schema, c, blank_as_missing(frame[c]))[0].astype(object)
        values = pd.DataFrame({c: typed[c] for c in columns}).dropna()  # a row with a NULL is no duplicate
        repeated = values.index[values.duplicated(keep=_KEEP.get(report, False))]
        for c in columns:
            records.append(
                pd.DataFrame(
                    {
                        "_row_number": frame.loc[repeated, "_row_number"].to_numpy(),
                        "column": c,
                        "check": check,
                        "failure_case": [None if pd.isna(v) else str(v) for v in frame.loc[repeated, c]],
                    }
                )
            )
    records = [r for r in records if len(r)]
    if not records:
        return pd.DataFrame({name: pd.Series([], dtype="int64" if name == "_row_number" else object) for name in REJECTED_COLUMNS})
    found = pd.concat(records, ignore_index=True)
    found["message"] = [failure_message(c, k, v) for c, k, v in zip(found["column"], found["check"], found["failure_case"])]
    return found


@dataclass
class GateSummary:
    rows: int = 0
    rejected_rows: int = 0
    failures: Counter = field(default_factory=Counter)  # (check, column) → failing values
    sample: list[dict] = field(default_factory=list)  # the first SAMPLE_ROWS rejected records
    structure_errors: list[str] = field(default_factory=list)

    @property
    def valid_rows(self) -> int:
        return self.rows - self.rejected_rows

    @property
    def reject_rate(self) -> float:
        return self.rejected_rows / self.rows if self.rows else 0.0

    def add(self, result: ChunkValidation) -> None:
        self.rows += result.rows
        self.rejected_rows += result.rejected_rows
        for problem in result.structure_errors:
            if problem not in self.structure_errors:
                self.structure_errors.append(problem)
        rejected = result.rejected
        if len(rejected):
            counts = rejected.groupby(["check", "column"], dropna=False, sort=False).size()
            for key, count in counts.items():
                assert isinstance(key, tuple)  # grouped by two columns: each key is a pair
                check, column = key
                self.failures[(check, None if pd.isna(column) else column)] += int(count)
            room = SAMPLE_ROWS - len(self.sample)
            if room > 0:
                self.sample.extend(rejected.head(room).to_dict("records"))


@dataclass(frozen=True)
class Verdict:
    severity: str  # ok | warn | error
    description: str

    @property
    def passed(self) -> bool:
        return self.severity != "error"


def verdict(summary: GateSummary, max_reject_rate: float) -> Verdict:
    if summary.structure_errors:
        return Verdict("error", f"wrong file structure, all {summary.rows} rows rejected: " + "; ".join(summary.structure_errors))
    share = f"{summary.rejected_rows} of {summary.rows} rows rejected ({summary.reject_rate:.2%})"
    if summary.reject_rate > max_reject_rate:
        return Verdict("error", f"{share}, over max_reject_rate {max_reject_rate:.2%}")
    if summary.rejected_rows:
        return Verdict("warn", f"{share} and quarantined in quality.rejected_rows, within max_reject_rate {max_reject_rate:.2%}")
    return Verdict("ok", f"all {summary.rows} rows passed")


class PartitionValidation:
    """Validates one file's chunks: yields the passing rows, typed, hands each chunk's rejected
    records to `on_rejected`, and sums everything up in `summary`."""

    def __init__(self, schema: pa.DataFrameSchema, unique_rejections: pd.DataFrame, on_rejected: Callable[[pd.DataFrame], None]):
        self.schema = with_nullable_dtypes(without_uniqueness(schema))
        self.unique_rejections = unique_rejections
        self.on_rejected = on_rejected
        self.summary = GateSummary()

    def run(self, chunks: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            result = validate_chunk(self.schema, chunk)
            if not result.structure_errors and len(self.unique_rejections):
                result = self._with_duplicates(chunk, result)
            self.summary.add(result)
            if len(result.rejected):
                self.on_rejected(result.rejected)
            yield result.valid

    def _with_duplicates(self, chunk: pd.DataFrame, result: ChunkValidation) -> ChunkValidation:
        mine = self.unique_rejections[self.unique_rejections["_row_number"].isin(chunk["_row_number"])]
        if not len(mine):
            return result
        rejected = pd.concat([result.rejected, mine], ignore_index=True)
        rejected = rejected.sort_values(["_row_number", "column"], kind="stable", ignore_index=True)
        valid = result.valid[~result.valid["_row_number"].isin(mine["_row_number"])]
        return ChunkValidation(valid, rejected, result.rows)


def validate_frame(schema: pa.DataFrameSchema, frame: pd.DataFrame, on_rejected: Callable[[pd.DataFrame], None]) -> tuple[pd.DataFrame, GateSummary]:
    """A whole file held in memory, validated as the gate validates one partition."""
    validation = PartitionValidation(schema, uniqueness_rejections(schema, frame), on_rejected)
    valid = list(validation.run([frame]))
    return valid[0], validation.summary
