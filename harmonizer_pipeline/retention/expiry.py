"""Retention (no dagster): a file's rows leave each layer whose limit (`retention:`, days after
the file was loaded) they outlived; export folders leave the disk and B2 after `retention.exports`
days.

A file's load time is when the landing sensor registered it (ops.file_registry.first_seen; for
versions of a name that share one partition, the latest). Each file is one transaction: its
layers' rows, its target's merge when it leaves the staged layer (the target loses its rows, and
the next change file records the deletes; leaving raw, its profile statistics, which quote raw
values, go too), its audit rows (action `expire`, one per layer) and,
once no layer holds it any more, its registry entries marked `expired` (SHA-256 kept, so the same
content landing again is a duplicate, not a new load). Dagster's dynamic partitions of expired
files are the wiring's to delete (`gone_partitions` names them). `now` is given, so tests set
the clock forward.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, registry, statistics
from harmonizer_pipeline.harmonize.harmonization import merge_and_match, summary
from harmonizer_pipeline.harmonize.merge import MergeResult
from harmonizer_pipeline.ingest.b2 import v2_bucket
from harmonizer_pipeline.reports import pages
from harmonizer_pipeline.retention import layers
from harmonizer_pipeline.retention.settings import FILE_LAYERS
from harmonizer_pipeline.services import Run
from harmonizer_pipeline.settings import Settings

REGISTRY = naming.StageAsset("ops", "file_registry")


@dataclass(frozen=True)
class Removal:
    """Rows of a file removed from a layer, or an export folder removed (`rows` then its files)."""

    asset: str
    partition_key: str | None
    file: str
    rows: int


@dataclass
class RetentionOutcome:
    removals: list[Removal] = field(default_factory=list)
    expired: list[tuple[str, str]] = field(default_factory=list)  # (source, partition key) no layer holds any more
    merges: dict[str, MergeResult] = field(default_factory=dict)  # the last merge of each target that lost files

    @property
    def summary(self) -> str:
        if not self.removals:
            return "nothing older than its layer's limit"
        rows = sum(r.rows for r in self.removals if r.partition_key is not None)
        folders = sum(r.partition_key is None for r in self.removals)
        return f"{rows} rows removed from {len(self.removals) - folders} layer(s) of files, {len(self.expired)} file(s) expired, {folders} export folder(s) removed"


@dataclass(frozen=True)
class _File:
    source: str
    partition_key: str
    object_key: str
    sha256: str | None
    loaded_at: dt.datetime


def _candidates(conn, settings: Settings, since: dt.datetime) -> list[_File]:
    """Files of the configured sources whose rows are in raw, loaded before `since`, oldest first."""
    rows = conn.execute(
        "SELECT source, partition_key, (array_agg(object_key ORDER BY id DESC))[1], (array_agg(sha256 ORDER BY id DESC))[1], max(first_seen)"
        " FROM ops.file_registry WHERE source = ANY(%s) AND status = ANY(%s) GROUP BY source, partition_key"
        " HAVING max(first_seen) < %s ORDER BY max(first_seen), source, partition_key",
        (list(settings.sources), list(registry.IN_RAW), since),
    ).fetchall()
    return [_File(*row) for row in rows]


def apply_retention(
    settings: Settings,
    connect: Callable[[], AbstractContextManager],
    run: Run,
    now: dt.datetime,
    b2_api: Callable[[], object] | None = None,
) -> RetentionOutcome:
    """Remove what outlived its layer's limit at `now`: each file in a transaction of its own,
    then the export folders (`b2_api` is asked for the B2 API only when export.b2 is set)."""
    outcome = RetentionOutcome()
    limits = settings.retention.layer_days
    if limits:
        with connect() as conn:
            files = _candidates(conn, settings, now - dt.timedelta(days=min(limits.values())))
        for file in files:
            with connect() as conn:
                _expire_file(conn, settings, file, limits, now, run, outcome)
    if settings.retention.exports is not None:
        _expire_exports(settings, connect, run, now, b2_api, outcome)
    return outcome


def _expire_file(conn, settings: Settings, file: _File, limits: dict[str, int], now: dt.datetime, run: Run, outcome: RetentionOutcome) -> None:
    # Locked, and read again: a version landed meanwhile (same content, same partition) is younger.
    entries = conn.execute(
        "SELECT id, first_seen FROM ops.file_registry WHERE source = %s AND partition_key = %s AND status = ANY(%s) ORDER BY id FOR UPDATE",
        (file.source, file.partition_key, list(registry.IN_RAW)),
    ).fetchall()
    if not entries or max(seen for _, seen in entries) != file.loaded_at:
        return
    entry = audit.entry(run, "expire", "done", "", file.partition_key, file=file.object_key, sha256=file.sha256)
    recorded = []
    for layer in FILE_LAYERS:
        days = limits.get(layer)
        if days is None or file.loaded_at >= now - dt.timedelta(days=days) or not layers.holds(conn, layer, file.source, file.partition_key):
            continue
        rows = layers.remove(conn, layer, file.source, file.partition_key)
        asset = str(layers.asset(layer, file.source))
        outcome.removals.append(Removal(asset, file.partition_key, file.object_key, rows))
        detail = f"loaded {file.loaded_at.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC, more than {days} days before {now.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        recorded.append(replace(entry, asset=asset, rows_in=rows, rows_out=0, detail=detail))
        if layer == "raw" and (quoted := statistics.delete_statistics(conn, file.source, file.partition_key)):
            # The profile's statistics quote the raw values (top values, quantiles): they leave with them.
            recorded.append(
                replace(entry, asset="quality/column_statistics", rows_in=quoted, rows_out=0, detail=f"the statistics of the raw rows removed ({detail})")
            )
        if layer == "raw" and pages.remove_file_page(settings, file.source, file.partition_key):
            recorded.append(
                replace(entry, asset=f"pages/{file.source}", rows_in=1, rows_out=0, detail=f"the file's HTML page, which quotes its values ({detail})")
            )
        target = settings.sources[file.source].target
        if layer == "staged" and target is not None:
            result, _ = merge_and_match(conn, settings, target, run.run_id)
            outcome.merges[target] = result
            recorded.append(replace(entry, action="harmonize", asset=str(naming.harmonized(target)), partition_key=None,
                                          rows_in=result.keys_affected, rows_out=result.rows, detail=summary(result)))  # fmt: skip
    if not any(layers.holds(conn, layer, file.source, file.partition_key) for layer in FILE_LAYERS):
        conn.execute("UPDATE ops.file_registry SET status = 'expired', updated_at = now() WHERE id = ANY(%s)", ([i for i, _ in entries],))
        outcome.expired.append((file.source, file.partition_key))
        recorded.append(replace(entry, asset=str(REGISTRY), detail="no layer holds the file any more: expired (its SHA-256 is kept)"))
    audit.record(conn, *recorded)


def _expired_folders(names: Iterator[str], before: dt.date) -> list[str]:
    """The run-date folder names (YYYY-MM-DD) dated before `before`; other names are left alone."""
    dated = []
    for name in names:
        try:
            if dt.date.fromisoformat(name) < before:
                dated.append(name)
        except ValueError:
            continue
    return sorted(set(dated))


def _expire_exports(settings: Settings, connect, run: Run, now: dt.datetime, b2_api, outcome: RetentionOutcome) -> None:
    """Export folders (<directory>/<target>/<run date>/, and b2://<bucket>/<prefix>/<target>/<run date>/)
    whose run date is more than retention.exports days before `now`."""
    days = settings.retention.exports
    assert days is not None  # called only with a limit for exports
    before = (now.astimezone(dt.UTC) - dt.timedelta(days=days)).date()
    detail = f"run date more than {days} days before {now.astimezone(dt.UTC):%Y-%m-%d}"
    recorded = []
    for target in settings.targets:
        asset = str(naming.export(target))
        root: Path = settings.export_directory() / target
        on_disk = _expired_folders((p.name for p in root.iterdir() if p.is_dir()), before) if root.is_dir() else []
        for name in on_disk:
            folder = root / name
            files = sum(1 for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder)
            outcome.removals.append(Removal(asset, None, str(folder), files))
            recorded.append(audit.entry(run, "expire", "done", asset, file=str(folder), rows_in=files, rows_out=0, detail=f"{files} file(s); {detail}"))
        b2 = settings.export.b2
        if b2 is not None and b2_api is not None:
            bucket = v2_bucket(b2_api(), b2.bucket)  # pyright: ignore[reportArgumentType]
            prefix = f"{b2.prefix.strip('/')}/{target}/".lstrip("/")
            versions: dict[str, list] = {}
            for version, _ in bucket.ls(prefix, latest_only=False, recursive=True):
                versions.setdefault(version.file_name[len(prefix) :].split("/", 1)[0], []).append(version)
            for name in _expired_folders(iter(versions), before):
                for version in versions[name]:
                    bucket.delete_file_version(version.id_, version.file_name)
                where = f"b2://{b2.bucket}/{prefix}{name}/"
                outcome.removals.append(Removal(asset, None, where, len(versions[name])))
                recorded.append(audit.entry(run, "expire", "done", asset, file=where, rows_in=len(versions[name]), rows_out=0,
                                            detail=f"{len(versions[name])} file version(s); {detail}"))  # fmt: skip
    if recorded:
        with connect() as conn:
            audit.record(conn, *recorded)


def gone_partitions(conn, source: str, partition_keys: list[str]) -> list[str]:
    """Of these dynamic partitions of the source, those whose files all expired or were erased
    (a partition of files still pending, loaded, blocked or failed stays)."""
    rows = conn.execute(
        "SELECT partition_key FROM ops.file_registry WHERE source = %s AND partition_key = ANY(%s) AND status <> 'duplicate'"
        " GROUP BY partition_key HAVING bool_and(status = ANY(%s))",
        (source, partition_keys, list(registry.GONE)),
    ).fetchall()
    gone = {key for (key,) in rows}
    return [key for key in partition_keys if key in gone]
