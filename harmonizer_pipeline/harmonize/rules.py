"""Standardizers over pandas Series: the rules a target column lists in harmonizer.yaml (no dagster).

    text          NFKC, trimmed, whitespace collapsed; optional case
    email         lower-cased, practical syntax check
    phone         E.164 via phonenumbers, numbers without prefix read in `region`
    date          datetime.date objects from mixed formats (`formats`, `dayfirst`)
    datetime      UTC timestamps; naive values are local times in `timezone`
    boolean       yes/no, true/false, 1/0, ja/nein, oui/non ... -> "boolean"
    postal_code   per-country normalization and zero-padding (`country`: code or row-wise Series)
    country       ISO 3166-1 alpha-2 from codes, names and common aliases
    person_name   title case that keeps particles (van, de la), Mc/Mac, O', roman numerals
    value_map     {canonical: [alias, ...]} lookup
    number        text -> Float64 with thousands separators (`decimal_comma`)
    convert_unit  length, mass, volume and temperature conversion -> Float64

Every rule is `rule(values, **options) -> Standardized`. NULL and blank input give NULL and are
not failures; a value the rule cannot standardize gives NULL and `failed` True. Bad options raise
RuleError before any value is read, so `validate_options` can check a configuration without data.
Work that needs Python per value runs once per distinct value (`_on_distinct`); the rest uses
pandas' vectorized string and datetime methods, so 1M-row columns stay fast. The common case of
the slow rules is decided over the whole column first, each against its per-value path in
test_staged_fast_paths: names already in their case, plainly written phone numbers, dates of
one plain format, plainly written numbers, postal codes in their normalized form. Two byte scans
are our own numpy (`_needs_normalizing`, `_ascii_digits`): on 100k values they took 1-2 ms where
Arrow's RE2 match or replace took 5-15 ms.
"""

from __future__ import annotations

import datetime as dt
import decimal
import inspect
import numbers
import re
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache, lru_cache, partial
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
import pycountry

from harmonizer_pipeline.arrow_scan import join_element_wise, numpy_buffer, text_values, utf8_bytes


@dataclass(frozen=True)
class Standardized:
    values: pd.Series  # standardized values, same index as the input; NULL where the rule could not standardize
    failed: pd.Series  # bool, same index: the input held a value (not NULL, not blank) the rule could not standardize


class RuleError(ValueError):
    """Rule options that cannot work (unknown region, unit, bad format string ...)."""


# Python's str.split() whitespace, listed as characters so the class reads the same in RE2 (pyarrow) and re.
_WHITESPACE_RUN = "[" + "".join(c for c in map(chr, range(0x3001)) if c.isspace()) + "]+"
_INVISIBLE = "[\u200b\u200c\u200d\u2060\ufeff]"  # zero-width characters make equal-looking values differ


def _cell_text(value: Any) -> str:
    """A non-text cell as a person would type it: 1234.0 from a spreadsheet reads "1234", a
    datetime at midnight without a zone reads as its date."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime) and value.tzinfo is None and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date):  # datetime, Timestamp too; ISO is what the date rules always read
        return value.isoformat()
    return str(value)


def as_text(values: pd.Series) -> pd.Series:
    """Any Series as "str" the way a person would type its values (see _cell_text); NULL stays NULL."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.astype("str")
    return _on_distinct(values, _per_value(_cell_text)).astype("str")


def _arrow_text(values: pd.Series) -> pa.StringArray:
    """A "str" Series' own Arrow strings, in one chunk."""
    array = pa.array(values.array, pa.string())
    # Joined string chunks are a StringArray; pyarrow-stubs type combine_chunks' result as a plain Array.
    return cast(pa.StringArray, array.combine_chunks()) if isinstance(array, pa.ChunkedArray) else array


def _str_series(arrow: pa.Array, index: pd.Index) -> pd.Series:
    """Arrow strings as a "str" Series, not passing through Python objects."""
    # pandas-stubs type pd.array's data as Python or numpy values; pandas takes an Arrow array too.
    return pd.Series(pd.array(arrow, dtype="str"), index=index)  # pyright: ignore[reportCallIssue, reportArgumentType]


def _on_distinct(values: pd.Series, standardize: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`standardize` run on the distinct non-NULL values only, its results spread back to every row."""
    codes, uniques = pd.factorize(values)
    done = standardize(pd.Series(uniques))
    return pd.Series(done.array.take(codes, allow_fill=True), index=values.index)


def _per_value(function: Callable[[Any], Any]) -> Callable[[pd.Series], pd.Series]:
    return lambda uniques: uniques.map(function)


def _normalized(arrow: pa.Array) -> pa.Array:
    """NFKC, invisible characters removed, whitespace runs as one space (not trimmed)."""
    # Arrow's kernels directly: pandas' str.normalize goes value by value through Python.
    arrow = pc.utf8_normalize(arrow, form="NFKC")  # pyright: ignore[reportAttributeAccessIssue]  # pyarrow has it; pyarrow-stubs leave it out
    return pc.replace_substring_regex(pc.replace_substring_regex(arrow, _INVISIBLE, ""), _WHITESPACE_RUN, " ")


def _needs_normalizing(arrow: pa.Array) -> np.ndarray:
    """The values `_normalized` could change: those with a non-ASCII byte, ASCII whitespace other
    than a space, or two spaces in a row. One numpy pass over the UTF-8 bytes takes 1 ms per 100k
    values where `_normalized` takes 20 ms and a single RE2 match 5 ms."""
    offsets, data = utf8_bytes(arrow)
    flagged = (data >= 0x80) | ((data >= 0x09) & (data <= 0x0D)) | ((data >= 0x1C) & (data <= 0x1F))
    flagged[:-1] |= (data[:-1] == 0x20) & (data[1:] == 0x20)  # a pair across two values only costs time
    needs = np.zeros(len(arrow), dtype=bool)
    needs[np.searchsorted(offsets, np.flatnonzero(flagged), side="right") - 1] = True
    return needs


def _ascii_digits(arrow: pa.Array) -> pa.Array:
    """Each value's ASCII digits alone, as RE2's replace of \\D with "" gives them, by one numpy
    pass over the UTF-8 bytes (2 ms per 100k phone numbers; the replace took 15 ms)."""
    offsets, data = utf8_bytes(arrow)
    digit = (data >= 0x30) & (data <= 0x39)
    kept = np.zeros(arrow.offset + len(arrow) + 1, dtype=np.int32)  # the validity bitmap counts from arrow.offset
    kept[arrow.offset :] = np.concatenate([[0], np.cumsum(digit, dtype=np.int32)])[offsets]
    buffers = [arrow.buffers()[0], numpy_buffer(kept), numpy_buffer(data[digit])]
    return pa.Array.from_buffers(pa.string(), len(arrow), buffers, offset=arrow.offset)


def _text(values: pd.Series) -> pd.Series:
    """Any Series as NFKC-normalized, trimmed, whitespace-collapsed "str"; blank becomes NULL."""
    arrow = _arrow_text(as_text(values))
    needs = _needs_normalizing(arrow)
    if needs.any():
        arrow = pc.replace_with_mask(arrow, pa.array(needs), _normalized(arrow.filter(needs)))
    text = _str_series(pc.utf8_trim_whitespace(arrow), values.index)
    return text.mask(text == "")


def _result(standardized: pd.Series, text: pd.Series) -> Standardized:
    """`failed` where the input held text (after `_text`) and the rule gave NULL."""
    return Standardized(standardized, text.notna() & standardized.isna())


def _option_error(rule: str, option: str, value: Any, expected: str) -> RuleError:
    return RuleError(f"{rule}: option {option}={value!r} is invalid: {expected}")


def _require_bool(rule: str, option: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _option_error(rule, option, value, "expected true or false")


_CASES = (None, "lower", "upper", "title")


def text(values: pd.Series, *, case: str | None = None) -> Standardized:
    if case not in _CASES:
        raise _option_error("text", "case", case, "expected one of lower, upper, title (or none)")
    normalized = _text(values)
    if case is not None:
        normalized = getattr(normalized.str, case)()
    return _result(normalized, normalized)


_EMAIL_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL = rf"{_EMAIL_ATOM}(?:\.{_EMAIL_ATOM})*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{{2,}}"


def email(values: pd.Series) -> Standardized:
    address = _text(values).str.lower()
    return _result(address.where(_fullmatch(_arrow_text(address), _EMAIL)), address)


def _e164(number: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_PLAIN_NUMBER = r"\+?[0-9][0-9 ()./-]*"  # digits and the separators people type; no extension, no letters
_PHONE_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number", "voip", "pager", "uan", "voicemail")


@cache
def _region_patterns(region: str) -> tuple[tuple[tuple[int, ...], str], tuple[tuple[tuple[int, ...], str], ...]]:
    """(general, types): the region's national-number patterns with their possible lengths."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    # Every supported region has them (callers pass only SUPPORTED_REGIONS).
    assert metadata is not None and metadata.general_desc is not None
    general = metadata.general_desc
    assert general.national_number_pattern is not None
    types = tuple(
        (tuple(desc.possible_length or general.possible_length), desc.national_number_pattern)
        for desc in (getattr(metadata, name) for name in _PHONE_TYPES)
        if desc is not None and desc.national_number_pattern
    )
    return (tuple(general.possible_length), general.national_number_pattern), types


def _fullmatch(text: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(text, f"^(?:{pattern})$").fill_null(False).to_numpy(zero_copy_only=False)


def _matches(national: pa.Array, length: np.ndarray, lengths: tuple[int, ...], pattern: str) -> np.ndarray:
    fits = np.isin(length, lengths) if lengths else np.ones(len(national), dtype=bool)
    return fits & _fullmatch(national, pattern)


def _valid_in(region: str, national: pa.Array) -> np.ndarray:
    """is_valid_number's rule, vectorized (RE2): the general pattern and at least one type's, each
    type tried only on the numbers no earlier type took."""
    (lengths, pattern), types = _region_patterns(region)
    # National numbers are _ascii_digits' pa.string() arrays; pyarrow-stubs' utf8_length takes no plain Array.
    length = pc.utf8_length(cast(pa.StringArray, national)).to_numpy(zero_copy_only=False)
    valid = _matches(national, length, lengths, pattern)
    typed = np.zeros(len(national), dtype=bool)
    for type_lengths, type_pattern in types:
        pending = np.flatnonzero(valid & ~typed)
        typed[pending] = _matches(national.take(pending), length[pending], type_lengths, type_pattern)
    return valid & typed


def _e164_fast(number: pd.Series, region: str) -> pd.Series:
    """E.164 of the numbers plainly written and valid in their country's only region, by
    phonenumbers' own metadata evaluated over the whole column; NULL for the rest, which
    phonenumbers then reads one by one (formats, extensions, shared country codes, invalid ones).
    Arrow's kernels directly: the same steps through pandas' str methods took 4x as long."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    assert metadata is not None and metadata.country_code is not None  # phone() takes only SUPPORTED_REGIONS
    text = _arrow_text(number)
    plain = _fullmatch(text, _PLAIN_NUMBER)
    digits = _ascii_digits(text)
    idd = metadata.international_prefix if re.fullmatch(r"\d+", metadata.international_prefix or "") else None
    trunk = metadata.national_prefix_for_parsing or metadata.national_prefix
    international = pc.starts_with(text, "+").fill_null(False).to_numpy(zero_copy_only=False)
    if idd:
        dialled = pc.starts_with(digits, idd).fill_null(False).to_numpy(zero_copy_only=False) & ~international
        digits = pc.if_else(dialled, pc.utf8_slice_codeunits(digits, len(idd)), digits)
        international |= dialled
    found_rows, found = [], []

    def keep(rows: np.ndarray, country_code: int, national: pa.Array, valid_region: str) -> None:
        ok = _valid_in(valid_region, national)
        found_rows.append(rows[ok])
        found.append(join_element_wise(f"+{country_code}", national.filter(ok), separator=""))

    # Country codes are prefix-free and never start with 0, so at most one of the 1-3 digit prefixes is one.
    written_international = np.flatnonzero(international & plain)
    for width in (1, 2, 3):
        prefix = pc.utf8_slice_codeunits(digits.take(written_international), 0, width)
        for code in text_values(pc.unique(prefix)):
            regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(code), ()) if code and code[0] != "0" else ()
            if len(regions) != 1 or regions[0] not in phonenumbers.SUPPORTED_REGIONS:
                continue
            rows = written_international[pc.equal(prefix, pa.scalar(code)).to_numpy(zero_copy_only=False)]
            keep(rows, int(code), pc.utf8_slice_codeunits(digits.take(rows), width), regions[0])
    national_rows = np.flatnonzero(plain & ~international)
    if len(national_rows) and not metadata.national_prefix_transform_rule and (trunk is None or re.fullmatch(r"\d+", trunk)):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(metadata.country_code, ())
        if list(regions) == [region]:
            national = digits.take(national_rows)
            if trunk:
                national = pc.if_else(pc.starts_with(national, trunk), pc.utf8_slice_codeunits(national, len(trunk)), national)
            keep(national_rows, metadata.country_code, national, region)
    # Each row is found at most once; scatter the answers back to their rows.
    rows = np.concatenate([np.zeros(0, dtype=np.int64), *found_rows])
    source = np.full(len(text), -1, dtype=np.int64)
    source[rows] = np.arange(len(rows))
    e164 = pa.concat_arrays([pa.array([], pa.string()), *found]).take(pa.array(source, pa.int64(), mask=source < 0))
    return _str_series(e164, number.index)


def phone(values: pd.Series, *, region: str = "DE") -> Standardized:
    code = region.upper() if isinstance(region, str) else None
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise _option_error("phone", "region", region, "expected an ISO 3166 alpha-2 region phonenumbers knows, e.g. DE")
    number = _text(values)
    e164 = _e164_fast(number, code)
    rest = e164.isna() & number.notna()
    e164[rest] = _on_distinct(number[rest], _per_value(partial(_e164, region=code)))
    return _result(e164.astype("str"), number)


# A time directly followed by its offset; the offset's sign, hours and minutes are captured.
_OFFSET = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)? ?(?P<utc>Z|UTC|GMT)?(?:(?P<sign>[+-])(?P<hours>\d\d):?(?P<minutes>\d\d)?)?$"


def _check_date_options(rule: str, formats: Any, dayfirst: Any) -> list[str]:
    _require_bool(rule, "dayfirst", dayfirst)
    if formats is None:
        return []
    listed = [formats] if isinstance(formats, str) else formats
    if not isinstance(listed, list | tuple) or not listed:
        raise _option_error(rule, "formats", formats, "expected a list of strptime formats such as '%d.%m.%Y'")
    for form in listed:
        if not isinstance(form, str) or not re.search(r"%[a-zA-Z]", form):
            raise _option_error(rule, "formats", form, "a strptime format needs % directives such as %d, %m, %Y")
        try:
            pd.to_datetime(pd.Series(["2000-01-01"]), format=form, errors="coerce")
        except ValueError as err:
            raise _option_error(rule, "formats", form, str(err)) from err
    return list(listed)


def _instants(text: pd.Series, formats: list[str], dayfirst: bool) -> tuple[pd.Series, pd.Series]:
    """Distinct date texts parsed: (timestamps with naive texts read as if UTC, the written UTC offset
    or NaT where the text gave none). ISO always; then `formats` in order, or pandas' mixed parser."""
    stamps = pd.Series(pd.NaT, index=text.index, dtype="datetime64[us, UTC]")
    # The mixed parser and ISO's reduced forms fill a missing day, month or year ("2024", "Jan 5",
    # "10:00") from defaults or today; a date needs three numbers or two and a month name.
    digit_groups = text.str.count(r"\d+")
    plausible = (digit_groups >= 3) | ((digit_groups == 2) & text.str.contains(r"[A-Za-z]{3}", regex=True))
    year_first = text.str.match(r"\d{4}\D")  # 2024/01/02 is year-month-day in every convention
    steps = [("ISO8601", plausible, False)]
    if formats:
        steps += [(form, text.notna(), False) for form in formats]
    else:
        steps += [("mixed", plausible & year_first, False), ("mixed", plausible & ~year_first, dayfirst)]
    for form, allowed, day_first in steps:
        todo = allowed & stamps.isna()
        if todo.any():
            parsed = pd.to_datetime(text[todo], format=form, dayfirst=day_first, errors="coerce", utc=True)
            stamps[todo] = parsed.astype(stamps.dtype)
    parts = text.str.extract(_OFFSET)
    minutes = pd.to_numeric(parts["hours"]) * 60 + pd.to_numeric(parts["minutes"]).fillna(0)
    minutes = minutes.where(parts["sign"] != "-", -minutes).where(parts["utc"].isna(), 0)
    return stamps, pd.to_timedelta(minutes, unit="min")


def _stamp_input(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype)


def _parsed_dates(text: pd.Series, formats: list[str], dayfirst: bool) -> pd.Series:
    """datetime.date objects of date texts as `_instants` reads them, None where it cannot."""
    stamps, offsets = _instants(text, formats, dayfirst)
    wall = (stamps + offsets.fillna(pd.Timedelta(0))).dt.tz_localize(None)  # the date as written
    wall = wall.where(wall.dt.year >= 1)  # ISO reads year 0, which no datetime.date holds
    return wall.dt.date.astype(object).where(wall.notna(), None)


# A format of day, month and year with one separator each; the orders ISO (read first) cannot misread.
_PLAIN_DATE_FORMAT = re.compile(r"%(?P<a>[dmY])(?P<s>[^\w%])%(?P<b>[dmY])(?P<t>[^\w%])%(?P<c>[dmY])")
_PLAIN_DATE_ORDERS = ("dmY", "mdY", "Ymd")


def _plain_dates(text: pd.Series, formats: list[str]) -> pd.Series:
    """datetime.date objects of the texts written exactly as YYYY-MM-DD or in the first format
    with 2-digit days and months and 4-digit years, read with numpy over the whole column; None
    for the rest, which `_parsed_dates` reads (pandas' parsers took 0.1 s per 100k dates here)."""
    arrow = _arrow_text(text)
    year, month, day = (np.zeros(len(arrow), dtype=np.int64) for _ in range(3))
    taken = np.zeros(len(arrow), dtype=bool)
    for form in ["%Y-%m-%d", *formats[:1]]:
        shape = _PLAIN_DATE_FORMAT.fullmatch(form)
        if shape is None or shape["a"] + shape["b"] + shape["c"] not in _PLAIN_DATE_ORDERS:
            continue
        digits = {"d": r"(?P<d>\d\d)", "m": r"(?P<m>\d\d)", "Y": r"(?P<Y>\d{4})"}
        pattern = "^" + digits[shape["a"]] + re.escape(shape["s"]) + digits[shape["b"]] + re.escape(shape["t"]) + digits[shape["c"]] + "$"
        parts = pc.extract_regex(arrow, pattern)
        found = parts.is_valid().to_numpy(zero_copy_only=False) & ~taken
        taken |= found
        for field, values in (("Y", year), ("m", month), ("d", day)):
            number = pc.cast(pc.struct_field(parts, field).fill_null("0"), pa.int64()).to_numpy()
            values[found] = number[found]
    valid = (year > 0) & (month >= 1) & (month <= 12) & (day >= 1)
    months = np.where(valid, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1)
    valid &= days.astype("datetime64[M]") == months  # the day exists in its month
    # numpy's stubs leave None out of ArrayLike; np.where takes it as an object value.
    return pd.Series(np.where(valid, days.astype(object), None), index=text.index, dtype=object)  # pyright: ignore[reportCallIssue, reportArgumentType]


def date(values: pd.Series, *, formats: list[str] | None = None, dayfirst: bool = False) -> Standardized:
    formats = _check_date_options("date", formats, dayfirst)
    if _stamp_input(values):
        days = values.dt.date  # a tz-aware stamp keeps the date of its own zone
        return Standardized(days.astype(object).where(values.notna(), None), pd.Series(False, index=values.index))

    def parse(uniques: pd.Series) -> pd.Series:
        days = _plain_dates(uniques, formats)
        rest = days.isna()
        if rest.any():
            days[rest] = _parsed_dates(uniques[rest], formats, dayfirst)
        return days

    written = _text(values)
    days = _on_distinct(written, parse).astype(object)
    return _result(days.where(days.notna(), None), written)


def _zone(timezone: Any) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(timezone)
    except (LookupError, ValueError, TypeError, OSError) as err:
        raise _option_error("datetime", "timezone", timezone, "expected an IANA time zone such as Europe/Berlin") from err


def _to_utc(naive: pd.Series, zone: zoneinfo.ZoneInfo) -> pd.Series:
    # Wall times a DST change repeats read as the earlier instant and skipped ones move forward,
    # as Python's fold=0 does, rather than failing a whole autumn night of rows.
    earlier = np.ones(len(naive), dtype=bool)
    local = naive.dt.tz_localize(zone, ambiguous=earlier, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC").astype("datetime64[us, UTC]")


def datetime(values: pd.Series, *, formats: list[str] | None = None, dayfirst: bool = False, timezone: str = "UTC") -> Standardized:
    formats = _check_date_options("datetime", formats, dayfirst)
    zone = _zone(timezone)
    if _stamp_input(values):
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            stamps = values.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
        else:
            stamps = _to_utc(values, zone)
        return Standardized(stamps, pd.Series(False, index=values.index))

    def parse(uniques: pd.Series) -> pd.Series:
        stamps, offsets = _instants(uniques, formats, dayfirst)
        naive = offsets.isna()
        stamps[naive] = _to_utc(stamps[naive].dt.tz_localize(None), zone)
        return stamps

    written = _text(values)
    return _result(_on_distinct(written, parse).astype("datetime64[us, UTC]"), written)


_BOOLEANS = {
    **dict.fromkeys(["yes", "y", "true", "t", "1", "on", "ja", "oui"], True),
    **dict.fromkeys(["no", "n", "false", "f", "0", "off", "nein", "non"], False),
}


def boolean(values: pd.Series) -> Standardized:
    written = _text(values)  # real bools read "True"/"False", 1.0 reads "1"
    return _result(written.str.lower().map(_BOOLEANS).astype("boolean"), written)


@dataclass(frozen=True)
class _PostalFormat:
    pattern: str  # the normalized code
    digits: tuple[int, int] | None = None  # (fewest digits a code that lost leading zeros keeps, full length)
    split: tuple[str, str] | None = None  # (regex on the compact code, replacement that adds the separator)


_POSTAL = {
    "US": _PostalFormat(r"\d{5}(?:-\d{4})?", (3, 5), (r"^(\d{5})(\d{4})$", r"\1-\2")),
    "DE": _PostalFormat(r"\d{5}", (4, 5)),
    "FR": _PostalFormat(r"\d{5}", (4, 5)),
    "ES": _PostalFormat(r"\d{5}", (4, 5)),
    "IT": _PostalFormat(r"\d{5}", (3, 5)),
    "FI": _PostalFormat(r"\d{5}", (3, 5)),
    "AT": _PostalFormat(r"[1-9]\d{3}"),
    "CH": _PostalFormat(r"[1-9]\d{3}"),
    "BE": _PostalFormat(r"[1-9]\d{3}"),
    "DK": _PostalFormat(r"\d{4}", (3, 4)),
    "NO": _PostalFormat(r"\d{4}", (1, 4)),
    "AU": _PostalFormat(r"\d{4}", (3, 4)),
    "NL": _PostalFormat(r"[1-9]\d{3} [A-Z]{2}", split=(r"^(\d{4})([A-Z]{2})$", r"\1 \2")),
    "GB": _PostalFormat(r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", split=(r"^([A-Z0-9]{2,4})(\d[A-Z]{2})$", r"\1 \2")),
    "CA": _PostalFormat(r"[A-Z]\d[A-Z] \d[A-Z]\d", split=(r"^([A-Z0-9]{3})([A-Z0-9]{3})$", r"\1 \2")),
    "PL": _PostalFormat(r"\d{2}-\d{3}", split=(r"^(\d{2})(\d{3})$", r"\1-\2")),
    "SE": _PostalFormat(r"\d{3} \d{2}", split=(r"^(\d{3})(\d{2})$", r"\1 \2")),
}


def _is_alpha_2(code: str) -> bool:
    return len(code) == 2 and pycountry.countries.get(alpha_2=code) is not None


def _postal_countries(country: Any, index: pd.Index) -> str | pd.Series:
    if isinstance(country, pd.Series):
        if not country.index.equals(index):
            raise _option_error("postal_code", "country", "<Series>", "a row-wise country Series needs the values' index")
        codes = _text(country).str.upper()
        unknown = sorted(c for c in codes.dropna().unique() if not _is_alpha_2(c))
        if unknown:
            raise _option_error("postal_code", "country", unknown, "expected ISO 3166-1 alpha-2 codes")
        return codes
    if not isinstance(country, str) or not _is_alpha_2(country.strip().upper()):
        raise _option_error("postal_code", "country", country, "expected an ISO 3166-1 alpha-2 code such as DE")
    return country.strip().upper()


def _postal_in(code: str, written: pd.Series) -> pd.Series:
    form = _POSTAL.get(code)
    if form is None:
        return written.str.upper()
    # A code already in its normalized form comes out as it is: only the others need the steps.
    codes = written.where(_fullmatch(_arrow_text(written), form.pattern))
    rest = codes.isna() & written.notna()
    codes[rest] = _postal_normalized(form, written[rest])
    return codes


def _postal_normalized(form: _PostalFormat, written: pd.Series) -> pd.Series:
    upper = written.str.upper()
    compact = upper.str.replace(r"[ -]", "", regex=True).str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
    if form.digits is not None:
        fewest, length = form.digits
        lost_zeros = compact.str.fullmatch(rf"\d{{{fewest},{length - 1}}}")
        compact = compact.where(~lost_zeros, compact.str.zfill(length))
    if form.split is not None:
        compact = compact.str.replace(*form.split, regex=True)
    return compact.where(compact.str.fullmatch(form.pattern))


def postal_code(values: pd.Series, *, country: str | pd.Series = "DE") -> Standardized:
    countries = _postal_countries(country, values.index)
    written = _text(values)
    if isinstance(countries, str):
        return _result(_postal_in(countries, written), written)
    codes = written.copy()  # rows without a country stay text-normalized
    for code in countries.dropna().unique():
        rows = countries == code
        codes[rows] = _postal_in(code, written[rows])
    return _result(codes, written)


# Keys are case-folded; pycountry.countries.lookup already knows codes, names and official names.
_COUNTRY_ALIASES = {
    "usa": "US", "u.s.a.": "US", "u.s.": "US", "united states of america": "US",
    "uk": "GB", "u.k.": "GB", "great britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "deutschland": "DE", "holland": "NL", "the netherlands": "NL", "russia": "RU", "south korea": "KR",
    "czech republic": "CZ", "ivory coast": "CI", "cote d'ivoire": "CI", "schweiz": "CH", "österreich": "AT",
    "españa": "ES", "espana": "ES", "brasil": "BR", "turkey": "TR", "macedonia": "MK", "vatican": "VA",
}  # fmt: skip


@lru_cache(maxsize=10_000)
def _alpha_2(name: str) -> str | None:
    key = name.casefold()
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    try:
        return pycountry.countries.lookup(key.zfill(3) if key.isdigit() else key).alpha_2  # 76 from Excel is "076"
    except LookupError:
        return None


def country(values: pd.Series) -> Standardized:
    written = _text(values)
    return _result(_on_distinct(written, _per_value(_alpha_2)).astype("str"), written)


_PARTICLES = frozenset("van von der den de del della la le du da di dos das ter ten bin al".split())
_MAC_EXCEPTIONS = frozenset("mack macy mace machado macias mackey macon".split())
_ROMAN = re.compile(r"x{0,3}(?:ix|iv|v?i{0,3})")  # regnal and generational numbers, up to XXXIX


def _name_part(part: str) -> str:
    """One hyphen-separated part of a title-cased word: McDonald, MacDonald (not Mack, Macy ...)."""
    if part.startswith("Mc") and len(part) > 2:
        return "Mc" + part[2:].capitalize()
    if re.fullmatch(r"Mac[a-z]{3,}", part) and part.lower() not in _MAC_EXCEPTIONS:
        return "Mac" + part[3:].capitalize()
    return part


def _name_word(word: str, first: bool) -> str:
    lower = word.lower()
    if not first and (lower in _PARTICLES):
        return lower
    if not first and _ROMAN.fullmatch(lower):
        return word.upper()
    # Deliberate inner capitals (DeVito, LeBlanc) are kept; all-caps and all-lower words are re-cased.
    if word[:1].isupper() and any(c.isupper() for c in word[1:]) and any(c.islower() for c in word):
        return word
    return "-".join(_name_part(part) for part in word.title().split("-"))  # title() also does O'Neil, J.R.R.


def _name_case(name: str, family: bool) -> str:
    words = name.split(" ")
    # In a family-name column a leading particle belongs to the name (van Dijk); alone it is one (Du).
    capital_first = not (family and len(words) > 1)
    return " ".join(_name_word(word, index == 0 and capital_first) for index, word in enumerate(words))


# Latin letters whose case title() and lower() keep as they are: a word made of them, digits,
# apostrophes, dots and hyphens has a title case regular expressions can see.
_LATIN = [chr(c) for c in range(0x250) if chr(c).lower() != chr(c).upper() and len(chr(c).lower()) == 1]
_UPPER = "[" + "".join(c for c in _LATIN if c.isupper() and c.title() == c) + "]"
_LOWER = "[" + "".join(c for c in _LATIN if c.islower() and c.lower() == c) + "]"
_UNCASED = "[0-9'’.-]"
_TITLE_CASED = rf"^{_UNCASED}*(?:{_UPPER}{_LOWER}*{_UNCASED}+)*(?:{_UPPER}{_LOWER}*)?$"


def _names_as_written(names: pd.Series, family: bool) -> np.ndarray:
    """Where `_name_case` provably gives the name back unchanged, decided over the whole column:
    each word is a particle or roman numeral already in its case, or (with no Mc/Mac part to
    re-case) title-cased or keeping deliberate inner capitals. Per value these took 4 us a name."""
    words = pc.split_pattern(_arrow_text(names).fill_null(""), " ")
    word = pc.list_flatten(words)
    count = pc.list_value_length(words).to_numpy()
    letter = f"(?:{_UPPER}|{_LOWER}|{_UNCASED})"
    inner_capitals = rf"^{_UPPER}{letter}*(?:{_UPPER}{letter}*{_LOWER}|{_LOWER}{letter}*{_UPPER}){letter}*$"
    title_cased = pc.and_(pc.match_substring_regex(word, _TITLE_CASED), pc.invert(pc.match_substring_regex(word, "(?:^|-)Ma?c")))
    as_written = pc.or_(pc.match_substring_regex(word, inner_capitals), title_cased).to_numpy(zero_copy_only=False)
    # Words after the first (and a family name's first of several) may be particles or numerals.
    first = np.zeros(len(word), dtype=bool)
    first[words.offsets.to_numpy()[:-1][(count == 1) if family else (count > 0)]] = True
    later = np.flatnonzero(~first)
    if len(later):
        inner = word.take(later)
        roman, particles = f"^{_ROMAN.pattern}$", pa.array(sorted(_PARTICLES))
        kept = pc.or_(pc.is_in(inner, particles), pc.match_substring_regex(inner, roman.upper())).to_numpy(zero_copy_only=False)
        recased = pc.or_(pc.is_in(pc.utf8_lower(inner), particles), pc.match_substring_regex(inner, roman, ignore_case=True))
        as_written[later] = kept | (as_written[later] & ~recased.to_numpy(zero_copy_only=False))
    failing = np.bincount(pc.list_parent_indices(words).to_numpy(), weights=~as_written, minlength=len(names))
    return (failing == 0) & (count > 0)


def person_name(values: pd.Series, *, family: bool = False) -> Standardized:
    """Title case keeping particles, Mc/Mac, O'Neil, roman numerals; `family`: the values are
    family names, so a leading particle stays lower-case too."""
    _require_bool("person_name", "family", family)

    def case(names: pd.Series) -> pd.Series:
        cased = names.astype("str")
        rest = ~_names_as_written(cased, family)
        # No NULL gets here (_on_distinct); na_action says so to pandas-stubs' types.
        cased[rest] = cased[rest].map(lambda name: _name_case(name, family), na_action="ignore")
        return cased

    written = _text(values)
    return _result(_on_distinct(written, case), written)


def _value_lookup(mapping: Any, case_sensitive: bool) -> dict[str, str]:
    """{compared text: canonical} of every alias and every canonical value itself."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise _option_error("value_map", "mapping", mapping, "expected a non-empty {canonical: [alias, ...]}")
    lookup: dict[str, str] = {}
    for canonical, aliases in mapping.items():
        listed = [] if aliases is None else list(aliases) if isinstance(aliases, list | tuple) else [aliases]
        keys = _text(pd.Series([canonical, *listed], dtype=object))
        keys = keys if case_sensitive else keys.str.casefold()
        for alias, key in zip([canonical, *listed], keys, strict=True):
            if pd.isna(key):
                continue
            other = lookup.setdefault(key, _cell_text(canonical))
            if other != _cell_text(canonical):
                raise RuleError(f"value_map: option mapping lists {alias!r} under both {other!r} and {canonical!r}")
    return lookup


def value_map(values: pd.Series, *, mapping: Mapping[str, list], case_sensitive: bool = False) -> Standardized:
    _require_bool("value_map", "case_sensitive", case_sensitive)
    lookup = _value_lookup(mapping, case_sensitive)
    written = _text(values)
    keys = written if case_sensitive else written.str.casefold()
    return _result(keys.map(lookup).astype("str"), written)


def _held_number(value: Any) -> float | None:
    return float(value) if isinstance(value, numbers.Real | decimal.Decimal) and not isinstance(value, bool) else None


def _plain_numbers(written: pd.Series, decimal_comma: bool) -> pd.Series | None:
    """The column's numbers by Arrow's cast when every value is plainly written: digits with an
    optional minus and decimal mark, at most 15 characters (so both parsers round exactly), no
    negative zero integer (pandas drops its sign when the column holds no fraction); None
    otherwise. Per column, as pandas reads integers differently when no value has a fraction."""
    arrow = _arrow_text(written)
    point = "," if decimal_comma else r"\."
    plain = pc.and_(pc.match_substring_regex(arrow, rf"^-?[0-9]+(?:{point}[0-9]+)?$"), pc.less_equal(pc.utf8_length(arrow), pa.scalar(15)))
    if not pc.all(plain).as_py() or pc.any(pc.match_substring_regex(arrow, "^-0+$")).as_py():
        return None
    numbers = pc.cast(pc.replace_substring(arrow, ",", ".") if decimal_comma else arrow, pa.float64())
    nullable: dict[pa.DataType, pd.api.extensions.ExtensionDtype] = {pa.float64(): pd.Float64Dtype()}
    return pd.Series(numbers.to_pandas(types_mapper=nullable.get).array, index=written.index)


def _parse_numbers(written: pd.Series, decimal_comma: bool) -> pd.Series:
    plain = _plain_numbers(written, decimal_comma)
    return plain if plain is not None else _parsed_numbers(written, decimal_comma)


def _parsed_numbers(written: pd.Series, decimal_comma: bool) -> pd.Series:
    point, group = (",", ".") if decimal_comma else (".", ",")
    # Thousands groups of three, separated by the group mark, a space or an apostrophe (Swiss).
    whole = rf"\d{{1,3}}(?:\{group}\d{{3}})+|\d{{1,3}}(?: \d{{3}})+|\d{{1,3}}(?:['’]\d{{3}})+|\d+"
    pattern = rf"[+-]?(?:(?:{whole})(?:\{point}\d*)?|\{point}\d+)(?:[eE][+-]?\d+)?"
    signed = written.str.replace("\u2212", "-", regex=False)  # typographic minus sign
    plain = signed.where(signed.str.fullmatch(pattern)).str.replace(rf"[\{group} '’]", "", regex=True)
    if decimal_comma:
        plain = plain.str.replace(",", ".", regex=False)
    return pd.to_numeric(plain, errors="coerce").astype("Float64")


def number(values: pd.Series, *, decimal_comma: bool = False) -> Standardized:
    _require_bool("number", "decimal_comma", decimal_comma)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return Standardized(values.astype("Float64"), pd.Series(False, index=values.index))
    if values.dtype == object:  # numbers keep their value; only text is parsed
        held = _on_distinct(values, _per_value(_held_number)).astype("Float64")
        written = _text(values.where(held.isna()))
    else:
        held, written = pd.Series(pd.NA, index=values.index, dtype="Float64"), _text(values)
    return _result(held.fillna(_parse_numbers(written, decimal_comma)), written)


class _Unit(NamedTuple):
    kind: str
    size: Fraction  # one unit in the kind's base unit (m, kg, l, K)
    zero: Fraction = Fraction(0)  # added before scaling: affine temperature scales


_UNITS = {
    "mm": _Unit("length", Fraction("0.001")),
    "cm": _Unit("length", Fraction("0.01")),
    "m": _Unit("length", Fraction(1)),
    "km": _Unit("length", Fraction(1000)),
    "in": _Unit("length", Fraction("0.0254")),
    "ft": _Unit("length", Fraction("0.3048")),
    "yd": _Unit("length", Fraction("0.9144")),
    "mi": _Unit("length", Fraction("1609.344")),
    "g": _Unit("mass", Fraction("0.001")),
    "kg": _Unit("mass", Fraction(1)),
    "t": _Unit("mass", Fraction(1000)),
    "lb": _Unit("mass", Fraction("0.45359237")),
    "oz": _Unit("mass", Fraction("0.028349523125")),
    "ml": _Unit("volume", Fraction("0.001")),
    "l": _Unit("volume", Fraction(1)),
    "gal": _Unit("volume", Fraction("3.785411784")),  # US gallon
    "fl_oz": _Unit("volume", Fraction("0.0295735295625")),  # US fluid ounce
    "K": _Unit("temperature", Fraction(1)),
    "C": _Unit("temperature", Fraction(1), Fraction("273.15")),
    "F": _Unit("temperature", Fraction(5, 9), Fraction("459.67")),
}
_UNITS_ANY_CASE = {name.lower(): unit for name, unit in _UNITS.items()}


def _unit(option: str, name: Any) -> _Unit:
    unit = _UNITS_ANY_CASE.get(name.lower()) if isinstance(name, str) else None
    if unit is None:
        raise _option_error("convert_unit", option, name, f"expected one of {', '.join(_UNITS)}")
    return unit


def convert_unit(values: pd.Series, *, from_unit: str, to_unit: str) -> Standardized:
    source, target = _unit("from_unit", from_unit), _unit("to_unit", to_unit)
    if source.kind != target.kind:
        raise _option_error("convert_unit", "to_unit", to_unit, f"{from_unit!r} is a {source.kind}, {to_unit!r} a {target.kind}")
    # Combined exactly as fractions, so 2.54 cm per inch and C -> F (x 9/5 + 32) round once.
    factor = source.size / target.size
    shift = source.zero * factor - target.zero
    parsed = number(values)
    return Standardized(parsed.values * float(factor) + float(shift), parsed.failed)


RULES: dict[str, Callable[..., Standardized]] = {
    "text": text,
    "email": email,
    "phone": phone,
    "date": date,
    "datetime": datetime,
    "boolean": boolean,
    "postal_code": postal_code,
    "country": country,
    "person_name": person_name,
    "value_map": value_map,
    "number": number,
    "convert_unit": convert_unit,
}


def validate_options(rule: str, options: Mapping[str, Any]) -> None:
    """RuleError unless `rule` names a rule that accepts exactly these options with these values."""
    function = RULES.get(rule)
    if function is None:
        raise RuleError(f"unknown rule {rule!r} (rules: {', '.join(RULES)})")
    parameters = [p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
    accepted = [p.name for p in parameters]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise RuleError(f"{rule}: unknown option(s) {', '.join(unknown)} (options: {', '.join(accepted) or 'none'})")
    missing = [p.name for p in parameters if p.default is p.empty and p.name not in options]
    if missing:
        raise RuleError(f"{rule}: option(s) {', '.join(missing)} required")
    function(pd.Series([], dtype="str"), **options)
