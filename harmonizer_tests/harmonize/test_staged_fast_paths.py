"""The staged step's vectorized fast paths against the per-value rules they stand in for."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.harmonize import rules

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Letters whose case rules differ (ß, dotless and dotted i, the DŽ digraphs, a Greek one), particles,
# roman numerals, Mc/Mac, and the separators a name is cut at.
NAME_PIECES = st.one_of(
    st.text("aAbBcCdDiIvVxXmMéÉßİıǅǄǆΣσ'’.-0 ", min_size=1, max_size=8),
    st.sampled_from(
        ["van", "Van", "de", "la", "XIV", "xiv", "Iv", "Mc", "Mac", "Mack", "Macdonald", "Mcdonald", "donald", "O'", "Müller", "DeVito", "Dijk-12", "ANNA"]
    ),
)
NAMES = st.lists(st.lists(NAME_PIECES, min_size=1, max_size=4).map(lambda pieces: "".join(pieces)), min_size=1, max_size=40)


@PROPERTY
@given(NAMES, st.booleans())
def test_names_as_written_are_the_ones_name_case_leaves_unchanged(names, family):
    written = rules._text(pd.Series(names, dtype="str")).dropna()
    as_written = rules._names_as_written(written, family)
    for name, unchanged in zip(written, as_written, strict=True):
        if unchanged:
            assert rules._name_case(name, family) == name, (name, family)


@PROPERTY
@given(NAMES, st.booleans())
def test_person_name_is_name_case_of_each_value(names, family):
    result = rules.person_name(pd.Series(names, dtype="str"), family=family)
    written = rules._text(pd.Series(names, dtype="str"))
    expected = [None if pd.isna(name) else rules._name_case(name, family) for name in written]
    assert [None if pd.isna(v) else v for v in result.values] == expected
    assert result.values.dtype == "str"


def test_names_as_written_decides_the_common_names():
    names = pd.Series(["Wagner-8990", "van Dijk", "O'Neil", "McDonald", "Müller", "Louis XIV", "Jean-Luc", "ANNA", "mcdonald"], dtype="str")
    assert rules._names_as_written(names, family=True).tolist() == [True] * 7 + [False] * 2


# Plainly written numbers, national or international (+, 00 or a wrong 0 after +), cut by the
# separators people type, with a prefix of a real number of some country so that many are valid.
PHONE_PREFIXES = ["", "+", "00", "0", "+0", "+49", "+49 30", "0049", "030", "0171", "+33", "+1", "+44", "+7", "+86", "+39 06", "+41"]
PHONES = st.lists(
    st.tuples(
        st.sampled_from(PHONE_PREFIXES),
        st.lists(st.tuples(st.sampled_from(["", " ", "-", "/", ".", "(", ")"]), st.text("0123456789", min_size=1, max_size=5)), max_size=5),
    ).map(lambda parts: parts[0] + "".join(separator + digits for separator, digits in parts[1])),
    min_size=1,
    max_size=40,
)


@PROPERTY
@given(PHONES, st.sampled_from(["DE", "FR", "US", "IT", "GB"]))
def test_e164_fast_answers_what_phonenumbers_answers(numbers, region):
    written = rules._text(pd.Series(numbers, dtype="str"))
    fast = rules._e164_fast(written, region)
    assert fast.dtype == "str" and fast.index.equals(written.index)
    for number, answer in zip(written, fast, strict=True):
        if not pd.isna(answer):
            assert answer == rules._e164(number, region), (number, region)


DATE_FORMATS = [None, ["%d.%m.%Y"], ["%m/%d/%Y"], ["%Y/%m/%d"], ["%d-%m-%Y", "%m-%d-%Y"], ["%Y%m%d"], ["%d.%m.%y"], ["%d %m %Y"]]


@st.composite
def written_dates(draw):
    year, month, day = draw(st.integers(0, 9999)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
    fields = {"Y": str(year).zfill(draw(st.sampled_from([1, 4]))), "m": str(month).zfill(draw(st.sampled_from([1, 2]))),
              "d": str(day).zfill(draw(st.sampled_from([1, 2])))}  # fmt: skip
    order = draw(st.sampled_from(["dmY", "mdY", "Ymd", "Ydm"]))
    separator = draw(st.sampled_from([".", "-", "/", " ", ""]))
    return separator.join(fields[f] for f in order) + draw(st.sampled_from(["", "", " 10:00", "T10:00+02:00"]))


@settings(PROPERTY, max_examples=100)  # pandas' mixed parser reads each date alone
@given(st.lists(written_dates(), min_size=1, max_size=40), st.sampled_from(DATE_FORMATS), st.booleans())
def test_plain_dates_are_the_dates_the_parsers_read(dates, formats, dayfirst):
    written = rules._text(pd.Series(dates, dtype="str"))
    plain = rules._plain_dates(written, formats or [])
    parsed = rules._parsed_dates(written, formats or [], dayfirst)
    for text, day, expected in zip(written, plain, parsed, strict=True):
        if day is not None:
            assert day == expected, (text, formats)
    result = rules.date(pd.Series(dates, dtype="str"), formats=formats, dayfirst=dayfirst)
    assert result.values.tolist() == parsed.tolist()


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.text(), st.text(" \t\n\x0b\x1c\x85\xa0\u2003\u3000\u200bAbc１ﬁé.-"), st.text("ab  ", min_size=1)), max_size=40))
def test_text_is_every_value_normalized_and_trimmed(values):
    series = pd.Series(values, dtype="str")
    expected = pc.utf8_trim_whitespace(rules._normalized(pa.array(series.array, pa.string()))).to_pylist()
    assert [None if pd.isna(v) else v for v in rules._text(series)] == [None if v in (None, "") else v for v in expected]


def test_needs_normalizing_reads_a_sliced_array_from_its_offset():
    array = pa.array(["a  b", "a b", None, "é", "x\ty", " z "]).slice(1)
    assert rules._needs_normalizing(array).tolist() == [False, False, True, True, False]


def number_bits(values: pd.Series) -> list:
    """Each number's exact bits (the sign of zero too), None for NULL."""
    return [None if pd.isna(v) else np.float64(v).tobytes() for v in values]


PLAIN_NUMBERS = st.builds(
    lambda sign, whole, fraction: sign + whole + fraction,
    st.sampled_from(["", "", "-"]),
    st.text("0123456789", min_size=1, max_size=9),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda digits: "<point>" + digits)),
)


@PROPERTY
@given(
    st.lists(st.one_of(st.none(), PLAIN_NUMBERS, st.sampled_from(["1.234,5", "1,234.5", "-0", "−3", "1e3", "12345678901234567"])), max_size=30), st.booleans()
)
def test_plain_numbers_are_the_numbers_pandas_reads(values, decimal_comma):
    point = "," if decimal_comma else "."
    written = rules._text(pd.Series([None if v is None else v.replace("<point>", point) for v in values], dtype="str"))
    plain = rules._plain_numbers(written, decimal_comma)
    if plain is not None:
        assert plain.dtype == "Float64" and plain.index.equals(written.index)
        assert number_bits(plain) == number_bits(rules._parsed_numbers(written, decimal_comma))


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.text(), st.text("0123456789 +-()٣１"), st.just("")), max_size=30), st.integers(0, 3))
def test_ascii_digits_is_removing_every_non_digit(values, start):
    array = pa.array(values, pa.string()).slice(min(start, len(values)))
    assert rules._ascii_digits(array).to_pylist() == pc.replace_substring_regex(array, r"\D", "").to_pylist()


@settings(PROPERTY, max_examples=100)  # drawing from the patterns is slow
@given(st.sampled_from(sorted(rules._POSTAL)), st.data())
def test_a_postal_code_in_its_normalized_form_comes_out_as_it_is(country, data):
    form = rules._POSTAL[country]
    normalized_form = st.from_regex(form.pattern, fullmatch=True).filter(lambda code: code.isascii())
    values = data.draw(st.lists(st.one_of(normalized_form, st.text("0123456789ABCXYZab -.", min_size=1, max_size=10)), min_size=1, max_size=30))
    written = rules._text(pd.Series(values, dtype="str"))
    normalized = rules._postal_normalized(form, written)
    for value, code in zip(written, normalized, strict=True):
        if not pd.isna(value) and re.fullmatch(form.pattern, value):
            assert code == value, (country, value)
    assert rules._postal_in(country, written).tolist() == normalized.tolist()
