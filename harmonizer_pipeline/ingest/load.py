"""The load of one landed file into its partition of raw/<source> (no dagster).

A run loads the registry entry its sensor request names, unless a later attempt superseded it or
another run loaded it meanwhile. It fetches the file, learns its SHA-256 (setting it aside as a
duplicate of a file with the same content), detects how to read it and writes its rows, every
value as text plus lineage, in one transaction with the file's registry, audit and metrics rows.
A failure leaves the file `failed` with its reason, to be tried again by the landing sensor when
the infrastructure failed (see ingest.retries), not when the file did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Generator
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass

import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, metrics, registry
from harmonizer_pipeline.ingest.discovery import ATTEMPT_TAG, FILE_ID_TAG, sha256_of
from harmonizer_pipeline.ingest.heartbeat import Heartbeat
from harmonizer_pipeline.ingest.landing import FetchedFile, LandedObject, LandingError, LandingZone
from harmonizer_pipeline.ingest.readers import Detection, ReadError, ReadHints, TableFile, open_table
from harmonizer_pipeline.ingest.retries import RetryPolicy, is_transient
from harmonizer_pipeline.services import Run, StageError
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.postgres import harmonizer_home
from harmonizer_pipeline.storage.tables import StageTables
from harmonizer_pipeline.storage.writes import TextCopy, WriteResult

ROW_NUMBER = "_row_number"  # the column the readers number a file's rows in (by its line or record)


@dataclass(frozen=True)
class Loaded:
    """A file this run loaded: what its materialization of raw/<source> shows."""

    file: str
    sha256: str
    detection: Detection
    written: WriteResult


def read_hints(settings: Settings, source: str) -> ReadHints:
    return ReadHints(**settings.sources[source].format.model_dump())


def load_file(
    settings: Settings,
    source: str,
    partition_key: str,
    run: Run,
    connect: Callable[[], AbstractContextManager],
    tables: StageTables,
    zone: Callable[[], LandingZone],
    log: Callable[[str], None],
) -> Loaded | None:
    """Load the file of `partition_key` for `run`; None when this run does not load it (superseded,
    loaded by another run, or a duplicate). `connect` opens a bookkeeping connection that commits
    on success; `zone` builds the source's landing zone."""
    started = time.perf_counter()
    step = audit.AuditedStep(connect, audit.entry(run, "load", "pending", str(naming.raw(source)), partition_key))
    # A failure anywhere is recorded `failed` in a transaction of its own, after the write's rolled back.
    with step:
        with connect() as conn:
            entry = _entry_of_run(conn, source, run, partition_key)
        if entry is None:
            raise StageError(f"partition {partition_key!r} of {source} has no file in ops.file_registry")
        not_this_run = _not_loaded_by(run, entry)
        if not_this_run is not None:
            log(f"{entry.object_key}: {not_this_run}")
            return None
        retry = RetryPolicy(settings.ingest.max_load_attempts, settings.ingest.retry_backoff_seconds)

        def failed(conn, message: str, error: BaseException) -> str:
            # A failure of the infrastructure (the database, a lock, the run being stopped: dagster
            # interrupts a run with a BaseException that is no Exception) is tried again by the
            # landing sensor; one of the file is not: it fails the same way every time.
            if is_transient(error) or not isinstance(error, Exception):
                message = f"{message} ({retry.describe(entry.attempts)})"
                registry.record_failure(conn, entry.id, message, retry.delay(entry.attempts), run.run_id)
            else:
                registry.record_failure(conn, entry.id, message, None, run.run_id)
            return message

        # A failure leaves the file `failed` with its reason (else it would stay `pending`).
        step.update(file=entry.object_key, also=failed)
        heartbeat = Heartbeat(connect, entry.id, settings.ingest.load_heartbeat_timeout_seconds / 5).start()
        try:
            return _Attempt(settings, source, run, connect, step, entry, started, log).fetch_and_write(tables, zone)
        finally:
            heartbeat.stop()


def _entry_of_run(conn, source: str, run: Run, partition_key: str) -> registry.RegistryEntry | None:
    """The registry row a run loads: the one its sensor request names (a re-execution keeps the
    tag), else (a materialization launched by hand) the partition's latest version."""
    if FILE_ID_TAG in run.tags:
        entry = registry.entry(conn, int(run.tags[FILE_ID_TAG]))
        if entry is not None and (entry.source, entry.partition_key) == (source, partition_key):
            return entry
    return registry.entry_for_partition(conn, source, partition_key)


def _not_loaded_by(run: Run, entry: registry.RegistryEntry) -> str | None:
    """Why `run` must leave the file alone, if it must."""
    attempt = int(run.tags.get(ATTEMPT_TAG, entry.attempts))
    if attempt < entry.attempts:
        # A retry of an attempt the landing sensor already gave up on: the later attempt loads the file.
        return f"attempt {attempt} was superseded by attempt {entry.attempts}; not loaded by this run"
    manual_rerun = run.parent_run_id is not None and "dagster/retry_number" not in run.tags
    if FILE_ID_TAG in run.tags and entry.status in registry.IN_RAW and entry.run_id != run.run_id and not manual_rerun:
        # Another run of the file loaded it meanwhile (Dagster's retry of a lost attempt, or the sensor's).
        return f"already loaded by run {entry.run_id}; not loaded again"
    return None


@dataclass(frozen=True)
class _Attempt:
    """This run's attempt at the file of a registry entry, once it is known to be this run's to load."""

    settings: Settings
    source: str
    run: Run
    connect: Callable[[], AbstractContextManager]
    step: audit.AuditedStep
    entry: registry.RegistryEntry
    started: float  # time.perf_counter() when the load began, for its duration
    log: Callable[[str], None]

    def fetch_and_write(self, tables: StageTables, zone: Callable[[], LandingZone]) -> Loaded | None:
        entry = self.entry
        obj = LandedObject(entry.object_key, entry.size or 0, 0.0, entry.object_version)
        try:
            fetched = zone().fetch(obj, harmonizer_home() / "staging" / self.source)
        except LandingError as exc:
            raise StageError(str(exc)) from None
        try:
            sha256 = self._sha256_unless_duplicate(fetched)
            if sha256 is None:
                return None
            self.step.update(sha256=sha256)
            try:
                table = open_table(fetched.path, read_hints(self.settings, self.source), self.settings.ingest.chunk_rows)
            except ReadError as exc:
                raise StageError(_about(entry.object_key, exc)) from None
            written = self._write(tables, fetched, table, sha256)
            return Loaded(entry.object_key, sha256, table.detection, written)
        finally:
            fetched.discard()

    def _sha256_unless_duplicate(self, fetched: FetchedFile) -> str | None:
        """The file's SHA-256, or None once it is set aside as a duplicate of a file with the same content."""
        entry = self.entry
        if entry.content_id.startswith("sha256:"):
            # A local file: the sensor hashed this very version (fetch and the write check the version).
            return entry.content_id.removeprefix("sha256:")
        # A download, known to the sensor by B2's SHA-1 or, lacking one, only by its version.
        sha256 = sha256_of(fetched.path)
        with self.connect() as conn:
            twin = registry.claim_sha256(conn, entry, sha256)
            if twin is None:
                return sha256
            message = f"same content as {twin.object_key} ({twin.status})"
            registry.update(conn, entry.id, status="duplicate", error=message, run_id=self.run.run_id)
            self.step.done(conn, "duplicate", sha256=sha256, detail=message)
        self.log(f"{entry.object_key}: {message}; not loaded again")
        return None

    def _write(self, tables: StageTables, fetched: FetchedFile, table: TableFile, sha256: str) -> WriteResult:
        """The file's rows into its partition, with its registry, audit and metrics rows in the same
        transaction: the file is `loaded` (and audited) exactly when its rows are."""
        entry, run_id, raw = self.entry, self.run.run_id, naming.raw(self.source)
        lineage = {
            "_source_file": entry.object_key,
            "_load_id": run_id,
            "_ingested_at": pd.Timestamp(dt.datetime.now(dt.UTC)),
        }

        def rows() -> Generator[pd.DataFrame, None, None]:
            try:
                for chunk in table.chunks():
                    yield chunk.assign(**lineage)
            except ReadError as exc:
                raise StageError(_about(entry.object_key, exc)) from None

        data_columns = [str(c) for c in table.empty_frame().columns if c != ROW_NUMBER]
        server_csv = table.server_csv()
        text_copy = None if server_csv is None else TextCopy(server_csv, table.empty_frame().assign(**lineage), lineage, ROW_NUMBER)
        # The stream is closed once the transaction has committed or rolled back, as the file is left.
        with closing(rows()) as chunks, tables.writing(raw, entry.partition_key) as write:
            written = write.rows(chunks, text_copy)
            try:
                # Read in place, the file may have changed under the read: then its rows must not commit.
                fetched.check_unchanged()
            except LandingError as exc:
                raise StageError(str(exc)) from None
            registry.update(
                write.connection, entry.id,
                status="loaded", rows=written.rows, sha256=sha256, run_id=run_id, error=None, columns=data_columns, retry_at=None,
                detected_format=table.detection.format, detected_encoding=table.detection.encoding,
            )  # fmt: skip
            self.step.done(write.connection, "loaded", rows_in=written.rows, rows_out=written.rows, detail=f"attempt {entry.attempts}")
            seconds = time.perf_counter() - self.started
            metrics.record(write.connection, run_id, self.source, entry.partition_key, str(raw), {"rows": written.rows, "duration_seconds": seconds})
        return written


def _about(object_key: str, exc: ReadError) -> str:
    # The reader names the staged copy; the person needs the name of the file they landed.
    message = str(exc)
    staged = f"{exc.path.name}: "
    return object_key + ": " + message[len(staged) :] if message.startswith(staged) else f"{object_key}: {message}"
