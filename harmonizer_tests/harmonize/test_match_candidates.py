"""Fuzzy match candidates scored on tokens sorted once per row equal rapidfuzz's token-sort ratio
of every pair (the simple, obviously right path)."""

import math
from itertools import combinations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from harmonizer_pipeline.harmonize.dedup import match_candidates, token_sorted
from harmonizer_pipeline.harmonize.settings import MatchSettings

# Words from a few letters (so pairs come close) and every kind of whitespace str.split and rapidfuzz know.
WORDS = st.text(alphabet="aäbeénsł-'", min_size=0, max_size=5)
SPACES = st.sampled_from([" ", "  ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000"])
TEXTS = st.lists(st.tuples(WORDS, SPACES), max_size=4).map(lambda parts: "".join(w + s for w, s in parts))


@given(st.lists(TEXTS, min_size=2, max_size=6))
@settings(max_examples=300, deadline=None)
def test_the_ratio_of_sorted_tokens_is_the_token_sort_ratio(texts):
    by_sorting_once = token_sorted(texts)
    for (i, a), (j, b) in combinations(enumerate(texts), 2):
        if by_sorting_once[i] is not None and by_sorting_once[j] is not None:
            assert fuzz.ratio(by_sorting_once[i], by_sorting_once[j]) == fuzz.token_sort_ratio(a, b)


@given(
    st.lists(st.tuples(WORDS, WORDS, st.sampled_from(["2001-01-01", "2002-02-02", None])), min_size=0, max_size=12),
    st.sampled_from([1.0, 50.0, 90.0]),  # scores of 0 are never pairs
)
@settings(max_examples=150, deadline=None)
def test_candidates_are_the_pairs_of_a_block_whose_token_sort_ratio_reaches_the_threshold(people, threshold):
    frame = pd.DataFrame(
        {"k": [f"k{i}" for i in range(len(people))], "first": [p[0] for p in people], "last": [p[1] for p in people], "born": [p[2] for p in people]},
        dtype="str",
    )
    match = MatchSettings(columns=["first", "last"], block_on=["born"], threshold=threshold, max_block_rows=10)
    found = match_candidates(frame, ["k"], match).candidates
    texts = {f"k{i}": f"{p[0]} {p[1]}".strip().lower() for i, p in enumerate(people)}
    blocks = frame.dropna(subset=["born"]).groupby("born")["k"].apply(list)
    expected = {
        (a, b, math.floor(fuzz.token_sort_ratio(texts[a], texts[b]) + 0.5))  # scores kept as whole numbers, half up
        for members in blocks if len(members) <= match.max_block_rows
        for a, b in combinations(members, 2)
        if fuzz.token_sort_ratio(texts[a], texts[b]) >= threshold
    }  # fmt: skip
    assert {(row.left_k, row.right_k, row.score) for row in found.itertuples()} == expected
