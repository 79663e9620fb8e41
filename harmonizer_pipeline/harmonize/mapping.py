"""A source's validated rows mapped into its target's canonical columns (no dagster).

For each target column, in order:
1. where the values come from (settings.ColumnMapping): a source column (rename), a constant,
   several columns combined, or a part of a split column; unmapped target columns take the
   source column of the same name, else stay NULL;
2. the source's own reading of them: `nulls` (values that mean missing), a value map (mapped
   values replaced, others kept for the target's rules), a unit conversion, and parsing into the
   target type with the source's date formats, day-first or decimal-comma convention;
3. the target column's rules (harmonize.rules), in order;
4. the target type (integer, float, text, boolean, date, datetime).

A value a step cannot handle becomes NULL and a rejection (row, column, check `harmonize:<rule>`,
the value as the source held it, message); a row whose business key or required column ends up
NULL is left out and rejected with check `harmonize:required`. Nothing is dropped silently.

Every step is a function of the value alone, so a text column's steps run once per distinct value
and the results are spread back to the rows (a 100k-row chunk of the bench file holds 4 distinct
sexes and 15 first names).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harmonizer_pipeline.harmonize import rules
from harmonizer_pipeline.harmonize.settings import ColumnMapping, Target, TargetColumn

LINEAGE = ["_source", "_source_file", "_row_number", "_load_id"]
REJECTION_COLUMNS = ["_source_file", "_row_number", "column", "check", "failure_case", "message"]


class MappingError(ValueError):
    """The mapping cannot be applied to this data (e.g. it names a column the file lacks)."""


@dataclass
class MappedRows:
    frame: pd.DataFrame  # target columns, typed, then LINEAGE
    rejections: pd.DataFrame  # REJECTION_COLUMNS, one row per value a step could not handle
    rows_in: int
    rows_left_out: int  # rows without a business key or required value


def _origin(frame: pd.DataFrame, mapping: ColumnMapping, source: str, target_column: str) -> pd.Series:
    missing = [c for c in mapping.source_columns() if c not in frame.columns]
    if missing:
        raise MappingError(f"{source}: mapping of {target_column!r} names column(s) {missing} the data does not have; it has {list(frame.columns)}")
    if mapping.column is not None:
        return frame[mapping.column]
    if mapping.constant is not None:
        return pd.Series([mapping.constant] * len(frame), index=frame.index, dtype=object if not isinstance(mapping.constant, str) else "str")
    if mapping.combine is not None:
        combined = None
        for part in (_text_on_rows(frame[c]) for c in mapping.combine):
            part = part.where(part != "", None)
            # NULL parts are left out rather than turning the whole value NULL.
            combined = part if combined is None else (combined + mapping.separator + part).fillna(combined).fillna(part)
        assert combined is not None  # combine names two columns at least
        return combined.astype("str")
    split = mapping.split
    assert split is not None  # the one origin left (ColumnMapping takes exactly one)
    pieces = _text_on_rows(frame[split.column]).str.split(split.separator, n=split.parts - 1, expand=True, regex=False)
    return pieces[split.part].astype("str") if split.part in pieces.columns else pd.Series(None, index=frame.index, dtype="str")


def _distinct(values: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(each row's position in the distinct values, the distinct values with NULL among them)."""
    if not isinstance(values.dtype, pd.StringDtype):
        # Hashing would take 1, 1.0 and True (or 0.0 and -0.0) for one value though they read differently.
        return np.arange(len(values)), values.reset_index(drop=True)
    rows, uniques = pd.factorize(values, use_na_sentinel=False)
    return rows, pd.Series(uniques)


def _text_on_rows(values: pd.Series) -> pd.Series:
    """rules.text run once per distinct value, its results spread back to the rows."""
    rows, uniques = _distinct(values)
    return pd.Series(rules.text(uniques).values.array.take(rows), index=values.index)


class _Column:
    """One target column's distinct values as they pass the steps, and the rejections on the way."""

    def __init__(self, name: str, values: pd.Series, lineage: pd.DataFrame):
        self.name = name
        self.rows, self.values = _distinct(values)
        self.original = rules.as_text(self.values)
        self.lineage = lineage
        self.rejected: list[pd.DataFrame] = []

    def apply(self, check: str, result: rules.Standardized) -> None:
        if result.failed.any():
            failed = np.flatnonzero(result.failed.to_numpy(dtype=bool)[self.rows])
            cases = self.original.iloc[self.rows[failed]].to_numpy()
            self.rejected.append(
                pd.DataFrame(
                    {
                        "_source_file": self.lineage["_source_file"].iloc[failed].to_numpy(),
                        "_row_number": self.lineage["_row_number"].iloc[failed].to_numpy(),
                        "column": self.name,
                        "check": f"harmonize:{check}",
                        "failure_case": cases,
                        "message": [f"{self.name}: {check} could not standardize {c!r}" for c in cases],
                    }
                )
            )
        self.values = result.values

    def on_rows(self) -> pd.Series:
        return pd.Series(self.values.array.take(self.rows))


def _value_map(values: pd.Series, mapping: dict[str, list]) -> pd.Series:
    """Source values replaced by their canonical value; values not listed pass unchanged (the
    target's own rules judge them)."""
    text = rules.text(values).values
    return rules.value_map(text, mapping=mapping).values.fillna(text).astype("str")


def _parse(column: _Column, mapping: ColumnMapping, spec: TargetColumn) -> None:
    """The source's reading of the values into the target type."""
    if mapping.nulls:
        missing = column.original.isin(mapping.nulls)
        column.values = column.values.where(~missing, None)
        column.original = column.original.where(~missing, None)
    if mapping.values:
        column.values = _value_map(column.values, mapping.values)
    if mapping.unit is not None:
        column.apply("number", rules.number(column.values, decimal_comma=mapping.decimal_comma))
        column.apply("convert_unit", rules.convert_unit(column.values, from_unit=mapping.unit.from_unit, to_unit=mapping.unit.to_unit))
    elif spec.type in ("integer", "float"):
        column.apply("number", rules.number(column.values, decimal_comma=mapping.decimal_comma))
    elif spec.type in ("date", "datetime"):
        rule = rules.date if spec.type == "date" else rules.datetime
        column.apply(spec.type, rule(column.values, formats=mapping.formats, dayfirst=mapping.dayfirst))
    elif spec.type == "boolean":
        column.apply("boolean", rules.boolean(column.values))
    else:
        # Every rule normalizes text itself; a column without rules gets the text rule.
        column.values = rules.as_text(column.values) if spec.rules else rules.text(column.values).values


def _as_type(column: _Column, spec: TargetColumn) -> None:
    values = column.values
    if spec.type == "integer":
        numbers = pd.to_numeric(values, errors="coerce").astype("Float64")
        fractional = numbers.notna() & (numbers != numbers.round())
        column.apply("integer", rules.Standardized(numbers.where(~fractional, None).round().astype("Int64"), fractional.fillna(False).astype(bool)))
    elif spec.type == "float":
        column.values = pd.to_numeric(values, errors="coerce").astype("Float64")
    elif spec.type == "text":
        column.values = rules.as_text(values)


def map_source(frame: pd.DataFrame, source: str, mapping: dict[str, ColumnMapping], target: Target) -> MappedRows:
    """`frame` (validated rows with `_source_file`, `_row_number`, `_load_id`) in the target's columns."""
    lineage = frame[["_source_file", "_row_number", "_load_id"]].reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    mapped, rejected = {}, []
    for name, spec in target.columns.items():
        origin = mapping.get(name) or (ColumnMapping(column=name) if name in frame.columns else None)
        if origin is None:
            mapped[name] = _typed_nulls(spec, len(frame))
            continue
        column = _Column(name, _origin(frame, origin, source, name), lineage)
        _parse(column, origin, spec)
        for rule in spec.rules:
            column.apply(rule.name, rules.RULES[rule.name](column.values, **rule.options))
        _as_type(column, spec)
        mapped[name] = column.on_rows()
        rejected += column.rejected
    result = pd.DataFrame(mapped)
    result.insert(len(result.columns), "_source", pd.Series(source, index=result.index, dtype="str"))
    for name in ("_source_file", "_row_number", "_load_id"):
        result[name] = lineage[name]
    required = [n for n, spec in target.columns.items() if spec.required or n in target.key]
    incomplete = result[required].isna().any(axis=1).to_numpy()
    if incomplete.any():
        rejected.append(_required_rejections(result[incomplete], required))
    rejections = pd.concat(rejected, ignore_index=True) if rejected else pd.DataFrame({c: pd.Series([], dtype="object") for c in REJECTION_COLUMNS})
    complete = result[~incomplete].reset_index(drop=True) if incomplete.any() else result
    return MappedRows(complete, rejections[REJECTION_COLUMNS], len(frame), int(incomplete.sum()))


def _required_rejections(rows: pd.DataFrame, required: list[str]) -> pd.DataFrame:
    empty = rows[required].isna()
    first = empty.idxmax(axis=1)  # the first required column without a value names the rejection
    return pd.DataFrame(
        {
            "_source_file": rows["_source_file"].to_numpy(),
            "_row_number": rows["_row_number"].to_numpy(),
            "column": first.to_numpy(),
            "check": "harmonize:required",
            "failure_case": None,
            "message": [f"row left out: no value for {', '.join(np.array(required)[m])}" for m in empty.to_numpy()],
        }
    )


_DTYPES = {"integer": "Int64", "float": "Float64", "boolean": "boolean", "text": "str", "date": "object", "datetime": "datetime64[us, UTC]"}


def _typed_nulls(spec: TargetColumn, rows: int) -> pd.Series:
    return pd.Series([None] * rows, dtype=_DTYPES[spec.type])
