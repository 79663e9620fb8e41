"""Run-to-run comparison of a source's files (no dagster).

Each file (partition) is one run of the source; its value of a metric is the last one recorded
for it (a re-run replaces what an earlier run measured). The file measured last (the latest run,
which may be a re-run of an older file) is judged against the other files' values in a window,
nearest runs first, by the robust z-score of Iglewicz and Hoaglin:
z = 0.6745 (x - median) / MAD. When the MAD is 0 (more than half the earlier values equal),
the mean absolute deviation stands in (z = (x - median) / (1.2533 meanAD)); when that is 0 too,
every earlier value was the same and any other value is an anomaly.

Durations get a tolerance of one second: a 0.2 s step taking 0.6 s is noise on a shared
machine, not news.

`judge_latest` is the trends step of ops/trends_<source> (its asset is in monitoring.assets): the
source's history from ops.run_metrics judged, and the verdict in ops.audit_log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, metrics
from harmonizer_pipeline.monitoring.settings import Trends
from harmonizer_pipeline.services import Run

SHOWN_METRICS = ["rows", "rejected_share", "quality_score", "null_rate", "key_uniqueness", "duration_seconds"]
TOLERANCE = {"duration_seconds": 1.0}


@dataclass(frozen=True)
class MetricTrend:
    asset: str
    metric: str
    latest: float
    median: float
    mad: float
    z: float  # inf when every earlier value was equal and the latest differs
    history: int  # earlier files compared
    anomaly: bool


@dataclass(frozen=True)
class TrendReport:
    latest_partition: str | None
    runs: int  # files with metrics
    trends: list[MetricTrend]
    table: pd.DataFrame  # one row per file (the last `shown` ones), SHOWN_METRICS as columns

    @property
    def anomalies(self) -> list[MetricTrend]:
        return [t for t in self.trends if t.anomaly]


@dataclass(frozen=True)
class Judged:
    """The trends of a source's latest run and the verdict on it (its check's description)."""

    report: TrendReport
    verdict: str


def judge_latest(connect: Callable[[], AbstractContextManager], run: Run, source: str, options: Trends) -> Judged:
    """Judge the source's file measured last against its other files and record the verdict;
    `connect` opens a bookkeeping transaction."""
    with connect() as conn:
        history = metrics.history(conn, source)
    report = compare(history, options.min_history, options.window, options.z_threshold, options.shown_runs)
    if not report.trends:
        verdict = f"fewer than {options.min_history} earlier files: nothing to judge yet"
    elif report.anomalies:
        verdict = f"{len(report.anomalies)} of {len(report.trends)} metrics of {report.latest_partition} are anomalies"
    else:
        verdict = f"{len(report.trends)} metrics of {report.latest_partition} within their history"
    with connect() as conn:
        audit.record(conn, audit.entry(run, "trends", "done", str(naming.trends(source)), detail=verdict))
    return Judged(report, verdict)


def robust_z(value: float, earlier) -> tuple[float, float, float]:
    """(z, median, MAD) of value against the earlier values."""
    earlier = np.asarray(earlier, dtype=float)
    median = float(np.median(earlier))
    deviations = np.abs(earlier - median)
    mad = float(np.median(deviations))
    if mad > 0:
        return 0.6745 * (value - median) / mad, median, mad
    mean_ad = float(np.mean(deviations))
    if mean_ad > 0:
        return (value - median) / (1.253314 * mean_ad), median, mad
    return (0.0 if value == median else math.copysign(math.inf, value - median)), median, mad


def per_file(history: pd.DataFrame) -> pd.DataFrame:
    """Rows: files in the order they were last measured (a re-run of an older file is the latest
    run, so it is the one judged); columns: (asset, metric); each cell the last value recorded for
    that file."""
    if history.empty:
        return pd.DataFrame()
    order = history.groupby("partition_key", sort=False)["recorded_at"].max().sort_values(kind="stable").index
    last = history.groupby(["partition_key", "asset", "metric"], sort=False)["value"].last()
    return last.unstack(["asset", "metric"]).reindex(order)


def compare(history: pd.DataFrame, min_history: int, window: int, threshold: float, shown: int) -> TrendReport:
    """Judge the file measured last against up to `window` others measured before it; a metric
    needs `min_history` earlier values to be judged at all."""
    files = per_file(history)
    if files.empty:
        return TrendReport(None, 0, [], pd.DataFrame(columns=["file", *SHOWN_METRICS]))
    trends = []
    for asset, metric in files.columns:
        series = files[(asset, metric)]
        latest = series.iloc[-1]
        earlier = series.iloc[:-1].dropna().to_numpy()[-window:]
        if pd.isna(latest) or len(earlier) < min_history:
            continue
        z, median, mad = robust_z(float(latest), earlier)
        base = metric.split(":")[0]
        anomaly = bool(abs(z) > threshold and abs(latest - median) > TOLERANCE.get(base, 0.0))
        trends.append(MetricTrend(asset, metric, float(latest), median, mad, z, len(earlier), anomaly))
    return TrendReport(str(files.index[-1]), len(files), trends, _table(files.tail(shown)))


def _table(files: pd.DataFrame) -> pd.DataFrame:
    """The headline figures per file: durations summed over the assets, the others as measured."""
    table = pd.DataFrame(index=files.index)
    for metric in SHOWN_METRICS:
        columns = [c for c in files.columns if c[1] == metric]
        if columns:
            values = files[columns]
            table[metric] = values.sum(axis=1, min_count=1) if metric == "duration_seconds" else values.bfill(axis=1).iloc[:, 0]
    return table.rename_axis("file").reset_index()


def markdown(report: TrendReport) -> str:
    """The last runs as a table, then the verdict on the latest."""
    table = report.table
    if table.empty:
        return "No metrics recorded yet."
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in record) + " |")
    lines.append("")
    if report.anomalies:
        lines.append(f"**{len(report.anomalies)} anomal{'y' if len(report.anomalies) == 1 else 'ies'} in {report.latest_partition}:**")
        lines += [f"- `{t.asset}` {t.metric} = {cell(t.latest)} (median {cell(t.median)}, robust z {cell(t.z)})" for t in report.anomalies]
    elif report.trends:
        lines.append(f"No anomaly in {report.latest_partition}: {len(report.trends)} metrics within their history.")
    else:
        lines.append("Not enough history yet to judge the latest file.")
    return "\n".join(lines)


def cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace("|", "\\|")
