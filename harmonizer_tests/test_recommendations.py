"""Recommendations: each planted issue is found once, and its pandas and SQL snippets really fix it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
from psycopg import sql

from harmonizer_pipeline.quality.profiling import profile_frame
from harmonizer_pipeline.quality.recommendations import recommend

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
