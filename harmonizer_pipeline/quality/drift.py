"""Drift between two profiles of a source's files: the previous partition and the new one (no dagster).

Findings, in column order of the new file (removed columns last):
- added_column / removed_column; a removed and an added column are a renamed_column instead when
  they hold the same semantic type and look alike (top values overlapping by RENAME_OVERLAP or
  more, or, for typed columns, the same dominant shape with distinct shares within RATE_JUMP);
- type_change: the semantic type differs;
- null_rate_jump: the share of NULL or blank values moved by NULL_JUMP or more;
- distinct_rate_jump: the share of distinct values moved by RATE_JUMP or more;
- new_categories: a categorical column holds values the previous file never had.
"""

from __future__ import annotations

from dataclasses import dataclass

from harmonizer_pipeline.quality.profiling import ColumnProfile, FileProfile

NULL_JUMP = 0.1
RATE_JUMP = 0.25
RENAME_OVERLAP = 0.5


@dataclass(frozen=True)
class DriftFinding:
    kind: str
    column: str
    detail: str
    previous: str | None = None
    current: str | None = None


def compare_profiles(previous: FileProfile, current: FileProfile) -> list[DriftFinding]:
    before = {c.name: c for c in previous.columns}
    after = {c.name: c for c in current.columns}
    removed = [name for name in before if name not in after]
    renamed = {}
    for name in after:
        if name in before:
            continue
        twin = next((old for old in removed if old not in renamed.values() and _alike(before[old], after[name])), None)
        if twin is not None:
            renamed[name] = twin
    findings = []
    for name, column in after.items():
        if name in renamed:
            old = renamed[name]
            findings.append(DriftFinding("renamed_column", name, f"{old!r} is now {name!r}", old, name))
            findings.extend(_changes(before[old], column))
        elif name not in before:
            findings.append(DriftFinding("added_column", name, f"new column {name!r} ({column.semantic_type})", None, column.semantic_type))
        else:
            findings.extend(_changes(before[name], column))
    for name in removed:
        if name not in renamed.values():
            findings.append(DriftFinding("removed_column", name, f"column {name!r} is gone", before[name].semantic_type, None))
    return findings


def _changes(old: ColumnProfile, new: ColumnProfile) -> list[DriftFinding]:
    found = []
    if old.semantic_type != new.semantic_type:
        found.append(DriftFinding("type_change", new.name, f"{old.semantic_type} → {new.semantic_type}", old.semantic_type, new.semantic_type))
    before, after = _missing_rate(old), _missing_rate(new)
    if abs(after - before) >= NULL_JUMP:
        found.append(DriftFinding("null_rate_jump", new.name, f"missing {before:.1%} → {after:.1%}", f"{before:.4f}", f"{after:.4f}"))
    before, after = _distinct_rate(old), _distinct_rate(new)
    if abs(after - before) >= RATE_JUMP:
        found.append(DriftFinding("distinct_rate_jump", new.name, f"distinct {before:.1%} → {after:.1%}", f"{before:.4f}", f"{after:.4f}"))
    if old.categories is not None and new.categories is not None:
        fresh = sorted(set(new.categories) - set(old.categories))
        if fresh:
            found.append(DriftFinding("new_categories", new.name, f"new values {fresh}", None, ", ".join(fresh)))
    return found


def _alike(old: ColumnProfile, new: ColumnProfile) -> bool:
    if old.semantic_type != new.semantic_type:
        return False
    old_top, new_top = {v for v, _ in old.top_values}, {v for v, _ in new.top_values}
    if old_top and new_top and len(old_top & new_top) / len(old_top | new_top) >= RENAME_OVERLAP:
        return True
    # A shape says little about words ('a' fits any), so only typed columns pair by shape.
    typed = old.semantic_type not in ("categorical", "free text", "boolean")
    same_shape = typed and bool(old.patterns and new.patterns) and old.patterns[0][0] == new.patterns[0][0]
    return same_shape and abs(_distinct_rate(old) - _distinct_rate(new)) < RATE_JUMP


def _missing_rate(column: ColumnProfile) -> float:
    return (column.nulls + column.empties) / column.rows if column.rows else 0.0


def _distinct_rate(column: ColumnProfile) -> float:
    return column.distinct / column.rows if column.rows else 0.0
