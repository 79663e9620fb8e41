"""Functional dependencies of one file (no dagster): which columns determine another, exactly or
almost, and the rows that break the almost ones (typically typos or inconsistent records: one
postal code with two cities). For the profile report, the UI metadata and `harmonizer relations
--fds FILE`.

- find_dependencies(): every minimal X -> A with X of at most `max_lhs` columns, exact (every
  two rows equal on X are equal on A) or approximate with its error g3 — the share of rows to
  remove for it to hold — at most `max_error`, measured on every row. Minimal: an exact one has
  no proper subset of X that determines A exactly; an approximate one has none within
  `max_error` (an exact X -> A is still reported when a subset of X determines A only almost).
- Left out, as saying nothing about the file: A constant (NULL throughout included); X a key of
  the file (a key determines everything: the keys stage reports them), so any column that is a
  key by itself, and X within `max_error` of a key (exact ones too: they rest on the few rows
  X repeats in, and from it any A would pass the threshold); for approximate ones, A within
  `max_error` of a constant (the empty LHS already passes, so no LHS is minimal).
- NULL semantics: a NULL is a value like any other on both sides (NULL equals NULL, as the keys
  stage's null_equals_null=True): two rows with NULL zip and city "Bonn" agree on zip, and a
  NULL city differs from "Bonn".
- Ranked exact first (by LHS size, then names), then approximate by error; at most `limit`
  (DEPENDENCY_LIMIT) are returned.

The search is our own, levelwise on the keys stage's integer codes (discovery.encode,
CodeTable): for each X of 1 to max_lhs columns whose subsets are not keys, the rows in its
repeated groups are labelled once, and for each A not already determined by a subset of X one
pass finds each group's first value of A and the rows that differ from it; only when few groups
conflict (at most max_error of the rows can go: a group whose d rows differ from its first value
loses min(d, size - d) at least) does it sort those groups' rows to count g3 exactly.

Measured on a synthetic 1M rows × 15 columns (planted zip -> city with 0.1% typos, store ->
region/manager, product -> category/price, (first, last) <-> email, a row id, random columns),
max_lhs 3, on the 2-core machine at load average 6 (other sessions running): this search 237 s
of wall time, 510 MB peak RSS, exact and approximate together (100k rows: 7.5 s). Desbordante
on the same codes: HyFD 76 s for the exact ones alone (1.5 GB); Tane with the g3 measure at
error 0.05 unfinished after 400 s (2.6 GB); FDep unfinished; Pyro 30 s, but its error counts
pairs of rows, not g3, so its set differs. HyFD is thus the faster engine for exact FDs alone;
the approximate ones with exact g3 and minimality are what decide for this search, which gives
both in one pass and leaves out key and near-key LHSs before looking at them.

The pipeline's cost bound (file_dependencies(), used by the keys stage and `harmonizer report`):
a file of more than SAMPLE_ROWS (100,000) rows is searched on a deterministic sample of that
many rows (pandas' sample, random_state 0), then every dependency found there is measured again
on all rows with the same group pass: it stays exact only if it holds on all rows, an
approximate one is kept only within max_error (and only while no smaller kept LHS determines
the same column), its LHS is dropped if it is within max_error of a key on all rows, and error
and violating rows are always those of all rows. bench/bench_dependencies.py, on the same
synthetic 1M × 15 file (2-core machine, load average 3 to 4): all rows 153 s, sampled 7.4 s;
both find the same 8 exact dependencies and zip -> city with the same 966 rows breaking it. The
sample misses what the full search adds past those: 41 approximate ones at 2.7% to 5% error
whose LHS (category, email; zip, manager, quantity; ...) is almost a key on all rows, so that
any column follows from it within the threshold; on 100k rows those LHSs are keys or near-keys
and are left out. `harmonizer relations --fds` searches all rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harmonizer_pipeline.keys.discovery import CodeTable, combined_codes, encode

MAX_LHS = 3
MAX_ERROR = 0.05
DEPENDENCY_LIMIT = 50  # dependencies find_dependencies() returns at most, best first
VIOLATION_LIMIT = 1_000  # rows violations() returns at most
SAMPLE_ROWS = 100_000  # file_dependencies() searches a larger file on a sample of this many rows
ROW_NUMBER = "_row_number"


@dataclass(frozen=True)
class Dependency:
    lhs: tuple[str, ...]
    rhs: str
    error: float  # g3: the share of rows to remove for it to hold; 0 for exact
    violating_rows: int  # the rows g3 removes
    exact: bool


@dataclass(frozen=True)
class _Runs:
    """Sorted (group label, value) codes cut into runs of equal pairs."""

    starts: np.ndarray  # where each run starts
    sizes: np.ndarray
    groups: np.ndarray  # each run's group label
    largest: np.ndarray  # the size of each group's largest run, group by group in label order

    @classmethod
    def of(cls, labels: np.ndarray, values: np.ndarray, order: np.ndarray | None = None) -> _Runs:
        """The runs of the rows labelled by group (`order`: the rows in sorted order, when an
        argsort is wanted; otherwise the codes are sorted in place)."""
        radix = int(values.max()) + 1
        combined = labels.astype(np.int64) * radix + values
        if order is None:
            combined.sort()  # numpy's SIMD sort: several times faster than an argsort
        else:
            order[:] = np.argsort(combined, kind="stable")
            combined = combined[order]
        starts = np.flatnonzero(np.concatenate(([True], combined[1:] != combined[:-1])))
        sizes = np.diff(np.append(starts, len(combined)))
        groups = combined[starts] // radix
        first_runs = np.flatnonzero(np.concatenate(([True], groups[1:] != groups[:-1])))
        return cls(starts, sizes, groups, np.maximum.reduceat(sizes, first_runs))

    def removed(self) -> int:
        """g3's count: the rows whose value is not their group's most frequent one."""
        return int(self.sizes.sum() - self.largest.sum())


def _minority(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows labelled by group, whether each row's value is not its group's most frequent one
    (the rows g3 removes; ties go to the smaller code, the value seen first), and each row's
    majority value."""
    order = np.empty(len(labels), np.int64)
    runs = _Runs.of(labels, values, order)
    group_index = np.cumsum(np.concatenate(([False], runs.groups[1:] != runs.groups[:-1])))  # each run's group, 0, 1, ...
    candidates = np.flatnonzero(runs.sizes == runs.largest[group_index])
    best_run = np.zeros(len(runs.largest), np.int64)
    best_run[group_index[candidates][::-1]] = candidates[::-1]  # the last write wins: each group's first largest run
    run_of_row = np.repeat(np.arange(len(runs.starts)), runs.sizes)
    best_of_row = best_run[group_index[run_of_row]]
    minority, majority = np.empty(len(labels), bool), np.empty(len(labels), values.dtype)
    minority[order] = run_of_row != best_of_row
    majority[order] = values[order[runs.starts[best_of_row]]]
    return minority, majority


class _Groups:
    """The rows of a column combination's repeated groups (others can break nothing) and their
    group labels."""

    def __init__(self, table: CodeTable, columns: Sequence[int]):
        rows, combined = table.repeats(columns)
        labels, _ = pd.factorize(combined)
        sizes = np.bincount(labels)
        repeated = sizes[labels] > 1
        self.rows = rows[repeated]
        self.labels = labels[repeated]
        self.count = len(sizes)
        self.sizes = sizes
        self.firsts = np.zeros(len(sizes), np.int64)  # each group's first row (among self.rows)
        self.firsts[self.labels[::-1]] = np.arange(len(self.labels))[::-1]  # the last write wins
        self.excess = len(self.rows) - int((sizes > 1).sum())  # rows to remove for the columns to be a key

    def removed(self, values: np.ndarray, budget: int) -> int | None:
        """g3 of these columns -> `values` in rows (0 when exact), or None once it must exceed `budget`."""
        values = values[self.rows]
        conflicts = values != values[self.firsts][self.labels]
        if not conflicts.any():
            return 0
        # A group whose d rows differ from its first value loses min(d, its size - d) rows at least:
        # d when the first value is the most frequent, else all but the most frequent, which is among the d.
        differing = np.bincount(self.labels[conflicts], minlength=self.count)
        if int(np.minimum(differing, self.sizes - differing).sum()) > budget:
            return None
        rows = (differing > 0)[self.labels]
        removed = _Runs.of(self.labels[rows], values[rows]).removed()
        return removed if removed <= budget else None


def find_dependencies(
    frame: pd.DataFrame,
    max_lhs: int = MAX_LHS,
    max_error: float = MAX_ERROR,
    limit: int | None = DEPENDENCY_LIMIT,
    codes: pd.DataFrame | None = None,
) -> list[Dependency]:
    """The minimal exact and approximate functional dependencies of `frame` (all its columns;
    leave lineage columns out before), ranked, at most `limit`. `codes`: the frame's columns as
    discovery.encode gives them with NULL equal to NULL (the keys stage's), when at hand."""
    codes = codes if codes is not None else encode(frame)
    rows = len(codes)
    if rows < 2:
        return []
    table = CodeTable(codes)
    varying = [i for i, values in enumerate(table.values) if values.max() > 0]  # constant columns determine nothing and follow from anything
    candidates = [i for i in varying if table.recurring_rows[i]]  # a column with no repeated value is a key
    budget = int(max_error * rows)
    # Determined sets per RHS: the LHSs (as column sets) that determine it exactly, and within max_error.
    exact_lhs: dict[int, list[frozenset[int]]] = {a: [] for a in candidates}
    near_lhs: dict[int, list[frozenset[int]]] = {a: [] for a in candidates}
    for a in candidates:
        if rows - int(np.bincount(table.values[a]).max()) <= budget:
            near_lhs[a].append(frozenset())  # almost constant: the empty LHS already passes
    keys: list[frozenset[int]] = []
    found: list[Dependency] = []
    for size in range(1, max_lhs + 1):
        for lhs in itertools.combinations(candidates, size):
            columns = frozenset(lhs)
            if any(key <= columns for key in keys):
                continue
            groups = _Groups(table, lhs)
            if groups.excess <= budget:  # a key, or within max_error of one: so are its supersets
                keys.append(columns)
                continue
            for a in candidates:
                if a in columns or any(held < columns for held in exact_lhs[a]):
                    continue
                approximate_wanted = not any(held < columns for held in near_lhs[a])
                removed = groups.removed(table.values[a], budget if approximate_wanted else 0)
                if removed is None:
                    continue
                names = tuple(table.names[c] for c in lhs)
                if removed == 0:
                    exact_lhs[a].append(columns)
                    near_lhs[a].append(columns)
                    found.append(Dependency(names, table.names[a], 0.0, 0, True))
                else:
                    near_lhs[a].append(columns)
                    found.append(Dependency(names, table.names[a], removed / rows, removed, False))
    found.sort(key=_rank)
    return found[:limit]


def _rank(dependency: Dependency) -> tuple:
    return (not dependency.exact, dependency.error, len(dependency.lhs), dependency.lhs, dependency.rhs)


def file_dependencies(
    frame: pd.DataFrame,
    codes: pd.DataFrame | None = None,
    max_lhs: int = MAX_LHS,
    max_error: float = MAX_ERROR,
    limit: int | None = DEPENDENCY_LIMIT,
    sample_rows: int = SAMPLE_ROWS,
) -> list[Dependency]:
    """find_dependencies() with the pipeline's cost bound: a file of more than `sample_rows` rows
    is searched on a deterministic sample of that many rows, and every dependency found there is
    measured again on all rows (see the module docstring): it stays exact only if it holds on all
    of them, an approximate one is kept only within `max_error`, and error and violating rows are
    always those of all rows."""
    codes = codes if codes is not None else encode(frame)
    if len(codes) <= sample_rows:
        return find_dependencies(frame, max_lhs, max_error, limit, codes)
    sample = codes.sample(sample_rows, random_state=0).reset_index(drop=True)
    found = find_dependencies(frame.iloc[:0], max_lhs, max_error, None, sample)
    return _remeasured(CodeTable(codes), found, max_error)[:limit]


def _remeasured(table: CodeTable, found: Sequence[Dependency], max_error: float) -> list[Dependency]:
    """The dependencies `found` on a sample, measured on all of `table`'s rows: those whose LHS is
    within `max_error` of a key on all rows, or whose error exceeds it, left out; an approximate
    one left out too when a kept one with the same RHS has a smaller LHS (no longer minimal)."""
    rows, budget = table.rows, int(max_error * table.rows)
    by_lhs: dict[tuple[str, ...], list[Dependency]] = {}
    for dependency in found:
        by_lhs.setdefault(dependency.lhs, []).append(dependency)
    kept: list[Dependency] = []
    for lhs, dependencies in by_lhs.items():
        groups = _Groups(table, table.columns_of(lhs))
        if groups.excess <= budget:
            continue
        for dependency in dependencies:
            removed = groups.removed(table.values[table.names.index(dependency.rhs)], budget)
            if removed is not None:
                kept.append(Dependency(lhs, dependency.rhs, removed / rows, removed, removed == 0))
    minimal = [d for d in kept if d.exact or not any(o.rhs == d.rhs and set(o.lhs) < set(d.lhs) for o in kept)]
    return sorted(minimal, key=_rank)


def violations(frame: pd.DataFrame, dependency: Dependency, limit: int | None = VIOLATION_LIMIT, codes: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows that break `dependency`: in each group of rows equal on its LHS holding more than
    one RHS value, the rows holding other than the group's most frequent value (the rows its g3
    removes). Columns: the LHS columns, the RHS column (the value seen), `majority` (the group's
    most frequent RHS value) and `_row_number` (the frame's, else its index); group by group in
    order of first appearance, at most `limit` rows. `codes`: as find_dependencies takes them."""
    lhs, rhs = list(dependency.lhs), dependency.rhs
    codes = codes[[*lhs, rhs]] if codes is not None else encode(frame, [*lhs, rhs])
    labels, _ = pd.factorize(combined_codes([codes[c].to_numpy() for c in lhs]))
    minority, majority = _minority(labels, codes[rhs].to_numpy())
    rows = np.flatnonzero(minority)
    rows = rows[np.argsort(labels[rows], kind="stable")][:limit]
    first_of_value = pd.Series(range(len(frame))).groupby(codes[rhs].to_numpy()).first()  # each RHS code's first row
    row_numbers = frame[ROW_NUMBER].to_numpy() if ROW_NUMBER in frame.columns else frame.index.to_numpy()
    found = frame.iloc[rows][[*lhs, rhs]].reset_index(drop=True)
    found["majority"] = frame[rhs].iloc[first_of_value.loc[majority[rows]].to_numpy()].to_numpy()
    found[ROW_NUMBER] = row_numbers[rows]
    return found


@dataclass(frozen=True)
class BrokenRow:
    """A row breaking an approximate dependency: its LHS values, the RHS value it holds and the
    value most rows of its group hold (as the file holds them; callers mask them for people)."""

    lhs: tuple[str, ...]
    rhs: str
    row_number: int
    lhs_values: dict[str, object]
    value: object
    majority: object


def broken_rows(frame: pd.DataFrame, dependency: Dependency, limit: int | None = VIOLATION_LIMIT, codes: pd.DataFrame | None = None) -> list[BrokenRow]:
    """violations() as BrokenRows."""
    found = violations(frame, dependency, limit, codes)
    lhs, rhs = dependency.lhs, dependency.rhs
    return [
        BrokenRow(lhs, rhs, int(record[ROW_NUMBER]), {c: _plain(record[c]) for c in lhs}, _plain(record[rhs]), _plain(record["majority"]))
        for record in found.to_dict("records")
    ]


def _plain(value: object) -> object:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def described(dependency: Dependency | BrokenRow) -> str:
    """`zip -> city`."""
    return f"{', '.join(dependency.lhs)} -> {dependency.rhs}"


def dependency_lines(dependencies: Sequence[Dependency]) -> list[str]:
    """One line per dependency, for the CLI."""
    lines = []
    for dependency in dependencies:
        if dependency.exact:
            lines.append(f"{described(dependency)}  (exact)")
        else:
            lines.append(f"{described(dependency)}  (approximate: {dependency.error:.2%} of rows, {_rows_break(dependency.violating_rows)})")
    return lines


def _rows_break(rows: int) -> str:
    return f"{rows} row breaks it" if rows == 1 else f"{rows} rows break it"


def dependency_json(dependencies: Sequence[Dependency]) -> list[dict]:
    """The dependencies as JSON-ready dicts, for the report and the UI metadata."""
    return [{"lhs": list(d.lhs), "rhs": d.rhs, "exact": d.exact, "error": round(d.error, 6), "violating_rows": d.violating_rows} for d in dependencies]
