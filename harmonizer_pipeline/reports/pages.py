"""The HTML pages of the pipeline's files and targets, written beside the exports (no dagster).

- A file's page: built from what its steps stored (profile, statistics, fixes, gate decision,
  key analysis, functional dependencies and sample rows breaking them, summary), so it costs a few queries however large the file; written by its
  profile, its gate and its comparison (each linking it from its metadata) to <export
  directory>/pages/<source>/<partition key>.html, a path that stays put.
- A target's page: its harmonized table profiled with statistics (read a group of columns at a
  time, as the profile step reads a file), with the summary of its latest merge; written by the
  full export as <target>_report.html among the export's files, so it is zipped and uploaded
  with them.

Values of PII columns are shown as privacy.reports says: masked by default, as the UI shows them
(clear or pseudonymized when set so).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import quote

from b2sdk.v2 import B2Api
from psycopg import sql

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import keys, profiles, statistics, summaries
from harmonizer_pipeline.export.writers import upload_to_b2
from harmonizer_pipeline.ingest.b2 import v2_bucket
from harmonizer_pipeline.privacy.policy import PrivacyError, Protection, page_protection, source_columns, target_columns
from harmonizer_pipeline.quality.profile import profile_table
from harmonizer_pipeline.reports.html import GateResult, Report, render
from harmonizer_pipeline.reports.summary import file_text, merge_text
from harmonizer_pipeline.reports.summary import size as size_text
from harmonizer_pipeline.services import StageError
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.tables import StageTables

PAGES_DIRECTORY = "pages"
SAMPLE_BROKEN_ROWS = 3  # rows breaking each approximate dependency a page shows (more in keys.dependency_rows)


class PageError(ValueError):
    """A page that cannot be made yet (its file has no profile)."""


def file_page_path(settings: Settings, source: str, partition_key: str) -> Path:
    """Where a file's page is written; the partition key quoted so any key makes one file name."""
    return settings.export_directory() / PAGES_DIRECTORY / source / f"{quote(partition_key, safe='@')}.html"


def file_page(conn, settings: Settings, source: str, partition_key: str, protection: Protection) -> str:
    """The page of one loaded file, from what its steps stored."""
    latest = profiles.latest_profile(conn, source, [partition_key])
    if latest is None:
        raise PageError(f"{source} file {partition_key}: no profile is stored, so it has no page")
    profile = latest[1]
    names = [c.name for c in profile.columns]
    entry = summaries.file_entry(conn, source, partition_key)
    overview = [("source", source)]
    if entry is not None:
        overview.append(("file", entry.object_key))
        overview += [(label, value) for label, value in (("format", entry.format), ("encoding", entry.encoding)) if value]
        if entry.size is not None:
            overview.append(("file size", size_text(entry.size)))
    detected = {c.name: c.pii for c in profile.columns}
    dependencies = keys.load_dependencies(conn, source, partition_key, SAMPLE_BROKEN_ROWS)
    report = Report(
        title=f"{source}: {entry.object_key if entry else partition_key}",
        profile=profile,
        statistics=statistics.load_statistics(conn, source, partition_key),
        findings=profiles.latest_recommendations(conn, source, partition_key),
        keys=keys.load_analysis(conn, source, partition_key, names),
        gate=_gate(conn, source, partition_key),
        summary=file_text(conn, settings, source, partition_key),
        overview=overview,
        pii=source_columns(settings.privacy, source, detected),
        protection=protection,
        dependencies=dependencies[0] if dependencies else None,
        broken=dependencies[1] if dependencies else (),
    )
    return render(report)


def _gate(conn, source: str, partition_key: str) -> GateResult | None:
    found = summaries.gate(conn, source, partition_key)
    if found is None:
        return None
    rows, rejected, _, severity, description, failures = found
    reasons = [(f"{check} on {column}" if column else check, count) for check, column, count in failures]
    return GateResult(severity != "error", description, rows, rejected, reasons)


def target_page(conn, tables: StageTables, settings: Settings, target: str, protection: Protection) -> str:
    """The page of a target: its harmonized table profiled, and the summary of its latest merge."""
    harmonized = naming.harmonized(target)
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(harmonized.schema, harmonized.table))).fetchone()[0]
    with tables.reading() as reader:
        columns = [c.name for c in reader.columns(harmonized) if not c.name.startswith("_")]
        profile, file_statistics, findings = profile_table(reader, harmonized, columns, rows)
    detected = profiles.flagged_pii(conn, settings.sources_of(target)) if settings.privacy.detect else {}
    definition = settings.targets[target]
    report = Report(
        title=f"{target} ({harmonized.qualified})",
        profile=profile,
        statistics=file_statistics,
        findings=findings,
        summary=merge_text(conn, settings, target),
        overview=[
            ("target key", ", ".join(definition.key)),
            ("sources", ", ".join(settings.sources_of(target))),
            ("files merged", f"{summaries.merged_file_count(conn, target):,}"),
        ],
        pii=target_columns(settings, target, detected),
        protection=protection,
    )
    return render(report)


def publish_file_page(
    settings: Settings, connect: Callable[[], AbstractContextManager], source: str, partition_key: str, b2_api: Callable[[], B2Api]
) -> Path | None:
    """Write the file's page from what is stored so far and, where the export uploads (export.b2),
    upload it beside the exports as <prefix>/pages/<source>/; `b2_api` is asked for the API only
    then. None while the file has no profile.

    The profile, the gate and the comparison each publish it (a blocked file never reaches its
    comparison), and the first two run side by side: a lock per file makes the last to write it
    the last to read what is stored, so the page ends complete."""
    try:
        protection = page_protection(settings.privacy)
    except PrivacyError as err:
        raise StageError(str(err)) from None
    with connect() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"page:{source}:{partition_key}",))
        try:
            page = file_page(conn, settings, source, partition_key, protection)
        except PageError:
            return None
        path = write(file_page_path(settings, source, partition_key), page)
        if settings.export.b2 is not None:
            prefix = f"{settings.export.b2.prefix.rstrip('/')}/{PAGES_DIRECTORY}/{source}".lstrip("/")
            upload_to_b2(v2_bucket(b2_api(), settings.export.b2.bucket), prefix, [path])
    return path


def remove_file_page(settings: Settings, source: str, partition_key: str) -> int:
    """Delete the file's page from disk (its figures quote the file's values: they leave with its
    rows); 1 if there was one."""
    path = file_page_path(settings, source, partition_key)
    if not path.exists():
        return 0
    path.unlink()
    return 1


def write(path: Path, page: str) -> Path:
    """The page written whole or not at all (a reader never opens half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False) as partial:
        partial.write(page)
    Path(partial.name).replace(path)
    return path
