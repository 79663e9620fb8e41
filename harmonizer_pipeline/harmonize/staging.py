"""Staging one file (no dagster): its validated rows mapped into its target's columns and
standardized into staged/<source>, values that could not be standardized into
quality.rejected_rows, and the file's staged bookkeeping (ops.staged_files, its audit row)
committed with its rows."""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, merges, rejected
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.harmonize.mapping import MappingError, map_source
from harmonizer_pipeline.services import Run, StageError, audit_file, file_columns
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.tables import StageTables
from harmonizer_pipeline.storage.writes import WriteResult


@dataclass(frozen=True)
class Staged:
    """A file staged: rows_in, rows_staged, rows_left_out and rejected_values (as ops.staged_files
    holds them), and the write of its partition."""

    counts: dict[str, int]
    written: WriteResult


def stage_file(settings: Settings, source: str, partition_key: str, connect: Callable[[], AbstractContextManager], tables: StageTables, run: Run) -> Staged:
    """Replace the file's partition of staged/<source> with its validated rows mapped into the
    target; a failure is audited and leaves the partition, its rejections and its bookkeeping as
    they were."""
    config = settings.sources[source]
    target_name = config.target
    assert target_name is not None  # only sources with a target are staged (definitions.py)
    target = settings.targets[target_name]
    staged, validated = naming.staged(source), naming.validated(source)
    with connect() as conn:
        entry, columns = file_columns(conn, source, partition_key)
        store.ensure_staged_table(conn, source, target, naming.PARTITION_COLUMN)
    step = audit.AuditedStep(connect, audit.entry(run, "stage", "pending", str(staged), partition_key, file=entry.object_key, sha256=entry.sha256))
    counts = {"rows_in": 0, "rows_staged": 0, "rows_left_out": 0, "rejected_values": 0}
    load_ids: set[str] = set()
    own = set(columns)
    writer = rejected.RejectedRowsWriter(tables.url, source, partition_key, run.run_id, harmonize=True)

    def mapped_chunks() -> Generator[pd.DataFrame]:
        for chunk in tables.chunks(validated, partition_key=partition_key):
            # The file's own columns: validated.<source> holds every file's, NULL where a file lacks them.
            chunk = chunk[[c for c in chunk.columns if c in own or c.startswith("_")]]
            try:
                rows = map_source(chunk, source, config.mapping, target)
            except MappingError as err:
                raise StageError(f"{entry.object_key}: {err}") from None
            writer.write(rows.rejections)
            load_ids.update(rows.frame["_load_id"].dropna().unique())
            counts["rows_in"] += rows.rows_in
            counts["rows_staged"] += len(rows.frame)
            counts["rows_left_out"] += rows.rows_left_out
            counts["rejected_values"] += len(rows.rejections)
            yield rows.frame

    chunks = mapped_chunks()
    with step:
        try:
            with tables.writing(staged, partition_key) as write:
                written = write.rows(chunks)
                # What the partition holds, for the merge: committed with the rows.
                merges.record_staged(write.connection, source, partition_key, target_name, min(load_ids, default=None), run.run_id, counts)
                audit_file(write.connection, run, "stage", staged, entry, rows_in=counts["rows_in"], rows_out=counts["rows_staged"],
                           detail=f"{counts['rejected_values']} values rejected, {counts['rows_left_out']} rows left out")  # fmt: skip
                # The rejections' own transaction commits just before the rows'.
                writer.commit()
        finally:
            # After the write's commit or rollback, so neither waits on a lock of the other; a
            # failure is then audited by the step, in a transaction of its own.
            chunks.close()
            writer.close()
    return Staged(dict(counts), written)
