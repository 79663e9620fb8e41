"""File A against file B on a key (no dagster): two partitions of a source, or two sources that
map to the same target.

- Schema: columns only in A or only in B, and columns whose dtype differs.
- Whether the key still holds (identifies every row) in each.
- Key overlap: keys only in A, only in B, in both, and in both with changed values — per
  column, how many keys changed it. Where a key repeats within a file, its first row stands for
  it. NULL equals NULL in keys and values; a column typed differently in A and B is compared
  as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

SAMPLE_KEYS = 10


class ComparisonError(ValueError):
    """The two files cannot be compared on the key (a key column is missing from one)."""


@dataclass
class FileComparison:
    key: tuple[str, ...]
    added_columns: list[str]  # in B, not in A
    removed_columns: list[str]  # in A, not in B
    type_changes: list[tuple[str, str, str]]  # (column, dtype in A, dtype in B)
    key_holds_a: bool
    key_holds_b: bool
    only_in_a: int
    only_in_b: int
    in_both: int
    changed: int  # keys in both whose values differ in a shared column
    changed_columns: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[tuple]] = field(default_factory=dict)  # a few keys of each kind


def _comparable(a: pd.Series, b: pd.Series) -> tuple[pd.Series, pd.Series]:
    if a.dtype == b.dtype:
        return a, b
    return a.astype("string"), b.astype("string")


def _same(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = _comparable(a.reset_index(drop=True), b.reset_index(drop=True))
    equal = (a == b).fillna(False).astype(bool)
    return equal | (a.isna() & b.isna())


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, key: Sequence[str]) -> FileComparison:
    key = tuple(key)
    missing = {side: [c for c in key if c not in frame.columns] for side, frame in (("A", a), ("B", b))}
    if missing["A"] or missing["B"]:
        problems = "; ".join(f"{side} lacks {cols}" for side, cols in missing.items() if cols)
        raise ComparisonError(f"cannot compare on key {list(key)}: {problems}")
    added = [c for c in b.columns if c not in a.columns]
    removed = [c for c in a.columns if c not in b.columns]
    shared = [c for c in a.columns if c in b.columns]
    type_changes = [(c, str(a[c].dtype), str(b[c].dtype)) for c in shared if a[c].dtype != b[c].dtype]
    holds_a, holds_b = not a.duplicated(list(key)).any(), not b.duplicated(list(key)).any()
    left, right = a.drop_duplicates(list(key)), b.drop_duplicates(list(key))
    left_key, right_key = left[list(key)].copy(), right[list(key)].copy()
    for column in key:
        left_key[column], right_key[column] = _comparable(left_key[column], right_key[column])
    joined = left_key.assign(_a=range(len(left))).merge(right_key.assign(_b=range(len(right))), on=list(key), how="outer", indicator=True)
    sides = joined["_merge"].astype(str)
    both = joined[sides == "both"]
    a_rows, b_rows = left.iloc[both["_a"].astype(int).to_numpy()], right.iloc[both["_b"].astype(int).to_numpy()]
    changed_columns: dict[str, int] = {}
    any_change = pd.Series(False, index=range(len(both)))
    for column in shared:
        if column in key:
            continue
        differs = ~_same(a_rows[column], b_rows[column])
        if differs.any():
            changed_columns[column] = int(differs.sum())
            any_change |= differs.to_numpy()

    def keys_of(rows: pd.DataFrame) -> list[tuple]:
        return [tuple(r) for r in rows[list(key)].head(SAMPLE_KEYS).itertuples(index=False)]

    return FileComparison(
        key=key,
        added_columns=added,
        removed_columns=removed,
        type_changes=type_changes,
        key_holds_a=bool(holds_a),
        key_holds_b=bool(holds_b),
        only_in_a=int((sides == "left_only").sum()),
        only_in_b=int((sides == "right_only").sum()),
        in_both=len(both),
        changed=int(any_change.sum()),
        changed_columns=changed_columns,
        samples={
            "only_in_a": keys_of(joined[sides == "left_only"]),
            "only_in_b": keys_of(joined[sides == "right_only"]),
            "changed": keys_of(both[any_change.to_numpy()]),
        },
    )
