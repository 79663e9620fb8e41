"""The report of a file read from disk (`harmonizer report FILE`), no dagster: its profile with
statistics, the quality findings, its keys, and what the readers detected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.ingest.readers import TableFile
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, analyze
from harmonizer_pipeline.privacy.policy import Protection, detected_kind
from harmonizer_pipeline.quality.recommendations import recommend
from harmonizer_pipeline.quality.statistics import profile_with_statistics
from harmonizer_pipeline.reports.html import Report, render


def file_report(path: Path, table: TableFile, frame: pd.DataFrame, protection: Protection) -> str:
    """The HTML page of a file's rows, read by the project's readers (`table` says how)."""
    columns = list(table.detection.columns)
    profile, statistics = profile_with_statistics(frame, columns)
    with captured_output(ENGINE_LOGGERS):  # Desbordante's progress lines are not the page's
        keys = analyze(frame[columns])
    detection = table.detection
    overview = [("format", detection.format)]
    if detection.encoding:
        overview.append(("encoding", detection.encoding))
    if detection.delimiter:
        overview.append(("delimiter", repr(detection.delimiter)))
    overview.append(("file size", f"{path.stat().st_size:,} bytes"))
    pii = {c.name: kind for c in profile.columns if (kind := detected_kind(c.pii))}
    return render(
        Report(
            title=path.name,
            profile=profile,
            statistics=statistics,
            findings=recommend(profile, frame[columns]),
            keys=keys,
            overview=overview,
            pii=pii,
            protection=protection,
        )
    )
