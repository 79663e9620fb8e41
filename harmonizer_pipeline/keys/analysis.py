"""The key steps of one file (no dagster): `analyse_file` finds the minimal keys, near-keys, the
suggested key and the duplicate groups of its validated rows (keys.key_summary, keys.unique_keys,
keys.near_keys, keys.duplicate_groups, with the groups breaking each near-key) and its functional
dependencies (keys.dependencies, with the rows breaking each approximate one in
keys.dependency_rows; relations.dependencies.file_dependencies, on the analysis' codes); `compare_file`
compares it with the previous analysed file on the key (keys.comparisons), `compare_files` two
chosen files (keys.file_comparisons), both keeping their differences in keys.comparison_rows. Each
records its audit row (and the analysis its metrics). The domain work is keys.discovery and
keys.comparison; the assets are in keys.assets."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import keys as key_tables
from harmonizer_pipeline.bookkeeping import metrics, registry
from harmonizer_pipeline.bookkeeping.registry import RegistryEntry
from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.keys.comparison import Comparison, ComparisonError, Difference, ShowValue, compare_frames
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, KeyAnalysis, KeyDiscoveryError, analyze, duplicate_groups
from harmonizer_pipeline.keys.file_diff import PiiColumns
from harmonizer_pipeline.keys.settings import KeySettings
from harmonizer_pipeline.keys.violations import Violation, listed, near_key_groups
from harmonizer_pipeline.privacy.policy import MASKED
from harmonizer_pipeline.privacy.settings import PrivacySettings
from harmonizer_pipeline.relations.dependencies import BrokenRow, Dependency, broken_rows, file_dependencies
from harmonizer_pipeline.services import Run, StageError, audit_file, file_columns
from harmonizer_pipeline.storage.tables import StageTables

LINEAGE = ["_row_number", "_source_file", "_load_id"]
SAMPLE_GROUPS = 3  # groups breaking each near-key shown in the UI (all are in keys.duplicate_groups)
SAMPLE_BROKEN_ROWS = 3  # rows breaking each approximate dependency shown in the UI (more in keys.dependency_rows)

Connect = Callable[[], AbstractContextManager]  # opens a bookkeeping transaction


@dataclass(frozen=True)
class KeyFindings:
    """A file's key analysis, the key suggested (empty without one), the rows its duplicate groups
    hold, and what the engine printed meanwhile (for the run's debug log)."""

    analysis: KeyAnalysis
    suggested: list[str]
    key_duplicate_groups: int
    key_duplicate_rows: int
    engine_output: str
    near_key_sample: list[Violation]  # the first groups breaking each near-key, PII values masked
    dependencies: list[Dependency] = field(default_factory=list)  # the file's functional dependencies, ranked
    broken_sample: list[BrokenRow] = field(default_factory=list)  # the first rows breaking each approximate one, PII values masked


@dataclass(frozen=True)
class Compared:
    """A file compared with `previous` on the key. Without `result`, `reason` says why not: then
    `previous` is None when there was nothing to compare with, else the comparison failed."""

    previous: str | None
    result: Comparison | None
    reason: str | None = None


def validated_file(
    tables: StageTables, connect: Connect, source: str, partition_key: str, lineage: Sequence[str]
) -> tuple[pd.DataFrame, list[str], RegistryEntry]:
    """The file's validated rows (its own columns, typed, and the `lineage` columns asked for), those
    columns and its registry entry."""
    validated = naming.validated(source)
    with connect() as conn:
        entry, columns = file_columns(conn, source, partition_key)
    with tables.reading() as reader:
        stored = {spec.name for spec in reader.columns(validated)}
        columns = [c for c in columns if c in stored]
        frame = reader.frame(validated, [*columns, *lineage], partition_key)
    return frame, columns, entry


def analyse_file(
    tables: StageTables,
    connect: Connect,
    run: Run,
    source: str,
    partition_key: str,
    declared: Sequence[str] | None,
    options: KeySettings,
    privacy: PrivacySettings,
) -> KeyFindings:
    """Analyse the file's keys (against the `declared` key, if any) and record what was found:
    with the duplicate groups of the rows and of the suggested key, those breaking each near-key."""
    started = time.perf_counter()
    frame, columns, entry = validated_file(tables, connect, source, partition_key, ["_row_number"])
    try:
        with captured_output(ENGINE_LOGGERS) as engine:
            analysis = analyze(frame[columns], options.max_size, declared, options.null_equals_null)
    except KeyDiscoveryError as err:
        raise StageError(f"{source}: {err}") from None
    # Without repeated rows (the analysis counted them) there are no row groups to look for, nor
    # key groups under a key that tells every row apart with NULL equal to NULL, as groups take it.
    groups = [_groups(frame if analysis.duplicate_rows else frame.iloc[:0], "row", columns)]
    suggested = list(analysis.suggestion.columns or [])
    if suggested:
        key_holds = analysis.suggestion.unique and analysis.null_equals_null
        groups.append(_groups(frame.iloc[:0] if key_holds else frame, "key", suggested))
    groups.append(near_key_groups(frame, analysis.near_keys, analysis.null_equals_null, analysis.codes))
    # Dependencies take NULL as equal to NULL: the analysis' codes serve only when it did too.
    codes = analysis.codes if analysis.null_equals_null else None
    dependencies = file_dependencies(frame[columns], codes)
    broken = [row for d in dependencies if not d.exact for row in broken_rows(frame, d, codes=codes)]
    analysis.codes = None  # the file's codes are not needed past here
    all_groups = pd.concat(groups, ignore_index=True)
    if len(all_groups):
        all_groups = _with_lineage(tables, source, partition_key, all_groups)
    key_groups = all_groups[all_groups["_kind"] == "key"]
    # The share of rows the suggested key tells apart (1.0 for a key; NaN without one).
    excess = len(key_groups) - key_groups["_group"].nunique()
    uniqueness = 1 - excess / analysis.rows if suggested and analysis.rows else float("nan")
    asset = naming.keys(source)
    with connect() as conn:
        key_tables.save_analysis(conn, source, partition_key, run.run_id, analysis, all_groups)
        key_tables.save_dependencies(conn, source, partition_key, run.run_id, dependencies, broken)
        audit_file(conn, run, "keys", asset, entry, rows_in=analysis.rows, detail=(
            f"key {', '.join(suggested) or '(none)'}; {len(analysis.minimal_keys)} minimal keys, {analysis.duplicate_rows} repeated rows"
        ))  # fmt: skip
        metrics.record(conn, run.run_id, source, partition_key, str(asset), {
            "key_uniqueness": uniqueness, "minimal_keys": len(analysis.minimal_keys), "duplicate_rows": analysis.duplicate_rows,
            "duration_seconds": time.perf_counter() - started,
        })  # fmt: skip
    show = file_pii_shown(privacy, source, [frame])
    sample = listed(all_groups, show, SAMPLE_GROUPS)
    return KeyFindings(
        analysis, suggested, int(key_groups["_group"].nunique()), len(key_groups), engine.text.strip(), sample, dependencies, shown_rows(broken, show)
    )


def shown_rows(rows: Sequence[BrokenRow], show: ShowValue, each: int | None = SAMPLE_BROKEN_ROWS) -> list[BrokenRow]:
    """The first `each` rows breaking each dependency, values as `show` shows them to people."""
    taken: dict[tuple, int] = {}
    shown = []
    for row in rows:
        seen = taken.get((row.lhs, row.rhs), 0)
        if each is not None and seen >= each:
            continue
        taken[(row.lhs, row.rhs)] = seen + 1
        values = {c: show(c, v) for c, v in row.lhs_values.items()}
        shown.append(replace(row, lhs_values=values, value=show(row.rhs, row.value), majority=show(row.rhs, row.majority)))
    return shown


def _with_lineage(tables: StageTables, source: str, partition_key: str, groups: pd.DataFrame) -> pd.DataFrame:
    """The grouped rows with the rest of their lineage, by `_row_number` (which is unique in a
    file). Read only once there are groups: on the bench's 1M rows the two text columns were a
    third of the read's 1.5 s."""
    lineage = tables.frame(naming.validated(source), columns=LINEAGE, partition_key=partition_key)
    found = lineage.set_index("_row_number").reindex(groups["_row_number"])
    return groups.assign(**{name: found[name].array for name in LINEAGE[1:]})


def _groups(frame: pd.DataFrame, kind: str, columns: list[str]) -> pd.DataFrame:
    found = duplicate_groups(frame, columns)
    # pandas-stubs type assign's values as scalars or sequences of scalars; pandas takes any
    # list-like, and a list of lists makes the object column wanted here.
    return found.assign(_kind=kind, _key_columns=[columns] * len(found))  # pyright: ignore[reportArgumentType]


def compare_file(
    tables: StageTables,
    connect: Connect,
    run: Run,
    source: str,
    partition_key: str,
    declared: Sequence[str] | None,
    earlier: Sequence[str],
    privacy: PrivacySettings,
) -> Compared:
    """Compare the file with the last of the `earlier` files (oldest first) whose keys were
    analysed, on the `declared` key or else the one suggested for this file; its differences go to
    keys.comparison_rows. Not compared (the audit row and `reason` say why): no earlier file, no
    key, or the key does not fit (a column missing, a key value repeating)."""
    asset = naming.comparison(source)
    with connect() as conn:
        key = declared or key_tables.suggested_key(conn, source, partition_key)
        analysed = key_tables.analysed_partitions(conn, source, earlier)
        previous = next((p for p in reversed(earlier) if p in analysed), None)
        if previous is None or not key:
            # Not compared: the audit row says why.
            reason = "first file of the source: nothing to compare with" if previous is None else "no key to compare on"
            audit_file(conn, run, "compare", asset, file_columns(conn, source, partition_key)[0], detail=reason)
            return Compared(None, None, reason)
    before, _, previous_entry = validated_file(tables, connect, source, previous, ["_row_number"])
    after, _, entry = validated_file(tables, connect, source, partition_key, ["_row_number"])
    try:
        result = compare_frames(
            before, after, key, (f"previous file {previous_entry.object_key}", f"file {entry.object_key}"),
            show=file_pii_shown(privacy, source, [before, after]), ignore=["_row_number"],
        )  # fmt: skip
    except ComparisonError as err:
        with connect() as conn:
            audit_file(conn, run, "compare", asset, entry, detail=str(err))
        return Compared(previous, None, str(err))
    with connect() as conn:
        # The audit row commits with the comparison it describes.
        key_tables.save_comparison(conn, source, partition_key, previous, run.run_id, result)
        audit_file(conn, run, "compare", asset, entry, detail=(
            f"{result.removed} key(s) only in {previous}, {result.added} only in this file, {result.changed} changed"
        ))  # fmt: skip
    return Compared(previous, result)


def file_pii_shown(privacy: PrivacySettings, source: str, frames: Sequence[pd.DataFrame]) -> ShowValue:
    """How values of the source's files are shown to people: masked where the column is PII
    (declared, or flagged by the profile's detector in any of the `frames`)."""
    return PiiColumns(privacy, source, frames).show(MASKED.value)


SAMPLE_DIFFERENCES = 10  # differences of each kind a chosen-files comparison shows people


@dataclass(frozen=True)
class FilesCompared:
    """Two chosen files of a source compared: the result, its id in keys.file_comparisons, the
    files' names and a sample of the differences with PII values masked."""

    comparison_id: int
    file_a: str
    file_b: str
    result: Comparison
    sample: list[Difference]


def _loaded_file(conn, source: str, name: str) -> RegistryEntry:
    """The source's loaded file called `name` (its object key, the latest version, or its partition key)."""
    entries = [e for e in registry.entries(conn, source) if e.status in registry.IN_RAW]
    found = [e for e in entries if e.object_key == name] or [e for e in entries if e.partition_key == name]
    if not found:
        known = ", ".join(dict.fromkeys(e.object_key for e in entries)) or "none"
        raise StageError(f"{source} has no loaded file {name!r} (its loaded files: {known})")
    return found[-1]


def compare_files(
    tables: StageTables, connect: Connect, run: Run, source: str, file_a: str, file_b: str, key: Sequence[str] | None, declared: Sequence[str] | None,
    privacy: PrivacySettings,
) -> FilesCompared:  # fmt: skip
    """Compare two loaded files of the source (validated rows) on `key`, else the `declared` key,
    else the key suggested for file B; record the comparison and its difference rows."""
    with connect() as conn:
        entry_a, entry_b = _loaded_file(conn, source, file_a), _loaded_file(conn, source, file_b)
        chosen = list(key or declared or key_tables.suggested_key(conn, source, entry_b.partition_key) or [])
    if not chosen:
        raise StageError(f"no key to compare {entry_a.object_key} and {entry_b.object_key} on: give `key` in the run config")
    a, _, _ = validated_file(tables, connect, source, entry_a.partition_key, ["_row_number"])
    b, _, _ = validated_file(tables, connect, source, entry_b.partition_key, ["_row_number"])
    show = file_pii_shown(privacy, source, [a, b])
    try:
        result = compare_frames(a, b, chosen, (entry_a.object_key, entry_b.object_key), show=show, ignore=["_row_number"])
    except ComparisonError as err:
        raise StageError(str(err)) from None
    sample = [
        replace(d, key={c: show(c, v) for c, v in d.key.items()}, before=show(d.column or "", d.before), after=show(d.column or "", d.after))
        for d in result.sample(SAMPLE_DIFFERENCES)
    ]
    with connect() as conn:
        comparison_id = key_tables.save_file_comparison(conn, source, entry_a.partition_key, entry_b.partition_key, run.run_id, result)
        audit_file(conn, run, "compare", naming.file_comparisons(), entry_b, detail=(
            f"comparison {comparison_id} against {entry_a.object_key} on {', '.join(chosen)}: "
            f"{result.added} added, {result.removed} removed, {result.changed} changed, {result.unchanged} unchanged"
        ))  # fmt: skip
    return FilesCompared(comparison_id, entry_a.object_key, entry_b.object_key, result, sample)
