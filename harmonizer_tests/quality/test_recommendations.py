"""Recommendations: each planted issue is found once, and its pandas and SQL snippets really fix it."""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg import sql

from harmonizer_pipeline.quality.profiling import DATE_FORMATS, TYPE_PATTERNS, count_text, profile_column, profile_frame, to_numbers
from harmonizer_pipeline.quality.recommendations import REQUIRED_SHARE, recommend, recommend_column

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
N = 40


@pytest.fixture
def planted() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": pd.Series([str(i) for i in range(1, N)] + ["5"], dtype=TEXT),
            # The last row repeats id 5 and is otherwise clean: deleting it must not hide another issue.
            "email": pd.Series(["broken"] + [f"u{i}@x.org" for i in range(1, N)], dtype=TEXT),
            "city": pd.Series(["Berlin", "berlin ", "Paris", "PARIS"] * 10, dtype=TEXT),
            "visit": pd.Series(["2024-01-02"] * 30 + ["02.01.2024"] * 10, dtype=TEXT),
            "qty": pd.Series(["9999"] + [str(i % 5 + 10) for i in range(1, N)], dtype=TEXT),
            "name": pd.Series(["Ann", ""] + ["Ann"] * (N - 2), dtype=TEXT),
        }
    )


def test_each_planted_issue_is_recommended_once(planted):
    found = recommend(profile_frame(planted), planted, "raw.clinic_a")
    assert [(r.column, r.issue, r.rows) for r in found] == [
        ("id", "duplicates", 1),
        ("email", "invalid_email", 1),
        ("city", "whitespace", 10),
        ("city", "inconsistent_case", 40),
        ("visit", "mixed_date_formats", 10),
        ("qty", "outliers", 1),
        ("name", "missing_required", 1),
    ]
    assert found[5].detail == "1 values outside 8 .. 16 (IQR rule)"


def test_a_clean_frame_gets_no_recommendation():
    clean = pd.DataFrame({"id": pd.Series([str(i) for i in range(1, 30)], dtype=TEXT), "city": pd.Series(["Berlin", "Paris"] * 14 + ["Rome"], dtype=TEXT)})
    assert recommend(profile_frame(clean), clean) == []


def test_the_pandas_snippets_fix_what_they_name(planted):
    fixed = {}
    for found in recommend(profile_frame(planted), planted):
        scope = {"df": planted.copy(), "pd": pd, "np": np}
        exec(found.pandas, scope)
        fixed[found.issue] = scope
    assert fixed["duplicates"]["df"]["id"].is_unique and len(fixed["duplicates"]["df"]) == N - 1
    assert fixed["invalid_email"]["df"]["email"].isna().sum() == 1
    assert (fixed["whitespace"]["df"]["city"] == fixed["whitespace"]["df"]["city"].str.strip()).all()
    # Each spelling's most common variant wins (ties: the first in sort order).
    assert sorted(fixed["inconsistent_case"]["df"]["city"].unique()) == ["Berlin", "PARIS"]
    assert fixed["mixed_date_formats"]["df"]["visit"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2024-01-02"]
    assert fixed["outliers"]["outliers"]["qty"].tolist() == ["9999"]
    assert fixed["missing_required"]["df_quarantine"]["name"].tolist() == [""]


def test_the_sql_snippets_run_on_postgresql_and_fix_what_they_name(planted, database_url, schema):
    table = f"{schema}.patients"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in planted.columns)
        conn.execute(sql.SQL("CREATE TABLE {}.patients ({})").format(sql.Identifier(schema), columns))
        with conn.cursor().copy(sql.SQL("COPY {}.patients FROM STDIN").format(sql.Identifier(schema))) as copy:
            for row in planted.itertuples(index=False):
                copy.write_row(row)
        results = {}
        for found in recommend(profile_frame(planted), planted, table):
            cursor = conn.execute(found.sql)
            results[found.issue] = cursor.fetchall() if cursor.description else cursor.rowcount

        def scalar(query: str):
            return conn.execute(sql.SQL(query).format(sql.Identifier(schema))).fetchone()[0]

        assert results["duplicates"] == 1 and scalar("SELECT count(DISTINCT id) = count(*) FROM {}.patients")
        assert results["invalid_email"] == 1 and scalar("SELECT count(*) FROM {}.patients WHERE email IS NULL") == 1
        assert scalar("SELECT count(*) FROM {}.patients WHERE city <> btrim(city)") == 0
        assert scalar("SELECT count(DISTINCT city) FROM {}.patients") == 2
        assert {row[0].isoformat() for row in results["mixed_date_formats"]} == {"2024-01-02"}
        assert [row[4] for row in results["outliers"]] == ["9999"]
        assert [row[5] for row in results["missing_required"]] == [""]


# Characters on which Python's re (pandas' str methods) and RE2 (pyarrow) disagree, or that trim,
# fold or group differently: Unicode digits and spaces, control characters, case folds.
ODD = "٣²\x0b\x1c\xa0\u2003İßẞ\n\t "
_KINDS = {
    "email": st.builds("{}@{}".format, st.text("abXY09._", min_size=1, max_size=4), st.sampled_from(["x.org", "mail.co.uk", "y.de"])),
    "phone": st.builds("{}{}".format, st.sampled_from(["030 ", "+49 30 ", "0564 "]), st.text("0123456789", min_size=6, max_size=8)),
    "integer": st.integers(-(10**6), 10**6).map(str),
    "decimal": st.sampled_from(["1,5", "2.25", "1.234,50", "12,000.5", "-0,25", "99", "100000,01", "3.5"]),
    "date": st.builds(
        lambda day, form: day.strftime(form), st.dates(date(1900, 1, 1), date(2099, 12, 31)), st.sampled_from(["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%Y/%m/%d"])
    ),
    "categorical": st.sampled_from(["Berlin", "berlin ", "BERLIN", "Köln", "köln", "Straße", "STRASSE", "New  York", "new york", "a\xa0b", "A\u2003B"]),
}


@st.composite
def planted_columns(draw) -> tuple[str, pd.Series]:
    """A column mostly of one kind, with a few rows blank, missing, noisy or holding ODD characters."""
    kind = draw(st.sampled_from(sorted(_KINDS)))
    values = draw(st.lists(_KINDS[kind], min_size=20, max_size=80))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(values) - 1))
        odd, value = draw(st.sampled_from(ODD)), values[at] or " "
        i = draw(st.integers(0, len(value) - 1))
        values[at] = draw(st.sampled_from([None, "", "  ", f" {value}\t", value[:i] + odd + value[i + 1 :], value + odd]))
        if draw(st.booleans()):
            values.append(draw(st.text("0123456789 aA@.,-:/" + ODD, max_size=12)))
    return ("phone" if kind == "phone" else "value"), pd.Series(values, dtype=TEXT)


def findings_on_rows(p, text: pd.Series) -> list[tuple[str, int, str]]:
    """What recommend_column finds, counted the simple way: pandas' str methods on every row."""
    filled = text.dropna()
    filled = filled[filled.str.strip() != ""]
    found = []
    repeated = len(filled) - filled.nunique()
    if p.uniqueness < 1 and repeated:
        found.append(("duplicates", repeated, f"{repeated} rows repeat a value of this key-like column"))
    if p.nulls + p.empties and p.completeness >= REQUIRED_SHARE:
        found.append(("missing_required", p.nulls + p.empties, f"{p.nulls + p.empties} of {p.rows} rows lack a value in a column filled almost everywhere"))
    untrimmed = int((filled != filled.str.strip()).sum())
    if untrimmed:
        found.append(("whitespace", untrimmed, f"{untrimmed} values carry surrounding whitespace"))
    if p.semantic_type == "categorical":
        folded = filled.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
        variants = filled.groupby(folded.to_numpy()).nunique()
        clashing = variants[variants > 1]
        if len(clashing):
            detail = f"{len(clashing)} values are written in several ways (e.g. {clashing.index[0]!r})"
            found.append(("inconsistent_case", int(folded.isin(clashing.index).sum()), detail))
    if p.semantic_type in ("email", "phone") and p.validity < 1:
        bad = int((~filled.str.strip().str.fullmatch(TYPE_PATTERNS[p.semantic_type])).sum())
        found.append((f"invalid_{p.semantic_type}", bad, f"{bad} values are not valid {p.semantic_type}s"))
    if p.semantic_type in ("date", "datetime"):
        used = {name: int(filled.str.strip().str.match(f"^{pattern}").sum()) for name, pattern in DATE_FORMATS.items()}
        used = {name: n for name, n in used.items() if n}
        if len(used) > 1:
            detail = "dates written as " + ", ".join(f"{name} ({n})" for name, n in used.items())
            found.append(("mixed_date_formats", len(filled) - max(used.values()), detail))
    if p.semantic_type in ("integer", "decimal") and len(filled) >= 4:
        typed = filled[filled.str.strip().str.fullmatch(TYPE_PATTERNS[p.semantic_type])]
        numbers = to_numbers(pa.array(typed.str.strip().to_numpy(dtype=object), pa.string())).to_numpy(zero_copy_only=False)
        q1, q3 = np.percentile(numbers, [25, 75])
        low, high = float(q1 - 1.5 * (q3 - q1)), float(q3 + 1.5 * (q3 - q1))
        outside = int(((numbers < low) | (numbers > high)).sum())
        if outside:
            found.append(("outliers", outside, f"{outside} values outside {low:g} .. {high:g} (IQR rule)\n{low!r} {high!r}"))
    return found


@settings(max_examples=300, deadline=None)
@given(planted_columns())
def test_recommendations_counted_on_distinct_values_are_those_counted_on_rows(column):
    name, text = column
    profile = profile_column(name, text)
    try:
        expected = findings_on_rows(profile, text)
    except pa.ArrowInvalid:  # a number in digits other than ASCII ones ('1٣'), which re takes for \d
        with pytest.raises(pa.ArrowInvalid):
            recommend_column(profile, count_text(text))
        return
    found = []
    for r in recommend_column(profile, count_text(text)):
        # The outliers' bounds, as the snippets carry them exactly.
        bounds = re.search(r"\(number < (.*)\) \| \(number > (.*)\)\]", r.pandas) if r.issue == "outliers" else None
        found.append((r.issue, r.rows, r.detail + (f"\n{bounds[1]} {bounds[2]}" if bounds else "")))
    assert found == expected
