"""Column profiles of raw text: semantic type, counts, shapes, PII and a quality score (no dagster).

Every measure is computed on a column's distinct values weighted by their counts (count_text,
Arrow's dictionary encoding, which the recommendations share), so a column of a million rows with
a thousand distinct values costs a thousand regex tests, not a million; each pattern runs once
per column however many measures ask for it.

Semantic types, tested in this order on the non-empty values (a type wins when at least
TYPE_SHARE of them match it; a column name such as `zip` or `phone` breaks ties between the
all-digit kinds): uuid, email, url, ip, datetime, date, boolean, currency amount, integer,
decimal, phone, postal code; failing all of them, categorical (at most CATEGORICAL_MAX distinct
values, or distinct values under 5% of the non-empty ones) or free text.

Value shapes: upper-case letters become `A`, lower-case `a` (a run of letters of one case
becomes one letter), digits `9` each, anything else stays; `John42` → `Aa99`.

PII kinds: email, phone, card (13–19 digits passing the Luhn check), iban (ISO 13616 mod-97
check), national_id (US SSN shape outside the never-issued ranges), ip. A column is flagged
with a kind when at least PII_SHARE of its non-empty values are of that kind.

Quality score of a column, 0–100:
    100 × (0.4 × completeness + 0.3 × validity + 0.15 × uniqueness + 0.15 × consistency)
- completeness: share of rows neither NULL nor blank;
- validity: share of non-empty values matching the semantic type (1 for categorical and free text);
- uniqueness: distinct / non-empty for a key-like column (uuid, email, integer, phone or free
  text with distinct values ≥ 90% of the non-empty ones), else 1;
- consistency: share of non-empty values without surrounding whitespace and in the column's most
  common shape family (for dates: the most common date format).
A file's score is the mean of its columns' scores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import cast

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from harmonizer_pipeline.arrow_scan import text_values

TYPE_SHARE = 0.95
PII_SHARE = 0.5
CATEGORICAL_MAX = 50
TOP_VALUES = 10
TOP_PATTERNS = 5
KEY_LIKE_SHARE = 0.9
SAMPLE_DISTINCT = 20_000  # distinct values typed and shaped; more are sampled in proportion to their counts

DATE_FORMATS = {
    "YYYY-MM-DD": r"\d{4}-\d{2}-\d{2}",
    "DD.MM.YYYY": r"\d{2}\.\d{2}\.\d{4}",
    "DD/MM/YYYY or MM/DD/YYYY": r"\d{2}/\d{2}/\d{4}",
    "YYYY/MM/DD": r"\d{4}/\d{2}/\d{2}",
}
_DATE = "(?:" + "|".join(DATE_FORMATS.values()) + ")"
_TIME = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
# A phone number is written as phones are (a leading + or 00, an area code with a leading 0 or in
# parentheses, or groups split by spaces, dashes, dots or parentheses); a short bare run of digits
# is a code. What the pattern takes, phonenumbers then confirms (_phone_matches).
_PHONE = (
    r"(?:\+|00)\d[\d\s().-]{6,18}\d"  # international
    r"|\(?0\d{1,4}\)?[\s./-]\d[\d\s./-]{3,14}\d|0\d{9,11}"  # national: area code, then a separator or 10-12 digits
    r"|\(\d{2,5}\)\s?\d[\d\s./-]{4,12}\d"  # national: area code in parentheses, as (212) 555-3999
    r"|\d{2,4}[\s.-]\d{2,4}[\s.-]\d{2,6}"  # grouped
)
# Regions a number written without its country code is tried in: with a leading 0 (the trunk
# prefix of most of Europe and beyond, Italy's area codes), Europe's largest then others; ten
# digits without it, the North American plan. Other numbers without a country code (8 or 9 digits
# as Denmark or Spain write them) are not taken: as many codes and ids look the same.
PHONE_REGIONS = ("GB", "DE", "FR", "IT", "NL", "BE", "CH", "AT", "PL", "SE", "IE", "AU", "IN", "BR", "JP")
NANP_REGION = "US"
PHONE_CHECKS = 100  # distinct values a column's phone numbers are confirmed on (the cost per column is bounded)
PHONE_VALID_SHARE = 0.9  # of the checked values (by rows) phonenumbers must find valid
# Each semantic type: the RE2 pattern its values fully match (pyarrow runs them).
TYPE_PATTERNS: dict[str, str] = {
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "email": r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "url": r"(?:https?|ftp)://[^\s/$.?#][^\s]*",
    "ip": r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)|[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*",
    "datetime": _DATE + r"[T ]" + _TIME,
    "date": _DATE,
    "boolean": r"(?i:true|false|yes|no|y|n|t|f|ja|nein|oui|non)",
    "currency amount": r"(?:[$€£¥]\s?[+-]?\d[\d.,' ]*|[+-]?\d[\d.,' ]*\s?(?:[$€£¥]|EUR|USD|GBP|CHF|JPY|SEK|PLN))",
    "integer": r"[+-]?(?:0|[1-9]\d*)",
    # Whole numbers too, but not digit codes with leading zeros ('007').
    "decimal": r"[+-]?(?:(?:0|[1-9]\d*)(?:[.,]\d+)?|\d{1,3}(?:[.,' ]\d{3})+(?:[.,]\d+)?)",
    "phone": _PHONE,
    "postal code": r"\d{4,6}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|\d{4} ?[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|\d{3}-\d{4}|\d{5}-\d{4}",
}
# All-digit kinds a value can be at once; the column's name decides between them when given.
_NAME_HINTS = {
    "postal code": re.compile(r"zip|postal|postcode|plz|cap\b|cep\b", re.I),
    "phone": re.compile(r"phone|tel|mobile|fax|gsm", re.I),
}
_DIGITS_ONLY = {"integer", "phone", "postal code"}
_KEY_TYPES = {"uuid", "email", "integer", "phone", "free text"}  # kinds that identify when nearly unique

CARD_DIGITS = 19  # the most digits a card number has
PII_PATTERNS = {
    "email": TYPE_PATTERNS["email"],
    "phone": _PHONE,
    "card": r"\d(?:[ -]?\d){12,18}",
    "iban": r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}",
    "national_id": r"(?:00[1-9]|0[1-9]\d|[1-578]\d\d|6[0-57-9]\d|66[0-57-9])-(?:0[1-9]|[1-9]\d)-(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})",
    "ip": TYPE_PATTERNS["ip"],
}


@dataclass
class ColumnProfile:
    name: str
    semantic_type: str
    rows: int
    nulls: int
    empties: int  # '' or whitespace only
    distinct: int  # distinct non-null values
    top_values: list[tuple[str, int]]
    minimum: str | None  # numerically for number types, else lexically
    maximum: str | None
    length_min: int | None
    length_mean: float | None
    length_max: int | None
    patterns: list[tuple[str, int]]
    categories: list[str] | None  # every distinct non-blank value, for categorical and boolean columns
    pii: list[str]
    pii_counts: dict[str, int]
    completeness: float
    validity: float
    uniqueness: float
    consistency: float
    quality_score: float


@dataclass
class FileProfile:
    rows: int
    columns: list[ColumnProfile] = field(default_factory=list)

    @property
    def quality_score(self) -> float:
        return round(float(np.mean([c.quality_score for c in self.columns])), 1) if self.columns else 100.0


def profile_frame(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> FileProfile:
    """Profile the frame's text columns (all but lineage columns starting with '_', unless named)."""
    names = list(columns) if columns is not None else [c for c in frame.columns if not str(c).startswith("_")]
    return FileProfile(len(frame), [profile_column(str(name), frame[name]) for name in names])


def profile_column(name: str, values: pd.Series | pa.Array | pa.ChunkedArray | CountedText) -> ColumnProfile:
    text = values if isinstance(values, CountedText) else count_text(values)
    rows, nulls, distinct_values, counts, filled = text.rows, text.nulls, text.values, text.counts, text.filled
    empties = int(counts[text.blank].sum())
    sample = filled.sample(SAMPLE_DISTINCT)
    semantic_type = _semantic_type(name, sample, len(filled), filled.total)
    open_type = semantic_type in ("categorical", "free text")
    matches = np.ones(len(filled), bool) if open_type else type_matches(filled, semantic_type)
    pii_counts = _pii_counts(filled, sample)
    patterns = _patterns(sample, filled.total)
    minimum, maximum = _range(semantic_type, filled.stripped, matches)
    # as_text_array makes every column string or large_string; pyarrow-stubs' utf8_length takes no plain Array.
    lengths = pc.utf8_length(cast(pa.StringArray | pa.LargeStringArray, distinct_values)).to_numpy(zero_copy_only=False)
    completeness = (rows - nulls - empties) / rows if rows else 1.0
    validity = float(filled.counts[matches].sum()) / filled.total if filled.total and not open_type else 1.0
    key_like = semantic_type in _KEY_TYPES and filled.total and len(filled) >= KEY_LIKE_SHARE * filled.total
    uniqueness = len(filled) / filled.total if key_like else 1.0
    consistency = _consistency(semantic_type, filled, patterns)
    score = 100 * (0.4 * completeness + 0.3 * validity + 0.15 * uniqueness + 0.15 * consistency)
    order = np.argsort(-counts, kind="stable")[:TOP_VALUES]
    distinct = len(distinct_values)
    return ColumnProfile(
        name=name,
        semantic_type=semantic_type,
        rows=rows,
        nulls=nulls,
        empties=empties,
        distinct=distinct,
        top_values=[(distinct_values[int(i)].as_py(), int(counts[i])) for i in order],
        minimum=minimum,
        maximum=maximum,
        length_min=int(lengths.min()) if distinct else None,
        length_mean=round(float(np.average(lengths, weights=counts)), 2) if distinct else None,
        length_max=int(lengths.max()) if distinct else None,
        patterns=patterns,
        categories=sorted(text_values(filled.values)) if semantic_type in ("categorical", "boolean") and len(filled) <= CATEGORICAL_MAX else None,
        pii=_flagged(pii_counts, filled.total),
        pii_counts=pii_counts,
        completeness=round(completeness, 4),
        validity=round(validity, 4),
        uniqueness=round(uniqueness, 4),
        consistency=round(consistency, 4),
        quality_score=round(score, 1),
    )


@dataclass
class _Values:
    """A column's distinct non-blank values (as read and trimmed) with their row counts."""

    values: pa.Array
    stripped: pa.Array
    counts: np.ndarray
    _matches: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def sample(self, size: int) -> _Values:
        """`size` rows drawn with a fixed seed (as distinct values with the times each was drawn),
        or all of them when there are no more than `size` distinct values."""
        if len(self) <= size:
            return self
        draws = np.random.default_rng(0).choice(len(self), size, p=self.counts / self.total)
        chosen, weights = np.unique(draws, return_counts=True)
        return _Values(self.values.take(chosen), self.stripped.take(chosen), weights)

    @cached_property
    def untrimmed(self) -> np.ndarray:
        """Which values carry surrounding whitespace."""
        return pc.not_equal(self.values, self.stripped).to_numpy(zero_copy_only=False)

    def full_match(self, pattern: str) -> np.ndarray:
        """Which trimmed values fully match the RE2 pattern; read only (type, PII and consistency
        ask for the same patterns, so each is run once)."""
        if pattern not in self._matches:
            self._matches[pattern] = _full_match(self.stripped, pattern)
            self._matches[pattern].flags.writeable = False
        return self._matches[pattern]


@dataclass
class CountedText:
    """A column's raw text counted once: what profile_column and recommend_column both read."""

    rows: int
    nulls: int
    values: pa.Array  # the distinct non-null values, in the order they first appear
    counts: np.ndarray  # rows holding each
    codes: np.ndarray  # each non-null row's index into `values`, in row order
    blank: np.ndarray  # whether each value is '' or whitespace only
    filled: _Values  # the values that are not blank


def count_text(values: pd.Series | pa.Array | pa.ChunkedArray) -> CountedText:
    """Distinct values by dictionary encoding, whose dictionary is value_counts' values in the same
    order (first appearance) and whose codes also give each row's value (measured: 0.17 s against
    value_counts' 0.25 s for a million distinct strings). Chunks are encoded as they are (joining
    a million-row column's chunks first cost 25 ms)."""
    array = as_text_array(values)
    encoded = pc.dictionary_encode(array.drop_null())
    # dictionary_encode makes DictionaryArrays; pyarrow-stubs type its chunks as plain Arrays.
    chunks = cast(list[pa.DictionaryArray], encoded.chunks)
    # One memo table serves all chunks: a chunk's dictionary holds the values met up to its end.
    distinct_values: pa.Array = max((chunk.dictionary for chunk in chunks), key=len, default=pa.array([], array.type))
    codes = np.concatenate([chunk.indices.to_numpy(zero_copy_only=False) for chunk in chunks] or [np.zeros(0, np.int32)])
    counts = np.bincount(codes, minlength=len(distinct_values)).astype(np.int64)
    stripped = pc.utf8_trim_whitespace(distinct_values)
    blank = pc.equal(stripped, pa.scalar("")).to_numpy(zero_copy_only=False)
    if blank.any():
        filled = _Values(distinct_values.filter(~blank), stripped.filter(~blank), counts[~blank])
    else:
        filled = _Values(distinct_values, stripped, counts)
    return CountedText(len(array), array.null_count, distinct_values, counts, codes, blank, filled)


def as_text_array(values: pd.Series | pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """The values as one Arrow string column (string or large_string)."""
    if isinstance(values, pd.Series):
        values = pa.array(values.array, from_pandas=True) if len(values) else pa.array([], pa.string())
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    # pandas' Arrow strings are large_string: kept as they are rather than copied.
    return values if values.type in (pa.string(), pa.large_string()) else values.cast(pa.string())


def _full_match(values: pa.Array, pattern: str) -> np.ndarray:
    if not len(values):
        return np.zeros(0, bool)
    return pc.match_substring_regex(values, f"^(?:{pattern})$").to_numpy(zero_copy_only=False)


def _semantic_type(name: str, sample: _Values, distinct: int, total: int) -> str:
    """The first type TYPE_SHARE of the values match (by count), a name hint deciding among digit kinds."""
    if not sample.total:
        return "free text"
    shares = {}
    for semantic_type in TYPE_PATTERNS:
        shares[semantic_type] = sample.counts[type_matches(sample, semantic_type)].sum() / sample.total
        whole_numbers = semantic_type == "decimal" and shares["integer"] >= TYPE_SHARE
        if shares[semantic_type] >= TYPE_SHARE and semantic_type not in _DIGITS_ONLY and not whole_numbers:
            return semantic_type
    digit_kinds = [kind for kind in ("integer", "phone", "postal code") if shares[kind] >= TYPE_SHARE]
    hinted = [kind for kind in digit_kinds if kind in _NAME_HINTS and _NAME_HINTS[kind].search(name)]
    if hinted or digit_kinds:
        return (hinted or digit_kinds)[0]
    if distinct <= CATEGORICAL_MAX or distinct < 0.05 * total:
        return "categorical"
    return "free text"


def detect_pii(text: CountedText) -> list[str]:
    """The PII kinds of a column's counted text, as profile_column flags them."""
    filled = text.filled
    return _flagged(_pii_counts(filled, filled.sample(SAMPLE_DISTINCT)), filled.total)


def is_pii(value: str, kind: str) -> bool:
    """Whether one value is of a PII kind by the same pattern and check digits (for text written
    for people, such as an error message, where a column's share means nothing)."""
    text = pa.array([value])
    one = _Values(text, pc.utf8_trim_whitespace(text), np.ones(1, np.int64))
    # A phone number's shape is enough here: masking one that phonenumbers would not confirm errs on the safe side.
    return bool(_phone_shaped(one)[0] if kind == "phone" else _pii_matches(kind, PII_PATTERNS[kind], one)[0])


def _pii_counts(filled: _Values, sample: _Values) -> dict[str, int]:
    """Rows of each PII kind met in the sample, counted over all the values."""
    counts = {}
    for kind, pattern in PII_PATTERNS.items():
        # Kinds absent from the sample are not looked for in the rest.
        in_sample = _pii_matches(kind, pattern, sample)
        if in_sample.any():
            everywhere = in_sample if sample is filled else _pii_matches(kind, pattern, filled)
            counts[kind] = int(filled.counts[everywhere].sum())
    return counts


def _flagged(counts: dict[str, int], total: int) -> list[str]:
    return [kind for kind, n in counts.items() if total and n >= PII_SHARE * total]


def _pii_matches(kind: str, pattern: str, values: _Values) -> np.ndarray:
    """Values of a PII kind: its pattern, and its check digits (Luhn for cards, mod-97 for IBANs);
    a phone that is really a date does not count."""
    matches = values.full_match(pattern).copy()
    if kind == "card" and matches.any():
        at = np.flatnonzero(matches)
        matches[at] = luhn_valid(values.stripped.take(at))
    elif kind == "iban" and matches.any():
        at = np.flatnonzero(matches)
        matches[at] = [_iban_ok(value) for value in text_values(values.stripped.take(at))]
    elif kind == "phone":
        matches = _phone_matches(values).copy()
    return matches


def type_matches(values: _Values, semantic_type: str) -> np.ndarray:
    """Which values are of the semantic type (read only): its pattern, and for phones phonenumbers' word."""
    return _phone_matches(values) if semantic_type == "phone" else values.full_match(TYPE_PATTERNS[semantic_type])


def _phone_matches(values: _Values) -> np.ndarray:
    """Values written as phone numbers (_PHONE, not a date), when phonenumbers finds PHONE_VALID_SHARE
    (by rows) of up to PHONE_CHECKS of them valid, in their own country (+ or 00) or one of
    PHONE_REGIONS; else none: a column of codes or amounts that happen to be grouped is no phone column."""
    key = "phonenumbers"
    if key not in values._matches:
        matches = _phone_shaped(values)
        at = np.flatnonzero(matches)
        if len(at):
            # Evenly spread over the matching values (first appearance order), the same ones every run.
            checked = at[np.linspace(0, len(at) - 1, min(PHONE_CHECKS, len(at))).astype(int)]
            valid = np.array([is_phone_number(v) for v in text_values(values.stripped.take(checked))])
            weights = values.counts[checked]
            if weights[valid].sum() < PHONE_VALID_SHARE * weights.sum():
                matches[:] = False
        matches.flags.writeable = False
        values._matches[key] = matches
    return values._matches[key]


def _phone_shaped(values: _Values) -> np.ndarray:
    return values.full_match(_PHONE) & ~values.full_match("(?:" + TYPE_PATTERNS["datetime"] + "|" + TYPE_PATTERNS["date"] + ")")


def is_phone_number(text: str) -> bool:
    """Whether phonenumbers finds the text a valid number: with its country code (+ or 00), with a
    leading 0 in one of PHONE_REGIONS, or of ten digits in the North American plan."""
    digits = re.sub(r"\D", "", text)
    if text.startswith(("+", "00")):
        number, regions = "+" + digits.removeprefix("00"), (None,)
    elif digits.startswith("0"):
        number, regions = text, PHONE_REGIONS
    elif len(digits) == 10:
        number, regions = text, (NANP_REGION,)
    else:
        return False
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def luhn_valid(texts: pa.Array) -> np.ndarray:
    """Which texts (digits split by spaces or dashes) are card numbers of 13-19 digits passing
    the Luhn check. On all rows at once: the digits left-padded with zeros (which add nothing to
    the sum) to one width, as a matrix of bytes; 1.0 s for 900k card numbers where a loop over
    the values in Python took 5.5 s."""
    digits = pc.replace_substring_regex(texts, "[ -]", "")
    lengths = pc.utf8_length(cast(pa.StringArray | pa.LargeStringArray, digits)).to_numpy(zero_copy_only=False)
    valid = (lengths >= 13) & (lengths <= CARD_DIGITS)
    if not valid.any():
        return valid
    padded = pc.utf8_lpad(digits.filter(pa.array(valid)), CARD_DIGITS, "0").cast(pa.large_binary())
    offsets, data = cast(list[pa.Buffer], padded.buffers()[1:])
    start = int(np.frombuffer(memoryview(offsets), np.int64)[padded.offset])
    data = np.frombuffer(memoryview(data), np.uint8)[start : start + len(padded) * CARD_DIGITS]
    matrix = data.reshape(-1, CARD_DIGITS).astype(np.int16) - ord("0")
    doubled = matrix[:, -2::-2] * 2  # every second digit from the right, the check digit's neighbour first
    total = matrix[:, ::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    valid[valid] = (total % 10 == 0) & ((matrix >= 0) & (matrix <= 9)).all(axis=1)
    return valid


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _patterns(sample: _Values, total: int) -> list[tuple[str, int]]:
    """The most common value shapes with their row counts (estimated from the sample when sampled)."""
    if not len(sample):
        return []
    shapes = pc.replace_substring_regex(sample.values, r"[0-9]", "9")
    shapes = pc.replace_substring_regex(shapes, r"\p{Lu}+", "A")
    shapes = pc.replace_substring_regex(shapes, r"\p{Ll}+", "a")
    frame = pd.DataFrame({"shape": shapes.to_numpy(zero_copy_only=False), "count": sample.counts})
    totals = frame.groupby("shape", sort=False)["count"].sum().sort_values(ascending=False, kind="stable")
    scale = total / sample.total
    return [(str(shape), round(int(n) * scale)) for shape, n in totals.head(TOP_PATTERNS).items()]


def _range(semantic_type: str, values: pa.Array, matches: np.ndarray) -> tuple[str | None, str | None]:
    """Min and max: by number for integers and decimals, by text otherwise (ISO dates sort right)."""
    if not len(values):
        return None, None
    if semantic_type in ("integer", "decimal") and matches.any():
        typed = values.filter(pa.array(matches))
        numbers = to_numbers(typed).to_numpy(zero_copy_only=False)
        return typed[int(np.argmin(numbers))].as_py(), typed[int(np.argmax(numbers))].as_py()
    extremes = pc.min_max(values)
    return extremes["min"].as_py(), extremes["max"].as_py()


def to_numbers(texts: pa.Array, marks: pa.Array | None = None) -> pa.Array:
    """Numbers written with the majority decimal mark of the first SAMPLE_DISTINCT of `marks` (by
    default the texts themselves): ',' when most put it after any '.'; other marks, spaces and
    apostrophes group thousands. Literal replaces, then a cast."""
    sample = text_values((texts if marks is None else marks).slice(0, SAMPLE_DISTINCT))
    comma_decimal = sum(t.rfind(",") > t.rfind(".") for t in sample) > len(sample) / 2
    thousands, decimal = (".", ",") if comma_decimal else (",", ".")
    for mark in (thousands, " ", "'"):
        texts = pc.replace_substring(texts, mark, "")
    return pc.cast(pc.replace_substring(texts, decimal, "."), pa.float64())


def _consistency(semantic_type: str, filled: _Values, patterns: list[tuple[str, int]]) -> float:
    """Share of values without surrounding whitespace and in the dominant shape (date format for dates)."""
    if not filled.total:
        return 1.0
    clean = 1 - filled.counts[filled.untrimmed].sum() / filled.total
    if semantic_type in ("date", "datetime"):
        tail = r"[T ].*" if semantic_type == "datetime" else ""
        dominant = max(filled.counts[filled.full_match(f"(?:{fmt}){tail}")].sum() for fmt in DATE_FORMATS.values()) / filled.total
    elif semantic_type in ("free text", "categorical"):
        dominant = 1.0
    else:
        dominant = min(1.0, patterns[0][1] / filled.total) if patterns else 1.0
    return float(clean * dominant)
