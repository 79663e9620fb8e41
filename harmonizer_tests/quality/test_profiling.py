"""Column profiles of raw text: planted values of each kind must be typed, counted and flagged exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.quality import profiling
from harmonizer_pipeline.quality.profiling import count_text, profile_column, profile_frame

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def column(values, name: str = "value"):
    return profile_column(name, pd.Series(values, dtype=TEXT))


@pytest.mark.parametrize(
    ("values", "semantic_type"),
    [
        (["1", "-20", "300", "0"], "integer"),
        (["1.5", "1.234,50", "-0,25", "12.000"], "decimal"),
        (["true", "FALSE", "yes", "n"], "boolean"),
        (["2024-01-02", "31.12.2023", "1999/07/04"], "date"),
        (["2024-01-02T03:04:05", "2024-01-02 03:04", "2024-01-02T03:04:05.123Z"], "datetime"),
        (["ann@example.com", "bob.smith+x@mail.co.uk"], "email"),
        (["+49 30 1234567", "0564 2789485", "(030) 123-4567"], "phone"),
        (["0f8fad5b-d9cb-469f-a165-70867728950e", "7c9e6679-7425-40de-944b-e07fc1f90ae7"], "uuid"),
        (["https://example.com/a?b=1", "http://x.org"], "url"),
        (["192.168.0.1", "10.0.0.255", "2001:db8::1"], "ip"),
        (["€12.50", "1.234,56 EUR", "$ 7", "12 CHF"], "currency amount"),
    ],
)
def test_each_semantic_type_is_recognised(values, semantic_type):
    assert column(values).semantic_type == semantic_type


def test_digit_codes_are_postal_codes_by_name_and_integers_otherwise():
    codes = ["10115", "80331", "50667", "20095"]
    assert column(codes, "zip").semantic_type == "postal code"
    assert column(codes, "count").semantic_type == "integer"
    assert column(["SW1A 1AA", "EC1A 1BB", "1012 AB"], "postcode").semantic_type == "postal code"


def test_digit_codes_with_leading_zeros_are_not_numbers():
    assert column([f"{n:08d}" for n in range(1, 300)], "patient_code").semantic_type == "free text"


def test_few_distinct_values_are_categorical_and_many_free_text():
    assert column(["red", "green", "blue", "red"] * 30).semantic_type == "categorical"
    assert column([f"note number {n} about something" for n in range(200)]).semantic_type == "free text"


def test_counts_shapes_lengths_and_range():
    profile = column(["John42", "  ", None, "Ann7", "John42", ""])
    assert (profile.rows, profile.nulls, profile.empties, profile.distinct) == (6, 1, 2, 4)
    assert profile.top_values[0] == ("John42", 2)
    assert profile.patterns == [("Aa99", 2), ("Aa9", 1)]
    assert (profile.length_min, profile.length_max) == (0, 6)
    numbers = column(["9", "10", "1.5", "-2"], "n")
    assert numbers.semantic_type == "decimal"
    assert (numbers.minimum, numbers.maximum) == ("-2", "10")  # by number, not by text
    german = column(["1.234,50", "999,99", "12.000,00"], "amount")
    assert (german.minimum, german.maximum) == ("999,99", "12.000,00")


@pytest.mark.parametrize(
    ("values", "kind", "flagged"),
    [
        (["4111 1111 1111 1111", "5500-0000-0000-0004"], "card", True),
        (["4111 1111 1111 1112", "1234567812345678"], "card", False),  # 16 digits failing Luhn
        (["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"], "iban", True),
        (["DE89 3704 0044 0532 0130 01"], "iban", False),  # wrong check digits
        (["078-05-1120", "219-09-9999"], "national_id", True),
        (["000-12-3456", "666-12-3456"], "national_id", False),  # never issued
        (["ann@example.com", "x@y.org"], "email", True),
        (["+49 30 1234567", "0564 2789485"], "phone", True),
        (["1960-09-11", "31.12.2023"], "phone", False),  # dates are not phones
        (["00000001", "12345678"], "phone", False),  # bare digit codes are not phones
        (["192.168.0.1", "8.8.8.8"], "ip", True),
    ],
)
def test_pii_detectors(values, kind, flagged):
    profile = column(values)
    assert (kind in profile.pii) is flagged
    assert profile.pii_counts.get(kind, 0) == (len(values) if flagged else 0)


def test_quality_score_follows_the_documented_formula():
    # 10 rows: 2 missing; of 8 filled, 6 valid integers; 'x' and ' 7' are the odd ones.
    profile = column(["1", "2", "3", "4", "5", "6", "x", " 7", None, ""], "n")
    assert profile.semantic_type == "categorical"  # 75% integers: under the 95% bar
    strict = column([str(n) for n in range(1, 101)] + [" 101", None], "n")
    assert strict.semantic_type == "integer"
    assert (strict.completeness, strict.validity, strict.uniqueness) == (round(101 / 102, 4), 1.0, 1.0)
    expected = 100 * (0.4 * strict.completeness + 0.3 * 1.0 + 0.15 * 1.0 + 0.15 * strict.consistency)
    assert strict.quality_score == round(expected, 1)
    assert strict.consistency == round((1 - 1 / 101) * (90 / 101), 4)  # ' 101' untrimmed; '99' shape is 90 of 101


def test_a_frame_profile_skips_lineage_columns_and_averages_scores():
    frame = pd.DataFrame({"id": pd.Series(["1", "2"], dtype=TEXT), "email": pd.Series(["a@b.org", None], dtype=TEXT), "_row_number": [2, 3]})
    profile = profile_frame(frame)
    assert [c.name for c in profile.columns] == ["id", "email"]
    assert profile.rows == 2
    assert profile.quality_score == round(np.mean([c.quality_score for c in profile.columns]), 1)


def test_high_cardinality_columns_are_typed_from_a_sample_but_counted_exactly(monkeypatch):
    monkeypatch.setattr(profiling, "SAMPLE_DISTINCT", 500)
    values = [str(n) for n in range(5000)] + ["oops"] * 10
    profile = column(values, "id")
    assert profile.semantic_type == "integer"
    assert profile.distinct == 5001 and profile.validity == round(5000 / 5010, 4)
    assert (profile.minimum, profile.maximum) == ("0", "4999")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", " a", "", "  ", "ä", "\xa0"]), st.text(max_size=4)), max_size=60),
    st.lists(st.integers(0, 60), max_size=4),
)
def test_counted_text_is_value_counts_in_its_order_with_each_rows_value(values, cuts):
    # In chunks, as Arrow-backed pandas columns read from PostgreSQL come.
    bounds = [0, *sorted(min(cut, len(values)) for cut in cuts), len(values)]
    chunked = pa.chunked_array([pa.array(values[a:b], pa.large_string()) for a, b in zip(bounds, bounds[1:])], pa.large_string())
    text = count_text(pd.Series(pd.arrays.ArrowStringArray(chunked), dtype=TEXT))
    counted = pc.value_counts(pa.array(values, pa.string()).drop_null())
    assert text.values.to_pylist() == counted.field("values").to_pylist()
    assert text.counts.tolist() == counted.field("counts").to_pylist()
    assert text.values.take(pa.array(text.codes)).to_pylist() == [v for v in values if v is not None]
    assert (text.rows, text.nulls) == (len(values), values.count(None))


def test_phone_columns_written_in_other_countries_formats_are_phone_columns():
    # New York, London, San Francisco, Berlin, Paris; national and international, mixed.
    values = ["(212) 555-3999", "020 7946 0357", "+1 415 555 2741", "030 1234567", "06 12 34 56 78", "0049 30 901820", "212-555-0147"] * 3
    found = column(values, "contact")
    assert (found.semantic_type, found.pii, found.pii_counts["phone"], found.validity) == ("phone", ["phone"], 21, 1.0)


@pytest.mark.parametrize(
    ("values", "semantic_type"),
    [
        (["2024-01-15", "15.01.2024", "01/15/2024", "2024/01/15", "2023-12-31", "2022-02-02"], "date"),
        (["10001", "10002", "0012345678", "10004", "10005", "10006", "10007"], "categorical"),  # ids, one with leading zeros
        (["12-345-678", "22-345-679", "32-345-670", "42-345-671", "52-345-672", "62-345-673"], "categorical"),  # grouped ids
        (["123 456 789", "223 456 781", "323 456 782", "423 456 783", "523 456 784", "623 456 785"], "decimal"),  # amounts grouped by spaces
        (["1 234 567", "12 345 678", "1,234.56", "234 567", "99", "12 345"], "decimal"),
        (["0001-2345", "0002-2345", "0003-2345", "0004-2345", "0005-2345", "0006-2345"], "categorical"),  # codes with a leading 0
    ],
)
def test_near_misses_of_phone_numbers_are_not_phones(values, semantic_type):
    found = column(values * 3, "value")
    assert (found.semantic_type, "phone" in found.pii) == (semantic_type, False)


def test_phonenumbers_confirms_a_bounded_number_of_values_per_column(monkeypatch):
    parsed = []
    real_parse = profiling.phonenumbers.parse

    def counting_parse(number, region=None):
        parsed.append(number)
        return real_parse(number, region)

    monkeypatch.setattr(profiling.phonenumbers, "parse", counting_parse)
    # 5,000 distinct numbers with a leading 0 that no region's plan knows: every region is tried.
    found = column([f"0{n:04d} 00{n:04d}" for n in range(5000)], "value")
    assert "phone" not in found.pii and found.semantic_type != "phone"
    assert len(set(parsed)) == profiling.PHONE_CHECKS
    assert len(parsed) <= 2 * profiling.PHONE_CHECKS * len(profiling.PHONE_REGIONS)  # the type's sample, then the PII count's


def textbook_luhn(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 -", min_size=0, max_size=30), max_size=40), st.sampled_from([pa.string(), pa.large_string()]))
def test_the_vectorized_luhn_check_agrees_with_the_textbook_one(texts, text_type):
    sliced = pa.array(["4111 1111 1111 1111", *texts], text_type).slice(1)  # an array not starting at its buffers' start
    assert profiling.luhn_valid(sliced).tolist() == [textbook_luhn(t) for t in texts]
