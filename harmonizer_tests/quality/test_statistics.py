"""Profile statistics of raw text: exact figures on small planted columns, bad input (all empty,
one value, constant, non-numbers among numbers), the fast weighted computations checked against
numpy and pandas on the expanded rows, and the round trip through PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.bookkeeping.statistics import delete_statistics, load_statistics, save_statistics
from harmonizer_pipeline.privacy.policy import CLEAR, MASKED
from harmonizer_pipeline.quality import statistics
from harmonizer_pipeline.quality.statistics import (
    Histogram,
    MissingPattern,
    cramers_v,
    number_statistics,
    profile_with_statistics,
    ranks_within,
    weighted_quantiles,
)
from harmonizer_pipeline.quality.statistics_display import column_json, column_line, file_json, file_lines, statistics_markdown

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def stats_of(columns: dict[str, list]):
    frame = pd.DataFrame({name: pd.Series(values, dtype=TEXT) for name, values in columns.items()})
    return profile_with_statistics(frame)


def test_numbers_with_decimal_commas_are_read_as_the_profile_reads_them():
    profile, found = stats_of({"amount": ["1,5", "2,5", "-3,0", "0", "10,0", "2,5", "1.234,5"]})
    assert profile.columns[0].semantic_type == "decimal"
    numbers = found.column("amount").numbers
    assert numbers is not None
    assert (numbers.count, numbers.invalid, numbers.zeros, numbers.negatives) == (7, 0, 1, 1)
    assert (numbers.minimum, numbers.p25, numbers.p50, numbers.p75, numbers.maximum) == (-3.0, 0.75, 2.5, 6.25, 1234.5)
    assert numbers.mean == pytest.approx(1248 / 7)
    assert numbers.std == pytest.approx(465.763428607884)
    assert (numbers.p5, numbers.p95) == (pytest.approx(-2.1), pytest.approx(867.15))
    # Six distinct numbers: six bins of equal width from -3 to 1234.5.
    assert numbers.histogram == Histogram([-3.0, 203.25, 409.5, 615.75, 822.0, 1028.25, 1234.5], [6, 0, 0, 0, 0, 1])


def test_non_numbers_in_a_number_column_are_counted_and_left_out():
    _, found = stats_of({"count": [str(n) for n in range(1, 21)] + ["n/a"]})
    numbers = found.column("count").numbers
    assert numbers is not None and found.column("count").semantic_type == "integer"
    assert (numbers.count, numbers.invalid, numbers.mean, numbers.minimum, numbers.maximum) == (20, 1, 10.5, 1.0, 20.0)
    assert numbers.histogram.counts == [1] * 20


def test_currency_amounts_lose_their_symbols():
    _, found = stats_of({"price": ["€12.50", "€7.50", "€-2.00", "€0.00"]})
    numbers = found.column("price").numbers
    assert numbers is not None
    assert (numbers.mean, numbers.zeros, numbers.negatives, numbers.minimum, numbers.maximum) == (4.5, 1, 1, -2.0, 12.5)


def test_one_value_has_no_standard_deviation_and_one_bin():
    _, found = stats_of({"n": ["5"]})
    numbers = found.column("n").numbers
    assert numbers is not None
    assert (numbers.count, numbers.mean, numbers.std, numbers.p5, numbers.p50, numbers.p95) == (1, 5.0, None, 5.0, 5.0, 5.0)
    assert numbers.histogram == Histogram([4.5, 5.5], [1])


def test_an_all_empty_column_has_no_statistics_and_is_missing_in_every_row():
    _, found = stats_of({"id": ["1", "2", "3"], "empty": ["", None, "  "]})
    assert found.column("empty") == statistics.ColumnStatistics("empty", "free text")
    assert found.missing_patterns == [MissingPattern(["empty"], 3)]
    assert column_json(found.column("empty"), None, MASKED) is None and column_line(found.column("empty"), None, MASKED) is None


def test_day_first_dates_are_counted_per_month():
    _, found = stats_of({"day": ["13/01/2024", "02/02/2024", "28/02/2024", "15/03/2024", "31/02/2024", "01/06/2024", ""]})
    dates = found.column("day").dates
    assert dates == statistics.DateStatistics(
        count=5,
        invalid=1,  # 31 February
        first="2024-01-13",
        last="2024-06-01",
        period="month",
        periods=[("2024-01", 1), ("2024-02", 2), ("2024-03", 1), ("2024-04", 0), ("2024-05", 0), ("2024-06", 1)],
    )


def test_month_first_dates_are_read_month_first_and_counted_per_day():
    _, found = stats_of({"day": ["01/13/2024", "02/02/2024", "12/25/2023"]})
    dates = found.column("day").dates
    assert dates is not None
    assert (dates.first, dates.last, dates.period, len(dates.periods)) == ("2023-12-25", "2024-02-02", "day", 40)
    assert [p for p in dates.periods if p[1]] == [("2023-12-25", 1), ("2024-01-13", 1), ("2024-02-02", 1)]


def test_dates_over_decades_are_counted_per_year_and_datetimes_by_their_day():
    _, found = stats_of(
        {"born": ["1950-06-01", "1960-01-01", "31.12.1999", "1999-05-05"], "at": ["2024-01-02T03:04:05", "2024-01-05 10:00", "2024-01-05T00:00:00Z", ""]}
    )
    born, at = found.column("born").dates, found.column("at").dates
    assert born is not None and at is not None
    assert (born.period, len(born.periods), [p for p in born.periods if p[1]]) == ("year", 50, [("1950", 1), ("1960", 1), ("1999", 2)])
    assert (at.period, at.periods) == ("day", [("2024-01-02", 1), ("2024-01-03", 0), ("2024-01-04", 0), ("2024-01-05", 2)])


def test_text_lengths_and_top_values():
    _, found = stats_of({"colour": ["red", "green", "blue", "red", "", None]})
    text = found.column("colour").text
    assert text == statistics.TextStatistics(3, 3.75, 5, Histogram([3.0, 4.0, 5.0, 6.0], [2, 1, 1]), [("red", 2), ("green", 1), ("blue", 1), ("", 1)])


def test_missing_patterns_count_the_columns_missing_together():
    _, found = stats_of({"a": ["1", "", None, "4", "", "6"], "b": ["x", "", "z", None, "", "w"], "c": [""] * 6, "d": list("uvwxyz")})
    # Equal counts are ordered by the columns' positions.
    assert found.missing_patterns == [
        MissingPattern(["a", "b", "c"], 2),
        MissingPattern(["c"], 2),
        MissingPattern(["a", "c"], 1),
        MissingPattern(["b", "c"], 1),
    ]


def test_missing_patterns_of_more_columns_than_one_code_holds():
    rng = np.random.default_rng(7)
    masks = rng.random((40, 70)) < 0.3
    frame = pd.DataFrame({f"c{j}": pd.Series(np.where(masks[:, j], "", "v"), dtype=TEXT) for j in range(70)})
    _, found = profile_with_statistics(frame)
    names = [f"c{j}" for j in range(70)]
    expected = pd.Series([tuple(n for n, m in zip(names, row, strict=True) if m) for row in masks]).value_counts()
    top = sorted(((-n, [names.index(c) for c in cols], list(cols)) for cols, n in expected.items() if cols))[: statistics.MISSING_PATTERNS_TOP]
    assert found.missing_patterns == [MissingPattern(cols, -n) for n, _, cols in top]


def test_correlations_of_number_columns_and_constant_columns_store_none():
    _, found = stats_of({"x": ["1", "2", "3", "4", "5", "6"], "y": ["3", "5", "7", "9", "11", ""], "z": ["1", "4", "9", "16", "25", "36"], "k": ["7"] * 6})
    by_pair = {(a.column_a, a.column_b, a.measure): (a.value, a.rows) for a in found.associations}
    assert by_pair[("x", "y", "pearson")] == (pytest.approx(1.0), 5) and by_pair[("x", "y", "spearman")] == (pytest.approx(1.0), 5)
    assert by_pair[("x", "z", "pearson")] == (pytest.approx(0.978917263677818), 6) and by_pair[("x", "z", "spearman")] == (pytest.approx(1.0), 6)
    assert by_pair[("x", "k", "pearson")] == (None, 6) and by_pair[("x", "k", "spearman")] == (None, 6)
    assert len(found.associations) == 12  # 6 pairs, each Pearson and Spearman
    assert file_json(found)["correlations"][2] == {"columns": ["x", "k"], "pearson": None, "spearman": None, "rows": 6}


def test_cramers_v_of_category_columns_bias_corrected():
    pairs = {"p": "P", "q": "Q"}
    a = ["p", "q"] * 10
    _, found = stats_of({"a": a, "b": [pairs[v] for v in a], "c": ["P", "P", "Q", "Q"] * 5, "same": ["s"] * 20})
    assert [(x.column_a, x.column_b, x.value, x.rows) for x in found.associations] == [
        ("a", "b", 1.0, 20),
        ("a", "c", 0.0, 20),  # independent
        ("a", "same", None, 20),  # a constant column: one category, nothing to associate
        ("b", "c", 0.0, 20),
        ("b", "same", None, 20),
        ("c", "same", None, 20),
    ]


def test_pairwise_measures_read_a_sample_above_cross_sample_rows(monkeypatch):
    monkeypatch.setattr(statistics, "CROSS_SAMPLE_ROWS", 4)
    _, found = stats_of({"x": ["1", "2", "3", "4", "5", "6"], "y": ["2", "4", "6", "8", "10", "12"], "e": ["", "", "1", "2", "3", "4"]})
    assert (found.rows, found.sampled_rows) == (6, 4)
    assert {(a.measure, a.rows) for a in found.associations if (a.column_a, a.column_b) == ("x", "y")} == {("pearson", 4), ("spearman", 4)}
    assert found.missing_patterns == [MissingPattern(["e"], 2)]  # exact over every row
    assert "on 4 sampled rows" in file_lines(found)[1]


def test_values_of_pii_columns_are_masked_where_shown():
    _, found = stats_of({"phone": ["+49 30 1234567", "+49 30 7654321", "+49 30 1234567"], "n": ["1", "2", "3"]})
    shown = column_json(found.column("phone"), "phone", MASKED)
    assert shown is not None and shown["top_values"] == [["+49 *** **67", 2], ["+49 *** **21", 1]]
    clear = column_json(found.column("phone"), "phone", CLEAR)
    assert clear is not None and clear["top_values"] == [["+49 30 1234567", 2], ["+49 30 7654321", 1]]
    assert column_line(found.column("phone"), "phone", MASKED) == "length 14-14 (mean 14.0); top +49 *** **67 (2), +49 *** **21 (1)"
    # A number column flagged PII shows no figure that is a value.
    masked_numbers = column_json(found.column("n"), "other", MASKED)
    assert masked_numbers is not None
    assert {masked_numbers[k] for k in ("mean", "std", "min", "p5", "p50", "max")} == {"***"} and masked_numbers["histogram"]["edges"] == ["***"] * 4
    assert (masked_numbers["count"], masked_numbers["histogram"]["counts"]) == (3, [1, 1, 1])


def test_markdown_has_a_line_per_column_and_the_measures_across_columns():
    _, found = stats_of({"x": ["1", "2", "3", "4"], "y": ["2", "4", "6", ""], "when": ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]})
    assert statistics_markdown(found, {}, MASKED).splitlines() == [
        "- `x` (integer) numbers: mean 2.5 std 1.29099 min 1 p5 1.15 p25 1.75 median 2.5 p75 3.25 p95 3.85 max 4; zeros 0, negatives 0",
        "- `y` (integer) numbers: mean 4 std 2 min 2 p5 2.2 p25 3 median 4 p75 5 p95 5.8 max 6; zeros 0, negatives 0",
        "- `when` (date) dates: 2024-01-01 to 2024-01-03, 3 day(s), the busiest 2024-01-02 (2 rows)",
        "- missing together: y (1 rows)",
        "- correlations (Pearson / Spearman): x ~ y 1.000 / 1.000",
    ]


def test_statistics_round_trip_through_postgresql(database_url, schema):
    _, found = stats_of({
        "amount": ["1,5", "2,5", "", "-3,0"] * 5, "day": ["01.02.2024", "15.03.2024", "2024-04-01", ""] * 5,
        "colour": ["red", "blue", "red", ""] * 5, "size": ["S", "M", "S", "L"] * 5, "empty": [""] * 20,
    })  # fmt: skip
    with psycopg.connect(database_url) as conn:
        save_statistics(conn, schema, "f.csv", "run-1", found)
        assert load_statistics(conn, schema, "f.csv") == found
        assert load_statistics(conn, schema, "other.csv") is None
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM quality.column_statistics WHERE source = %(s)s), (SELECT count(*) FROM quality.missing_patterns WHERE source = %(s)s),"
            " (SELECT count(*) FROM quality.column_associations WHERE source = %(s)s)",
            {"s": schema},
        ).fetchone()
        assert counts == (5, len(found.missing_patterns), 1) and len(found.missing_patterns) == 3
        assert delete_statistics(conn, schema, "f.csv") == 9
        assert load_statistics(conn, schema, "f.csv") is None


# The fast statistics against the obvious computation on the expanded rows.


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-1000, 1000).map(lambda n: n / 4), st.integers(1, 5)), min_size=1, max_size=30, unique_by=lambda t: t[0]))
def test_weighted_number_statistics_equal_numpy_on_the_rows(pairs):
    values, counts = np.array([v for v, _ in pairs]), np.array([c for _, c in pairs])
    rows = np.repeat(values, counts)
    found = number_statistics(values, counts)
    assert found is not None
    assert found.mean == pytest.approx(rows.mean()) and found.count == len(rows)
    assert (found.std is None) if len(rows) == 1 else found.std == pytest.approx(rows.std(ddof=1), abs=1e-9)
    quantiles = [found.p5, found.p25, found.p50, found.p75, found.p95]
    assert quantiles == pytest.approx(np.quantile(rows, statistics.QUANTILES).tolist())
    assert (found.minimum, found.maximum, found.zeros, found.negatives) == (rows.min(), rows.max(), int((rows == 0).sum()), int((rows < 0).sum()))
    assert found.histogram.counts == np.histogram(rows, bins=found.histogram.edges)[0].tolist()
    assert len(found.histogram.counts) == min(statistics.HISTOGRAM_BINS, len(np.unique(values)))
    assert weighted_quantiles(np.sort(values), counts[np.argsort(values)], [0.0, 1.0]) == [rows.min(), rows.max()]


def cramers_v_by_hand(a: list[str], b: list[str]) -> float | None:
    table = pd.crosstab(pd.Series(a), pd.Series(b))
    n, (r, k) = len(a), table.shape
    if r < 2 or k < 2:
        return None
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table.to_numpy() - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    return math.sqrt(phi2 / min(rc - 1, kc - 1)) if min(rc - 1, kc - 1) > 0 else None


numbers_or_missing = st.one_of(st.integers(-50, 50).map(str), st.sampled_from(["", None]))
categories_or_missing = st.sampled_from(["a", "b", "c", "", None])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(3, 40).flatmap(
        lambda n: st.tuples(
            *(st.lists(s, min_size=n, max_size=n) for s in (numbers_or_missing, numbers_or_missing, categories_or_missing, categories_or_missing))
        )
    )
)
def test_measures_across_columns_equal_pandas_on_the_rows(columns):
    x, y, u, v = columns
    profile, found = stats_of({"x": x, "y": y, "u": u, "v": v})
    types = [c.semantic_type for c in profile.columns]
    frame = pd.DataFrame({"x": x, "y": y, "u": u, "v": v}).replace("", None)
    # Missing patterns: pandas' groupby of the rows' missing columns.
    missing = frame.isna()
    expected = missing.apply(lambda row: tuple(c for c in frame.columns if row[c]), axis=1).value_counts()
    ranked = sorted(((-n, [list(frame.columns).index(c) for c in cols], list(cols)) for cols, n in expected.items() if cols))
    assert found.missing_patterns == [MissingPattern(cols, -n) for n, _, cols in ranked[: statistics.MISSING_PATTERNS_TOP]]
    measures = {(a.column_a, a.column_b, a.measure): a for a in found.associations}
    if types[:2] == ["integer", "integer"]:
        both = frame[["x", "y"]].dropna().astype(float)
        for method in ("pearson", "spearman"):
            found_value = measures[("x", "y", method)]
            # Spearman: Pearson of the average ranks (pandas' own Spearman needs scipy).
            ranked = both.rank(method="average") if method == "spearman" else both
            expected_value = ranked["x"].corr(ranked["y"]) if len(both) > 1 else math.nan
            assert found_value.rows == len(both)
            if math.isnan(expected_value):
                assert found_value.value is None
            else:
                assert found_value.value == pytest.approx(expected_value, abs=1e-9)
    if types[2:] == ["categorical", "categorical"]:
        both = frame[["u", "v"]].dropna()
        by_hand = cramers_v_by_hand(list(both["u"]), list(both["v"]))
        association = measures[("u", "v", "cramers_v")]
        assert association.rows == len(both)
        # V is a square root: rounding of 1e-16 in phi² shows as 1e-8 in V.
        assert association.value is None if by_hand is None else association.value == pytest.approx(by_hand, abs=1e-6)


def test_cramers_v_is_none_without_two_categories_on_each_side():
    assert cramers_v(np.array([0, 0, 0]), np.array([0, 1, 2])) is None
    assert cramers_v(np.array([0]), np.array([1])) is None


def test_only_the_first_paired_columns_max_columns_of_each_kind_are_paired(monkeypatch):
    monkeypatch.setattr(statistics, "PAIRED_COLUMNS_MAX", 2)
    _, found = stats_of({"x": ["1", "2", "3"], "y": ["2", "4", "7"], "z": ["3", "1", "2"], "a": ["p", "q", "p"], "b": ["P", "Q", "Q"], "c": ["u", "u", "v"]})
    assert [(a.column_a, a.column_b, a.measure) for a in found.associations] == [("x", "y", "pearson"), ("x", "y", "spearman"), ("a", "b", "cramers_v")]


def test_a_column_of_another_length_than_the_file_is_refused():
    collector = statistics.StatisticsCollector(3)
    values = pd.Series(["1", "2"], dtype=TEXT)
    text = statistics.count_text(values)
    with pytest.raises(ValueError, match=r"^column 'n' has 2 rows, the file 3$"):
        collector.add(values, text, statistics.profile_column("n", text))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(-3, 3).map(float), st.just(math.nan)), st.booleans()), min_size=1, max_size=30))
def test_ranks_within_equal_pandas_average_ranks_of_the_rows_chosen(cells):
    values, chosen = np.array([v for v, _ in cells]), np.array([c for _, c in cells]) & ~np.isnan([v for v, _ in cells])
    ranks = ranks_within(values, np.argsort(values, kind="stable"), chosen)
    assert ranks.tolist() == pd.Series(values[chosen]).rank(method="average").tolist()
