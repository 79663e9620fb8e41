"""Exporting one target (no dagster): the change files of every merge not exported yet, then the
files people open (written from harmonized/<target> chunk by chunk under <export directory>/
<target>/<run date>/), optionally uploaded to a B2 bucket prefix; each file audited with its
SHA-256, and the run's metrics recorded. The PII columns of every file are written clear, masked
or pseudonymized as privacy.exports says, each chunk once before the writers take it."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, merges, metrics, profiles
from harmonizer_pipeline.export import writers
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.ingest.b2 import v2_bucket
from harmonizer_pipeline.ingest.discovery import sha256_of
from harmonizer_pipeline.privacy.policy import PrivacyError, Protection, export_protection, page_protection, source_columns, target_columns
from harmonizer_pipeline.reports import pages
from harmonizer_pipeline.reports.summary import target_document
from harmonizer_pipeline.services import Run, StageError
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.tables import StageTables

CHUNK_ROWS = 100_000  # rows of the harmonized tables read at a time (StageTables' chunk_rows)

SUMMARY_FILE = "summary.md"  # in the zip: the target's latest merge and its files, in plain English
REPORT_SUFFIX = "_report.html"  # the target's HTML page (reports.pages), among the files

# Where export.full is `schedule`, an automatic run writes the change files only.
SCHEDULE_WAIT = "waits for the schedule (export.full: schedule)"


@dataclass(frozen=True)
class Exported:
    """An export: its directory, the change files written, and (unless the full export waits for
    the schedule: `full` False) the files of the full export, the rows each output got and where
    the files were uploaded (the target's HTML page among them)."""

    directory: Path
    change_files: list[Path]
    full: bool = True
    files: list[Path] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    uploaded: list[str] = field(default_factory=list)
    report: Path | None = None  # the target's HTML page, one of the files


def export_target(
    settings: Settings,
    target_name: str,
    tables: StageTables,
    connect: Callable[[], AbstractContextManager],
    run: Run,
    *,
    automatic: bool,
    b2_api: Callable[[], object],
    log: Callable[[str], None],
) -> Exported:
    """Write the target's change files and, unless `automatic` and the full export waits for the
    schedule, its full export; `b2_api` is asked for the B2 API only when the export uploads. A
    failure is audited."""
    step = audit.AuditedStep(connect, audit.entry(run, "export", "pending", str(naming.export(target_name))))
    with step:
        return _export(settings, target_name, tables, connect, run, step, automatic, b2_api, log)


def _export(settings: Settings, target_name: str, tables: StageTables, connect, run: Run, step: audit.AuditedStep, automatic: bool, b2_api, log) -> Exported:
    started = time.perf_counter()
    options = settings.export
    root = settings.export_directory()
    directory = writers.export_directory(root, target_name, dt.datetime.now(dt.UTC).date())
    harmonized = naming.harmonized(target_name)
    protected = _Protected.of(settings, target_name, connect)

    def upload(files: list[Path]) -> list[str]:
        if options.b2 is None:
            return []
        bucket = v2_bucket(b2_api(), options.b2.bucket)
        return writers.upload_to_b2(bucket, f"{options.b2.prefix.rstrip('/')}/{target_name}/{directory.name}".lstrip("/"), files)

    changed = _write_changes(tables, connect, target_name, directory, upload, step, root, options.csv_bom, protected.chunks)
    if options.full == "schedule" and automatic:
        log(f"{target_name}: {len(changed)} change file(s) in {directory}; the full export {SCHEDULE_WAIT}")
        return Exported(directory, changed, full=False)

    def duplicates() -> Iterator[pd.DataFrame]:
        return protected.chunks(tables.chunks(store.duplicates_view(target_name)))

    # The table is read once; each file's writer takes the chunks in a thread of its own.
    outputs: list[tuple[str, Callable[..., int | dict[str, int]]]] = []
    if "csv" in options.formats:
        outputs.append((f"{target_name}.csv", lambda chunks, path: writers.write_csv(chunks, path, bom=options.csv_bom)))
    if "parquet" in options.formats:
        outputs.append((f"{target_name}.parquet", writers.write_parquet))
    outputs.append((f"{target_name}_unique_records.csv", lambda chunks, path: writers.write_csv(_unique(chunks), path, bom=options.csv_bom)))
    if "xlsx" in options.formats:
        reports = _side_reports(connect, settings.sources_of(target_name))
        reports["rejected rows"] = protected.rejected(reports["rejected rows"])

        def workbook(chunks: Iterator[pd.DataFrame], path: Path) -> dict[str, int]:
            sheets = [writers.Sheet("data", chunks), writers.Sheet("duplicates", duplicates())]
            return writers.write_workbook(path, [*sheets, *(writers.Sheet(name, iter([frame])) for name, frame in reports.items())])

        outputs.append((f"{target_name}.xlsx", workbook))
    files = [directory / name for name, _ in outputs]
    read = _Counted(protected.chunks(tables.chunks(harmonized, order_by=settings.targets[target_name].key)))
    results = writers.write_all(read, [partial(write, path=path) for (_, write), path in zip(outputs, files)])
    written: dict[str, int] = {}
    for path, result in zip(files, results):
        written |= {f"{path.name}[{sheet}]": rows for sheet, rows in result.items()} if isinstance(result, dict) else {path.name: result}
    duplicates_path = directory / f"{target_name}_duplicate_records.csv"
    written[duplicates_path.name] = writers.write_csv(duplicates(), duplicates_path, bom=options.csv_bom)
    files.insert(len(files) - ("xlsx" in options.formats), duplicates_path)
    with connect() as conn:
        report = pages.write(directory / f"{target_name}{REPORT_SUFFIX}", pages.target_page(conn, tables, settings, target_name, protected.page))
        summary = target_document(conn, settings, target_name)
    files.append(report)
    if options.zip:
        files.append(writers.write_zip(files, directory / f"{target_name}_{directory.name}.zip", {SUMMARY_FILE: summary}))
    uploaded = upload(files)
    log(f"{target_name}: {len(files)} files in {directory}")
    # One row per file, so `harmonizer audit --file <name>` finds it: its bytes' SHA-256 and
    # rows (a workbook's: its data sheets'; a zip's: none), out of the table's rows read.
    # Hashed before connecting: reading every file back holds no connection open.
    done = []
    for i, (path, digest) in enumerate(zip(files, _sha256s(files))):
        data = [v for k, v in written.items() if k == path.name or k.startswith(f"{path.name}[data")]
        done.append(step.outcome(
            "done", file=path.relative_to(root).as_posix(), sha256=digest, rows_in=read.rows,
            rows_out=sum(data) if data else None,
            detail=f"uploaded to b2://{options.b2.bucket}/{uploaded[i]}" if uploaded and options.b2 else None,
        ))  # fmt: skip
    with connect() as conn:
        audit.record(conn, *done)
        metrics.record(conn, run.run_id, target_name, None, str(naming.export(target_name)), {
            "rows": read.rows, "files": len(files), "duration_seconds": time.perf_counter() - started,
        })  # fmt: skip
    return Exported(directory, changed, files=files, written=written, uploaded=uploaded, report=report)


def _write_changes(
    tables: StageTables, connect, target_name: str, directory: Path, upload, step: audit.AuditedStep, root: Path, bom: bool, protect: _Protect
) -> list[Path]:
    """Change files of every merge not exported yet, oldest first: `<target>_changes_<merge time>`
    .csv and .parquet, from the merge's delta; each merge's delta is dropped once its files are written."""
    with connect() as conn:
        pending = merges.unexported_merges(conn, target_name)
        # A merge that changed no row (a rebuild that found all as it was) has nothing to send.
        merges.mark_exported(conn, [m for m, _, changed in pending if not changed])
    written: list[Path] = []
    for merge_id, merged_at, _ in (p for p in pending if p[2]):
        chunks = protect(tables.chunks(store.changes(target_name), where=sql.SQL("_merge_id = {}").format(sql.Literal(merge_id))))
        stem = f"{target_name}_changes_{merged_at.astimezone(dt.UTC):%Y%m%dT%H%M%S.%fZ}"
        files = [directory / f"{stem}.csv", directory / f"{stem}.parquet"]
        rows = writers.write_all(
            _Counted(_without_merge_id(chunks)), [partial(writers.write_csv, path=files[0], bom=bom), partial(writers.write_parquet, path=files[1])]
        )
        uploaded = upload(files)
        done = [
            step.outcome("done", file=path.relative_to(root).as_posix(), sha256=digest, rows_out=count,
                         detail=f"changes of merge {merge_id}" + (f"; uploaded to {uploaded[i]}" if uploaded else ""))
            for i, (path, count, digest) in enumerate(zip(files, rows, _sha256s(files)))
        ]  # fmt: skip
        with connect() as conn:
            audit.record(conn, *done)
            store.drop_exported_changes(conn, target_name, merge_id)
            merges.mark_exported(conn, [merge_id])
        written += files
    return written


_Protect = Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]


@dataclass(frozen=True)
class _Protected:
    """The export's PII protection (privacy.exports) and its HTML page's (privacy.reports), with
    the PII columns of the target and of each of its sources (for the rejected values their
    files left)."""

    protection: Protection
    page: Protection
    target: dict[str, str] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def of(cls, settings: Settings, target_name: str, connect) -> _Protected:
        try:
            protection, page = export_protection(settings.privacy), page_protection(settings.privacy)
        except PrivacyError as err:
            raise StageError(str(err)) from None
        if protection.how == page.how == "clear":
            return cls(protection, page)
        sources = settings.sources_of(target_name)
        with connect() as conn:
            detected = profiles.flagged_pii(conn, sources) if settings.privacy.detect else {}
        by_source = {(s, c): kind for s in sources for c, kind in source_columns(settings.privacy, s, detected.get(s, {})).items()}
        return cls(protection, page, target_columns(settings, target_name, detected), by_source)

    def chunks(self, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return self.protection.chunks(chunks, self.target)

    def rejected(self, frame: pd.DataFrame) -> pd.DataFrame:
        """quality.rejected_rows' records with the values of PII columns protected."""
        if self.protection.how == "clear" or frame.empty:
            return frame
        records = [
            self.protection.failure(r, self.sources.get((r["source"], r["column_name"]), self.target.get(r["column_name"])))
            for r in frame.to_dict("records")
        ]  # fmt: skip
        return pd.DataFrame(records, columns=frame.columns)


def _query_frame(conn, query: str, params: tuple) -> pd.DataFrame:
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _side_reports(connect, sources: list[str]) -> dict[str, pd.DataFrame]:
    """Rejected rows, quality summary and keys of the target's sources (small: read whole)."""
    with connect() as conn:
        rejected = _query_frame(
            conn,
            "SELECT source, partition_key, _row_number, column_name, check_name, failure_case, message FROM quality.rejected_rows"
            " WHERE source = ANY(%s) ORDER BY source, partition_key, _row_number, column_name, check_name",
            (sources,),
        )
        gates = _query_frame(
            conn,
            "SELECT DISTINCT ON (source, partition_key) source, partition_key, severity, rows, valid_rows, rejected_rows, reject_rate,"
            " max_reject_rate, description FROM quality.gate_results WHERE source = ANY(%s) ORDER BY source, partition_key, checked_at DESC",
            (sources,),
        )
        keys = _query_frame(
            conn,
            "SELECT source, partition_key, rows, suggested_key, suggestion_reason, suggested_key_unique, minimal_keys, duplicate_rows,"
            " key_duplicate_groups FROM keys.key_summary WHERE source = ANY(%s) ORDER BY source, partition_key",
            (sources,),
        )
    keys["suggested_key"] = keys["suggested_key"].map(lambda k: ", ".join(k or []), na_action="ignore")
    return {"rejected rows": rejected, "quality summary": gates, "keys": keys}


def _sha256s(paths: list[Path]) -> list[str]:
    """Each file's SHA-256, on all CPUs (hashlib lets go of the GIL while it hashes)."""
    with ThreadPoolExecutor() as pool:
        return list(pool.map(sha256_of, paths))


def _without_merge_id(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for chunk in chunks:
        yield chunk.drop(columns="_merge_id")


class _Counted:
    """The chunks of a table, counting the rows that went by."""

    def __init__(self, chunks: Iterator[pd.DataFrame]):
        self.chunks, self.rows = chunks, 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for chunk in self.chunks:
            self.rows += len(chunk)
            yield chunk


def _unique(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """The rows of keys that occurred once."""
    for chunk in chunks:
        yield chunk[chunk["_duplicates"] == 0]
