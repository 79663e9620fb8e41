"""The HTML report of a file (or a target): one self-contained page people read (no dagster).

What a page holds, top to bottom: the overview (rows, columns, format, encoding, quality score),
the plain-English summary when there is one, the gate's result, the keys, the functional
dependencies (with sample rows breaking the approximate ones), the measures across
columns (Pearson, Spearman and Cramér's V heat maps, missing-value patterns), a card per column
with its figures and chart, and the quality findings with their pandas and SQL fixes.

Self-contained: the styles are in the page, the charts inline SVG (reports.svg), no script; it
opens offline, from a zip or an e-mail. Rendered by Jinja2 with autoescaping, so every value from
the data is escaped; the values of PII columns go through the Protection given (masked by
default), as everywhere values leave the database for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import jinja2

from harmonizer_pipeline.keys.discovery import KeyAnalysis
from harmonizer_pipeline.privacy.masking import mask_quoted
from harmonizer_pipeline.privacy.policy import MASKED, Protection
from harmonizer_pipeline.quality.profiling import ColumnProfile, FileProfile
from harmonizer_pipeline.quality.recommendations import Recommendation
from harmonizer_pipeline.quality.statistics import ColumnStatistics, FileStatistics, Histogram
from harmonizer_pipeline.relations.dependencies import BrokenRow, Dependency, described
from harmonizer_pipeline.reports import svg

TOP_SHOWN = 10  # top values drawn per column
MISSING_PATTERNS_SHOWN = 5


@dataclass(frozen=True)
class GateResult:
    passed: bool
    description: str
    rows: int
    rejected_rows: int
    reasons: list[tuple[str, int]] = field(default_factory=list)  # (check on column, rejected values)


@dataclass(frozen=True)
class Report:
    title: str
    profile: FileProfile
    statistics: FileStatistics | None = None
    findings: Sequence[Recommendation] = ()
    keys: KeyAnalysis | None = None
    gate: GateResult | None = None
    summary: str | None = None
    overview: Sequence[tuple[str, str]] = ()  # what the caller knows of the file: format, encoding, source...
    pii: Mapping[str, str] = field(default_factory=dict)  # column -> privacy kind
    protection: Protection = MASKED
    dependencies: Sequence[Dependency] | None = None  # None: not looked for
    broken: Sequence[BrokenRow] = ()  # sample rows breaking the approximate dependencies, values in clear (masked here)


def render(report: Report) -> str:
    """The page as one HTML document."""
    return _TEMPLATE.render(page=_page(report))


def _page(report: Report) -> dict:
    profile, statistics = report.profile, report.statistics
    columns = [_column(column, statistics, report) for column in profile.columns]
    overview = [
        ("rows", f"{profile.rows:,}"),
        ("columns", f"{len(profile.columns):,}"),
        *report.overview,
        ("quality score", f"{profile.quality_score:.1f} / 100"),
    ]
    return {
        "title": report.title,
        "overview": overview,
        "summary": report.summary,
        "gate": report.gate,
        "key_findings": _keys(report.keys),
        "dependencies": _dependencies(report),
        "across": _across(statistics) if statistics else None,
        "columns": columns,
        "findings": [_finding(f, report) for f in report.findings],
    }


def _finding(finding: Recommendation, report: Report) -> Recommendation:
    """The finding as shown: the values its text and fixes quote are masked for a PII column."""
    kind = report.pii.get(finding.column)
    if kind is None or report.protection.how == "clear":
        return finding
    return replace(finding, detail=mask_quoted(finding.detail, kind), pandas=mask_quoted(finding.pandas, kind), sql=mask_quoted(finding.sql, kind))


def _column(profile: ColumnProfile, statistics: FileStatistics | None, report: Report) -> dict:
    kind = report.pii.get(profile.name)

    def shown(value: object) -> str:
        if value is None:
            return ""
        return str(value if kind is None else report.protection.value(value, kind))

    filled = profile.rows - profile.nulls - profile.empties
    figures = [
        ("type", profile.semantic_type),
        ("filled", f"{filled:,} of {profile.rows:,} ({profile.completeness:.1%})"),
        ("distinct", f"{profile.distinct:,}"),
        ("quality score", f"{profile.quality_score:.1f}"),
    ]
    charts: list[str] = []
    stats = _statistics_of(statistics, profile.name)
    if stats and stats.numbers:
        numbers = stats.numbers
        figures += [
            ("mean", shown(_figure(numbers.mean))),
            ("std", shown(_figure(numbers.std))),
            ("min … max", f"{shown(_figure(numbers.minimum))} … {shown(_figure(numbers.maximum))}"),
            ("p5 · p25 · median · p75 · p95", " · ".join(shown(_figure(q)) for q in (numbers.p5, numbers.p25, numbers.p50, numbers.p75, numbers.p95))),
            ("zeros · negatives", f"{numbers.zeros:,} · {numbers.negatives:,}"),
        ]
        if numbers.invalid:
            figures.append(("not numbers", f"{numbers.invalid:,}"))
        charts.append(svg.columns(numbers.histogram.counts, _bin_labels(numbers.histogram, shown), f"{profile.name}: histogram"))
    elif stats and stats.dates:
        dates = stats.dates
        figures += [("first … last", f"{shown(dates.first)} … {shown(dates.last)}"), (f"rows per {dates.period}", f"{len(dates.periods):,} {dates.period}s")]
        if dates.invalid:
            figures.append(("not dates", f"{dates.invalid:,}"))
        charts.append(
            svg.columns([rows for _, rows in dates.periods], [shown(label) for label, _ in dates.periods], f"{profile.name}: rows per {dates.period}")
        )
    elif stats and stats.text:
        text = stats.text
        figures.append(("length min · mean · max", f"{text.length_min} · {text.length_mean:.1f} · {text.length_max}"))
        if text.top_values:
            charts.append(_top_values(profile.name, text.top_values, shown))
        charts.append(svg.columns(text.length_histogram.counts, _bin_labels(text.length_histogram, str), f"{profile.name}: lengths"))
    elif profile.top_values:
        charts.append(_top_values(profile.name, profile.top_values, shown))
    if profile.pii:
        figures.append(("personal data", ", ".join(profile.pii)))
    return {"name": profile.name, "pii": kind if report.protection.how != "clear" else None, "figures": figures, "charts": charts}


def _top_values(column: str, top_values: list[tuple[str, int]], shown) -> str:
    top = top_values[:TOP_SHOWN]
    return svg.bars([rows for _, rows in top], [shown(value) for value, _ in top], f"{column}: top values")


def _statistics_of(statistics: FileStatistics | None, column: str) -> ColumnStatistics | None:
    return next((c for c in statistics.columns if c.column == column), None) if statistics else None


def _bin_labels(histogram: Histogram, shown) -> list[str]:
    edges = histogram.edges
    return [f"{shown(_figure(low))} – {shown(_figure(high))}" for low, high in zip(edges, edges[1:], strict=False)]


def _across(statistics: FileStatistics) -> dict:
    maps = []
    for measure, title, signed in (("pearson", "Pearson correlation", True), ("spearman", "Spearman correlation", True), ("cramers_v", "Cramér's V", False)):
        pairs = [a for a in statistics.associations if a.measure == measure]
        if not pairs:
            continue
        names = list(dict.fromkeys(name for a in pairs for name in (a.column_a, a.column_b)))
        matrix: list[list[float | None]] = [[1.0 if row == column else None for column in names] for row in names]
        for pair in pairs:
            i, j = names.index(pair.column_a), names.index(pair.column_b)
            matrix[i][j] = matrix[j][i] = pair.value
        maps.append(svg.heat_map(names, matrix, title, signed=signed))
    patterns = [(", ".join(p.columns), f"{p.rows:,}") for p in statistics.missing_patterns[:MISSING_PATTERNS_SHOWN]]
    sampled = statistics.sampled_rows < statistics.rows
    return {"maps": maps, "missing": patterns, "sampled": f"{statistics.sampled_rows:,} of {statistics.rows:,} rows" if sampled else None}


def _keys(found: KeyAnalysis | None) -> dict | None:
    if found is None:
        return None
    return {
        "suggested": ", ".join(found.suggestion.columns) if found.suggestion.columns else None,
        "reason": found.suggestion.reason,
        "minimal": [(", ".join(k.columns), k.has_nulls) for k in found.minimal_keys],
        "max_size": found.max_size,
        "near": [(", ".join(k.columns), f"{k.uniqueness:.2%}", f"{k.excess_rows:,}") for k in found.near_keys],
        "duplicate_rows": f"{found.duplicate_rows:,}",
    }


def _dependencies(report: Report) -> dict | None:
    if report.dependencies is None:
        return None

    def shown(column: str, value: object) -> str:
        if value is None:
            return "NULL"
        kind = report.pii.get(column)
        return repr(value if kind is None else report.protection.value(value, kind))

    found = [(", ".join(d.lhs), d.rhs, "exact" if d.exact else "approximate", f"{d.error:.2%}", f"{d.violating_rows:,}") for d in report.dependencies]
    broken = [
        (described(r), f"{r.row_number:,}", ", ".join(f"{c}={shown(c, v)}" for c, v in r.lhs_values.items()), shown(r.rhs, r.value), shown(r.rhs, r.majority))
        for r in report.broken
    ]
    return {"found": found, "broken": broken}


def _figure(value: float | None) -> str | None:
    """A number as people read it: whole numbers with separators, others to 4 significant digits."""
    if value is None:
        return None
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) >= 1e-3 else f"{value:.3e}"


_TEMPLATE = jinja2.Environment(
    loader=jinja2.PackageLoader("harmonizer_pipeline.reports", "templates"), autoescape=True, undefined=jinja2.StrictUndefined
).get_template("report.html.j2")
