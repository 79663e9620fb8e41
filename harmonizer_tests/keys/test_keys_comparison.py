"""Table A against table B on a key (keys.comparison): planted differences come back exactly, each
rule of how values compare holds, duplicate keys are a one-line error, and the vectorised engine
agrees with an obviously right comparison row by row (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.keys.comparison import ComparisonError, DuplicateKeyError, compare_frames, protected_show
from harmonizer_pipeline.privacy.masking import mask


def text(values: list) -> pd.Series:
    return pd.Series(values, dtype="str")


def test_planted_inserts_deletes_and_changes_come_back_exactly():
    a = pd.DataFrame(
        {
            "id": text(["1", "2", "3", "4", "5"]),
            "name": text(["Ann", "Bob", "Cy", "Di", "Ed"]),
            "city": text(["B", "K", "B", None, "M"]),
            "old": text(["0"] * 5),
        }
    )
    b = pd.DataFrame(
        {
            "id": text(["1", "2", "3", "5", "6", "7"]),  # 4 removed, 6 and 7 added
            "name": text(["Ann", "Bobby", "Cy", "Ed", "Fe", "Gus"]),  # 2 renamed
            "city": text(["B", "K", "H", "X", "B", "K"]),  # 3 and 5 moved
            "new": text(["1"] * 6),
        }
    )
    result = compare_frames(a, b, ["id"])
    assert (result.added_columns, result.removed_columns, result.retyped_columns) == (["new"], ["old"], [])
    assert result.counts == {"added": 2, "removed": 1, "changed": 3, "unchanged": 1}
    assert (result.rows_a, result.rows_b, result.changed_columns) == (5, 6, {"name": 1, "city": 2})
    assert pd.concat(list(result.added_rows()))["id"].tolist() == ["6", "7"]
    assert pd.concat(list(result.removed_rows()))["id"].tolist() == ["4"]
    cells = pd.concat(list(result.changed_cells()), ignore_index=True)
    assert cells.astype(object).to_dict("records") == [
        {"id": "2", "column": "name", "before": "Bob", "after": "Bobby"},
        {"id": "3", "column": "city", "before": "B", "after": "H"},
        {"id": "5", "column": "city", "before": "M", "after": "X"},
    ]


def test_difference_rows_come_in_chunks_with_lineage_columns_of_both_sides():
    a = pd.DataFrame({"id": text([str(n) for n in range(10)]), "v": text(["x"] * 10), "_row_number": np.arange(2, 12)})
    b = pd.DataFrame({"id": text([str(n) for n in range(9, -1, -1)]), "v": text(["y"] * 10), "_row_number": np.arange(2, 12)})
    result = compare_frames(a, b, ["id"], ignore=["_row_number"])
    chunks = list(result.changed_cells(chunk_rows=4, extra=["_row_number"]))
    assert [len(c) for c in chunks] == [4, 4, 2]
    first = chunks[0].iloc[0].to_dict()
    assert (first["id"], first["_row_number_a"], first["_row_number_b"]) == ("0", 2, 11)
    assert result.added_columns == result.removed_columns == []  # lineage is not compared


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (None, None, False),  # NULL equals NULL
        (None, "", False),  # NULL equals '': no value either way
        ("", " ", True),  # whitespace counts
        ("a", "A", True),  # case counts
        ("1.50", "1.5", True),  # text as read compares exactly
        ("01", "1", True),
        ("x", "x", False),
    ],
)
def test_text_as_read_compares_exactly_but_null_and_empty_are_one(before, after, changed):
    a = pd.DataFrame({"id": text(["k"]), "v": text([before])})
    b = pd.DataFrame({"id": text(["k"]), "v": text([after])})
    assert compare_frames(a, b, ["id"]).changed == int(changed)


@pytest.mark.parametrize(
    ("before", "after", "changed"),
    [
        (pd.Series([1], dtype="Int64"), pd.Series([1.0]), False),  # typed: by value
        (pd.Series([1], dtype="Int64"), pd.Series([1.5]), True),
        (pd.Series([pd.NA], dtype="Int64"), pd.Series([np.nan]), False),
        (pd.Series([1], dtype="int64"), text(["1"]), False),  # retyped: as text, a whole number without '.0'
        (pd.Series([1.0]), text(["1"]), False),
        (pd.Series([1.5]), text(["1.50"]), True),
        (pd.Series([pd.Timestamp("2024-01-02")]), text(["2024-01-02T00:00:00"]), False),
        (pd.Series([True]), text(["True"]), False),
    ],
)
def test_typed_values_compare_by_value_and_retyped_ones_as_text(before, after, changed):
    a = pd.DataFrame({"id": [1], "v": before})
    b = pd.DataFrame({"id": [1], "v": after})
    assert compare_frames(a, b, ["id"]).changed == int(changed)


def test_keys_follow_the_same_rules_null_and_empty_are_one_key_1_and_1_0_typed_too():
    a = pd.DataFrame({"k": text(["", "x", "1"]), "n": pd.Series([1, 2, 3], dtype="Int64"), "v": text(["a", "b", "c"])})
    b = pd.DataFrame({"k": text([None, "x", "1"]), "n": pd.Series([1.0, 2.0, 3.5]), "v": text(["a", "b", "c"])})
    result = compare_frames(a, b, ["k", "n"])
    assert result.counts == {"added": 1, "removed": 1, "changed": 0, "unchanged": 2}


def test_a_repeating_key_is_an_error_naming_the_key_and_a_value_masked_when_pii():
    a = pd.DataFrame({"email": text(["ann@example.org", "bob@example.org"]), "v": text(["1", "2"])})
    b = pd.DataFrame({"email": text(["ann@example.org", "bob@example.org", "ann@example.org", "bob@example.org", "cy@example.org"]), "v": text(["1"] * 5)})
    with pytest.raises(DuplicateKeyError) as caught:
        compare_frames(a, b, ["email"], ("jan.csv", "feb.csv"), show=protected_show({"email": "email"}, mask))
    assert str(caught.value) == (
        "feb.csv: key (email) is not unique: 2 rows have email='a***@example.org' (2 key value(s) repeat, in 4 rows); choose another key with --key"
    )
    with pytest.raises(DuplicateKeyError, match=r"^jan\.csv: key \(email\) is not unique: 2 rows have email='bob@example\.org' \(1 key value"):
        compare_frames(b.iloc[1:], a, ["email"], ("jan.csv", "feb.csv"))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (["id"], "B: no key column 'id' (its columns: ident)"),
        ([], "no key to compare on: give the key columns (--key)"),
    ],
)
def test_a_key_that_does_not_fit_is_a_one_line_error(key, message):
    with pytest.raises(ComparisonError) as caught:
        compare_frames(pd.DataFrame({"id": [1]}), pd.DataFrame({"ident": [1]}), key)
    assert str(caught.value) == message


def test_retyped_columns_by_dtype_and_for_text_by_the_profiles_type():
    a = pd.DataFrame({"id": text(["1", "2", "3"]), "amount": text(["10", "20", "30"]), "n": [1, 2, 3], "note": text(["a", "b", "c"])})
    b = pd.DataFrame({"id": text(["1", "2", "3"]), "amount": text(["10.5", "20.25", "30.0"]), "n": [1.0, 2.0, 3.0], "note": text(["x y z", "b", "c"])})
    assert compare_frames(a, b, ["id"]).retyped_columns == [("amount", "integer", "decimal"), ("n", "int64", "float64")]


VALUES = st.sampled_from([None, "", " ", "a", "A", "1", "1.0", "x y"])


def obvious(a: list[dict], b: list[dict], key: str, columns: list[str]) -> dict:
    """The comparison by dictionaries, value by value, with its rule said plainly: NULL and '' are
    the same, everything else compares exactly."""

    def norm(value):
        return None if value in (None, "") else value

    left, right = {norm(r[key]): r for r in a}, {norm(r[key]): r for r in b}
    per_column = {c: 0 for c in columns}
    changed = 0
    for k in left.keys() & right.keys():
        differ = [c for c in columns if norm(left[k][c]) != norm(right[k][c])]
        changed += bool(differ)
        for c in differ:
            per_column[c] += 1
    return {
        "added": len(right.keys() - left.keys()),
        "removed": len(left.keys() - right.keys()),
        "changed": changed,
        "unchanged": len(left.keys() & right.keys()) - changed,
        "changed_columns": {c: n for c, n in per_column.items() if n},
    }


@st.composite
def table_pairs(draw):
    keys = st.lists(st.sampled_from([None, *(str(n) for n in range(12))]), unique=True, max_size=10)
    # None and '' are one key value: a side holds at most one of them.
    keys_a, keys_b = draw(keys), draw(keys)
    keys_a, keys_b = (ks + [""] if draw(st.booleans()) and None not in ks else ks for ks in (keys_a, keys_b))
    rows = [[{"k": k, "v": draw(VALUES), "w": draw(VALUES)} for k in ks] for ks in (keys_a, keys_b)]
    return rows[0], rows[1]


@settings(max_examples=300, deadline=None)
@given(table_pairs())
def test_the_vectorised_engine_agrees_with_the_obvious_comparison(pair):
    a, b = pair
    frames = [pd.DataFrame({c: text([r[c] for r in rows]) for c in ("k", "v", "w")}) for rows in (a, b)]
    result = compare_frames(frames[0], frames[1], ["k"])
    assert {**result.counts, "changed_columns": result.changed_columns} == obvious(a, b, "k", ["v", "w"])
    cells = pd.concat([*result.changed_cells(), pd.DataFrame(columns=["k", "column", "before", "after"])], ignore_index=True)
    assert cells["column"].value_counts().to_dict() == result.changed_columns
    assert sum(len(c) for c in result.added_rows()) == result.added and sum(len(c) for c in result.removed_rows()) == result.removed
