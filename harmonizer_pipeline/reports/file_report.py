"""The report of a file's rows (`harmonizer report FILE`, and the benchmark's), no dagster: its
profile with statistics, the quality findings, its keys and functional dependencies, and what the
readers detected."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.ingest.readers import TableFile
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, KeyAnalysis, analyze
from harmonizer_pipeline.privacy.policy import Protection, detected_kind
from harmonizer_pipeline.quality.recommendations import Recommendation, recommend_column
from harmonizer_pipeline.quality.statistics import profile_with_statistics
from harmonizer_pipeline.relations.dependencies import BrokenRow, Dependency, broken_rows, file_dependencies
from harmonizer_pipeline.reports.html import Report, render

# Keys of up to this many columns on a page: the ones people use, found exactly and fast;
# `harmonizer keys FILE` lists them all.
REPORT_KEY_SIZE = 3
SAMPLE_BROKEN_ROWS = 3  # rows breaking each approximate dependency shown


def _keys_and_dependencies(frame: pd.DataFrame, columns: list[str]) -> tuple[KeyAnalysis, list[Dependency], list[BrokenRow]]:
    """The keys, then the functional dependencies on the keys' codes (file_dependencies: a large
    frame is searched on a sample) and the first rows breaking each approximate one."""
    keys = analyze(frame[columns], REPORT_KEY_SIZE)
    dependencies = file_dependencies(frame[columns], keys.codes)
    broken = [row for d in dependencies if not d.exact for row in broken_rows(frame, d, SAMPLE_BROKEN_ROWS, keys.codes)]
    keys.codes = None
    return keys, dependencies, broken


def file_report(path: Path, table: TableFile, frame: pd.DataFrame, protection: Protection) -> str:
    """The HTML page of a file read by the project's readers (`table` says how)."""
    detection = table.detection
    overview = [("format", detection.format)]
    if detection.encoding:
        overview.append(("encoding", detection.encoding))
    if detection.delimiter:
        overview.append(("delimiter", repr(detection.delimiter)))
    overview.append(("file size", f"{path.stat().st_size:,} bytes"))
    return frame_report(path.name, frame, list(detection.columns), overview, protection)


def frame_report(title: str, frame: pd.DataFrame, columns: Sequence[str], overview: Sequence[tuple[str, str]], protection: Protection) -> str:
    """The HTML page of `columns` of a frame of text, as raw/<source> holds a file. The keys are
    found on a thread of their own while the columns are profiled (their search sorts in numpy,
    which lets go of the GIL), and the functional dependencies after them on the same codes."""
    columns = list(columns)
    with ThreadPoolExecutor(1) as pool, captured_output(ENGINE_LOGGERS):  # Desbordante's progress lines are not the page's
        found = pool.submit(_keys_and_dependencies, frame, columns)
        findings: list[Recommendation] = []
        profile, statistics = profile_with_statistics(frame, columns, lambda column, text: findings.extend(recommend_column(column, text)))
        keys, dependencies, broken = found.result()
    pii = {c.name: kind for c in profile.columns if (kind := detected_kind(c.pii))}
    report = Report(title, profile, statistics, findings, keys, overview=overview, pii=pii, protection=protection, dependencies=dependencies, broken=broken)
    return render(report)
