"""One row per business key, and likely fuzzy duplicates for review (no dagster).

- deduplicate(): the rows of every source sharing a business key are one group; one survives by
  the target's survivorship rule, the others go to the duplicates with the surviving row's
  lineage:
  - latest_file: the row of the most recently landed file (the later row within a file);
  - most_complete: the row with the most values, then the latest;
  - source_priority: the row of the most trusted source, then the latest.
- match_candidates(): pairs of surviving rows whose configured columns look alike (rapidfuzz's
  token-sort ratio, 0-100) within blocks of rows equal on `block_on` (e.g. birth date), so a
  typo does not hide a person twice. Reported for review; never merged automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from harmonizer_pipeline.settings import MatchSettings, Target


@dataclass
class Deduplicated:
    survivors: pd.DataFrame  # one row per key, with `_duplicates` (rows merged into it)
    duplicates: pd.DataFrame  # every row of a key with several rows: `_group` (1, 2, ... by key), `_kept`, kept row first
    groups: int  # keys that had more than one row

    @property
    def merged_rows(self) -> int:
        return int((~self.duplicates["_kept"]).sum())


def _key_order(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Dense int64 codes 0..k-1 that sort as the key's values sort (equal keys, equal codes):
    each column's sorted factorize codes folded together, so sorting and grouping compare integers."""
    combined = np.zeros(len(frame), np.int64)
    for column in key:
        codes, uniques = pd.factorize(frame[column], sort=True)
        combined = combined * (len(uniques) + 1) + (codes + 1)
        combined = pd.factorize(combined, sort=True)[0].astype(np.int64)  # keeps the radix product small
    return combined


def _preferred_first(frame: pd.DataFrame, target: Target, file_rank: dict[tuple[str, str], int]) -> np.ndarray:
    """Row positions, each key's surviving row before its other rows: by the survivorship rule,
    then the latest file, then the later row."""
    files = frame["_source"].astype("str") + "\x00" + frame["_source_file"].astype("str")
    later_file = -files.map({f"{s}\x00{f}": rank for (s, f), rank in file_rank.items()}).fillna(-1).to_numpy(np.float64)
    later_row = -frame["_row_number"].to_numpy(np.int64)
    order = [later_file, later_row]
    if target.survivorship == "most_complete":
        order.insert(0, -frame[[c for c in target.columns if c in frame.columns]].notna().sum(axis=1).to_numpy())
    elif target.survivorship == "source_priority":
        priority = frame["_source"].map({s: i for i, s in enumerate(target.source_priority)})
        order.insert(0, priority.fillna(len(target.source_priority)).to_numpy(np.float64))
    return np.lexsort(tuple(reversed(order)))  # lexsort's last key is the primary one


def deduplicate(frame: pd.DataFrame, target: Target, file_rank: dict[tuple[str, str], int]) -> Deduplicated:
    """`frame`: mapped rows of every source (LINEAGE columns included); `file_rank`: (source,
    file) -> its landing order, higher is later. Rows are moved once per output (string columns
    are costly to reorder); the ordering itself is done on integers."""
    keys = _key_order(frame, list(target.key))
    preferred = _preferred_first(frame, target, file_rank)
    ordered_keys = keys[preferred]
    first = ~pd.Series(ordered_keys).duplicated().to_numpy()
    counts = np.bincount(keys) if len(keys) else np.zeros(0, np.int64)
    survivors_at = preferred[first]
    survivors_at = survivors_at[np.argsort(keys[survivors_at], kind="stable")]
    survivors = frame.take(survivors_at).assign(_duplicates=(counts[keys[survivors_at]] - 1).astype("int64"))
    repeated = counts[ordered_keys] > 1
    grouped_at, kept = preferred[repeated], first[repeated]
    by_key = np.argsort(keys[grouped_at], kind="stable")  # within a key, the kept row stays first
    grouped = frame.take(grouped_at[by_key]).assign(_kept=kept[by_key])
    grouped.insert(0, "_group", pd.factorize(keys[grouped_at[by_key]])[0].astype("int64") + 1)
    return Deduplicated(survivors.reset_index(drop=True), grouped.reset_index(drop=True), int((counts > 1).sum()))


@dataclass
class Matches:
    candidates: pd.DataFrame  # left_<key>, right_<key>, left_text, right_text, score, block
    skipped_blocks: int  # blocks over max_block_rows, not compared
    compared_pairs: int


def _texts(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    parts = frame[columns].astype("str").fillna("")
    joined = parts.iloc[:, 0]
    for column in parts.columns[1:]:
        joined = joined + " " + parts[column]
    return joined.str.strip().str.lower()


def match_candidates(frame: pd.DataFrame, key: list[str], match: MatchSettings) -> Matches:
    """Pairs of rows (distinct keys) scoring at least `match.threshold` within each block."""
    texts = _texts(frame, list(match.columns)).to_numpy()
    blocks = [np.arange(len(frame))] if not match.block_on else list(frame.groupby(list(match.block_on), sort=True, dropna=True).indices.values())
    rows, skipped, compared = [], 0, 0
    for members in blocks:
        if len(members) < 2:
            continue
        if len(members) > match.max_block_rows:
            skipped += 1
            continue
        block_texts = texts[members]
        scores = process.cdist(block_texts, block_texts, scorer=fuzz.token_sort_ratio, score_cutoff=match.threshold, dtype=np.uint8)
        compared += len(members) * (len(members) - 1) // 2
        left, right = np.nonzero(np.triu(scores, k=1))
        rows += [(members[i], members[j], int(scores[i, j])) for i, j in zip(left, right)]
    left_rows = frame.iloc[[r[0] for r in rows]].reset_index(drop=True)
    right_rows = frame.iloc[[r[1] for r in rows]].reset_index(drop=True)
    candidates = pd.DataFrame(
        {
            **{f"left_{k}": left_rows[k] for k in key},
            **{f"right_{k}": right_rows[k] for k in key},
            "left_text": pd.Series(texts[[r[0] for r in rows]], dtype="str"),
            "right_text": pd.Series(texts[[r[1] for r in rows]], dtype="str"),
            "score": pd.Series([r[2] for r in rows], dtype="int64"),
            "block": pd.Series([", ".join(str(left_rows.at[i, c]) for c in match.block_on) for i in range(len(rows))], dtype="str"),
        }
    )
    return Matches(candidates.sort_values(["score", "left_text"], ascending=[False, True], kind="stable").reset_index(drop=True), skipped, compared)
