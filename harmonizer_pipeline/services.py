"""What the stages' services share (no dagster): the error that fails a step with a message for
people, the run a step belongs to, a file's registry entry and columns, and its audit row.

Each stage has a service module (ingest.load, quality.validate, quality.profile, keys.analysis,
harmonize.staging, harmonize.harmonization, export.service, monitoring.trends) that does the work
and returns an outcome; its asset in <stage>/assets.py turns that outcome into a materialization.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, registry
from harmonizer_pipeline.storage.catalog import stored_columns


class StageError(Exception):
    """A step failed for a reason a person can act on; the asset fails with exactly this message."""

    @property
    def description(self) -> str:
        # audit.one_line keeps every line of a message written for people (as it does dagster's Failure's).
        return str(self)


class Run(Protocol):
    """The run a step belongs to (a DagsterRun): audit rows name it and who launched it."""

    @property
    def run_id(self) -> str: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def parent_run_id(self) -> str | None: ...


def file_columns(conn, source: str, partition_key: str) -> tuple[registry.RegistryEntry, list[str]]:
    """The file's registry entry and its own columns (the raw table holds every file's columns)."""
    entry = registry.entry_for_partition(conn, source, partition_key)
    if entry is None or entry.status not in registry.IN_RAW:
        raise StageError(f"partition {partition_key!r} of {source} is not a loaded file: materialize {naming.raw(source)} first")
    if entry.columns is not None:
        return entry, list(entry.columns)
    # Loaded before the registry kept each file's columns: every data column of the raw table.
    raw = naming.raw(source)
    stored = stored_columns(conn, raw.schema, raw.table).values()
    return entry, [spec.name for spec in stored if not spec.name.startswith("_")]


def audit_file(conn, run: Run, action: str, asset: naming.StageAsset, entry: registry.RegistryEntry, status: str = "done", **fields) -> None:
    """Record a step on a file in ops.audit_log (so a manual re-run shows), naming the file, its
    partition and its SHA-256 from its registry entry."""
    audit.record(conn, audit.entry(run, action, status, str(asset), entry.partition_key, file=entry.object_key, sha256=entry.sha256, **fields))
