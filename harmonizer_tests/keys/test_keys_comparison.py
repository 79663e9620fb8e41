"""File A against file B on a key: planted inserts, deletes and changes come back exactly."""

import pandas as pd
import pytest

from harmonizer_pipeline.keys.comparison import ComparisonError, compare_frames


def test_planted_inserts_deletes_and_changes():
    a = pd.DataFrame({"id": [1, 2, 3, 4, 5], "name": ["Ann", "Bob", "Cy", "Di", "Ed"], "city": ["B", "K", "B", None, "M"], "old": [0] * 5})
    b = pd.DataFrame(
        {
            "id": [1, 2, 3, 5, 6, 7],  # 4 deleted, 6 and 7 inserted
            "name": ["Ann", "Bobby", "Cy", "Ed", "Fe", "Gus"],  # 2 renamed
            "city": ["B", "K", "H", "M", "B", "K"],  # 3 moved
            "new": [1] * 6,
        }
    )
    result = compare_frames(a, b, ["id"])
    assert (result.added_columns, result.removed_columns, result.type_changes) == (["new"], ["old"], [])
    assert (result.only_in_a, result.only_in_b, result.in_both, result.changed) == (1, 2, 4, 2)
    assert result.changed_columns == {"name": 1, "city": 1}
    assert result.samples == {"only_in_a": [(4,)], "only_in_b": [(6,), (7,)], "changed": [(2,), (3,)]}
    assert result.key_holds_a and result.key_holds_b


def test_a_key_that_no_longer_holds_and_values_typed_differently():
    a = pd.DataFrame({"code": ["x", "y"], "amount": [1, 2]})
    b = pd.DataFrame({"code": ["x", "y", "y"], "amount": ["1", "3", "4"]})
    result = compare_frames(a, b, ["code"])
    assert (result.key_holds_a, result.key_holds_b) == (True, False)
    assert result.type_changes == [("amount", "int64", "str")]
    # 'y' repeats in B: its first row stands for it; 1 and '1' are the same as text.
    assert (result.in_both, result.changed, result.changed_columns) == (2, 1, {"amount": 1})


def test_null_keys_and_values_match_each_other():
    a = pd.DataFrame({"k1": ["a", None], "k2": [1, 2], "v": [None, "x"]})
    b = pd.DataFrame({"k1": ["a", None], "k2": [1, 2], "v": [None, "x"]})
    result = compare_frames(a, b, ["k1", "k2"])
    assert (result.in_both, result.only_in_a, result.only_in_b, result.changed) == (2, 0, 0, 0)


def test_a_key_column_missing_from_one_file_is_an_error():
    with pytest.raises(ComparisonError, match=r"cannot compare on key \['id'\]: B lacks \['id'\]"):
        compare_frames(pd.DataFrame({"id": [1]}), pd.DataFrame({"ident": [1]}), ["id"])
