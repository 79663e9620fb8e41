"""Foreign-key candidates across the pipeline (no dagster): `find_relations` reads the latest
loaded file of every source (raw.<source>, the rows of its newest loaded partition as read, its
own columns, no lineage) and every harmonized.<target> table (its columns, as text), names each
table by its source or target, and runs relations.foreign_keys.find_foreign_keys over them.

Referenced keys: for a source, the minimal keys without NULLs that the keys stage stored for that
file (keys.unique_keys; found anew when the file was never analysed); for a target, its declared
business key and the minimal keys find_foreign_keys finds. A name that is both a source and a
target stands for the source (the target is left out and said so).

The candidates replace keys.foreign_keys (each with its run id), with the figures of
`harmonizer relations --json`, the missing values sampled and the `relations:` line to copy into
harmonizer.yaml. Missing values of a PII column (declared, or flagged by a profile) are masked
before they are stored or shown, so the table holds no personal values; the run's audit row says
how many candidates were found.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import pandas as pd

from harmonizer_pipeline import naming
from harmonizer_pipeline.bookkeeping import audit, profiles, registry
from harmonizer_pipeline.bookkeeping import keys as key_tables
from harmonizer_pipeline.keys.comparison import value_text
from harmonizer_pipeline.privacy.policy import MASKED, source_columns, target_columns
from harmonizer_pipeline.relations.foreign_keys import ForeignKey, find_foreign_keys, relation_line
from harmonizer_pipeline.services import Run
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.storage.catalog import table_exists
from harmonizer_pipeline.storage.tables import StageTables

Connect = Callable[[], AbstractContextManager]  # opens a bookkeeping transaction
ASSET = naming.StageAsset("keys", "relations")
MAX_ARITY = 3


@dataclass(frozen=True)
class RelationsFound:
    """The candidates, ranked, and what they were found between: each table's name, where it was
    read from (`raw.clinic_a, file jan.csv`) and its rows; what was left out and why."""

    candidates: list[ForeignKey]
    tables: dict[str, tuple[str, int]]
    left_out: list[str]
    seconds: float


def _latest_loaded(conn, source: str) -> registry.RegistryEntry | None:
    """The source's newest file whose rows are in raw (loaded or blocked)."""
    loaded = [e for e in registry.entries(conn, source) if e.status in registry.IN_RAW]
    return loaded[-1] if loaded else None


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Each column as text, as a file would hold it (whole floats without '.0', dates ISO 8601), NULL kept."""
    return pd.DataFrame({c: frame[c].map(value_text, na_action="ignore").astype(object) for c in frame.columns}, index=frame.index)


def read_tables(
    tables: StageTables, connect: Connect, settings: Settings
) -> tuple[dict[str, pd.DataFrame], dict[str, list[tuple[str, ...]]], dict[str, list[tuple[str, ...]]], dict[str, tuple[str, int]], list[str]]:
    """(frames by name, stored keys of the sources' files, declared keys of the targets, where each came from, what was left out)."""
    frames: dict[str, pd.DataFrame] = {}
    stored: dict[str, list[tuple[str, ...]]] = {}
    declared: dict[str, list[tuple[str, ...]]] = {}
    origin: dict[str, tuple[str, int]] = {}
    left_out: list[str] = []
    with connect() as conn:
        latest = {source: _latest_loaded(conn, source) for source in settings.sources}
        harmonized = [t for t in settings.targets if table_exists(conn, *naming.harmonized(t).path)]
        analyses = {}
        for source, entry in latest.items():
            if entry is not None:
                analyses[source] = key_tables.load_analysis(conn, source, entry.partition_key, entry.columns or [])
    with tables.reading() as reader:
        for source, entry in latest.items():
            if entry is None:
                left_out.append(f"{source}: no loaded file")
                continue
            raw = naming.raw(source)
            present = {spec.name for spec in reader.columns(raw)}
            columns = [c for c in (entry.columns or sorted(present)) if c in present and not c.startswith("_")]
            frames[source] = reader.frame(raw, columns, entry.partition_key)
            origin[source] = (f"{raw.qualified}, file {entry.object_key}", len(frames[source]))
            analysis = analyses.get(source)
            if analysis is not None:
                stored[source] = [k.columns for k in analysis.minimal_keys if not k.has_nulls and len(k.columns) <= MAX_ARITY]
        for target in settings.targets:
            if target in frames:
                left_out.append(f"target {target}: a source has the same name")
                continue
            if target not in harmonized:
                left_out.append(f"target {target}: not merged yet")
                continue
            table = naming.harmonized(target)
            columns = [spec.name for spec in reader.columns(table) if not spec.name.startswith("_")]
            frames[target] = _as_text(reader.frame(table, columns))
            origin[target] = (table.qualified, len(frames[target]))
            key = tuple(settings.targets[target].key)
            declared[target] = [key] if all(c in columns for c in key) else []
    return frames, stored, declared, origin, left_out


def _pii(connect: Connect, settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    """Each table's PII columns with their kind."""
    with connect() as conn:
        detected = profiles.flagged_pii(conn, list(settings.sources)) if settings.privacy.detect else {}
    found = {}
    for name in names:
        if name in settings.sources:
            found[name] = source_columns(settings.privacy, name, detected.get(name, {}))
        else:
            found[name] = target_columns(settings, name, detected)
    return found


def _masked(candidate: ForeignKey, pii: dict[str, str]) -> ForeignKey:
    """The candidate with its sample of missing values masked when a referencing column is PII."""
    kind = next((pii[c] for c in candidate.from_columns if c in pii), None)
    if kind is None or not candidate.sample_missing:
        return candidate
    return replace(candidate, sample_missing=tuple(str(MASKED.value(v, kind)) for v in candidate.sample_missing))


def find_relations(tables: StageTables, connect: Connect, run: Run, settings: Settings) -> RelationsFound:
    """Find the candidates between the latest file of every source and every target, replace
    keys.foreign_keys with them and record the run's audit row."""
    started = time.perf_counter()
    frames, stored, declared, origin, left_out = read_tables(tables, connect, settings)
    keys: dict[str, list[tuple[str, ...]]] | None = None
    found: list[ForeignKey] = []
    if len(frames) >= 2:
        # Targets' keys: the declared one and those find_foreign_keys finds (a name absent from `keys` gets them found).
        keys = dict(stored)
        found = find_foreign_keys(frames, keys, max_arity=MAX_ARITY, declared_keys=declared)
    else:
        left_out.append("fewer than two tables to relate")
    pii = _pii(connect, settings, list(frames))
    found = [_masked(c, pii.get(c.from_table, {})) for c in found]
    seconds = round(time.perf_counter() - started, 3)
    with connect() as conn:
        save_foreign_keys(conn, run.run_id, found)
        detail = f"{len(found)} foreign-key candidate(s) between {len(frames)} table(s): {', '.join(frames) or 'none'}"
        audit.record(
            conn, audit.entry(run, "relations", "done", str(ASSET), rows_in=sum(rows for _, rows in origin.values()), rows_out=len(found), detail=detail)
        )
    return RelationsFound(found, origin, left_out, seconds)


def save_foreign_keys(conn, run_id: str, found: list[ForeignKey]) -> None:
    """Replace keys.foreign_keys with this run's candidates, ranked."""
    conn.execute("DELETE FROM keys.foreign_keys")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO keys.foreign_keys (run_id, rank, from_table, from_columns, to_table, to_columns, distinct_missing, rows_violating,"
            " coverage, score, sample_missing, relation_line) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    run_id, rank, fk.from_table, list(fk.from_columns), fk.to_table, list(fk.to_columns), fk.distinct_missing, fk.rows_violating,
                    fk.coverage, fk.score, list(fk.sample_missing), relation_line(fk).strip(),
                )
                for rank, fk in enumerate(found, start=1)
            ],
        )  # fmt: skip
