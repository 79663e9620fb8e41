"""A pandera schema drafted from a file's profile, which the file itself passes (no dagster).

Per column, from its ColumnProfile: nullable when any value is NULL or blank; unique when every
non-blank value differs (and there are at least two); then, only where every non-blank value
fits, the narrowest rule the profile supports:
- integer: nullable Int64, coerced, within the observed range;
- decimal with '.' marks and no grouping: float64, coerced, within the observed range;
- other decimals, dates, datetimes, e-mails, URLs, UUIDs, IPs, phones, postal codes, currency
  amounts: text matching the type's pattern;
- boolean and categorical columns: text among the observed values;
- anything else: text within the observed lengths.
A person reviews the draft before it gates anything: a rule fitted to one file is a guess.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from harmonizer_pipeline.quality.profiling import CATEGORICAL_MAX, TYPE_PATTERNS, ColumnProfile, profile_frame


def infer_schema(frame: pd.DataFrame, columns: list[str] | None = None) -> pa.DataFrameSchema:
    """A schema of the frame's data columns (lineage columns, starting with '_', left out)."""
    names = columns if columns is not None else [c for c in frame.columns if not str(c).startswith("_")]
    profiles = profile_frame(frame, names).columns
    return pa.DataFrameSchema({p.name: _column(p, frame[p.name]) for p in profiles}, strict=True, coerce=False)


def _column(profile: ColumnProfile, values: pd.Series) -> pa.Column:
    filled = profile.rows - profile.nulls - profile.empties
    nullable = filled < profile.rows
    unique = filled > 1 and profile.distinct - (1 if profile.empties else 0) == filled and not nullable
    kind, fits = profile.semantic_type, profile.validity == 1.0
    text = values.dropna()
    text = text[text.str.strip() != ""]
    if fits and kind == "integer":
        assert profile.minimum is not None and profile.maximum is not None  # every value is an integer
        low, high = int(profile.minimum), int(profile.maximum)
        return pa.Column("Int64", pa.Check.in_range(low, high), nullable=nullable, unique=unique, coerce=True)
    if fits and kind == "decimal" and text.str.fullmatch(r"[+-]?\d+(?:\.\d+)?").all():
        assert profile.minimum is not None and profile.maximum is not None  # every value is a decimal
        low, high = float(profile.minimum), float(profile.maximum)
        return pa.Column("float64", pa.Check.in_range(low, high), nullable=nullable, unique=unique, coerce=True)
    if fits and kind in TYPE_PATTERNS and kind not in ("boolean", "integer"):
        check = pa.Check.str_matches(rf"^\s*(?:{TYPE_PATTERNS[kind]})\s*$")
    elif kind in ("boolean", "categorical") and profile.distinct <= CATEGORICAL_MAX:
        check = pa.Check.isin(sorted(text.unique().tolist()))
    else:
        lengths = text.str.len()
        check = pa.Check.str_length(int(lengths.min()) if len(text) else 0, int(lengths.max()) if len(text) else 0)
    return pa.Column(str, check, nullable=nullable, unique=unique)
