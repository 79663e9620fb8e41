"""Likely fuzzy duplicates for review (no dagster).

- match_candidates(): pairs of surviving rows whose configured columns look alike (rapidfuzz's
  token-sort ratio, 0-100) within blocks of rows equal on `block_on` (e.g. birth date), so a
  typo does not hide a person twice. Reported for review; never merged automatically.

The token-sort ratio of two texts is the plain ratio of their tokens sorted, so each row's tokens
are sorted once and blocks are scored with fuzz.ratio: 979,989 rows in 29,200 blocks took 2.9 s
with cdist(scorer=token_sort_ratio), which sorts again for every pair, and 1.1 s so (plus 0.6 s
of sorting). rapidfuzz splits tokens on the whitespace str.split knows, except U+0085 and U+00A0 in
texts of Latin-1 characters only; a block holding either character is scored with
token_sort_ratio itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

from harmonizer_pipeline.harmonize.settings import MatchSettings


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


_SPLIT_UNLIKE_RAPIDFUZZ = re.compile("[\x85\xa0]")


def token_sorted(texts) -> np.ndarray:
    """Each text's tokens sorted and joined by a space, as token_sort_ratio compares them; None
    where str.split may not split as rapidfuzz does."""
    return np.array([None if _SPLIT_UNLIKE_RAPIDFUZZ.search(text) else " ".join(sorted(text.split())) for text in texts], dtype=object)


def block_label(values, block_on) -> str:
    """How a block is named in the candidates table: its values, comma-separated."""
    return ", ".join(str(values[c]) for c in block_on)


def match_candidates(frame: pd.DataFrame, key: list[str], match: MatchSettings) -> Matches:
    """Pairs of rows (distinct keys) scoring at least `match.threshold` within each block."""
    texts = _texts(frame, list(match.columns)).to_numpy()
    sorted_texts = token_sorted(texts)
    blocks = [np.arange(len(frame))] if not match.block_on else list(frame.groupby(list(match.block_on), sort=True, dropna=True).indices.values())
    rows, skipped, compared = [], 0, 0
    for members in blocks:
        if len(members) < 2:
            continue
        if len(members) > match.max_block_rows:
            skipped += 1
            continue
        block_texts = sorted_texts[members]
        if any(text is None for text in block_texts):
            block_texts, scorer = texts[members], fuzz.token_sort_ratio
        else:
            scorer = fuzz.ratio
        scores = process.cdist(block_texts, block_texts, scorer=scorer, score_cutoff=match.threshold, dtype=np.uint8)
        compared += len(members) * (len(members) - 1) // 2
        left, right = np.nonzero(np.triu(scores, k=1))
        rows += [(members[i], members[j], int(scores[i, j])) for i, j in zip(left.tolist(), right.tolist())]
    left_rows = frame.iloc[[r[0] for r in rows]].reset_index(drop=True)
    right_rows = frame.iloc[[r[1] for r in rows]].reset_index(drop=True)
    candidates = pd.DataFrame(
        {
            **{f"left_{k}": left_rows[k] for k in key},
            **{f"right_{k}": right_rows[k] for k in key},
            "left_text": pd.Series(texts[[r[0] for r in rows]], dtype="str"),
            "right_text": pd.Series(texts[[r[1] for r in rows]], dtype="str"),
            "score": pd.Series([r[2] for r in rows], dtype="int64"),
            "block": pd.Series([block_label(left_rows.iloc[i], match.block_on) for i in range(len(rows))], dtype="str"),
        }
    )
    return Matches(candidates.sort_values(["score", "left_text"], ascending=[False, True], kind="stable").reset_index(drop=True), skipped, compared)
