"""The profile step of one file (no dagster): its raw columns profiled with their statistics, fixes
recommended, drift found against the previous profiled file, and all of it recorded
(quality.column_profiles, quality.column_statistics, quality.missing_patterns,
quality.column_associations, quality.recommendations, quality.schema_history, its audit row and
metrics). The profiling itself is quality.profiling, quality.statistics, quality.recommendations
and quality.drift; the asset is in quality.assets."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import metrics, profiles, statistics
from harmonizer_pipeline.naming import StageAsset
from harmonizer_pipeline.quality.drift import DriftFinding, compare_profiles
from harmonizer_pipeline.quality.profiling import FileProfile, count_text, profile_column
from harmonizer_pipeline.quality.recommendations import Recommendation, recommend_column
from harmonizer_pipeline.quality.statistics import FileStatistics, StatisticsCollector
from harmonizer_pipeline.services import Run, audit_file, file_columns
from harmonizer_pipeline.storage.tables import StageTables, TableReader

PROFILE_READ_CELLS = 20_000_000  # raw values profiled at once: columns are read in groups this size


@dataclass(frozen=True)
class Profiled:
    """A file's profile and statistics, its recommended fixes, and its drift from `previous` (the
    earlier file compared with; None for the source's first profiled file)."""

    profile: FileProfile
    statistics: FileStatistics
    recommendations: list[Recommendation]
    previous: str | None
    findings: list[DriftFinding]


def profile_table(
    reader: TableReader, table: StageAsset, columns: Sequence[str], rows: int, partition_key: str | None = None
) -> tuple[FileProfile, FileStatistics, list[Recommendation]]:
    """The columns of a table (of one file's partition) profiled with their statistics and fixes,
    read PROFILE_READ_CELLS values at a time: a group of columns, each column's text counted once."""
    per_read = max(1, PROFILE_READ_CELLS // max(rows, 1))
    column_profiles, recommendations = [], []
    collector = StatisticsCollector(rows)
    for start in range(0, len(columns), per_read):
        group = list(columns[start : start + per_read])
        frame = reader.frame(table, group, partition_key)
        for name in group:
            text = count_text(frame[name])
            column_profile = profile_column(name, text)
            column_profiles.append(column_profile)
            collector.add(frame[name], text, column_profile)
            recommendations.extend(recommend_column(column_profile, text, table.qualified))
        del frame
    return FileProfile(rows, column_profiles), collector.finish(), recommendations


def profile_file(
    tables: StageTables, connect: Callable[[], AbstractContextManager], run: Run, source: str, partition_key: str, earlier: Sequence[str]
) -> Profiled:
    """Profile the file's raw columns and compare the profile with that of the last of the `earlier`
    files (oldest first) that was profiled. `connect` opens a bookkeeping transaction."""
    started = time.perf_counter()
    raw, asset = naming.raw(source), naming.profile(source)
    with connect() as conn:
        entry, columns = file_columns(conn, source, partition_key)
    with tables.reading() as reader:
        file_profile, file_statistics, recommendations = profile_table(reader, raw, columns, entry.rows or 0, partition_key)
    column_profiles = file_profile.columns
    with connect() as conn:
        previous = profiles.latest_profile(conn, source, earlier)
        profiles.save_profile(conn, source, partition_key, run.run_id, file_profile, recommendations)
        statistics.save_statistics(conn, source, partition_key, run.run_id, file_statistics)
        findings = compare_profiles(previous[1], file_profile) if previous else []
        if previous:
            profiles.record_drift(conn, source, partition_key, previous[0], run.run_id, findings)
        audit_file(conn, run, "profile", asset, entry, rows_in=file_profile.rows, detail=(
            f"quality score {file_profile.quality_score}, {len(recommendations)} recommendation(s)"
            + (f", {len(findings)} change(s) since {previous[0]}" if previous else "")
        ))  # fmt: skip
        metrics.record(conn, run.run_id, source, partition_key, str(asset), {
            "quality_score": file_profile.quality_score,
            # Missing: NULL or blank (raw text keeps an empty field as '').
            "null_rate": sum(c.nulls + c.empties for c in column_profiles) / (file_profile.rows * len(column_profiles)) if file_profile.rows and column_profiles else None,
            **{f"null_rate:{c.name}": (c.nulls + c.empties) / file_profile.rows if file_profile.rows else None for c in column_profiles},
            "duration_seconds": time.perf_counter() - started,
        })  # fmt: skip
    return Profiled(file_profile, file_statistics, recommendations, previous[0] if previous else None, findings)
