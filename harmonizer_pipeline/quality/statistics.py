"""Descriptive statistics of a file's raw text columns, read through the profile's semantic types (no dagster).

Per column, by its semantic type (quality.profiling):
- numbers (integer, decimal, currency amount): count, mean, sample standard deviation (ddof 1),
  minimum, the 5/25/50/75/95 % quantiles (linear interpolation, numpy's default), maximum, zeros,
  negatives, and a histogram. Values are read as the profile reads them (`to_numbers`: the
  column's majority decimal mark, so `1.234,5` is 1234.5); non-empty values that are not of the
  type are counted as `invalid` and left out. Histogram bins: equal widths from the minimum to the
  maximum, as many as there are distinct numbers, at most HISTOGRAM_BINS (a constant column gets
  one bin, numpy's [v - 0.5, v + 0.5]);
- dates (date, datetime): count, first and last day, and rows per period, the period chosen from
  the range (day up to DAY_SPAN days, month up to MONTH_SPAN, else year; periods without rows
  count 0). Formats are the profile's DATE_FORMATS; `DD/MM/YYYY or MM/DD/YYYY` is read day first
  unless a value's second field is over 12 and none's first is; a datetime's date is its first
  10 characters; impossible dates (2024-02-30) are `invalid`;
- any other type: the length of the non-blank values in characters (minimum, mean, maximum, a histogram of
  lengths: one bin per length up to HISTOGRAM_BINS lengths, else equal widths) and the top values.

All of these are computed on the column's distinct values weighted by their row counts (the
profile's count_text), so their cost follows the distinct values, not the rows.

Across columns:
- missing-value patterns: which columns are missing (NULL or blank) together, with their rows,
  the MISSING_PATTERNS_TOP most common patterns that miss at least one column; exact over all rows;
- Pearson and Spearman (average ranks for ties) correlations of each pair of number columns,
  over the rows where both are numbers;
- Cramér's V of each pair of low-cardinality columns (categorical or boolean, at most
  ASSOCIATION_MAX_CATEGORIES distinct values), bias-corrected (Bergsma 2013), over the rows where
  both are filled.
A measure that is undefined (a constant column, fewer than 2 rows in common) is stored as NULL
(None). The pairwise measures read every row up to CROSS_SAMPLE_ROWS; above that, the same
CROSS_SAMPLE_ROWS rows (a seeded uniform sample) for every column, and `sampled_rows` says so.
They pair the first PAIRED_COLUMNS_MAX number columns, and as many category columns, so a wide
file costs at most 435 pairs of each.

Measured on bench/bench_quality.py's 1M × 20 file (4 number columns, 6 category columns) on a
loaded 2-core machine: profile with statistics 20.9 s against 15.2 s without, and 142.7 s for
ydata-profiling's minimal mode (which has no correlations). Histograms take numpy's equal-bin
path and bincounts (no sort of the values again); Spearman sorts each column once and takes each
pair's ranks from that order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harmonizer_pipeline.quality.profiling import (
    DATE_FORMATS,
    TYPE_PATTERNS,
    ColumnProfile,
    CountedText,
    FileProfile,
    as_text_array,
    count_text,
    profile_column,
    to_numbers,
)

NUMBER_TYPES = ("integer", "decimal", "currency amount")
DATE_TYPES = ("date", "datetime")
CATEGORY_TYPES = ("categorical", "boolean")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTOGRAM_BINS = 20
DAY_SPAN = 62  # days: a range up to two months is counted per day
MONTH_SPAN = 5 * 366  # days: up to five years per month, beyond per year
MISSING_PATTERNS_TOP = 5
ASSOCIATION_MAX_CATEGORIES = 50
CROSS_SAMPLE_ROWS = 1_000_000
PAIRED_COLUMNS_MAX = 30  # number columns, and category columns, paired (the first in file order): 435 pairs each at most
_CURRENCY = r"[$€£¥]|EUR|USD|GBP|CHF|JPY|SEK|PLN"
# Each date format: the strptime formats it is read with (day first, month first).
_STRPTIME = {"YYYY-MM-DD": ("%Y-%m-%d",), "DD.MM.YYYY": ("%d.%m.%Y",), "DD/MM/YYYY or MM/DD/YYYY": ("%d/%m/%Y", "%m/%d/%Y"), "YYYY/MM/DD": ("%Y/%m/%d",)}


@dataclass(frozen=True)
class Histogram:
    """Rows per bin: bin i holds edges[i] <= x < edges[i + 1] (the last bin includes its right edge)."""

    edges: list[float]
    counts: list[int]


@dataclass(frozen=True)
class NumberStatistics:
    count: int  # rows read as numbers
    invalid: int  # non-empty rows that are not numbers
    mean: float
    std: float | None  # sample standard deviation; None for one row
    minimum: float
    p5: float
    p25: float
    p50: float
    p75: float
    p95: float
    maximum: float
    zeros: int
    negatives: int
    histogram: Histogram


@dataclass(frozen=True)
class DateStatistics:
    count: int  # rows read as dates
    invalid: int
    first: str  # ISO date
    last: str
    period: str  # day, month or year
    periods: list[tuple[str, int]]  # (period as 2024-03-05, 2024-03 or 2024, rows), every period from first to last


@dataclass(frozen=True)
class TextStatistics:
    length_min: int
    length_mean: float
    length_max: int
    length_histogram: Histogram
    top_values: list[tuple[str, int]]


@dataclass(frozen=True)
class ColumnStatistics:
    column: str
    semantic_type: str
    numbers: NumberStatistics | None = None
    dates: DateStatistics | None = None
    text: TextStatistics | None = None


@dataclass(frozen=True)
class MissingPattern:
    columns: list[str]  # the columns missing together, in file order
    rows: int


@dataclass(frozen=True)
class Association:
    column_a: str
    column_b: str
    measure: str  # pearson, spearman or cramers_v
    value: float | None  # None when undefined (a constant column, fewer than 2 rows in common)
    rows: int  # rows both columns have a value in (of the rows read)


@dataclass
class FileStatistics:
    rows: int
    sampled_rows: int  # rows the pairwise measures read: all rows up to CROSS_SAMPLE_ROWS
    columns: list[ColumnStatistics] = field(default_factory=list)
    missing_patterns: list[MissingPattern] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)

    def column(self, name: str) -> ColumnStatistics:
        return next(c for c in self.columns if c.column == name)


def profile_with_statistics(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, each: Callable[[ColumnProfile, CountedText], None] | None = None
) -> tuple[FileProfile, FileStatistics]:
    """profile_frame's profile and the statistics of its columns, each column's text counted once
    (and given to `each` with the column's profile, for whatever else reads it)."""
    names = list(columns) if columns is not None else [c for c in frame.columns if not str(c).startswith("_")]
    collector = StatisticsCollector(len(frame))
    profiles = []
    for name in names:
        text = count_text(frame[name])
        profiles.append(profile_column(str(name), text))
        collector.add(frame[name], text, profiles[-1])
        if each is not None:
            each(profiles[-1], text)
    return FileProfile(len(frame), profiles), collector.finish()


class StatisticsCollector:
    """Column statistics as each column is profiled, and what the measures across columns need of
    it kept until finish(): its missing rows (one bit a row), its numbers or category codes on the
    sampled rows. Columns may be added in groups (the profile step reads them so)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.sample = np.sort(np.random.default_rng(rows).choice(rows, CROSS_SAMPLE_ROWS, replace=False)) if rows > CROSS_SAMPLE_ROWS else None
        self.columns: list[ColumnStatistics] = []
        self._missing: list[tuple[str, np.ndarray | bool]] = []  # packed bits, or True/False for all/none
        self._numbers: dict[str, np.ndarray] = {}
        self._categories: dict[str, np.ndarray] = {}

    def add(self, values: pd.Series | pa.Array | pa.ChunkedArray, text: CountedText, profile: ColumnProfile) -> ColumnStatistics:
        if text.rows != self.rows:
            raise ValueError(f"column {profile.name!r} has {text.rows} rows, the file {self.rows}")
        stats, value_numbers = column_statistics(text, profile)
        self.columns.append(stats)
        row_codes = _row_codes(values, text)  # -1 for NULL: indexes the extra last entry below
        missing = np.append(text.blank, True)[row_codes]
        missing_rows = int(missing.sum())
        self._missing.append((profile.name, bool(missing_rows) if missing_rows in (0, self.rows) else np.packbits(missing)))
        sampled = row_codes if self.sample is None else row_codes[self.sample]
        if value_numbers is not None:
            self._numbers[profile.name] = np.append(value_numbers, np.nan)[sampled]
        filled_distinct = len(text.filled)
        if profile.semantic_type in CATEGORY_TYPES and filled_distinct <= ASSOCIATION_MAX_CATEGORIES:
            categories = np.full(len(text.values) + 1, -1, np.int16)
            categories[np.flatnonzero(~text.blank)] = np.arange(filled_distinct)
            self._categories[profile.name] = categories[sampled]
        return stats

    def finish(self) -> FileStatistics:
        sampled_rows = self.rows if self.sample is None else len(self.sample)
        numbers = dict(list(self._numbers.items())[:PAIRED_COLUMNS_MAX])
        categories = list(self._categories)[:PAIRED_COLUMNS_MAX]
        associations = [
            *_correlations(numbers),
            *(_association(a, b, self._categories[a], self._categories[b]) for a, b in combinations(categories, 2)),
        ]
        return FileStatistics(self.rows, sampled_rows, self.columns, missing_patterns(self._missing, self.rows), associations)


def column_statistics(text: CountedText, profile: ColumnProfile) -> tuple[ColumnStatistics, np.ndarray | None]:
    """The column's statistics, and for a number column each distinct value's number (NaN for blanks
    and values that are not numbers), aligned with text.values."""
    filled, semantic_type = text.filled, profile.semantic_type
    if semantic_type in NUMBER_TYPES or semantic_type in DATE_TYPES:
        matches = filled.full_match(TYPE_PATTERNS[semantic_type])
        invalid = int(filled.counts[~matches].sum())
        typed, counts = filled.stripped.filter(pa.array(matches)), filled.counts[matches]
        if semantic_type in NUMBER_TYPES:
            numbers = _numbers(typed, semantic_type)
            value_numbers = np.full(len(text.values), np.nan)
            value_numbers[np.flatnonzero(~text.blank)[matches]] = numbers
            return ColumnStatistics(profile.name, semantic_type, numbers=number_statistics(numbers, counts, invalid)), value_numbers
        return ColumnStatistics(profile.name, semantic_type, dates=_date_statistics(typed, counts, invalid)), None
    # as_text_array gives string or large_string arrays; pyarrow-stubs' utf8_length takes no plain Array.
    lengths = pc.utf8_length(cast(pa.StringArray | pa.LargeStringArray, filled.values)).to_numpy(zero_copy_only=False)
    return ColumnStatistics(profile.name, semantic_type, text=_text_statistics(lengths, filled.counts, profile.top_values)), None


def _numbers(typed: pa.Array, semantic_type: str) -> np.ndarray:
    if semantic_type == "currency amount":
        typed = pc.utf8_trim_whitespace(pc.replace_substring_regex(typed, _CURRENCY, ""))
    return to_numbers(typed).to_numpy(zero_copy_only=False)


def number_statistics(numbers: np.ndarray, counts: np.ndarray, invalid: int = 0) -> NumberStatistics | None:
    """Statistics of numbers[i] occurring counts[i] times (None when there are none)."""
    keep = counts > 0
    numbers, counts = numbers[keep], counts[keep]
    n = int(counts.sum())
    if not n:
        return None
    order = np.argsort(numbers, kind="stable")
    values, weights = numbers[order], counts[order]
    mean = float(np.dot(values, weights) / n)
    std = math.sqrt(float(np.dot(weights, (values - mean) ** 2)) / (n - 1)) if n > 1 else None
    p5, p25, p50, p75, p95 = weighted_quantiles(values, weights, QUANTILES)
    bins = min(HISTOGRAM_BINS, 1 + int(np.count_nonzero(np.diff(values))))  # distinct numbers (values are sorted)
    # Equal bins over the range: numpy's fast path, without sorting the values again.
    hist, edges = np.histogram(values, bins=bins, range=(float(values[0]), float(values[-1])), weights=weights)
    return NumberStatistics(
        count=n,
        invalid=invalid,
        mean=mean,
        std=std,
        minimum=float(values[0]),
        p5=p5,
        p25=p25,
        p50=p50,
        p75=p75,
        p95=p95,
        maximum=float(values[-1]),
        zeros=int(weights[values == 0].sum()),
        negatives=int(weights[values < 0].sum()),
        histogram=Histogram([float(e) for e in edges], [int(c) for c in hist]),
    )


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: Sequence[float]) -> list[float]:
    """np.quantile (linear) of the rows, values[i] (sorted) repeated weights[i] times, without repeating them."""
    ends = np.cumsum(weights)  # row positions ends[i] - weights[i] .. ends[i] - 1 hold values[i]
    found = []
    for q in quantiles:
        at = (ends[-1] - 1) * q
        below, above = int(math.floor(at)), int(math.ceil(at))
        low, high = values[np.searchsorted(ends, below, side="right")], values[np.searchsorted(ends, above, side="right")]
        found.append(float(low + (at - below) * (high - low)) if high != low else float(low))
    return found


def _date_statistics(typed: pa.Array, counts: np.ndarray, invalid: int) -> DateStatistics | None:
    # Timestamps share their days: each distinct day is parsed once (a million timestamps of five
    # years are some 1,800 days).
    # dictionary_encode of an Array makes a DictionaryArray; pyarrow-stubs type it as a plain Array.
    encoded = cast(pa.DictionaryArray, pc.dictionary_encode(pc.utf8_slice_codeunits(typed, 0, 10)))
    days = _days(encoded.dictionary)[encoded.indices.to_numpy(zero_copy_only=False)]
    known = ~np.isnat(days)
    invalid += int(counts[~known].sum())
    days, counts = days[known], counts[known]
    if not len(days):
        return None
    first, last = days.min(), days.max()
    span = int((last - first).astype(int))
    period, unit = ("day", "D") if span <= DAY_SPAN else ("month", "M") if span <= MONTH_SPAN else ("year", "Y")
    index = days.astype(f"datetime64[{unit}]").astype(np.int64)
    start = int(index.min())
    per_period = np.bincount(index - start, weights=counts).astype(np.int64)
    labels = np.arange(start, start + len(per_period)).astype(f"datetime64[{unit}]").astype(str)
    return DateStatistics(int(counts.sum()), invalid, str(first), str(last), period, list(zip(labels.tolist(), per_period.tolist(), strict=True)))


def _days(texts: pa.Array) -> np.ndarray:
    """Each text (a date in one of DATE_FORMATS) as datetime64[D]; NaT where it is no real date."""
    found = np.full(len(texts), np.datetime64("NaT"), "datetime64[D]")
    for name, pattern in DATE_FORMATS.items():
        fits = pc.match_substring_regex(texts, f"^(?:{pattern})$").to_numpy(zero_copy_only=False)
        if not fits.any():
            continue
        written = texts.filter(pa.array(fits))
        formats = _STRPTIME[name]
        if len(formats) > 1:
            first = pc.cast(pc.utf8_slice_codeunits(written, 0, 2), pa.int32()).to_numpy(zero_copy_only=False)
            second = pc.cast(pc.utf8_slice_codeunits(written, 3, 5), pa.int32()).to_numpy(zero_copy_only=False)
            formats = formats[1:] if (second > 12).any() and not (first > 12).any() else formats[:1]
        parsed = pc.strptime(written, format=formats[0], unit="s", error_is_null=True)
        # strptime rolls impossible days over (31.02. → 02.03.): a real date writes back as it was read.
        real = pc.equal(pc.strftime(parsed, format=formats[0]), written).fill_null(False).to_numpy(zero_copy_only=False)
        days = pc.cast(parsed, pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
        found[np.flatnonzero(fits)[real]] = days[real]
    return found


def _text_statistics(lengths: np.ndarray, counts: np.ndarray, top_values: list[tuple[str, int]]) -> TextStatistics | None:
    keep = counts > 0
    lengths, counts = lengths[keep], counts[keep]
    if not len(lengths):
        return None
    low, high = int(lengths.min()), int(lengths.max())
    # One bin per length when they fit (edges at whole lengths, the last closing the range):
    # a bincount, where np.histogram would sort the lengths.
    if high - low < HISTOGRAM_BINS:
        edges, hist = np.arange(low, high + 2), np.bincount(lengths - low, weights=counts, minlength=high - low + 1)
    else:
        hist, edges = np.histogram(lengths, bins=HISTOGRAM_BINS, range=(low, high), weights=counts)
    mean = round(float(np.average(lengths, weights=counts)), 2)
    return TextStatistics(low, mean, high, Histogram([float(e) for e in edges], [int(c) for c in hist]), list(top_values))


def _row_codes(values: pd.Series | pa.Array | pa.ChunkedArray, text: CountedText) -> np.ndarray:
    """Each row's index into text.values, -1 for NULL."""
    nulls = pc.is_null(as_text_array(values)).to_numpy(zero_copy_only=False)
    codes = np.full(text.rows, -1, np.int64)
    codes[~nulls] = text.codes
    return codes


def missing_patterns(missing: Sequence[tuple[str, np.ndarray | bool]], rows: int) -> list[MissingPattern]:
    """The most common combinations of missing columns (at least one), with their rows. Each
    column's rows: packed bits, True (all missing) or False (none)."""
    always = [name for name, bits in missing if bits is True]
    partial = [(name, bits) for name, bits in missing if isinstance(bits, np.ndarray)]
    if not partial:
        return [MissingPattern(always, rows)] if always and rows else []
    codes = np.zeros(rows, np.int64)
    for start in range(0, len(partial), 62):  # 62 columns' bits fit an int64 code
        group = np.zeros(rows, np.int64)
        for j, (_, bits) in enumerate(partial[start : start + 62]):
            group |= np.unpackbits(bits, count=rows).astype(np.int64) << j
        if start:  # combine with the earlier groups' dense codes (both < rows: the product fits)
            codes = np.unique(codes, return_inverse=True)[1].astype(np.int64) * rows + np.unique(group, return_inverse=True)[1]
        else:
            codes = group
    _, first_rows, counts = np.unique(codes, return_index=True, return_counts=True)
    names = [name for name, _ in missing]
    found = []
    for at in np.argsort(-counts, kind="stable"):
        if len(found) >= MISSING_PATTERNS_TOP and counts[at] < found[-1].rows:
            break  # the rest are rarer (ties with the last kept are still taken, then ordered)
        row = int(first_rows[at])
        # A packed bit: row r is bit 7 - r % 8 of byte r // 8.
        missing_here = {name for name, bits in partial if bits[row >> 3] >> (7 - (row & 7)) & 1}
        columns = [name for name in names if name in missing_here or name in always]
        if columns:
            found.append(MissingPattern(columns, int(counts[at])))
    found.sort(key=lambda p: (-p.rows, [names.index(c) for c in p.columns]))
    return found[:MISSING_PATTERNS_TOP]


def _correlations(numbers: dict[str, np.ndarray]) -> list[Association]:
    found = []
    missing = {name: np.isnan(values) for name, values in numbers.items()}
    # Each column is sorted once (NaN last); a pair's ranks come from that order, restricted to
    # the rows both have (linear), instead of sorting each pair's rows again.
    orders = {name: np.argsort(values, kind="stable") for name, values in numbers.items()}
    for a, b in combinations(numbers, 2):
        both = ~missing[a] & ~missing[b]
        x, y = numbers[a][both], numbers[b][both]
        pearson = _pearson(x, y)
        spearman = None if pearson is None else _pearson(ranks_within(numbers[a], orders[a], both), ranks_within(numbers[b], orders[b], both))
        found += [Association(a, b, "pearson", pearson, len(x)), Association(a, b, "spearman", spearman, len(x))]
    return found


def ranks_within(values: np.ndarray, order: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The 1-based ranks of values[rows], ties given their average rank (scipy's rankdata
    'average'), from `order` (values' argsort) instead of another sort."""
    chosen = order[rows[order]]  # the chosen rows, by value
    ordered = values[chosen]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # where each run of equal values starts
    ends = np.r_[starts[1:], len(ordered)]
    ranks_by_value = np.repeat((starts + ends + 1) / 2, ends - starts)  # 1-based average of positions start..end-1
    ranks = np.empty(len(values))
    ranks[chosen] = ranks_by_value
    return ranks[rows]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2:
        return None
    dx, dy = x - x.mean(), y - y.mean()
    scale = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    return max(-1.0, min(1.0, float(np.dot(dx, dy)) / scale)) if scale else None


def _association(a: str, b: str, codes_a: np.ndarray, codes_b: np.ndarray) -> Association:
    both = (codes_a >= 0) & (codes_b >= 0)
    return Association(a, b, "cramers_v", cramers_v(codes_a[both], codes_b[both]), int(both.sum()))


def cramers_v(codes_a: np.ndarray, codes_b: np.ndarray) -> float | None:
    """Bias-corrected Cramér's V (Bergsma 2013) of two arrays of category codes (small non-negative
    integers); None when either has fewer than two categories or the correction leaves no degrees
    of freedom."""
    n = len(codes_a)
    if n < 2:
        return None
    width = int(codes_b.max()) + 1
    table = np.bincount(codes_a.astype(np.int64) * width + codes_b, minlength=(int(codes_a.max()) + 1) * width).reshape(-1, width)
    # Categories the rows in common do not hold are no categories of the table.
    observed = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0].astype(float)
    r, k = observed.shape
    if r < 2 or k < 2:
        return None
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    r_corrected, k_corrected = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denominator = min(k_corrected - 1, r_corrected - 1)
    return min(1.0, math.sqrt(phi2 / denominator)) if denominator > 0 else None
