"""Which column combinations identify a row (no dagster).

- minimal_keys(): every *minimal* unique column combination (UCC) of a frame, exact over every
  row. A key is a non-empty set of columns whose value combinations are all distinct; it is
  minimal when no proper subset is a key. With `max_size`, the keys of at most that many columns,
  still exact (the search checks no larger candidate). Keys come as column names, each key's columns sorted, the list sorted by
  size then names. Up to SEARCH_MAX_COLUMNS columns (besides single-column keys) _search()
  finds them, HPIValid's method in numpy on the codes: on the bench's 1M rows × 14 columns it
  took 0.3 s where Desbordante's HPIValid took 4.7 s (its CSV load 4.4 s of it; its DataFrame
  load is slower still), with the same 75 keys. Wider tables go to Desbordante's HPIValid.
- NULL semantics: by default NULL equals NULL (two rows that both lack a value are alike, as a
  deduplication key must treat them); `null_equals_null=False` makes every NULL distinct (SQL's
  UNIQUE). Either way each key says whether any of its columns holds a NULL, which a primary
  key must not.
- near_keys(): combinations that are almost unique. The minimal keys of seeded random samples
  (20k, 5k, 1k rows) propose them — a key of a sample that is not a key of the table — and
  Desbordante's PyroUCC (approximate UCCs with an error threshold) where the table is too small
  to sample or the samples propose nothing. Each is measured exactly on every row: uniqueness
  ratio (distinct combinations / rows), duplicate groups and excess rows (rows beyond the first
  of each group); ranked by uniqueness, then size, then names.
- suggest_key(): the declared key wins; otherwise the smallest exact key without NULLs,
  preferring columns whose names look like identifiers; otherwise the best near-key.

Values are compared as the frame holds them: the frame is encoded column by column as integer
codes (pandas' factorize), so the search and Desbordante compare exactly what pandas compares,
never a string rendering of it. The codes reach Desbordante as a CSV of small integers, which
its C++ reader parses about 3× faster than its DataFrame reader, which goes row by row through
Python.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool

import desbordante
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

SPILL_BYTES = 256 << 20  # codes larger than this wait on disk while HPIValid runs
# Columns encoded at once: Arrow's hashing of a text column releases the GIL, so on the bench's
# 1M rows two threads encode the 14 columns in 0.45 s of wall time where one took 0.8 s.
ENCODE_THREADS = min(2, os.cpu_count() or 1)
SEARCH_MAX_COLUMNS = 16  # columns (besides single-column keys) up to which _search() finds the keys; HPIValid beyond
# ... and up to which it finds the keys of at most max_size columns: fewer candidates to check, so
# wider tables are in reach (2^24 flags are 16 MB). On the bench's 1M rows × 20 columns the keys of
# up to 3 columns took 1.3 s where HPIValid's whole search took 14 s.
SEARCH_MAX_COLUMNS_BOUNDED = 24
# ... and may sort more: HPIValid gains nothing from the bound (the bench's keys of up to 3 columns took 10.2 × its rows, 1.3 s)
SEARCH_WORK_BOUNDED = 40
SEARCH_SEED_ROWS = 1_000  # rows whose every pair's agree set seeds _search()
SEARCH_SAMPLE_ROWS = 50_000  # rows _search() looks for repeats of a candidate in before it looks in all
VIOLATIONS_PER_CHECK = 256  # pairs repeating a failed candidate whose agree sets _search() takes
SEARCH_WORK = 10  # rows _search() may sort in its checks, in multiples of the table's rows (the bench's 1M took 2.7)
NEAR_KEY_SAMPLES = (20_000, 5_000, 1_000)  # sample sizes whose keys are proposed as near-keys
NEAR_KEY_ERROR = 0.01  # PyroUCC's error threshold for proposing near-keys
ESCALATED_ERRORS = (0.05, 0.2, 0.5)  # tried in turn when nothing is within NEAR_KEY_ERROR
NEAR_KEY_PYRO_ROWS = 100_000  # rows PyroUCC proposes near-keys from, and candidates are ranked on
NEAR_KEY_LIMIT = 10
NEAR_KEY_MAX_SIZE = 3  # when no max_size is given
ENGINE_LOGGERS = ("desbordante",)  # the Python loggers Desbordante reports through
_IDENTIFIER = re.compile(r"(^|_|\b)(id|key|code|nr|no|num|number|uuid|guid|ref)($|_|\b)|id$", re.I)


@dataclass(frozen=True)
class Key:
    columns: tuple[str, ...]
    has_nulls: bool


@dataclass(frozen=True)
class NearKey:
    columns: tuple[str, ...]
    uniqueness: float  # distinct combinations / rows
    duplicate_groups: int
    excess_rows: int  # rows that repeat an earlier row's combination
    has_nulls: bool


@dataclass(frozen=True)
class Suggestion:
    columns: tuple[str, ...] | None
    reason: str
    unique: bool  # whether the suggested columns identify every row


@dataclass
class KeyAnalysis:
    rows: int
    columns: list[str]
    minimal_keys: list[Key]
    near_keys: list[NearKey]
    suggestion: Suggestion
    duplicate_rows: int  # rows that repeat an earlier row entirely
    seconds: float = 0.0
    null_equals_null: bool = True
    max_size: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    codes: pd.DataFrame | None = field(default=None, repr=False)  # each column's integer codes, row by row (for violations())


class KeyDiscoveryError(ValueError):
    """A request the engine cannot answer (e.g. a declared key naming a missing column)."""


def factorize(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """The column's integer codes (-1 for NULL; int32 while the rows fit, to halve the memory) and
    its distinct values, the code of each its position there."""
    dtype = np.int32 if len(values) < 2**31 - 1 else np.int64
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(dtype, copy=False), pd.Index(uniques)


def null_coded(codes: np.ndarray, distinct: int, null_equals_null: bool = True) -> np.ndarray:
    """factorize()'s codes with each NULL (-1) given a code of its own after the `distinct` values:
    one for all NULLs, or a new one per NULL when NULLs are distinct. Changes `codes` in place."""
    missing = codes < 0
    if missing.any():
        codes[missing] = distinct if null_equals_null else distinct + np.arange(int(missing.sum()), dtype=codes.dtype)
    return codes


def _column_codes(values: pd.Series, null_equals_null: bool) -> np.ndarray:
    codes, uniques = factorize(values)
    return null_coded(codes, len(uniques), null_equals_null)


def encode(frame: pd.DataFrame, columns: Sequence[str] | None = None, null_equals_null: bool = True) -> pd.DataFrame:
    """Each column as integer codes of its distinct values (NULL one code of its own, or a new code
    per NULL when NULLs are distinct); int32 while the rows fit, to halve the memory."""
    names = list(frame.columns if columns is None else columns)
    return pd.DataFrame({name: _column_codes(frame[name], null_equals_null) for name in names}, index=frame.index, copy=False)


def encode_chunks(chunks: Iterable[pd.DataFrame], columns: Sequence[str], null_equals_null: bool = True) -> tuple[pd.DataFrame, set[str]]:
    """encode() over a file read in chunks, and the columns holding NULLs. Each column's values
    are let go as soon as it is encoded, so the text and all the codes are never held together."""
    parts: dict[str, list[pd.Series]] = {name: [] for name in columns}
    rows = 0
    for chunk in chunks:
        rows += len(chunk)
        for name in columns:
            parts[name].append(chunk[name])

    def encode_column(name: str) -> tuple[np.ndarray, bool]:
        values = pd.concat(parts.pop(name), ignore_index=True) if parts[name] else pd.Series([], dtype="str")
        return _column_codes(values, null_equals_null), bool(values.isna().any())

    # Not a ThreadPoolExecutor: b2sdk wraps its constructor in a DEBUG log call, which would reach
    # the caller's loggers from inside captured_output.
    with ThreadPool(ENCODE_THREADS) as pool:
        encoded = dict(zip(columns, pool.map(encode_column, columns)))
    nullable = {name for name, (_, has_nulls) in encoded.items() if has_nulls}
    return pd.DataFrame({name: codes for name, (codes, _) in encoded.items()}, index=pd.RangeIndex(rows), copy=False), nullable


def _null_columns(frame: pd.DataFrame, columns: Iterable[str]) -> set[str]:
    return {c for c in columns if frame[c].isna().any()}


def _write_codes(codes: pd.DataFrame) -> str:
    """The codes as a temporary CSV for Desbordante's C++ reader (columns c0, c1, ...); the caller
    removes it."""
    handle, path = tempfile.mkstemp(prefix="harmonizer_keys_", suffix=".csv")
    os.close(handle)
    table = pa.Table.from_arrays([pa.array(codes[c].to_numpy()) for c in codes.columns], names=[f"c{i}" for i in range(codes.shape[1])])
    pacsv.write_csv(table, path)
    return path


def _read_codes(path: str, names: Sequence[str], rows: int) -> pd.DataFrame:
    dtype = pa.int32() if rows < 2**31 - 1 else pa.int64()
    options = pacsv.ConvertOptions(column_types={f"c{i}": dtype for i in range(len(names))})
    return pacsv.read_csv(path, convert_options=options).rename_columns(list(names)).to_pandas()


def _load(algorithm, codes: pd.DataFrame) -> None:
    path = _write_codes(codes)
    try:
        algorithm.load_data(table=(path, ",", True))
    finally:
        os.unlink(path)


def _sorted_keys(keys: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    return sorted((tuple(sorted(k)) for k in keys), key=lambda k: (len(k), k))


def _minimal_key_sets_of_file(path: str, names: Sequence[str]) -> list[tuple[str, ...]]:
    algorithm = desbordante.ucc.algorithms.HPIValid()
    algorithm.load_data(table=(path, ",", True))
    algorithm.execute()
    return _sorted_keys([tuple(names[int(i)] for i in ucc.indices) for ucc in algorithm.get_uccs()])


def combined_codes(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One int64 code per row for its combination of the code `arrays` (equal combinations,
    equal codes): the arrays folded together as mixed-radix numbers, re-factorized whenever the
    next one could overflow int64."""
    combined = np.zeros(len(arrays[0]) if arrays else 0, np.int64)
    width = 1
    for array in arrays:
        values = array.astype(np.int64, copy=False)
        radix = int(values.max()) + 1 if len(values) else 1
        if width * radix >= 2**62:
            combined, uniques = pd.factorize(combined)
            combined, width = combined.astype(np.int64), len(uniques)
        combined = combined * radix + values
        width *= radix
    return combined


class CodeTable:
    """The encoded frame as column arrays, with each column's recurring rows (rows whose value
    another row shares). Only rows recurring in every column of a combination can repeat it, so
    each check sorts those alone: on the bench's 1M rows a few thousand for most combinations."""

    def __init__(self, codes: pd.DataFrame):
        self.codes = codes
        self.names = [str(c) for c in codes.columns]
        self.rows = len(codes)
        self.values = [codes[c].to_numpy() for c in codes.columns]
        self.recurring = [np.bincount(v)[v] > 1 for v in self.values]
        self.recurring_rows = [int(r.sum()) for r in self.recurring]
        self.rows_checked = 0  # rows repeats() has combined and sorted, the work _search() is allowed

    def columns_of(self, names: Sequence[str]) -> list[int]:
        return [self.names.index(n) for n in names]

    def repeats(self, columns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The rows recurring in every one of `columns` and a code of their combination of them."""
        ordered = sorted(columns, key=lambda c: self.recurring_rows[c])
        rows = np.flatnonzero(self.recurring[ordered[0]])
        for column in ordered[1:]:
            rows = rows[self.recurring[column][rows]]
        self.rows_checked += len(rows)
        return rows, combined_codes([self.values[c][rows] for c in columns])

    def stats(self, columns: Sequence[int]) -> tuple[int, int, int]:
        """(distinct combinations, duplicate groups, excess rows) of these columns."""
        rows, combined = self.repeats(columns)
        # numpy's SIMD sort of int64 is ~20x faster than hashing (value_counts) on near-unique codes.
        combined.sort()
        starts = np.flatnonzero(np.concatenate(([True], combined[1:] != combined[:-1])))[: len(rows)]
        sizes = np.diff(np.append(starts, len(rows)))
        excess = len(rows) - len(starts)
        return self.rows - excess, int((sizes > 1).sum()), excess

    def repeating_pairs(self, columns: Sequence[int], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `limit` pairs of rows with equal combinations of `columns`, spread over all such pairs."""
        rows, combined = self.repeats(columns)
        order = np.argsort(combined)
        combined = combined[order]
        seconds = np.flatnonzero(combined[1:] == combined[:-1]) + 1  # each row equal to the one before it
        if len(seconds) > limit:
            seconds = seconds[np.linspace(0, len(seconds) - 1, limit).astype(np.int64)]
        return rows[order[seconds - 1]], rows[order[seconds]]


def _agree_sets(values: Sequence[np.ndarray], first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """For each pair of rows, the bit mask of the columns (bit i for values[i]) they agree on."""
    masks = np.zeros(len(first), np.int64)
    for bit, column in enumerate(values):
        masks |= (column[first] == column[second]).astype(np.int64) << bit
    return masks


def _fold_down(flags: np.ndarray, width: int) -> None:
    """Marks every subset of a marked set of columns (flags indexed by bit mask)."""
    for bit in range(width):
        halves = flags.reshape(-1, 2, 1 << bit)
        halves[:, 0, :] |= halves[:, 1, :]


def _minimal(keys: np.ndarray, width: int) -> np.ndarray:
    """The keys none of whose subsets one column smaller is a key (keys indexed by bit mask, closed upward)."""
    below = np.zeros_like(keys)
    for bit in range(width):
        below.reshape(-1, 2, 1 << bit)[:, 1, :] |= keys.reshape(-1, 2, 1 << bit)[:, 0, :]
    return np.flatnonzero(keys & ~below)


def _search(table: CodeTable, max_size: int | None = None) -> list[tuple[str, ...]] | None:
    """Every minimal key of a table of at least two rows, as HPIValid finds them: a set of columns
    is a key unless some pair of rows agrees on all of it, so the candidates are the minimal sets
    not inside any agree set seen yet. Agree sets come first from every pair of a random sample,
    then from pairs that repeat a candidate, looked for in a larger sample and then in every row;
    a candidate no pair repeats is a key. Seen agree sets are real, so the candidates always
    cover the true keys, and once every minimal candidate checks out they are exactly the true
    keys, whatever the samples. The candidates are found on all 2^width column sets at once
    (width: the columns that are not keys by themselves), hence SEARCH_MAX_COLUMNS. None once the
    checks have sorted SEARCH_WORK times the table's rows: where many keys each need most rows
    checked, HPIValid's cached partitions are far faster (with no limit on the columns, 236 s
    against HPIValid's 10 s on bench_keys' 1M rows × 20 columns with 1,072 keys). With `max_size`,
    only the candidates of at most that many columns are checked, which finds exactly the keys of
    that size: any larger candidate is left unchecked, and a smaller one never depends on it."""
    singles = [(name,) for name, rows in zip(table.names, table.recurring_rows) if not rows]
    columns = [c for c, rows in enumerate(table.recurring_rows) if rows]
    width = len(columns)
    non_keys = np.zeros(1 << width, bool)
    non_keys[0] = True  # any two rows agree on no columns
    rng = np.random.default_rng(0)
    seed = rng.choice(table.rows, min(table.rows, SEARCH_SEED_ROWS), replace=False)
    non_keys[_agree_sets([table.values[c][seed] for c in columns], *np.triu_indices(len(seed), 1))] = True
    levels = [table]  # where repeating pairs are looked for, smallest first
    if table.rows > 2 * SEARCH_SAMPLE_ROWS:
        levels.insert(0, CodeTable(table.codes.take(rng.choice(table.rows, SEARCH_SAMPLE_ROWS, replace=False))))
    checked: set[int] = set()
    allowed = table.rows_checked + (SEARCH_WORK if max_size is None else SEARCH_WORK_BOUNDED) * table.rows
    while True:
        _fold_down(non_keys, width)
        minimal = _minimal(~non_keys, width)
        if max_size is not None:
            minimal = minimal[_POPCOUNT[minimal & 0xFFFF] + _POPCOUNT[minimal >> 16] <= max_size]
        seen: list[np.ndarray] = []  # agree sets found this round, which may rule out later candidates
        for mask in (int(m) for m in minimal):
            if mask in checked or any(((found & mask) == mask).any() for found in seen):
                continue
            for level in levels:
                first, second = level.repeating_pairs([c for bit, c in enumerate(columns) if mask >> bit & 1], VIOLATIONS_PER_CHECK)
                if len(first):
                    seen.append(_agree_sets([level.values[c] for c in columns], first, second))
                    break
            else:
                checked.add(mask)
            if sum(level.rows_checked for level in levels) > allowed:
                return None
        if not seen:
            break
        non_keys[np.concatenate(seen)] = True
    found = [tuple(table.names[c] for bit, c in enumerate(columns) if mask >> bit & 1) for mask in minimal]
    return _sorted_keys(singles + found)


_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << 16)], np.int8)  # set bits of each 16-bit mask


def minimal_key_sets(table: CodeTable, max_size: int | None = None) -> list[tuple[str, ...]]:
    """Every minimal non-empty unique combination of the encoded table's columns (with
    `max_size`, of at most that many columns)."""
    found = _searched_key_sets(table, max_size)
    if found is None:
        found = [k for k in _engine_key_sets(table) if max_size is None or len(k) <= max_size]
    return found


def _searched_key_sets(table: CodeTable, max_size: int | None = None) -> list[tuple[str, ...]] | None:
    """_search()'s answer where the table is in its reach."""
    return _search(table, max_size) if table.rows > 1 and searchable(table, max_size) else None


def _engine_key_sets(table: CodeTable) -> list[tuple[str, ...]]:
    """HPIValid's answer."""
    if not table.names:
        return []
    if table.rows <= 1:  # every single column already tells the (at most one) row apart
        return _sorted_keys([(n,) for n in table.names])
    path = _write_codes(table.codes)
    try:
        return _minimal_key_sets_of_file(path, table.names)
    finally:
        os.unlink(path)


def searchable(table: CodeTable, max_size: int | None = None) -> bool:
    """Whether _search() takes the table (else HPIValid does)."""
    return sum(1 for rows in table.recurring_rows if rows) <= (SEARCH_MAX_COLUMNS if max_size is None else SEARCH_MAX_COLUMNS_BOUNDED)


def _keys(nullable: set[str], found: Sequence[tuple[str, ...]], max_size: int | None) -> list[Key]:
    return [Key(k, bool(nullable.intersection(k))) for k in found if max_size is None or len(k) <= max_size]


def minimal_keys(frame: pd.DataFrame, max_size: int | None = None, null_equals_null: bool = True) -> list[Key]:
    found = minimal_key_sets(CodeTable(encode(frame, null_equals_null=null_equals_null)), max_size)
    return _keys(_null_columns(frame, frame.columns), found, max_size)


def _sample_candidates(codes: pd.DataFrame, exact_sets: set[frozenset[str]], size_cap: int, limit: int) -> set[tuple[str, ...]]:
    """Minimal keys of ever smaller random samples that are not keys of the whole table: a
    combination unique on a sample of n rows is almost unique on all of them, the more so the
    larger n. Stops once `limit` candidates are found."""
    candidates: set[tuple[str, ...]] = set()
    for rows in NEAR_KEY_SAMPLES:
        if rows >= len(codes):
            continue
        found = minimal_key_sets(CodeTable(codes.sample(rows, random_state=0)))
        candidates |= {k for k in found if len(k) <= size_cap and frozenset(k) not in exact_sets}
        if len(candidates) >= limit:
            break
    return candidates


def _pyro_candidates(codes: pd.DataFrame, exact_sets: set[frozenset[str]], size_cap: int, error: float) -> set[tuple[str, ...]]:
    """PyroUCC's approximate keys that are not exact keys. Its error is the share of row pairs
    that agree on the columns; where nothing is that close to unique, the threshold is raised
    until something is, so the best still show."""
    names = list(codes.columns)
    for threshold in (error, *(e for e in ESCALATED_ERRORS if e > error)):
        algorithm = desbordante.ucc.algorithms.PyroUCC()
        _load(algorithm, codes)
        algorithm.execute(error=threshold, max_lhs=size_cap, seed=0)
        found = {tuple(sorted(names[i] for i in ucc.indices)) for ucc in algorithm.get_uccs()}
        candidates = {c for c in found if frozenset(c) not in exact_sets}
        if candidates:
            return candidates
    return set()


def near_keys(
    table: CodeTable,
    exact: Sequence[tuple[str, ...]],
    nullable: set[str],
    max_size: int | None = None,
    error: float = NEAR_KEY_ERROR,
    limit: int = NEAR_KEY_LIMIT,
) -> list[NearKey]:
    """The best almost-unique combinations that are not exact keys, measured exactly.

    Candidates come from the minimal keys of random samples (see _sample_candidates) and, when
    the table is too small to sample or the samples propose nothing, from PyroUCC on at most
    NEAR_KEY_PYRO_ROWS rows. Either only proposes: every figure reported is computed on all rows.
    PyroUCC is not the first choice because its pair-share error ranks a 100-value column as
    near-unique at 1% and took 3-6 s per 20k-30k rows at the thresholds that mean "almost unique"."""
    codes = table.codes
    if len(codes) <= 1 or not len(codes.columns):
        return []
    size_cap = max_size or NEAR_KEY_MAX_SIZE
    exact_sets = {frozenset(k) for k in exact}
    candidates = _sample_candidates(codes, exact_sets, size_cap, limit)
    pyro_rows = codes.sample(NEAR_KEY_PYRO_ROWS, random_state=0) if len(codes) > NEAR_KEY_PYRO_ROWS else codes
    if not candidates:
        candidates = _pyro_candidates(pyro_rows, exact_sets, size_cap, error)
    if len(candidates) > 2 * limit:
        # Many candidates: a sample ranks them, the best are measured on every row.
        sample = CodeTable(pyro_rows)
        ranked = sorted(candidates, key=lambda c: (-sample.stats(sample.columns_of(c))[0], len(c), c))
        candidates = set(ranked[: 2 * limit])
    measured = []
    for columns in candidates:
        distinct, groups, excess = table.stats(table.columns_of(columns))
        measured.append(NearKey(columns, round(distinct / len(codes), 6), groups, excess, bool(nullable.intersection(columns))))
    measured.sort(key=lambda k: (-k.uniqueness, len(k.columns), k.columns))
    return measured[:limit]


def _identifier_score(columns: Sequence[str]) -> int:
    return sum(1 for c in columns if _IDENTIFIER.search(c))


def suggest_key(keys: Sequence[Key], near: Sequence[NearKey], declared: Sequence[str] | None = None) -> Suggestion:
    if declared:
        return Suggestion(tuple(declared), "declared in harmonizer.yaml", any(set(k.columns) <= set(declared) for k in keys))
    complete = [k for k in keys if not k.has_nulls]
    if complete:
        best = min(complete, key=lambda k: (len(k.columns), -_identifier_score(k.columns), k.columns))
        return Suggestion(best.columns, "smallest exact key without NULLs" + (", identifier-like names" if _identifier_score(best.columns) else ""), True)
    if keys:
        best = min(keys, key=lambda k: (len(k.columns), -_identifier_score(k.columns), k.columns))
        return Suggestion(best.columns, "smallest exact key (every exact key has NULLs)", True)
    if near:
        return Suggestion(near[0].columns, f"no exact key; best near-key ({near[0].uniqueness:.2%} unique)", False)
    return Suggestion(None, "no key: rows repeat entirely", False)


def duplicate_row_count(table: CodeTable) -> int:
    """Rows that repeat an earlier row in every column."""
    return table.stats(range(len(table.names)))[2] if table.names else max(table.rows - 1, 0)


def analyze(
    frame: pd.DataFrame,
    max_size: int | None = None,
    declared_key: Sequence[str] | None = None,
    null_equals_null: bool = True,
    near_key_error: float = NEAR_KEY_ERROR,
) -> KeyAnalysis:
    """Minimal keys, near-keys, the suggested key and the count of fully repeated rows of `frame`
    (all its columns; leave lineage columns out before)."""
    return analyze_chunks([frame], [str(c) for c in frame.columns], max_size, declared_key, null_equals_null, near_key_error)


def analyze_chunks(
    chunks: Iterable[pd.DataFrame],
    columns: Sequence[str],
    max_size: int | None = None,
    declared_key: Sequence[str] | None = None,
    null_equals_null: bool = True,
    near_key_error: float = NEAR_KEY_ERROR,
) -> KeyAnalysis:
    """analyze() of a file read in chunks (`columns` of each), holding only its codes once encoded."""
    columns = list(columns)
    if declared_key:
        missing = [c for c in declared_key if c not in columns]
        if missing:
            raise KeyDiscoveryError(f"declared key column(s) {missing} not in the data; it has {columns}")
    started = time.perf_counter()
    timings = {}
    codes, nullable = encode_chunks(chunks, columns, null_equals_null)
    pa.default_memory_pool().release_unused()  # the file's text, freed, goes back to the system before HPIValid grows
    table = CodeTable(codes)
    rows, duplicate_rows = len(codes), duplicate_row_count(table)
    timings["encode"] = time.perf_counter() - started
    exact = _searched_key_sets(table, max_size)
    # HPIValid holds its own copy of the table while it runs (the peak of the whole analysis), so
    # large codes wait on disk meanwhile: 10M rows × 20 columns is 800 MB less at the peak.
    if exact is None and rows > 1 and columns and codes.memory_usage(index=False).sum() > SPILL_BYTES:
        path = _write_codes(codes)
        del codes, table
        try:
            exact = _minimal_key_sets_of_file(path, columns)
            table = CodeTable(_read_codes(path, columns, rows))
        finally:
            os.unlink(path)
    elif exact is None:
        exact = _engine_key_sets(table)
    keys = _keys(nullable, exact, max_size)
    timings["minimal_keys"] = time.perf_counter() - started - timings["encode"]
    near = near_keys(table, exact, nullable, max_size, near_key_error)
    timings["near_keys"] = time.perf_counter() - started - sum(timings.values())
    return KeyAnalysis(
        rows=rows,
        columns=columns,
        minimal_keys=keys,
        near_keys=near,
        suggestion=suggest_key(keys, near, declared_key),
        duplicate_rows=duplicate_rows,
        seconds=round(time.perf_counter() - started, 3),
        null_equals_null=null_equals_null,
        max_size=max_size,
        timings={k: round(v, 3) for k, v in timings.items()},
        codes=table.codes,
    )


def duplicate_groups(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Rows sharing their values of `columns` with another row: the frame's rows in such groups
    with a `_group` number (1, 2, … in order of first appearance), NULL equal to NULL."""
    if not len(frame) or not columns:
        return frame.iloc[:0].assign(_group=pd.Series([], dtype="int64"))
    codes = encode(frame, columns)
    return _groups_of_codes(frame, [codes[c].to_numpy() for c in columns])


def _groups_of_codes(frame: pd.DataFrame, arrays: Sequence[np.ndarray], recurring: Sequence[np.ndarray] | None = None) -> pd.DataFrame:
    """duplicate_groups() of the combinations of the code `arrays` (one per column, row-aligned
    with the frame). Only rows whose value recurs in every column can repeat a combination
    (`recurring`: per array, whether its row's code recurs), so only those are combined."""
    recurring = recurring if recurring is not None else [np.bincount(a)[a] > 1 for a in arrays]
    candidates = np.flatnonzero(np.logical_and.reduce(recurring)) if len(arrays) > 1 else np.flatnonzero(recurring[0])
    # factorize numbers combinations in order of first appearance, so groups are numbered so too.
    labels, _ = pd.factorize(combined_codes([a[candidates] for a in arrays]))
    counts = np.bincount(labels)
    numbers = np.zeros(len(counts), np.int64)
    numbers[counts > 1] = np.arange(1, int((counts > 1).sum()) + 1)
    repeated = counts[labels] > 1
    grouped = frame.iloc[candidates[repeated]].assign(_group=numbers[labels[repeated]])
    return grouped.sort_values(["_group"], kind="stable")


def violations(
    frame: pd.DataFrame, near_keys: Sequence[Sequence[str]], null_equals_null: bool = True, encoded: pd.DataFrame | None = None
) -> list[pd.DataFrame]:
    """The rows that break each near-key (its columns): duplicate_groups() of them, where with
    NULLs distinct a row holding NULL in one of them breaks nothing (its NULL is a value of its
    own). Each column is encoded once for all near-keys, or taken from `encoded` (the analysis'
    codes, made with the same NULL semantics): ten near-keys of three columns of a 1M-row file
    took 17 s encoded per near-key and hashed whole, 2.4 s encoded once, 1.4 s from the
    analysis' codes (on the 2-core machine while other work ran)."""
    codes: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # column -> its codes, whether each row's code recurs
    found = []
    for columns in near_keys:
        if not len(frame) or not columns:
            found.append(frame.iloc[:0].assign(_group=pd.Series([], dtype="int64")))
            continue
        for column in columns:
            if column not in codes:
                values = encoded[column].to_numpy() if encoded is not None else _column_codes(frame[column], null_equals_null)
                codes[column] = (values, np.bincount(values)[values] > 1)
        found.append(_groups_of_codes(frame, [codes[c][0] for c in columns], [codes[c][1] for c in columns]))
    return found
