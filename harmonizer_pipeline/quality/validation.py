"""Pandera schemas that gate raw text: load them, validate chunks lazily, split passing rows from
rejected ones (no dagster).

A schema is a pandera YAML file (`DataFrameSchema.from_yaml`'s format) or the import path of a
`DataFrameModel` or `DataFrameSchema` (`package.module:Name` or `package.module.Name`). Schemas
see the data columns only: lineage columns (names starting with `_`) are set aside before and
put back on the passing rows after, so a `strict` schema need not list them.

validate_chunk() runs the schema with lazy=True, so every failure of every row is reported, not
the first. Each failure becomes a rejected-row record (`_row_number`, column, check, failing
value, message); a row with any failure is rejected whole, the others pass with the schema's
dtypes. Blank values ('' or whitespace) count as missing: a `nullable: false` column rejects
them, and they coerce to NULL. Failures that concern the frame rather than a row — a missing or unexpected column —
are structure errors: then no row can be typed, and every row is rejected with check
`structure`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors, SchemaInitError

REJECTED_COLUMNS = ["_row_number", "column", "check", "failure_case", "message"]


class SchemaLoadError(ValueError):
    """A schema cannot be loaded; str(err) is one line naming the schema and the cause."""


@dataclass
class ChunkValidation:
    valid: pd.DataFrame  # passing rows, typed by the schema, lineage columns kept
    rejected: pd.DataFrame  # one record per failure: REJECTED_COLUMNS
    rows: int
    structure_errors: list[str] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return self.rows - len(self.valid)


def load_schema(spec: str, base_dir: Path | None = None) -> pa.DataFrameSchema:
    """The schema a source names: a YAML file (relative to base_dir) or an import path."""
    if spec.endswith((".yaml", ".yml")):
        path = Path(spec) if base_dir is None or Path(spec).is_absolute() else Path(base_dir) / spec
        if not path.is_file():
            raise SchemaLoadError(f"schema {spec}: no such file ({path})")
        try:
            return pa.DataFrameSchema.from_yaml(path)
        except Exception as err:  # pandera and yaml raise many kinds for a malformed file
            raise SchemaLoadError(f"schema {spec}: {type(err).__name__}: {' '.join(str(err).split())}") from err
    module_name, _, name = spec.replace(":", ".").rpartition(".")
    if not module_name:
        raise SchemaLoadError(f"schema {spec!r}: expected a .yaml file or an import path such as package.module:Model")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise SchemaLoadError(f"schema {spec}: cannot import {name} from {module_name}: {err}") from err
    if isinstance(target, pa.DataFrameSchema):
        return target
    if isinstance(target, type) and issubclass(target, pa.DataFrameModel):
        try:
            return target.to_schema()
        except SchemaInitError as err:
            raise SchemaLoadError(f"schema {spec}: {err}") from err
    raise SchemaLoadError(f"schema {spec}: {name} is a {type(target).__name__}, not a DataFrameModel or DataFrameSchema")


def validate_chunk(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> ChunkValidation:
    """Validate one chunk of raw rows (with `_row_number`); see the module docstring."""
    lineage = [c for c in frame.columns if str(c).startswith("_")]
    data = frame.drop(columns=lineage).apply(_blank_as_missing)
    try:
        typed = schema.validate(data, lazy=True)
        return ChunkValidation(typed.join(frame[lineage]), _no_rejections(), len(frame))
    except SchemaErrors as errors:
        cases = errors.failure_cases
    except SchemaError as error:  # raised even when lazy, e.g. by a failing dataframe-level parser
        cases = pd.DataFrame([{"column": None, "check": str(error.check), "failure_case": None, "index": None}])
    row_level = cases["index"].notna()
    structure = cases[~row_level]
    if len(structure):
        problems = [f"{c['check']}: {c['failure_case']}" for _, c in structure.iterrows()]
        rejected = pd.DataFrame(
            {
                "_row_number": frame["_row_number"].to_numpy(),
                "column": None,
                "check": "structure",
                "failure_case": None,
                "message": "; ".join(problems),
            }
        )
        return ChunkValidation(frame.iloc[:0], rejected, len(frame), problems)
    cases = _without_echoes(cases[row_level])
    index = cases["index"].to_numpy()
    rejected = pd.DataFrame(
        {
            "_row_number": frame.loc[index, "_row_number"].to_numpy(),
            "column": cases["column"].astype(str).to_numpy(),
            "check": cases["check"].astype(str).to_numpy(),
            "failure_case": _raw_values(frame, cases),
        }
    )
    rejected["message"] = [
        f"column {column!r} fails {check} with {value!r}"
        for column, check, value in zip(rejected["column"], rejected["check"], rejected["failure_case"])
    ]
    passing = data.drop(index=pd.unique(index))
    typed = schema.validate(passing, lazy=True) if len(passing) else schema.coerce_dtype(passing) if schema.coerce else passing
    return ChunkValidation(typed.join(frame[lineage]), rejected.sort_values(["_row_number", "column"], kind="stable", ignore_index=True), len(frame))


def _blank_as_missing(column: pd.Series) -> pd.Series:
    """Raw text keeps '' as read; typing takes a blank value for a missing one."""
    if not pd.api.types.is_string_dtype(column):
        return column
    return column.mask(column.str.strip() == "")


def _raw_values(frame: pd.DataFrame, cases: pd.DataFrame) -> np.ndarray:
    """Each failing cell's text as read (pandera reports coerced values, e.g. -3.0 for '-3')."""
    values = np.empty(len(cases), object)
    for column, at in cases.groupby("column", sort=False).indices.items():
        if column in frame.columns:
            cells = frame[column].loc[cases["index"].to_numpy()[at]]
            values[at] = [None if pd.isna(v) else str(v) for v in cells]
    return values


def _without_echoes(cases: pd.DataFrame) -> pd.DataFrame:
    """Drop the dtype failure pandera reports again for a value its coercion already failed on."""
    coerced = cases["check"].astype(str).str.startswith("coerce_dtype(")
    failed = set(zip(cases.loc[coerced, "column"], cases.loc[coerced, "index"]))
    repeated = np.array([(column, index) in failed for column, index in zip(cases["column"], cases["index"])], bool)
    return cases[~(cases["check"].astype(str).str.startswith("dtype(").to_numpy() & repeated)]


def _no_rejections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype="int64" if name == "_row_number" else object) for name in REJECTED_COLUMNS})
