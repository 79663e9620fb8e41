"""Standardizers: exact outputs and failure masks on good, bad and edge values; option errors; speed."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from harmonizer_pipeline.harmonize import rules
from harmonizer_pipeline.harmonize.rules import RULES, RuleError, validate_options

NBSP = "\u00a0"


def as_list(series: pd.Series) -> list:
    return [None if v is pd.NaT or pd.isna(v) else v for v in series.tolist()]


def run(rule: str, values: list, dtype=object, **options) -> tuple[list, list[bool]]:
    """The rule on `values` under a non-default index: (values with NULL as None, failed)."""
    series = pd.Series(values, dtype=dtype, index=range(100, 100 + len(values)))
    result = RULES[rule](series, **options)
    assert result.values.index.equals(series.index) and result.failed.index.equals(series.index)
    assert result.failed.dtype == bool
    return as_list(result.values), result.failed.tolist()


@pytest.mark.parametrize(
    ("values", "case", "expected"),
    [
        (["  a\tb  ", f"x{NBSP}{NBSP}y", "a\u2003\u3000b", "x\u200by"], None, ["a b", "x y", "a b", "xy"]),
        (["１２３", "ﬁne", "Ｔｅｘｔ"], None, ["123", "fine", "Text"]),
        (["Hello World", "ÄRGER"], "lower", ["hello world", "ärger"]),
        (["hello world", "äbc"], "upper", ["HELLO WORLD", "ÄBC"]),
        (["hello WORLD"], "title", ["Hello World"]),
        ([None, "", "   ", NBSP, np.nan], None, [None, None, None, None, None]),
        ([1234.0, 1.5, 7, True], None, ["1234", "1.5", "7", "True"]),
    ],
)
def test_text(values, case, expected):
    assert run("text", values, case=case) == (expected, [False] * len(values))


def test_text_returns_str_dtype():
    assert RULES["text"](pd.Series([" a ", None], dtype=object)).values.dtype == "str"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("  Ann.Lee@Example.COM ", "ann.lee@example.com"),
        ("bob+tag@mail.co.uk", "bob+tag@mail.co.uk"),
        ("ｊｏｅ＠ｘ．ｄｅ", "joe@x.de"),  # full-width forms fold under NFKC
        ("o'hara@sub-domain.example.org", "o'hara@sub-domain.example.org"),
        ("no-at-sign.de", None),
        ("two@@x.de", None),
        ("a@b@x.de", None),
        ("@x.de", None),
        ("a..b@x.de", None),
        (".a@x.de", None),
        ("a b@x.de", None),
        ("a@localhost", None),
        ("a@x..de", None),
        ("a@-x.de", None),
        ("a@x.d", None),
        ("a@x.d3", None),
        ("a@x_y.de", None),
    ],
)
def test_email(value, expected):
    assert run("email", [value]) == ([expected], [expected is None])


def test_email_null_and_blank_are_not_failures():
    assert run("email", [None, "", "  ", np.nan]) == ([None] * 4, [False] * 4)


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("030 123456", "DE", "+4930123456"),
        ("+49 30 123456", "DE", "+4930123456"),
        ("0049 (0)30 123456", "DE", "+4930123456"),
        ("+49 (0)30 123456", "DE", "+4930123456"),
        (f"030{NBSP}123456", "DE", "+4930123456"),
        ("０３０ １２３４５６", "DE", "+4930123456"),
        (301234567.0, "DE", "+49301234567"),  # a spreadsheet number: no ".0", leading 0 lost
        (301234567, "DE", "+49301234567"),
        ("(202) 456-1111", "US", "+12024561111"),
        ("202.456.1111", "us", "+12024561111"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("123", "DE", None),
        ("not a number", "DE", None),
        ("+49 1", "DE", None),
    ],
)
def test_phone(value, region, expected):
    assert run("phone", [value], region=region) == ([expected], [expected is None])


def test_phone_nulls_and_float_column():
    assert run("phone", [301234567.0, np.nan], dtype="float64") == (["+49301234567", None], [False, False])
    assert run("phone", [None, "", " "]) == ([None] * 3, [False] * 3)


def test_phone_runs_once_per_distinct_value(monkeypatch):
    calls = []
    original = rules._e164
    monkeypatch.setattr(rules, "_e164", lambda number, region: calls.append(number) or original(number, region))
    # Numbers written plainly are read over the whole column; these (a parenthesis first) one by one.
    RULES["phone"](pd.Series(["(030) 123456", " (030)  123456", "(030) 123456", None, "(040) 1234567", "030 9876543"] * 50))
    assert sorted(calls) == ["(030) 123456", "(040) 1234567"]


def test_phone_200k_rows_with_1000_distinct_numbers_is_fast():
    distinct = [f"030 {1_000_000 + i * 7}" for i in range(1_000)]
    series = pd.Series(np.array(distinct, dtype=object)[np.arange(200_000) % 1_000], dtype="str")
    start = time.perf_counter()
    result = RULES["phone"](series)
    elapsed = time.perf_counter() - start
    assert result.values.iloc[1] == "+49301000007" and not result.failed.any()
    assert elapsed < 5, f"{elapsed:.1f}s: the rule must work on distinct values only"


D = dt.date


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("2024-01-02", {}, D(2024, 1, 2)),
        ("2024-01-02", {"dayfirst": True}, D(2024, 1, 2)),  # ISO is never read day-first
        ("2024/01/02", {"dayfirst": True}, D(2024, 1, 2)),  # nor is any year-first date
        ("02/01/2024", {}, D(2024, 2, 1)),
        ("02/01/2024", {"dayfirst": True}, D(2024, 1, 2)),
        ("02.01.2024", {"dayfirst": True}, D(2024, 1, 2)),
        ("5 Jan 2024", {}, D(2024, 1, 5)),
        ("January 5, 2024", {}, D(2024, 1, 5)),
        ("2024-01-02 10:30", {}, D(2024, 1, 2)),
        ("2024-01-02T23:30:00-05:00", {}, D(2024, 1, 2)),  # the date as written, not in UTC
        ("２０２４－０１－０２", {}, D(2024, 1, 2)),
        ("02.01.2024", {"formats": ["%d.%m.%Y"]}, D(2024, 1, 2)),
        ("20240102", {"formats": ["%d.%m.%Y", "%Y%m%d"]}, D(2024, 1, 2)),
        ("2024-01-02", {"formats": ["%d.%m.%Y"]}, D(2024, 1, 2)),  # ISO always
        ("02.01.2024", {"formats": "%d.%m.%Y"}, D(2024, 1, 2)),
        ("1/2/2024", {"formats": ["%d.%m.%Y"]}, None),  # with formats, only those (and ISO)
        ("31.02.2024", {"formats": ["%d.%m.%Y"]}, None),
        ("2024-13-01", {}, None),
        ("0000-01-01", {}, None),  # ISO's year 0 is no date
        ("Jan 5", {}, None),  # no year: not filled in from defaults
        ("2024", {}, None),
        ("10:00", {}, None),
        ("45000", {}, None),
        ("yesterday", {}, None),
    ],
)
def test_date(value, options, expected):
    assert run("date", [value], **options) == ([expected], [expected is None])


def test_date_accepts_date_objects_timestamps_and_nulls():
    values = [D(2024, 3, 4), dt.datetime(2024, 3, 5, 12), pd.Timestamp("2024-03-06 23:00"), None, "", "  ", np.nan]
    expected = [D(2024, 3, 4), D(2024, 3, 5), D(2024, 3, 6), None, None, None, None]
    assert run("date", values) == (expected, [False] * 7)


def test_date_from_datetime64_columns():
    naive = pd.Series(pd.to_datetime(["2024-01-02 23:00", None]))
    assert RULES["date"](naive).values.tolist() == [D(2024, 1, 2), None]
    tokyo = naive.dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    assert RULES["date"](tokyo).values.tolist() == [D(2024, 1, 3), None]  # the date in its own zone


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("2024-01-02 10:00", {}, utc("2024-01-02 10:00")),
        ("2024-01-02 10:00", {"timezone": "Europe/Berlin"}, utc("2024-01-02 09:00")),
        ("2024-07-02 10:00", {"timezone": "Europe/Berlin"}, utc("2024-07-02 08:00")),
        ("2024-01-02T10:00:00+02:00", {"timezone": "Europe/Berlin"}, utc("2024-01-02 08:00")),
        ("2024-01-02T10:00Z", {"timezone": "Europe/Berlin"}, utc("2024-01-02 10:00")),
        ("2024-01-02 10:00 +0100", {"timezone": "America/New_York"}, utc("2024-01-02 09:00")),
        ("02.01.2024 10:00", {"dayfirst": True}, utc("2024-01-02 10:00")),
        ("02.01.2024 10:00", {"formats": ["%d.%m.%Y %H:%M"], "timezone": "Europe/Berlin"}, utc("2024-01-02 09:00")),
        ("2024-10-27 02:30", {"timezone": "Europe/Berlin"}, utc("2024-10-27 00:30")),  # repeated hour: earlier
        ("2024-03-31 02:30", {"timezone": "Europe/Berlin"}, utc("2024-03-31 01:00")),  # skipped hour: forward
        ("2024-01-02 25:00", {}, None),
        ("soon", {}, None),
    ],
)
def test_datetime(value, options, expected):
    assert run("datetime", [value], **options) == ([expected], [expected is None])


def test_datetime_dtype_nulls_and_datetime64_input():
    result = RULES["datetime"](pd.Series(["2024-01-02 10:00", None, " "]))
    assert result.values.dtype == "datetime64[us, UTC]"
    assert result.values.isna().tolist() == [False, True, True] and not result.failed.any()
    naive = pd.Series(pd.to_datetime(["2024-01-02 10:00", None]))
    assert RULES["datetime"](naive, timezone="Europe/Berlin").values.tolist()[0] == utc("2024-01-02 09:00")
    tokyo = pd.Series(pd.to_datetime(["2024-01-02 10:00"]).tz_localize("Asia/Tokyo"))
    assert RULES["datetime"](tokyo, timezone="Europe/Berlin").values.tolist() == [utc("2024-01-02 01:00")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(v, True) for v in ["yes", "Y", " TRUE ", "t", "1", "On", "ja", "OUI", 1, 1.0, True]],
        *[(v, False) for v in ["no", "N", "false", "F", "0", "off", "Nein", "non", 0, 0.0, False]],
        *[(v, None) for v in ["maybe", "2", 2, "yes please", "-1"]],
    ],
)
def test_boolean(value, expected):
    assert run("boolean", [value]) == ([expected], [expected is None])


def test_boolean_dtype_and_nulls():
    result = RULES["boolean"](pd.Series(["yes", None, "", "  "]))
    assert result.values.dtype == "boolean"
    assert result.values.isna().tolist() == [False, True, True, True] and not result.failed.any()


@pytest.mark.parametrize(
    ("country", "value", "expected"),
    [
        ("DE", "10115", "10115"),
        ("DE", "1067", "01067"),
        ("DE", 1067.0, "01067"),  # Excel dropped the zero and made it a float
        ("DE", 1067, "01067"),
        ("DE", "1067.0", "01067"),
        ("DE", "０１０６７", "01067"),
        ("DE", " 10 115 ", "10115"),
        ("de", "10115", "10115"),
        ("DE", "123", None),
        ("DE", "123456", None),
        ("DE", "D-10115", None),
        ("US", "501", "00501"),
        ("US", "12345-6789", "12345-6789"),
        ("US", "12345 6789", "12345-6789"),
        ("US", "123456789", "12345-6789"),
        ("US", "1234-5678", None),
        ("FR", "8000", "08000"),
        ("IT", "118", "00118"),
        ("ES", "28001", "28001"),
        ("FI", "100", "00100"),
        ("AT", "1010", "1010"),
        ("AT", "123", None),
        ("CH", "8001", "8001"),
        ("BE", "0123", None),
        ("DK", "800", "0800"),
        ("NO", "150", "0150"),
        ("AU", "800", "0800"),
        ("NL", "1234ab", "1234 AB"),
        ("NL", "1234  AB", "1234 AB"),
        ("NL", "0123 AB", None),
        ("GB", "sw1a1aa", "SW1A 1AA"),
        ("GB", "ec1a  1bb", "EC1A 1BB"),
        ("GB", "M1 1AE", "M1 1AE"),
        ("GB", "12345", None),
        ("CA", "k1a0b1", "K1A 0B1"),
        ("CA", "K1A-0B1", "K1A 0B1"),
        ("CA", "123 456", None),
        ("PL", "00950", "00-950"),
        ("PL", "00-950", "00-950"),
        ("PL", "0950", None),
        ("SE", "11122", "111 22"),
        ("SE", "111 22", "111 22"),
        ("JP", "100-0001", "100-0001"),  # no pattern known: normalized and upper-cased only
        ("IE", " d02 x285 ", "D02 X285"),
    ],
)
def test_postal_code(country, value, expected):
    assert run("postal_code", [value], country=country) == ([expected], [expected is None])


def test_postal_code_nulls_are_not_failures():
    assert run("postal_code", [None, "", "   ", np.nan]) == ([None] * 4, [False] * 4)


def test_postal_code_with_a_country_per_row():
    values = pd.Series(["1234ab", "1067", 8001.0, "sw1a1aa", "abc", " x 1 ", "12"], index=list("abcdefg"), dtype=object)
    countries = pd.Series(["NL", "de", "CH", "GB", "DE", None, "JP"], index=list("abcdefg"))
    result = RULES["postal_code"](values, country=countries)
    assert as_list(result.values) == ["1234 AB", "01067", "8001", "SW1A 1AA", None, "x 1", "12"]  # no country: only normalized
    assert result.failed.tolist() == [False, False, False, False, True, False, False]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DE", "DE"),
        (" de ", "DE"),
        ("DEU", "DE"),
        ("276", "DE"),
        (276, "DE"),
        (76.0, "BR"),  # numeric code without its leading zero
        ("Germany", "DE"),
        ("GERMANY", "DE"),
        ("Federal Republic of Germany", "DE"),
        ("Deutschland", "DE"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("united states of america", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("England", "GB"),
        ("Holland", "NL"),
        ("The  Netherlands", "NL"),
        ("Russia", "RU"),
        ("South Korea", "KR"),
        ("Czech Republic", "CZ"),
        ("Ivory Coast", "CI"),
        ("Schweiz", "CH"),
        ("ÖSTERREICH", "AT"),
        ("o\u0308sterreich", "AT"),  # decomposed umlaut
        ("España", "ES"),
        ("Brasil", "BR"),
        ("Bolivia", "BO"),
        ("Narnia", None),
        ("XX", None),
        ("999", None),
    ],
)
def test_country(value, expected):
    assert run("country", [value]) == ([expected], [expected is None])


def test_country_nulls_are_not_failures():
    assert run("country", [None, "", " "]) == ([None] * 3, [False] * 3)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("LUDWIG VAN BEETHOVEN", "Ludwig van Beethoven"),
        ("maria de la cruz", "Maria de la Cruz"),
        ("VAN DER BERG", "Van der Berg"),  # a particle that starts the name is capitalized
        ("ahmed bin rashid al maktoum", "Ahmed bin Rashid al Maktoum"),
        ("hans VON und ZU", "Hans von Und Zu"),
        ("o'neil", "O'Neil"),
        ("mcdonald", "McDonald"),
        ("macdonald", "MacDonald"),
        ("mack", "Mack"),
        ("MACY", "Macy"),
        ("machado", "Machado"),
        ("macias", "Macias"),
        ("mackey", "Mackey"),
        ("macon", "Macon"),
        ("mace", "Mace"),
        ("anne-marie", "Anne-Marie"),
        ("jean mcdonald-macleod", "Jean McDonald-MacLeod"),
        ("henry viii", "Henry VIII"),
        ("ELIZABETH II", "Elizabeth II"),
        ("louis xiv", "Louis XIV"),
        ("j. r. r. tolkien", "J. R. R. Tolkien"),
        ("MARIE-ÉLISE D'ARC", "Marie-Élise D'Arc"),
        ("Danny DeVito", "Danny DeVito"),  # deliberate inner capitals are kept
        ("  john\u00a0  SMITH ", "John Smith"),
    ],
)
def test_person_name(value, expected):
    assert run("person_name", [value]) == ([expected], [False])


@pytest.mark.parametrize(
    ("value", "expected"),
    [("van dijk", "van Dijk"), ("DE LA CRUZ", "de la Cruz"), ("du", "Du"), ("o'neil", "O'Neil"), ("VAN", "Van")],
)
def test_person_name_of_a_family_name_keeps_a_leading_particle_lower_case(value, expected):
    assert run("person_name", [value], family=True) == ([expected], [False])


def test_person_name_nulls():
    assert run("person_name", [None, "", " "]) == ([None] * 3, [False] * 3)


SEX = {"M": ["male", "m", "Mann", 1], "F": ["female", "f", "Frau", 2]}


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("male", {}, "M"),
        (" MALE ", {}, "M"),
        ("M", {}, "M"),  # a canonical value maps to itself
        ("frau", {}, "F"),
        (1, {}, "M"),
        (1.0, {}, "M"),  # numbers compare as their text
        ("2", {}, "F"),
        ("Ｆｅｍａｌｅ", {}, "F"),
        ("other", {}, None),
        ("Male", {"case_sensitive": True}, None),
        ("male", {"case_sensitive": True}, "M"),
    ],
)
def test_value_map(value, options, expected):
    assert run("value_map", [value], mapping=SEX, **options) == ([expected], [expected is None])


def test_value_map_nulls_and_single_alias():
    assert run("value_map", [None, "", "ja"], mapping={"yes": "ja"}) == ([None, None, "yes"], [False, False, False])


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        ("1234.56", {}, 1234.56),
        ("1,234.56", {}, 1234.56),
        ("1,234,567", {}, 1234567.0),
        ("1.234,56", {"decimal_comma": True}, 1234.56),
        ("1.234.567", {"decimal_comma": True}, 1234567.0),
        ("0,5", {"decimal_comma": True}, 0.5),
        ("1 234", {}, 1234.0),
        (f"1{NBSP}234,5", {"decimal_comma": True}, 1234.5),
        ("1'234.5", {}, 1234.5),
        ("1’234", {}, 1234.0),
        ("-1.5", {}, -1.5),
        ("+7", {}, 7.0),
        ("\u22123", {}, -3.0),
        (".5", {}, 0.5),
        ("1e3", {}, 1000.0),
        ("１２３", {}, 123.0),
        (42, {}, 42.0),
        (2.5, {"decimal_comma": True}, 2.5),  # numbers pass through whatever the text convention
        ("1,5", {}, None),
        ("1,23,456", {}, None),
        ("1234.5", {"decimal_comma": True}, None),
        ("€5", {}, None),
        ("5 EUR", {}, None),
        ("5%", {}, None),
        ("%5", {}, None),
        ("12 34", {}, None),
        ("1.2.3", {}, None),
        ("nan", {}, None),
        ("inf", {}, None),
        ("-", {}, None),
    ],
)
def test_number(value, options, expected):
    assert run("number", [value], **options) == ([expected], [expected is None])


def test_number_nulls_dtype_and_numeric_columns():
    result = RULES["number"](pd.Series(["1", None, "", "  "]))
    assert result.values.dtype == "Float64"
    assert result.values.isna().tolist() == [False, True, True, True] and not result.failed.any()
    assert run("number", [1, None], dtype="Int64") == ([1.0, None], [False, False])
    assert run("number", [1.5, np.nan], dtype="float64") == ([1.5, None], [False, False])


@pytest.mark.parametrize(
    ("value", "from_unit", "to_unit", "expected"),
    [
        (1, "in", "cm", 2.54),
        (1, "mi", "km", 1.609344),
        (3, "ft", "m", 0.9144),
        (1, "yd", "ft", 3.0),
        (1500, "mm", "m", 1.5),
        (2, "kg", "lb", 4.409245243697551),
        (16, "oz", "lb", 1.0),
        (1.5, "t", "kg", 1500.0),
        (250, "g", "kg", 0.25),
        (1, "gal", "l", 3.785411784),
        (128, "fl_oz", "gal", 1.0),
        (500, "ml", "l", 0.5),
        (100, "C", "F", 212.0),
        (-40, "F", "C", -40.0),
        (32, "f", "c", 0.0),
        (0, "K", "C", -273.15),
        (20, "C", "K", 293.15),
        ("1,5", "m", "cm", None),
        ("x", "kg", "g", None),
        ("1,000", "m", "km", 1.0),
    ],
)
def test_convert_unit(value, from_unit, to_unit, expected):
    values, failed = run("convert_unit", [value], from_unit=from_unit, to_unit=to_unit)
    assert values == [pytest.approx(expected, rel=1e-12, abs=1e-12) if expected is not None else None]
    assert failed == [expected is None]


def test_convert_unit_dtype_and_nulls():
    result = RULES["convert_unit"](pd.Series(["1", None, " "]), from_unit="m", to_unit="cm")
    assert result.values.dtype == "Float64"
    assert result.values.tolist()[0] == 100.0 and result.values.isna().tolist() == [False, True, True]
    assert not result.failed.any()


@pytest.mark.parametrize(
    ("rule", "options", "match"),
    [
        ("text", {"case": "camel"}, "case='camel'"),
        ("phone", {"region": "XX"}, "region='XX'"),
        ("phone", {"region": None}, "region=None"),
        ("date", {"formats": ["dd.mm.yyyy"]}, "formats='dd.mm.yyyy'"),
        ("date", {"formats": ["%d.%Q"]}, "formats='%d.%Q'.*bad directive"),
        ("date", {"formats": []}, "formats"),
        ("date", {"dayfirst": "yes"}, "dayfirst='yes'"),
        ("datetime", {"timezone": "Mars/Base"}, "timezone='Mars/Base'"),
        ("datetime", {"timezone": "../etc"}, "timezone='../etc'"),
        ("datetime", {"formats": ["%Y"], "timezone": "Europe"}, "timezone='Europe'"),
        ("postal_code", {"country": "XX"}, "country='XX'"),
        ("postal_code", {"country": "DEU"}, "country='DEU'"),
        ("value_map", {"mapping": {}}, "mapping"),
        ("value_map", {"mapping": ["a", "b"]}, "mapping"),
        ("value_map", {"mapping": {"a": ["x"], "b": [" X "]}}, "mapping lists ' X ' under both 'a' and 'b'"),
        ("value_map", {"mapping": {"a": ["b"], "b": []}}, "mapping lists 'b' under both 'a' and 'b'"),
        ("value_map", {"mapping": {"a": ["x"]}, "case_sensitive": "no"}, "case_sensitive='no'"),
        ("number", {"decimal_comma": 1}, "decimal_comma=1"),
        ("person_name", {"family": "yes"}, "family='yes'"),
        ("convert_unit", {"from_unit": "parsec", "to_unit": "m"}, "from_unit='parsec'"),
        ("convert_unit", {"from_unit": "m", "to_unit": "stone"}, "to_unit='stone'"),
        ("convert_unit", {"from_unit": "m", "to_unit": "kg"}, "to_unit='kg'.*length.*mass"),
        ("convert_unit", {"from_unit": "C", "to_unit": "l"}, "to_unit='l'"),
    ],
)
def test_bad_options_raise_rule_error_naming_the_option(rule, options, match):
    with pytest.raises(RuleError, match=match):
        RULES[rule](pd.Series(["x"]), **options)
    with pytest.raises(RuleError, match=match):
        validate_options(rule, options)


def test_options_are_checked_before_values_are_read():
    class Unreadable(pd.Series):
        @property
        def dtype(self):
            raise AssertionError("values read before options were checked")

    with pytest.raises(RuleError, match="region"):
        RULES["phone"](Unreadable(["x"]), region="XX")


def test_postal_code_country_series_must_be_valid_and_aligned():
    values = pd.Series(["10115", "1234AB"])
    with pytest.raises(RuleError, match=r"country=\['ZZ'\]"):
        RULES["postal_code"](values, country=pd.Series(["DE", "ZZ"]))
    with pytest.raises(RuleError, match="country"):
        RULES["postal_code"](values, country=pd.Series(["DE", "NL"], index=[5, 6]))


@pytest.mark.parametrize(
    ("rule", "options", "match"),
    [
        ("phonetic", {}, "unknown rule 'phonetic'"),
        ("phone", {"regoin": "DE"}, "phone: unknown option.*regoin.*options: region"),
        ("email", {"strict": True}, "email: unknown option.*strict.*options: none"),
        ("phone", {"region": "Atlantis"}, "region='Atlantis'"),
        ("value_map", {}, "value_map: option.*mapping required"),
        ("convert_unit", {"from_unit": "m"}, "to_unit required"),
    ],
)
def test_validate_options_rejects(rule, options, match):
    with pytest.raises(RuleError, match=match):
        validate_options(rule, options)


@pytest.mark.parametrize(
    ("rule", "options"),
    [
        ("text", {"case": "lower"}),
        ("email", {}),
        ("phone", {"region": "us"}),
        ("date", {"formats": ["%d.%m.%Y"], "dayfirst": True}),
        ("datetime", {"timezone": "Europe/Berlin"}),
        ("boolean", {}),
        ("postal_code", {"country": "GB"}),
        ("country", {}),
        ("person_name", {}),
        ("person_name", {"family": True}),
        ("value_map", {"mapping": {"M": ["male"]}, "case_sensitive": True}),
        ("number", {"decimal_comma": True}),
        ("convert_unit", {"from_unit": "lb", "to_unit": "kg"}),
    ],
)
def test_validate_options_accepts_good_options_of_every_rule(rule, options):
    assert validate_options(rule, options) is None


def test_every_rule_keeps_an_empty_series_empty():
    for name, rule in RULES.items():
        options = {"value_map": {"mapping": {"a": []}}, "convert_unit": {"from_unit": "m", "to_unit": "cm"}}.get(name, {})
        result = rule(pd.Series([], dtype="str"), **options)
        assert len(result.values) == 0 and len(result.failed) == 0, name


def test_the_vectorized_phone_path_agrees_with_phonenumbers_wherever_it_answers():
    """rules.phone reads plainly written numbers with phonenumbers' metadata over the whole
    column and leaves the rest to phonenumbers.parse; on example numbers of many regions and
    types, mutated and written national, international, E.164 and with 00, each answer of the
    fast path must be phonenumbers' own."""
    import random

    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    from harmonizer_pipeline.harmonize.rules import _e164, _e164_fast, _text

    rng = random.Random(7)
    written = []
    for region in ["DE", "FR", "NL", "AT", "CH", "US", "GB", "IT", "BR", "AU", "JP", "MX", "AR"]:
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            for _ in range(12):
                digits = list(str(example.national_number))
                for _ in range(rng.randint(0, 3)):
                    digits[rng.randrange(len(digits))] = str(rng.randint(0, 9))
                number = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=int("".join(digits)),
                                                  italian_leading_zero=example.italian_leading_zero)  # fmt: skip
                e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
                written += [phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
                            phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL), e164, "00" + e164[1:]]  # fmt: skip
    text = _text(pd.Series(written, dtype="str"))
    answered = 0
    for default in ("DE", "US", "FR", "IT"):
        fast = _e164_fast(text, default)
        for value, answer in zip(text, fast):
            if not pd.isna(answer):
                answered += 1
                assert answer == _e164(value, default), (value, default)
    assert answered > 1500  # the fast path answers most of them
