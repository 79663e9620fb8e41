"""The rows that break each near-key (no dagster): for `harmonizer keys FILE --violations` and the
UI sample of keys/<source>. A near-key is broken by its duplicate groups: rows sharing their
values of its columns (discovery.violations), each with its row numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from harmonizer_pipeline.keys.comparison import ShowValue, plain_value
from harmonizer_pipeline.keys.discovery import NearKey, violations


@dataclass(frozen=True)
class Violation:
    """A group of rows sharing their values of a near-key's columns."""

    columns: tuple[str, ...]
    group: int  # 1, 2, ... in order of first appearance
    values: dict[str, object]  # as shown to people
    rows: list[int]  # their row numbers


def near_key_groups(frame: pd.DataFrame, near_keys: Sequence[NearKey], null_equals_null: bool, encoded: pd.DataFrame | None = None) -> pd.DataFrame:
    """The groups breaking each near-key: the frame's rows in them with `_group`, `_kind`
    (`near_key`) and `_key_columns`, near-key after near-key in their rank order. `encoded`: the
    analysis' codes of the frame's columns, when at hand."""
    parts = []
    for near, found in zip(near_keys, violations(frame, [near.columns for near in near_keys], null_equals_null, encoded)):
        columns = list(near.columns)
        # pandas-stubs type assign's values as scalars or sequences of scalars; a list of lists makes the object column wanted.
        parts.append(found.assign(_kind="near_key", _key_columns=[columns] * len(found)))  # pyright: ignore[reportArgumentType]
    return pd.concat(parts, ignore_index=True) if parts else frame.iloc[:0].assign(_group=pd.Series([], dtype="int64"), _kind="", _key_columns=None)


def listed(groups: pd.DataFrame, show: ShowValue, per_key: int | None = None) -> list[Violation]:
    """Each near-key's groups (the first `per_key` of each, or all): columns, group, values (as
    `show` shows them) and the row numbers (`_row_number`) of its rows."""
    found: list[Violation] = []
    near = groups[groups["_kind"] == "near_key"] if len(groups) else groups.iloc[:0]
    if not len(near):
        return found
    for columns, rows in near.groupby(near["_key_columns"].map(tuple), sort=False):
        if per_key is not None:  # the first groups picked before grouping: a near-key may have 100,000s
            rows = rows[rows["_group"].isin(sorted(rows["_group"].unique())[:per_key])]
        for group, members in rows.groupby("_group", sort=True):
            first = members.iloc[0]
            values = {c: show(c, plain_value(first[c])) for c in columns}
            found.append(Violation(tuple(columns), int(group), values, [int(n) for n in members["_row_number"]]))  # pyright: ignore[reportArgumentType]
    return found
