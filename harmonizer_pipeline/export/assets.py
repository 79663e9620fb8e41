"""export/<target>: the files people open, written from PostgreSQL chunk by chunk under
<export directory>/<target>/<run date>/, and optionally uploaded to a B2 bucket prefix."""

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import dagster as dg
import pandas as pd
from psycopg import sql

from harmonizer_pipeline.bookkeeping import audit, merges, metrics
from harmonizer_pipeline.export.writers import (
    Sheet,
    export_directory,
    upload_to_b2,
    write_all,
    write_csv,
    write_parquet,
    write_workbook,
    write_zip,
)
from harmonizer_pipeline.harmonize import store as harmonize_store
from harmonizer_pipeline.ingest.b2 import v2_bucket
from harmonizer_pipeline.ingest.discovery import sha256_of
from harmonizer_pipeline.resources import LandingResource, PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.postgres import adbc_connection
from harmonizer_pipeline.storage.reads import read_chunks
from harmonizer_pipeline.wiring import OWNERS, table_metadata

AUTOMATION_CONDITION_TAG = "dagster/from_automation_condition"
SENSOR_NAME_TAG = "dagster/sensor_name"

CHUNK_ROWS = 100_000


def _query_frame(conn, query: str, params: tuple) -> pd.DataFrame:
    cur = conn.execute(query, params)
    return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _side_reports(postgres: PostgresResource, sources: list[str]) -> dict[str, pd.DataFrame]:
    """Rejected rows, quality summary and keys of the target's sources (small: read whole)."""
    with postgres.connect() as conn:
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


# Exported after each harmonization; the keys sheet's assets only wait to be done, they trigger nothing.
AFTER_HARMONIZED = (
    dg.AutomationCondition.any_deps_updated().ignore(dg.AssetSelection.groups("keys")).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after harmonized")


def export_target_asset(settings: Settings, target_name: str) -> dg.AssetsDefinition:
    sources = settings.sources_of(target_name)
    options = settings.export
    duplicates_table = harmonize_store.duplicates_table(target_name)

    @dg.asset(
        key=["export", target_name],
        deps=[dg.AssetKey(["harmonized", target_name]), *(dg.AssetKey(["keys", s]) for s in sources)],
        automation_condition=AFTER_HARMONIZED,
        group_name="export",
        kinds={{"csv": "csv", "parquet": "parquet", "xlsx": "excel"}[f] for f in options.formats},
        owners=OWNERS,
        description=(
            f"harmonized.{target_name} as {', '.join(options.formats)} under {settings.export_directory()}/{target_name}/<run date>/, with "
            "its unique-record file (keys that occurred once) and duplicate-record file (every row of a key that occurred "
            "more than once, the kept row first)"
            + (", a zip of the lot" if options.zip else "")
            + (f"; uploaded to b2://{options.b2.bucket}/{options.b2.prefix}" if options.b2 else "")
            + "."
        ),
    )
    def export(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource) -> dg.MaterializeResult:
        step = audit.AuditedStep(postgres.connect, audit.entry(context.run, "export", "pending", f"export/{target_name}"))
        with step:
            return write_export(context, postgres, landing, step)

    def write_export(context: dg.AssetExecutionContext, postgres: PostgresResource, landing: LandingResource, step: audit.AuditedStep):
        started = time.perf_counter()
        url = postgres.url()
        root = settings.export_directory()
        directory = export_directory(root, target_name, dt.datetime.now(dt.UTC).date())

        def stream(table: str, where: sql.Composable | None = None, order_by: Sequence[str] = ()) -> Callable[[], Iterator[pd.DataFrame]]:
            def chunks() -> Iterator[pd.DataFrame]:
                with adbc_connection(url) as conn:
                    yield from read_chunks(conn, "harmonized", table, None, where, CHUNK_ROWS, order_by)

            return chunks

        def upload(files: list[Path]) -> list[str]:
            if options.b2 is None:
                return []
            bucket = v2_bucket(landing.b2_api(), options.b2.bucket)
            return upload_to_b2(bucket, f"{options.b2.prefix.rstrip('/')}/{target_name}/{directory.name}".lstrip("/"), files)

        changed = _write_changes(postgres, target_name, directory, stream, upload, step, root, options.csv_bom)
        automatic = any(tag in context.run.tags for tag in (AUTOMATION_CONDITION_TAG, SENSOR_NAME_TAG))
        if options.full == "schedule" and automatic:
            context.log.info(f"{target_name}: {len(changed)} change file(s) in {directory}; the full export waits for the schedule (export.full: schedule)")
            return dg.MaterializeResult(metadata={
                "directory": dg.MetadataValue.path(str(directory)),
                "change_files": table_metadata([{"file": f.name, "bytes": f.stat().st_size} for f in changed], [("file", "string"), ("bytes", "int")]),
                "full_export": "waits for the schedule (export.full: schedule)",
            })  # fmt: skip

        duplicates = stream(duplicates_table)
        # The table is read once; each file's writer takes the chunks in a thread of its own.
        outputs: list[tuple[str, Callable[..., int | dict[str, int]]]] = []
        if "csv" in options.formats:
            outputs.append((f"{target_name}.csv", lambda chunks, path: write_csv(chunks, path, bom=options.csv_bom)))
        if "parquet" in options.formats:
            outputs.append((f"{target_name}.parquet", write_parquet))
        outputs.append((f"{target_name}_unique_records.csv", lambda chunks, path: write_csv(_unique(chunks), path, bom=options.csv_bom)))
        if "xlsx" in options.formats:
            reports = _side_reports(postgres, sources)

            def workbook(chunks: Iterator[pd.DataFrame], path: Path) -> dict[str, int]:
                sheets = [Sheet("data", chunks), Sheet("duplicates", duplicates())]
                return write_workbook(path, [*sheets, *(Sheet(name, iter([frame])) for name, frame in reports.items())])

            outputs.append((f"{target_name}.xlsx", workbook))
        files = [directory / name for name, _ in outputs]
        read = _Counted(stream(target_name, order_by=settings.targets[target_name].key)())
        results = write_all(read, [partial(write, path=path) for (_, write), path in zip(outputs, files)])
        written: dict[str, int] = {}
        for path, result in zip(files, results):
            written |= {f"{path.name}[{sheet}]": rows for sheet, rows in result.items()} if isinstance(result, dict) else {path.name: result}
        duplicates_path = directory / f"{target_name}_duplicate_records.csv"
        written[duplicates_path.name] = write_csv(duplicates(), duplicates_path, bom=options.csv_bom)
        files.insert(len(files) - ("xlsx" in options.formats), duplicates_path)
        if options.zip:
            files.append(write_zip(files, directory / f"{target_name}_{directory.name}.zip"))
        uploaded = upload(files)
        context.log.info(f"{target_name}: {len(files)} files in {directory}")
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
        with postgres.connect() as conn:
            audit.record(conn, *done)
            metrics.record(conn, context.run.run_id, target_name, None, f"export/{target_name}", {
                "rows": read.rows, "files": len(files), "duration_seconds": time.perf_counter() - started,
            })  # fmt: skip
        return dg.MaterializeResult(
            metadata={
                "directory": dg.MetadataValue.path(str(directory)),
                "files": table_metadata([{"file": f.name, "bytes": f.stat().st_size} for f in files], [("file", "string"), ("bytes", "int")]),
                "change_files": table_metadata([{"file": f.name, "bytes": f.stat().st_size} for f in changed], [("file", "string"), ("bytes", "int")]),
                "rows": table_metadata([{"output": k, "rows": v} for k, v in written.items()], [("output", "string"), ("rows", "int")]),
                "uploaded": dg.MetadataValue.md("\n".join(f"- `{name}`" for name in uploaded) or "not configured"),
            }
        )

    return export


def _write_changes(postgres, target_name: str, directory: Path, stream, upload, step: audit.AuditedStep, root: Path, bom: bool) -> list[Path]:
    """Change files of every merge not exported yet, oldest first: `<target>_changes_<merge time>`
    .csv and .parquet, from the merge's delta; each merge's delta is dropped once its files are written."""
    with postgres.connect() as conn:
        pending = merges.unexported_merges(conn, target_name)
        # A merge that changed no row (a rebuild that found all as it was) has nothing to send.
        merges.mark_exported(conn, [m for m, _, changed in pending if not changed])
    written: list[Path] = []
    for merge_id, merged_at, _ in (p for p in pending if p[2]):
        chunks = stream(harmonize_store.changes_table(target_name), sql.SQL("_merge_id = {}").format(sql.Literal(merge_id)))
        stem = f"{target_name}_changes_{merged_at.astimezone(dt.UTC):%Y%m%dT%H%M%S.%fZ}"
        files = [directory / f"{stem}.csv", directory / f"{stem}.parquet"]
        rows = write_all(_Counted(_without_merge_id(chunks())), [partial(write_csv, path=files[0], bom=bom), partial(write_parquet, path=files[1])])
        uploaded = upload(files)
        done = [
            step.outcome("done", file=path.relative_to(root).as_posix(), sha256=digest, rows_out=count,
                         detail=f"changes of merge {merge_id}" + (f"; uploaded to {uploaded[i]}" if uploaded else ""))
            for i, (path, count, digest) in enumerate(zip(files, rows, _sha256s(files)))
        ]  # fmt: skip
        with postgres.connect() as conn:
            audit.record(conn, *done)
            harmonize_store.drop_exported_changes(conn, target_name, merge_id)
            merges.mark_exported(conn, [merge_id])
        written += files
    return written


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
