"""The key engine against brute force, and its edge cases."""

import itertools
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.keys import discovery
from harmonizer_pipeline.keys.discovery import (
    KeyDiscoveryError,
    analyze,
    analyze_chunks,
    duplicate_groups,
    encode,
    minimal_keys,
)


def brute_force(frame: pd.DataFrame, null_equals_null: bool = True) -> list[tuple[str, ...]]:
    """Every minimal non-empty unique combination, by trying them all."""
    names = sorted(frame.columns)
    codes = encode(frame, null_equals_null=null_equals_null)
    keys: list[tuple[str, ...]] = []
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            if any(set(k) <= set(combo) for k in keys):
                continue
            if not codes[list(combo)].duplicated().any():
                keys.append(combo)
    return keys


@st.composite
def frames(draw):
    rows = draw(st.integers(0, 30))
    width = draw(st.integers(1, 6))
    columns = {}
    for i in range(width):
        kind = draw(st.sampled_from(["int", "text", "nullable", "constant", "planted"]))
        if kind == "int":
            values = draw(st.lists(st.integers(0, 4), min_size=rows, max_size=rows))
        elif kind == "text":
            values = draw(st.lists(st.sampled_from(["a", "b", "A", "", "b "]), min_size=rows, max_size=rows))
        elif kind == "nullable":
            values = draw(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=rows, max_size=rows))
        elif kind == "constant":
            values = ["same"] * rows
        else:
            values = list(range(rows))  # a planted single-column key
        columns[f"c{i}"] = pd.Series(values, dtype="object" if kind in ("nullable", "text", "constant") else "int64")
    frame = pd.DataFrame(columns, index=range(rows))
    if rows and draw(st.booleans()):  # planted full-row duplicates
        frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, rows))]], ignore_index=True)
    return frame


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.booleans())
def test_minimal_keys_equal_brute_force(frame, null_equals_null):
    found = minimal_keys(frame, null_equals_null=null_equals_null)
    assert [k.columns for k in found] == brute_force(frame, null_equals_null)
    for key in found:
        assert key.has_nulls == bool(frame[list(key.columns)].isna().any().any())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.integers(2, 8), st.integers(1, 3), st.sampled_from([0, 1, 10]), st.sampled_from([None, 1, 2, 3]))
def test_the_search_finds_the_keys_whatever_its_samples(frame, sample_rows, violations, work, max_size):
    """Seeds and samples this small leave most of the work to the checks on every row; with
    little work allowed, HPIValid takes over. A size bound gives the keys of at most that size."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(discovery, "SEARCH_WORK", work)
        patch.setattr(discovery, "SEARCH_WORK_BOUNDED", work)
        patch.setattr(discovery, "SEARCH_SEED_ROWS", 2)
        patch.setattr(discovery, "SEARCH_SAMPLE_ROWS", sample_rows)
        patch.setattr(discovery, "VIOLATIONS_PER_CHECK", violations)
        found = discovery.minimal_key_sets(discovery.CodeTable(encode(frame)), max_size)
    assert found == [k for k in brute_force(frame) if max_size is None or len(k) <= max_size]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.data())
def test_combination_figures_equal_pandas(frame, data):
    columns = data.draw(st.lists(st.sampled_from(list(frame.columns)), min_size=1, unique=True))
    codes = encode(frame)
    table = discovery.CodeTable(codes)
    sizes = codes.groupby(columns).size()
    expected = (len(sizes), int((sizes > 1).sum()), int(codes.duplicated(columns).sum()))
    assert table.stats(table.columns_of(columns)) == expected


def test_the_search_finds_what_hpivalid_finds_on_a_larger_table():
    rng = np.random.default_rng(11)
    rows = 120_000  # more than twice SEARCH_SAMPLE_ROWS: candidates are looked for in the sample first
    frame = pd.DataFrame({f"c{i}": rng.integers(0, cardinality, rows) for i, cardinality in enumerate([3, 7, 40, 300, 1000, 5000, 60_000, 2])})
    frame["c8"] = np.where(rng.random(rows) < 0.01, -1, np.arange(rows))  # unique but for 1% of the rows
    codes = encode(frame)
    assert discovery.searchable(discovery.CodeTable(codes))
    path = discovery._write_codes(codes)
    try:
        assert discovery.minimal_key_sets(discovery.CodeTable(codes)) == discovery._minimal_key_sets_of_file(path, list(codes.columns))
    finally:
        os.unlink(path)


def test_a_size_bound_brings_wider_tables_within_the_search():
    """20 columns that are not keys alone: beyond the unbounded search, within the bounded one,
    which finds HPIValid's keys of up to 2 columns."""
    rng = np.random.default_rng(5)
    rows = 3_000
    frame = pd.DataFrame({f"c{i}": rng.integers(0, 4 + 3 * i, rows) for i in range(18)})
    frame["half"] = np.arange(rows) // 2
    frame["parity"] = np.arange(rows) % 2  # with `half`, a key of two columns
    codes = encode(frame)
    table = discovery.CodeTable(codes)
    assert not discovery.searchable(table) and discovery.searchable(table, 2)
    path = discovery._write_codes(codes)
    try:
        expected = [k for k in discovery._minimal_key_sets_of_file(path, list(codes.columns)) if len(k) <= 2]
    finally:
        os.unlink(path)
    assert expected  # the bound leaves something to find
    assert discovery._search(table, 2) == expected


def test_null_semantics_are_explicit():
    frame = pd.DataFrame({"id": [1, None, None], "code": ["a", "a", "b"]})
    assert [k.columns for k in minimal_keys(frame)] == [("code", "id")]
    assert [(k.columns, k.has_nulls) for k in minimal_keys(frame, null_equals_null=False)] == [(("id",), True)]


@pytest.mark.parametrize(
    ("frame", "keys"),
    [
        (pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="str")}), [("a",), ("b",)]),
        (pd.DataFrame({"a": [1], "b": ["x"]}), [("a",), ("b",)]),
        (pd.DataFrame({"only": [3, 1, 2]}), [("only",)]),
        (pd.DataFrame({"only": [3, 1, 3]}), []),
        (pd.DataFrame({"a": ["k"] * 4, "b": [0] * 4}), []),
        (pd.DataFrame({"a": [1, 1, 2], "b": ["x", "x", "y"]}), []),  # a row repeats entirely
        (pd.DataFrame({"n": [1.5, 1.5, 2.0], "t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"]), "s": ["a", "b", "c"]}), [("s",), ("n", "t")]),
    ],
    ids=["zero rows", "one row", "one column", "one column repeating", "all constant", "full-row duplicates", "mixed dtypes"],
)
def test_edge_cases(frame, keys):
    assert [k.columns for k in minimal_keys(frame)] == keys


def test_a_wide_table_with_null_heavy_columns():
    rows = 500
    block = np.arange(rows) // 50  # 62 attributes of blocks of 50 rows: none tells rows of a block apart
    frame = pd.DataFrame({f"attr_{i:02d}": (block + i) % 7 for i in range(62)})
    frame["row_id"] = np.arange(rows)
    frame["mostly_null"] = pd.Series([None] * (rows - 2) + ["x", "y"], dtype="object")
    found = minimal_keys(frame, max_size=1)
    assert [k.columns for k in found] == [("row_id",)]
    analysis = analyze(frame, max_size=2)
    assert analysis.suggestion.columns == ("row_id",) and analysis.suggestion.unique
    assert all(len(k.columns) <= 2 for k in analysis.minimal_keys)


def test_near_keys_are_measured_exactly_and_the_suggestion_prefers_identifiers():
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(100)],
            "email": [f"p{i}@x.org" for i in range(98)] + ["p0@x.org", "p1@x.org"],  # 2 repeats
            "city": ["Berlin", "Köln"] * 50,
        }
    )
    analysis = analyze(frame)
    assert [k.columns for k in analysis.minimal_keys] == [("customer_id",)]
    assert analysis.suggestion.columns == ("customer_id",)
    email = next(k for k in analysis.near_keys if k.columns == ("email",))
    assert (email.uniqueness, email.duplicate_groups, email.excess_rows) == (0.98, 2, 2)
    assert analysis.near_keys[0].uniqueness >= analysis.near_keys[-1].uniqueness


def test_without_an_exact_key_the_best_near_key_is_suggested_and_its_groups_found():
    frame = pd.DataFrame({"code": ["a", "b", "c", "a", "d"], "n": [1, 2, 3, 1, 4]})
    analysis = analyze(frame)
    assert analysis.minimal_keys == [] and analysis.duplicate_rows == 1
    assert (analysis.suggestion.columns, analysis.suggestion.unique) == (("code",), False)
    groups = duplicate_groups(frame.assign(_row_number=range(2, 7)), ["code"])
    assert groups[["_group", "code", "_row_number"]].values.tolist() == [[1, "a", 2], [1, "a", 5]]


def test_a_declared_key_wins_and_must_exist():
    frame = pd.DataFrame({"id": [1, 2, 3], "name": ["a", "b", "a"]})
    assert analyze(frame, declared_key=["name"]).suggestion.columns == ("name",)
    assert not analyze(frame, declared_key=["name"]).suggestion.unique
    with pytest.raises(KeyDiscoveryError, match=r"declared key column\(s\) \['nope'\] not in the data"):
        analyze(frame, declared_key=["nope"])


def test_a_file_read_in_chunks_gives_the_same_analysis_as_the_whole_frame(monkeypatch):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.integers(0, 40, 3000), "b": rng.integers(0, 80, 3000), "c": rng.choice(["x", "y", None], 3000)})
    frame = pd.concat([frame, frame.iloc[:7]], ignore_index=True)  # 7 rows repeat entirely
    whole = analyze(frame)
    monkeypatch.setattr(discovery, "SPILL_BYTES", 0)  # the codes wait on disk while HPIValid runs, as for a large file
    chunked = analyze_chunks((frame.iloc[i : i + 1000] for i in range(0, len(frame), 1000)), ["a", "b", "c"])
    assert (chunked.rows, chunked.duplicate_rows) == (3007, int(frame.duplicated().sum()))
    assert chunked.duplicate_rows >= 7
    assert chunked.minimal_keys == whole.minimal_keys == minimal_keys(frame)
    assert chunked.near_keys == whole.near_keys and chunked.near_keys


def test_rows_without_columns_are_counted_and_repeat_entirely():
    analysis = analyze_chunks([pd.DataFrame(index=range(2)), pd.DataFrame(index=range(3))], [])
    assert (analysis.rows, analysis.duplicate_rows, analysis.minimal_keys, analysis.suggestion.columns) == (5, 4, [], None)


def test_near_keys_of_a_table_larger_than_a_sample_come_from_sample_keys():
    rows = 5000
    emails = [f"p{i}@x.org" for i in range(rows - 5)] + [f"p{i}@x.org" for i in range(5)]  # 5 repeats
    frame = pd.DataFrame({"customer_id": range(rows), "email": emails, "city": ["Berlin"] * rows})
    analysis = analyze(frame)
    assert [k.columns for k in analysis.minimal_keys] == [("customer_id",)]
    best = analysis.near_keys[0]
    assert (best.columns, best.uniqueness, best.duplicate_groups, best.excess_rows) == (("email",), 0.999, 5, 5)
    assert all(k.uniqueness < 0.999 for k in analysis.near_keys[1:])


def obvious_violations(frame: pd.DataFrame, columns: list[str], null_equals_null: bool) -> list[tuple[int, int]]:
    """(group, row) of the rows sharing their combination with another row, by Python tuples:
    groups numbered by first appearance; with NULLs distinct a row holding NULL repeats nothing."""
    rows = [tuple(None if pd.isna(v) else v for v in r) for r in frame[columns].itertuples(index=False)]
    counted: dict[tuple, list[int]] = {}
    for position, combination in enumerate(rows):
        if null_equals_null or None not in combination:
            counted.setdefault(combination, []).append(position)
    repeated = [positions for positions in counted.values() if len(positions) > 1]
    return sorted((group, row) for group, positions in enumerate(repeated, start=1) for row in positions)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from(["x", "y", "z", None]), st.integers(0, 2)), max_size=40),
    st.booleans(),
    st.booleans(),
)
def test_violations_from_shared_codes_agree_with_grouping_by_tuples(rows, null_equals_null, from_analysis):
    frame = pd.DataFrame(rows, columns=["p", "q", "r"]).astype({"p": "str", "q": "str"})
    near = [["p"], ["p", "q"], ["q", "r"], ["p", "q", "r"]]
    encoded = discovery.encode(frame, null_equals_null=null_equals_null) if from_analysis else None
    for columns, found in zip(near, discovery.violations(frame, near, null_equals_null, encoded)):
        assert sorted(zip(found["_group"], found.index)) == obvious_violations(frame, columns, null_equals_null)
