"""raw/<source>: each landed file as one partition of text rows plus lineage, in PostgreSQL."""

import datetime as dt
import time
from collections.abc import Mapping

import dagster as dg
import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, metrics, registry
from harmonizer_pipeline.ingest.discovery import ATTEMPT_TAG, FILE_ID_TAG, sha256_of
from harmonizer_pipeline.ingest.heartbeat import Heartbeat
from harmonizer_pipeline.ingest.landing import LandedObject, LandingError
from harmonizer_pipeline.ingest.readers import ReadError, ReadHints, open_table
from harmonizer_pipeline.ingest.retries import RetryPolicy, is_transient
from harmonizer_pipeline.naming import PARTITION_COLUMN
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.postgres import harmonizer_home
from harmonizer_pipeline.storage.writes import DataFrameChunks, TextCopy


def files_partitions(source: str) -> dg.DynamicPartitionsDefinition:
    """One partition per landed file of the source (added by its sensor)."""
    return dg.DynamicPartitionsDefinition(name=naming.files_partitions_name(source))


def read_hints(settings: Settings, source: str) -> ReadHints:
    return ReadHints(**settings.sources[source].format.model_dump())


def _about(object_key: str, exc: ReadError) -> str:
    # The reader names the staged copy; the person needs the name of the file they landed.
    message = str(exc)
    staged = f"{exc.path.name}: "
    return object_key + ": " + message[len(staged) :] if message.startswith(staged) else f"{object_key}: {message}"


def _entry_of_run(conn, source: str, tags: Mapping[str, str], partition_key: str) -> registry.RegistryEntry | None:
    """The registry row a run loads: the one its sensor request names (a re-execution keeps the
    tag), else (a materialization launched by hand) the partition's latest version."""
    if FILE_ID_TAG in tags:
        entry = registry.entry(conn, int(tags[FILE_ID_TAG]))
        if entry is not None and (entry.source, entry.partition_key) == (source, partition_key):
            return entry
    return registry.entry_for_partition(conn, source, partition_key)


def raw_source_asset(settings: Settings, source: str, partitions: dg.DynamicPartitionsDefinition) -> dg.AssetsDefinition:
    description = settings.sources[source].description or f"Files landed for {source}"

    @dg.asset(
        key=["raw", source],
        partitions_def=partitions,
        metadata={"partition_expr": PARTITION_COLUMN},
        output_required=False,  # a file found to duplicate a loaded one after download writes nothing
        group_name="ingest",
        kinds={"pandas", "postgres"},
        owners=["team:data-engineering"],
        description=f"{description}: every value as text exactly as read, one partition per file.",
    )
    def raw_source(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource):
        step = audit.AuditedStep(postgres.connect, audit.entry(context.run, "load", "pending", f"raw/{source}", context.partition_key))
        with step:
            yield from load(context, postgres, landing, step)

    def load(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource, step: audit.AuditedStep):
        started = time.perf_counter()
        partition_key, run_id = context.partition_key, context.run.run_id
        with postgres.connect() as conn:
            entry = _entry_of_run(conn, source, context.run.tags, partition_key)
        if entry is None:
            raise dg.Failure(f"partition {partition_key!r} of {source} has no file in ops.file_registry")
        attempt = int(context.run.tags.get(ATTEMPT_TAG, entry.attempts))
        if attempt < entry.attempts:
            # A retry of an attempt the landing sensor already gave up on: the later attempt loads the file.
            context.log.info(f"{entry.object_key}: attempt {attempt} was superseded by attempt {entry.attempts}; not loaded by this run")
            return
        manual_rerun = context.run.parent_run_id is not None and "dagster/retry_number" not in context.run.tags
        if FILE_ID_TAG in context.run.tags and entry.status in registry.IN_RAW and entry.run_id != run_id and not manual_rerun:
            # Another run of the file loaded it meanwhile (Dagster's retry of a lost attempt, or the sensor's).
            context.log.info(f"{entry.object_key}: already loaded by run {entry.run_id}; not loaded again")
            return
        retry = RetryPolicy(settings.ingest.max_load_attempts, settings.ingest.retry_backoff_seconds)

        def failed(conn, message: str, error: BaseException) -> str:
            # A failure of the infrastructure (the database, a lock, the run being stopped) is tried
            # again by the landing sensor; one of the file is not: it fails the same way every time.
            if is_transient(error) or isinstance(error, dg.DagsterExecutionInterruptedError):
                message = f"{message} ({retry.describe(entry.attempts)})"
                registry.record_failure(conn, entry.id, message, retry.delay(entry.attempts), run_id)
            else:
                registry.record_failure(conn, entry.id, message, None, run_id)
            return message

        # A failure leaves the file `failed` with its reason (else it would stay `pending`).
        step.update(file=entry.object_key, also=failed)
        heartbeat = Heartbeat(postgres.connect, entry.id, settings.ingest.load_heartbeat_timeout_seconds / 5).start()
        try:
            yield from write(context, postgres, landing, step, entry, heartbeat, started)
        except BaseException:
            heartbeat.stop()
            raise

    def write(context, postgres, landing, step: audit.AuditedStep, entry: registry.RegistryEntry, heartbeat: Heartbeat, started: float):
        partition_key, run_id = context.partition_key, context.run.run_id
        staging = harmonizer_home() / "staging" / source
        obj = LandedObject(entry.object_key, entry.size or 0, 0.0, entry.object_version)
        try:
            fetched = landing.zone(settings, source).fetch(obj, staging)
        except LandingError as exc:
            raise dg.Failure(str(exc)) from None
        if entry.content_id.startswith("sha256:"):
            # A local file: the sensor hashed this very version (fetch and mark_loaded check the version).
            sha256 = entry.content_id.removeprefix("sha256:")
        else:
            # A download, known to the sensor by B2's SHA-1 or, lacking one, only by its version.
            sha256 = sha256_of(fetched.path)
            with postgres.connect() as conn:
                twin = registry.claim_sha256(conn, entry, sha256)
                if twin is not None:
                    message = f"same content as {twin.object_key} ({twin.status})"
                    registry.update(conn, entry.id, status="duplicate", error=message, run_id=run_id)
                    step.done(conn, "duplicate", sha256=sha256, detail=message)
            if twin is not None:
                fetched.discard()
                heartbeat.stop()
                context.log.info(f"{entry.object_key}: {message}; not loaded again")
                return
        step.update(sha256=sha256)
        try:
            table = open_table(fetched.path, read_hints(settings, source), settings.ingest.chunk_rows)
        except ReadError as exc:
            fetched.discard()
            raise dg.Failure(_about(entry.object_key, exc)) from None
        detection = table.detection
        context.add_output_metadata(
            {
                "file": entry.object_key,
                "sha256": sha256,
                "format": detection.format,
                "encoding": detection.encoding or "",
                "delimiter": detection.delimiter or "",
                "detection": dg.MetadataValue.md("\n".join(f"- {line}" for line in detection.evidence)),
            }
        )
        lineage = {
            "_source_file": entry.object_key,
            "_load_id": run_id,
            "_ingested_at": pd.Timestamp(dt.datetime.now(dt.UTC)),
        }

        def stream():
            try:
                for chunk in table.chunks():
                    yield chunk.assign(**lineage)
            except ReadError as exc:
                raise dg.Failure(_about(entry.object_key, exc)) from None

        def mark_loaded(connection, result) -> None:
            # Runs inside the write's transaction: the file is `loaded` (and audited) exactly when its rows are.
            try:
                fetched.check_unchanged()
            except LandingError as exc:
                raise dg.Failure(str(exc)) from None
            registry.update(
                connection, entry.id,
                status="loaded", rows=result.rows, sha256=sha256, run_id=run_id, error=None, columns=data_columns, retry_at=None,
            )  # fmt: skip
            step.done(connection, "loaded", rows_in=result.rows, rows_out=result.rows, detail=f"attempt {entry.attempts}")
            seconds = time.perf_counter() - started
            metrics.record(connection, run_id, source, partition_key, f"raw/{source}", {"rows": result.rows, "duration_seconds": seconds})

        def closed() -> None:
            heartbeat.stop()
            step.closed()  # a failed write (read, rows, bookkeeping, commit) is the load's failure
            fetched.discard()

        data_columns = [str(c) for c in table.empty_frame().columns if c != "_row_number"]
        server_csv = table.server_csv()
        text_copy = None
        if server_csv is not None:
            text_copy = TextCopy(server_csv, table.empty_frame().assign(**lineage), lineage, "_row_number")
        yield dg.Output(DataFrameChunks(stream(), on_written=mark_loaded, text_copy=text_copy, on_closed=closed))

    return raw_source
