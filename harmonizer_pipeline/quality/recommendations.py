"""Fixes for what a profile finds, each with a pandas and a SQL snippet a person can run (no dagster).

Detected from the profile and the raw text:
- duplicates on a key-like column (nearly every value distinct, some repeated);
- nulls in a column that looks required (at least REQUIRED_SHARE of the rows filled, not all);
- surrounding whitespace, and categorical values differing only in case or inner spacing;
- values of an e-mail or phone column that do not match the type;
- a date column written in more than one format;
- outliers of a number column by the IQR rule (outside Q1 − 1.5·IQR .. Q3 + 1.5·IQR).
Snippets name the frame `df` and the table given; identifiers and literals are quoted by psycopg.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from psycopg import sql

from harmonizer_pipeline.quality.profiling import DATE_FORMATS, TYPE_PATTERNS, ColumnProfile, FileProfile, to_numbers

REQUIRED_SHARE = 0.95


@dataclass(frozen=True)
class Recommendation:
    column: str
    issue: str  # duplicates | missing_required | whitespace | inconsistent_case | invalid_email | invalid_phone | mixed_date_formats | outliers
    detail: str
    rows: int  # rows concerned
    pandas: str
    sql: str


def recommend(profile: FileProfile, frame: pd.DataFrame, table: str = "raw.source") -> list[Recommendation]:
    """Every recommendation for the profiled columns of `frame`, column by column."""
    return [found for column in profile.columns for found in recommend_column(column, frame[column.name], table)]


def recommend_column(p: ColumnProfile, text: pd.Series, table: str = "raw.source") -> list[Recommendation]:
    """The recommendations for one profiled column, given its raw text."""
    schema, _, name = table.rpartition(".")
    table = (sql.Identifier(schema, name) if schema else sql.Identifier(name)).as_string(None)
    col, c = repr(p.name), sql.Identifier(p.name).as_string(None)
    filled = text.dropna()
    filled = filled[filled.str.strip() != ""]
    found = []
    repeated = len(filled) - filled.nunique()
    if p.uniqueness < 1 and repeated:
        found.append(Recommendation(
            p.name, "duplicates", f"{repeated} rows repeat a value of this key-like column", repeated,
            f"df = df.drop_duplicates(subset=[{col}], keep='first')",
            f"DELETE FROM {table} t USING {table} u WHERE t.{c} = u.{c} AND t.ctid > u.ctid;",
        ))
    missing = p.nulls + p.empties
    if missing and p.completeness >= REQUIRED_SHARE:
        found.append(Recommendation(
            p.name, "missing_required", f"{missing} of {p.rows} rows lack a value in a column filled almost everywhere", missing,
            f"missing = df[{col}].isna() | (df[{col}].str.strip() == '')\ndf_quarantine, df = df[missing], df[~missing]",
            f"SELECT * FROM {table} WHERE NULLIF(btrim({c}), '') IS NULL;",
        ))
    untrimmed = int((filled != filled.str.strip()).sum())
    if untrimmed:
        found.append(Recommendation(
            p.name, "whitespace", f"{untrimmed} values carry surrounding whitespace", untrimmed,
            f"df[{col}] = df[{col}].str.strip()",
            f"UPDATE {table} SET {c} = btrim({c}) WHERE {c} <> btrim({c});",
        ))
    if p.semantic_type == "categorical":
        folded = filled.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
        variants = filled.groupby(folded.to_numpy()).nunique()
        clashing = variants[variants > 1]
        if len(clashing):
            rows = int(folded.isin(clashing.index).sum())
            found.append(Recommendation(
                p.name, "inconsistent_case", f"{len(clashing)} values are written in several ways (e.g. {clashing.index[0]!r})", rows,
                f"canonical = df[{col}].str.strip().str.replace(r'\\s+', ' ', regex=True)\n"
                f"df[{col}] = canonical.groupby(canonical.str.casefold()).transform(lambda s: s.mode().iat[0])",
                f"UPDATE {table} SET {c} = initcap(regexp_replace(btrim({c}), '\\s+', ' ', 'g'));",
            ))
    for kind in ("email", "phone"):
        if p.semantic_type == kind and p.validity < 1:
            pattern = f"^(?:{TYPE_PATTERNS[kind]})$"
            bad = int((~filled.str.strip().str.fullmatch(TYPE_PATTERNS[kind])).sum())
            found.append(Recommendation(
                p.name, f"invalid_{kind}", f"{bad} values are not valid {kind}s", bad,
                f"valid = df[{col}].str.strip().str.fullmatch({pattern!r})\ndf.loc[~valid.fillna(True), {col}] = pd.NA",
                f"UPDATE {table} SET {c} = NULL WHERE btrim({c}) !~ {_literal(pattern)};",
            ))
    if p.semantic_type in ("date", "datetime"):
        used = {name: int(filled.str.strip().str.match(f"^{pattern}").sum()) for name, pattern in DATE_FORMATS.items()}
        used = {name: n for name, n in used.items() if n}
        if len(used) > 1:
            minority = len(filled) - max(used.values())
            cases = "\n".join(
                f"  WHEN {c} ~ {_literal('^' + DATE_FORMATS[name])} THEN to_date({c}, {_literal(_SQL_FORMATS[name])})"
                for name in used
            )
            found.append(Recommendation(
                p.name, "mixed_date_formats", "dates written as " + ", ".join(f"{name} ({n})" for name, n in used.items()), minority,
                "".join(
                    f"parsed = pd.to_datetime(df[{col}].str.strip(), format={_PYTHON_FORMATS[name]!r}, errors='coerce')"
                    + (".combine_first(parsed)\n" if i else "\n")
                    for i, name in enumerate(used)
                ) + f"df[{col}] = parsed",
                f"SELECT CASE\n{cases}\nEND AS {sql.Identifier(p.name + '_date').as_string(None)} FROM {table};",
            ))
    if p.semantic_type in ("integer", "decimal") and len(filled) >= 4:
        typed = filled[filled.str.strip().str.fullmatch(TYPE_PATTERNS[p.semantic_type])]
        numbers = to_numbers(pa.array(typed.str.strip().to_numpy(dtype=object), pa.string())).to_numpy(zero_copy_only=False)
        q1, q3 = np.percentile(numbers, [25, 75])
        low, high = float(q1 - 1.5 * (q3 - q1)), float(q3 + 1.5 * (q3 - q1))
        outside = int(((numbers < low) | (numbers > high)).sum())
        if outside:
            found.append(Recommendation(
                p.name, "outliers", f"{outside} values outside {low:g} .. {high:g} (IQR rule)", outside,
                f"number = pd.to_numeric(df[{col}], errors='coerce')\noutliers = df[(number < {low!r}) | (number > {high!r})]",
                f"SELECT * FROM {table} WHERE {c} ~ '^[+-]?[0-9]+([.][0-9]+)?$' AND {c}::numeric NOT BETWEEN {low!r} AND {high!r};",
            ))
    return found


def _literal(text: str) -> str:
    return sql.Literal(text).as_string(None).strip()


_PYTHON_FORMATS = {
    "YYYY-MM-DD": "%Y-%m-%d",
    "DD.MM.YYYY": "%d.%m.%Y",
    "DD/MM/YYYY or MM/DD/YYYY": "%d/%m/%Y",
    "YYYY/MM/DD": "%Y/%m/%d",
}
_SQL_FORMATS = {
    "YYYY-MM-DD": "YYYY-MM-DD",
    "DD.MM.YYYY": "DD.MM.YYYY",
    "DD/MM/YYYY or MM/DD/YYYY": "DD/MM/YYYY",
    "YYYY/MM/DD": "YYYY/MM/DD",
}
