"""The report of a file's rows (`harmonizer report FILE`, and the benchmark's), no dagster: its
profile with statistics, the quality findings, its keys, and what the readers detected."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.ingest.readers import TableFile
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, analyze
from harmonizer_pipeline.privacy.policy import Protection, detected_kind
from harmonizer_pipeline.quality.recommendations import Recommendation, recommend_column
from harmonizer_pipeline.quality.statistics import profile_with_statistics
from harmonizer_pipeline.reports.html import Report, render

# Keys of up to this many columns on a page: the ones people use, found exactly and fast;
# `harmonizer keys FILE` lists them all.
REPORT_KEY_SIZE = 3


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
    which lets go of the GIL)."""
    columns = list(columns)
    with ThreadPoolExecutor(1) as pool, captured_output(ENGINE_LOGGERS):  # Desbordante's progress lines are not the page's
        found = pool.submit(analyze, frame[columns], REPORT_KEY_SIZE)
        findings: list[Recommendation] = []
        profile, statistics = profile_with_statistics(frame, columns, lambda column, text: findings.extend(recommend_column(column, text)))
        keys = found.result()
    pii = {c.name: kind for c in profile.columns if (kind := detected_kind(c.pii))}
    report = Report(title, profile, statistics, findings, keys, overview=overview, pii=pii, protection=protection)
    return render(report)
