"""Harmonizing one target (no dagster): the merge of what its sources' staged files changed since
the last one, its fuzzy match candidates, its audit row and its run metrics, in one transaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, metrics, rejected
from harmonizer_pipeline.harmonize import candidates
from harmonizer_pipeline.harmonize.merge import MergeResult, merge
from harmonizer_pipeline.services import Run
from harmonizer_pipeline.settings import Settings


@dataclass(frozen=True)
class Harmonized:
    """A merge of a target: what it changed, its match candidates (None without `match` or when
    nothing changed), how long it took and the harmonize rejections of the target's sources."""

    result: MergeResult
    matches: candidates.Refreshed | None
    duration: float
    rejected_values: int

    @property
    def summary(self) -> str:
        return summary(self.result)


def harmonize_target(settings: Settings, target_name: str, connect: Callable[[], AbstractContextManager], run: Run, *, rebuild: bool) -> Harmonized:
    """Merge the target (every key again with `rebuild`) and refresh its match candidates; a
    failure is audited and leaves the target as it was."""
    started = time.perf_counter()
    asset = str(naming.harmonized(target_name))
    step = audit.AuditedStep(connect, audit.entry(run, "rebuild" if rebuild else "harmonize", "pending", asset))
    with step, connect() as conn:
        result, matches = merge_and_match(conn, settings, target_name, run.run_id, rebuild=rebuild)
        duration = time.perf_counter() - started
        step.done(conn, "done", rows_in=result.keys_affected, rows_out=result.rows, detail=summary(result))
        metrics.record(conn, run.run_id, target_name, None, asset, {
            "rows": result.rows, "keys_affected": result.keys_affected, "inserted": result.inserted, "updated": result.updated,
            "deleted": result.deleted, "merged_rows": result.merged_rows, "duration_seconds": duration,
        })  # fmt: skip
        rejected_values = rejected.count_harmonize_rejections(conn, settings.sources_of(target_name))
    return Harmonized(result, matches, duration, rejected_values)


def merge_and_match(conn, settings: Settings, target_name: str, run_id: str, *, rebuild: bool = False) -> tuple[MergeResult, candidates.Refreshed | None]:
    """The merge in the caller's transaction, then the match candidates of the blocks it changed
    (None without `match` or when nothing changed)."""
    target = settings.targets[target_name]
    result = merge(conn, settings, target_name, run_id, rebuild=rebuild)
    every_block = rebuild or result.only_new_rows
    matches = candidates.refresh(conn, target_name, target, result.merge_id, every_block) if target.match and result.merge_id else None
    return result, matches


def summary(result: MergeResult) -> str:
    """The merge in one line, for the log and the audit row."""
    if result.merge_id is None:
        return f"nothing changed since the last merge; {result.rows} rows"
    return (
        f"{result.files_added} file(s) added, {result.files_removed} removed; {result.keys_affected} keys recomputed: "
        f"{result.inserted} inserted, {result.updated} updated, {result.deleted} deleted; {result.rows} rows"
    )
