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
them, and they coerce to NULL (the gate types nullable integer and boolean columns with
pandas' nullable dtypes, Int64 and boolean, for that: with_nullable_dtypes). A value the
column's dtype cannot take is a `coerce_dtype` failure, and its row's other columns are still
checked. Failures that concern the frame rather than a row — a missing or unexpected column —
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


# numpy dtypes that hold no missing value, and the pandas dtypes that do.
_NULLABLE_DTYPES = {
    **{f"{sign}int{bits}": f"{sign.upper()}Int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)},
    "bool": "boolean",
}


def with_nullable_dtypes(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """A `nullable` integer or boolean column typed with pandas' nullable dtype (int64 → Int64),
    so that a missing value is NULL rather than a failure to coerce the whole column."""
    changes = {
        name: {"dtype": _NULLABLE_DTYPES[str(column.dtype)]}
        for name, column in schema.columns.items()
        if column.nullable and str(column.dtype) in _NULLABLE_DTYPES
    }
    return schema.update_columns(changes) if changes else schema


def validate_chunk(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> ChunkValidation:
    """Validate one chunk of raw rows (with `_row_number`); see the module docstring."""
    lineage = [c for c in frame.columns if str(c).startswith("_")]
    data = frame.drop(columns=lineage).apply(blank_as_missing)
    # A value its column's dtype cannot take fails coercion; pandera would then leave the whole
    # column untyped and fail its other checks on text. So rows holding such values are checked
    # apart, without those columns, and the rest as usual.
    uncoercible = {name: bad for name in data.columns if len(bad := coerce_column(schema, name, data[name])[1])}
    odd_rows = pd.Index(sorted(set().union(*uncoercible.values()))) if uncoercible else pd.Index([])
    typed, cases = _validate(schema, data.drop(index=odd_rows) if len(odd_rows) else data)
    structure = cases[cases["index"].isna()] if cases is not None else None
    if structure is not None and len(structure):
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
        return ChunkValidation(_no_rows(schema).join(frame[lineage].iloc[:0]), rejected, len(frame), problems)
    if cases is None and not uncoercible:
        assert typed is not None  # _validate returns typed rows when nothing failed
        return ChunkValidation(typed.join(frame[lineage]), _no_rejections(), len(frame))
    found = [] if cases is None else [_without_echoes(cases[["column", "check", "index"]])]
    for name, bad in uncoercible.items():
        found.append(pd.DataFrame({"column": name, "check": f"coerce_dtype('{schema.columns[name].dtype}')", "index": bad}))
    columns_of_row: dict[object, list[str]] = {}
    for name, bad in uncoercible.items():
        for index in bad:
            columns_of_row.setdefault(index, []).append(name)
    rows_apart: dict[tuple[str, ...], list] = {}
    for index, names in columns_of_row.items():
        rows_apart.setdefault(tuple(names), []).append(index)
    for names, rows in rows_apart.items():
        _, apart = _validate(schema.remove_columns(list(names)), data.loc[rows].drop(columns=list(names)))
        if apart is not None:
            found.append(_without_echoes(apart.loc[apart["index"].notna(), ["column", "check", "index"]]))
    cases = pd.concat(found, ignore_index=True)
    index = cases["index"].to_numpy()
    rejected = pd.DataFrame(
        {
            "_row_number": frame.loc[index, "_row_number"].to_numpy(),
            "column": cases["column"].astype(str).to_numpy(),
            "check": cases["check"].astype(str).to_numpy(),
            "failure_case": _raw_values(frame, cases),
        }
    )
    rejected["message"] = [failure_message(*record) for record in zip(rejected["column"], rejected["check"], rejected["failure_case"])]
    failing = pd.unique(index)
    if typed is not None:  # only the rows checked apart failed: the others are typed already
        typed = typed.drop(index=failing, errors="ignore")
    else:
        passing = data.drop(index=failing)
        typed = schema.validate(passing, lazy=True) if len(passing) else schema.coerce_dtype(passing) if schema.coerce else passing
    return ChunkValidation(typed.join(frame[lineage]), rejected.sort_values(["_row_number", "column"], kind="stable", ignore_index=True), len(frame))


def _validate(schema: pa.DataFrameSchema, data: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """(typed rows, None) when every row passes, else (None, pandera's failure cases)."""
    try:
        return schema.validate(data, lazy=True), None
    except SchemaErrors as errors:
        return None, errors.failure_cases
    except SchemaError as error:  # raised even when lazy, e.g. by a failing dataframe-level parser
        return None, pd.DataFrame([{"column": None, "check": str(error.check), "failure_case": None, "index": None}])


def coerce_column(schema: pa.DataFrameSchema, name: str, values: pd.Series) -> tuple[pd.Series, pd.Index]:
    """The column's present values typed as the schema coerces them (missing and uncoercible
    values left out), and the index labels of the values its dtype cannot take. A column the
    schema does not coerce is returned as it is, less its missing values."""
    present = values.dropna()
    column = schema.columns.get(name)
    if column is None or column.dtype is None or not (column.coerce or schema.coerce):
        return present, pd.Index([])
    dtype = column.dtype
    # dtype.coerce, not try_coerce: on failure try_coerce finds the failing values one at a
    # time (minutes for a million dates); they are found vectorized here instead.
    try:
        return dtype.coerce(present), pd.Index([])
    except Exception:  # the dtype's own coercion decides; it raises many kinds
        pass
    bad = _unparsable(dtype, present)
    rest = present.drop(index=bad)
    try:
        return dtype.coerce(rest), bad
    except Exception:
        more = _uncoercible(dtype, rest)
        return dtype.coerce(rest.drop(index=more)), bad.append(more)


def _unparsable(dtype, values: pd.Series) -> pd.Index:
    """Values pandas cannot parse as the dtype's kind (dates, numbers), found in one pass."""
    kwargs = getattr(dtype, "to_datetime_kwargs", None)
    if kwargs is not None:
        return values.index[pd.to_datetime(values, errors="coerce", **kwargs).isna().to_numpy()]
    kind = getattr(getattr(dtype, "type", None), "kind", None)
    if kind in ("i", "u", "f"):
        return values.index[pd.to_numeric(values, errors="coerce").isna().to_numpy()]
    return pd.Index([])


def _uncoercible(dtype, values: pd.Series) -> pd.Index:
    """The values the dtype cannot take, tried one distinct value at a time (the rare rest)."""
    failing = set()
    for value in values.unique():
        try:
            dtype.coerce(pd.Series([value]))
        except Exception:  # as above
            failing.add(value)
    return values.index[values.isin(failing).to_numpy()]


def failure_message(column: str, check: str, value: str | None) -> str:
    return f"column {column!r} fails {check} with {value!r}"


def _no_rows(schema: pa.DataFrameSchema) -> pd.DataFrame:
    """No rows, the schema's columns and dtypes: what a file with the wrong structure passes on,
    so its partition of the validated table still has the types of the others."""
    return pd.DataFrame({name: pd.Series([], dtype=column.dtype.type if column.dtype is not None else "str") for name, column in schema.columns.items()})


def blank_as_missing(column: pd.Series) -> pd.Series:
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
    """Drop the dtype failure pandera reports again for a value its coercion already failed on
    (a missing value in a column whose dtype has no missing values)."""
    coerced = cases["check"].astype(str).str.startswith("coerce_dtype(")
    failed = set(zip(cases.loc[coerced, "column"], cases.loc[coerced, "index"]))
    repeated = np.array([(column, index) in failed for column, index in zip(cases["column"], cases["index"])], bool)
    return cases[~(cases["check"].astype(str).str.startswith("dtype(").to_numpy() & repeated)]


def _no_rejections() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series([], dtype="int64" if name == "_row_number" else object) for name in REJECTED_COLUMNS})
