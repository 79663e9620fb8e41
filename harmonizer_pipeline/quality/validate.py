"""The validated step of one file (no dagster): its raw rows typed and checked by the source's
pandera schema into validated/<source>, the rows that fail quarantined in quality.rejected_rows,
and the gate's verdict recorded (quality.gate_results, the file's registry entry, its audit row
and metrics). The gate itself is quality.gate; the asset is in quality.assets."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import gates, metrics, registry, rejected
from harmonizer_pipeline.privacy.policy import source_columns
from harmonizer_pipeline.privacy.settings import PrivacySettings
from harmonizer_pipeline.quality.gate import GateSummary, PartitionValidation, Verdict, unique_column_sets, uniqueness_rejections, verdict
from harmonizer_pipeline.quality.profiling import count_text, detect_pii
from harmonizer_pipeline.services import Run, audit_file, file_columns
from harmonizer_pipeline.storage.tables import StageTables
from harmonizer_pipeline.storage.writes import WriteResult

# Lineage columns the raw step gives every row of a file alike.
FILE_CONSTANTS = {"_source_file", "_load_id", "_ingested_at", naming.PARTITION_COLUMN}


@dataclass(frozen=True)
class Validation:
    """What validating a file found: the rows written, the gate's summary and verdict."""

    written: WriteResult
    summary: GateSummary
    verdict: Verdict
    max_reject_rate: float
    sample_pii: dict[str, str]  # the PII columns among those of summary.sample, with their kind


def validate_file(
    tables: StageTables,
    connect: Callable[[], AbstractContextManager],
    run: Run,
    source: str,
    partition_key: str,
    schema: pa.DataFrameSchema,
    max_reject_rate: float,
    privacy: PrivacySettings,
) -> Validation:
    """Validate the file's raw rows, replace its partition of validated/<source> with the rows
    that pass, and record the gate's verdict. `connect` opens a bookkeeping transaction."""
    started = time.perf_counter()
    raw, validated = naming.raw(source), naming.validated(source)
    with connect() as conn:
        entry, columns = file_columns(conn, source, partition_key)
    unique = sorted({c for _, group, _ in unique_column_sets(schema) for c in group if c in columns})
    duplicates = pd.DataFrame()
    if unique:  # uniqueness holds over the whole file: one pass over its unique columns first
        duplicates = uniqueness_rejections(schema, tables.frame(raw, columns=["_row_number", *unique], partition_key=partition_key))
    writer = rejected.RejectedRowsWriter(tables.url, source, partition_key, run.run_id)
    validation = PartitionValidation(schema, duplicates, writer.write)
    raw_rows = _raw_rows(tables, raw, columns, partition_key)
    try:
        # The read of raw closes once the write committed or rolled back, even when it failed.
        with closing(raw_rows), tables.writing(validated, partition_key) as write:
            written = write.rows(validation.run(raw_rows))
            # Rejected rows commit just before the valid ones, inside the write's transaction.
            writer.commit()
    finally:
        writer.close()  # without commit(), the file's earlier records stay
    summary = validation.summary
    decision = verdict(summary, max_reject_rate)
    with connect() as conn:
        gates.record_gate(conn, source, partition_key, run.run_id, summary, max_reject_rate, decision)
        registry.record_gate(conn, entry.id, decision.passed, f"blocked by its schema gate: {decision.description}")
        audit_file(
            conn, run, "gate", validated, entry, decision.severity,
            rows_in=summary.rows, rows_out=summary.rows - summary.rejected_rows, detail=decision.description,
        )  # fmt: skip
        metrics.record(conn, run.run_id, source, partition_key, str(validated), {
            "rows": summary.rows, "rejected_rows": summary.rejected_rows, "rejected_share": summary.reject_rate,
            "duration_seconds": time.perf_counter() - started,
        })  # fmt: skip
    sampled = sorted({r["column"] for r in summary.sample if r["column"] in columns})
    return Validation(written, summary, decision, max_reject_rate, _pii_of(tables, raw, partition_key, sampled, privacy, source))


def _pii_of(tables: StageTables, raw: naming.StageAsset, partition_key: str, columns: Sequence[str], privacy: PrivacySettings, source: str) -> dict[str, str]:
    """Which of the file's `columns` are PII: declared, or flagged by the profile's detector on the
    column's raw text (read here: the profile of the file may not have run yet)."""
    declared = privacy.sources.get(source, {})
    undeclared = [c for c in columns if c not in declared] if privacy.detect else []
    detected = {}
    if undeclared:
        frame = tables.frame(raw, columns=undeclared, partition_key=partition_key)
        detected = {c: detect_pii(count_text(frame[c])) for c in undeclared}
    return {c: kind for c, kind in source_columns(privacy, source, detected).items() if c in columns}


def _raw_rows(tables: StageTables, raw: naming.StageAsset, columns: Sequence[str], partition_key: str) -> Generator[pd.DataFrame, None, None]:
    """The file's raw rows in chunks: its own columns and the lineage ones, in the raw table's order."""
    with tables.reading() as reader:
        wanted = [spec.name for spec in reader.columns(raw) if spec.name in columns or spec.name.startswith("_")]
        constant = [c for c in wanted if c in FILE_CONSTANTS]
        # Read once, not a million times: the raw step stamps them on every row of the file.
        stamp = reader.first_row(raw, constant, partition_key) if constant else None
        per_row = [c for c in wanted if c not in FILE_CONSTANTS]
        for chunk in reader.chunks(raw, per_row, partition_key):
            if stamp is not None:
                chunk = chunk.join(stamp.iloc[np.zeros(len(chunk), np.intp)].set_axis(chunk.index))
            yield chunk[wanted]
