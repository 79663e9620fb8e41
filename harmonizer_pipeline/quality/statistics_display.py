"""A file's statistics as people see them (no dagster): a JSON-ready dict, lines of text for
`harmonizer profile` and markdown for the profile asset's metadata. The values of PII columns
(their numbers, dates, histogram edges, period labels and top values) go through the Protection
given (masked, unless the caller shows them in clear); counts and lengths carry no values and
are shown as they are."""

from __future__ import annotations

from collections.abc import Mapping

from harmonizer_pipeline.privacy.policy import Protection
from harmonizer_pipeline.quality.statistics import Association, ColumnStatistics, FileStatistics, Histogram

SHOWN_PAIRS = 5  # correlations and associations in text and markdown: the strongest
_QUANTILE_NAMES = (("p5", "p5"), ("p25", "p25"), ("p50", "median"), ("p75", "p75"), ("p95", "p95"))


class _Shown:
    """The column's values as shown: through the Protection when the column is PII."""

    def __init__(self, kind: str | None, protection: Protection) -> None:
        self.kind, self.protection = kind, protection

    def __call__(self, value: object) -> object:
        return value if self.kind is None or value is None else self.protection.value(value, self.kind)


def column_json(stats: ColumnStatistics, pii_kind: str | None, protection: Protection) -> dict | None:
    shown = _Shown(pii_kind, protection)
    if (numbers := stats.numbers) is not None:
        figures = {"min": numbers.minimum, **{name: getattr(numbers, name) for name, _ in _QUANTILE_NAMES}, "max": numbers.maximum}
        return {
            "kind": "numbers",
            "count": numbers.count,
            "invalid": numbers.invalid,
            "mean": shown(numbers.mean),
            "std": shown(numbers.std),
            **{name: shown(value) for name, value in figures.items()},
            "zeros": numbers.zeros,
            "negatives": numbers.negatives,
            "histogram": _histogram_json(numbers.histogram, shown),
        }
    if (dates := stats.dates) is not None:
        return {
            "kind": "dates",
            "count": dates.count,
            "invalid": dates.invalid,
            "first": shown(dates.first),
            "last": shown(dates.last),
            "period": dates.period,
            "periods": [[shown(label), rows] for label, rows in dates.periods],
        }
    if (text := stats.text) is not None:
        return {
            "kind": "text",
            "length_min": text.length_min,
            "length_mean": text.length_mean,
            "length_max": text.length_max,
            "length_histogram": _histogram_json(text.length_histogram, lambda edge: edge),
            "top_values": [[shown(value), rows] for value, rows in text.top_values],
        }
    return None


def _histogram_json(histogram: Histogram, shown) -> dict:
    return {"edges": [shown(edge) for edge in histogram.edges], "counts": histogram.counts}


def file_json(stats: FileStatistics) -> dict:
    """The measures across columns (they name columns and count rows: nothing to mask)."""
    return {
        "sampled_rows": stats.sampled_rows,
        "missing_patterns": [{"columns": p.columns, "rows": p.rows} for p in stats.missing_patterns],
        "correlations": [{"columns": [p.column_a, p.column_b], "pearson": p.value, "spearman": s.value, "rows": p.rows} for p, s in _correlation_pairs(stats)],
        "associations": [{"columns": [a.column_a, a.column_b], "cramers_v": a.value, "rows": a.rows} for a in stats.associations if a.measure == "cramers_v"],
    }


def _correlation_pairs(stats: FileStatistics) -> list[tuple[Association, Association]]:
    pearson = [a for a in stats.associations if a.measure == "pearson"]
    spearman = {(a.column_a, a.column_b): a for a in stats.associations if a.measure == "spearman"}
    return [(p, spearman[(p.column_a, p.column_b)]) for p in pearson]


def _number(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def column_line(stats: ColumnStatistics, pii_kind: str | None, protection: Protection) -> str | None:
    """One line of the column's statistics, or None when it has none (no values)."""
    shown = _Shown(pii_kind, protection)
    if (numbers := stats.numbers) is not None:
        quantiles = " ".join(f"{label} {_number(shown(getattr(numbers, name)))}" for name, label in _QUANTILE_NAMES)
        invalid = f", {numbers.invalid} not numbers" if numbers.invalid else ""
        return (
            f"numbers: mean {_number(shown(numbers.mean))} std {_number(shown(numbers.std))} min {_number(shown(numbers.minimum))} "
            f"{quantiles} max {_number(shown(numbers.maximum))}; zeros {numbers.zeros}, negatives {numbers.negatives}{invalid}"
        )
    if (dates := stats.dates) is not None:
        label, rows = max(dates.periods, key=lambda period: period[1])
        invalid = f", {dates.invalid} not dates" if dates.invalid else ""
        return f"dates: {shown(dates.first)} to {shown(dates.last)}, {len(dates.periods)} {dates.period}(s), the busiest {shown(label)} ({rows} rows){invalid}"
    if (text := stats.text) is not None:
        top = ", ".join(f"{shown(value)!s} ({rows})" for value, rows in text.top_values[:3])
        return f"length {text.length_min}-{text.length_max} (mean {text.length_mean}); top {top}"
    return None


def file_lines(stats: FileStatistics) -> list[str]:
    """Lines of the measures across columns: the top missing patterns, the strongest correlations and associations."""
    lines = []
    if stats.missing_patterns:
        lines.append("missing together: " + "; ".join(f"{' + '.join(p.columns)} ({p.rows} rows)" for p in stats.missing_patterns))
    sampled = f" on {stats.sampled_rows} sampled rows" if stats.sampled_rows < stats.rows else ""
    pairs = sorted(_correlation_pairs(stats), key=lambda pair: -abs(pair[0].value or 0))[:SHOWN_PAIRS]
    if pairs:
        lines.append(f"correlations (Pearson / Spearman{sampled}): " + "; ".join(
            f"{p.column_a} ~ {p.column_b} {_value(p.value)} / {_value(s.value)}" for p, s in pairs))  # fmt: skip
    cramers = sorted((a for a in stats.associations if a.measure == "cramers_v"), key=lambda a: -(a.value or 0))[:SHOWN_PAIRS]
    if cramers:
        lines.append(f"associations (Cramér's V, bias-corrected{sampled}): " + "; ".join(f"{a.column_a} ~ {a.column_b} {_value(a.value)}" for a in cramers))
    return lines


def _value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def statistics_markdown(stats: FileStatistics, pii: Mapping[str, str], protection: Protection) -> str:
    """Markdown of the statistics: a line per column that has any, then the measures across columns."""
    lines = []
    for column in stats.columns:
        line = column_line(column, pii.get(column.column), protection)
        if line is not None:
            lines.append(f"- `{column.column}` ({column.semantic_type}) {line}")
    lines += [f"- {line}" for line in file_lines(stats)]
    return "\n".join(line.replace("|", "\\|") for line in lines) or "No values to describe."
