"""A schema drafted from a file's profile: the file passes it, a corrupted copy does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from harmonizer_pipeline.quality.schema_inference import infer_schema
from harmonizer_pipeline.quality.validation import validate_chunk

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def raw(**columns) -> pd.DataFrame:
    rows = len(next(iter(columns.values())))
    frame = pd.DataFrame({name: pd.Series(values, dtype=TEXT) for name, values in columns.items()})
    return frame.assign(_row_number=np.arange(2, rows + 2))


SOURCE = raw(
    id=[str(n) for n in range(1, 41)],
    email=[f"user{n}@example.com" for n in range(1, 41)],
    status=["A", "B", "C", "A"] * 10,
    amount=[f"{n}.5" for n in range(40)],
    german=[f"{n}.000,50" for n in range(1, 41)],
    visit=[f"2024-01-{n % 28 + 1:02d}" for n in range(40)],
    note=["", "call back"] * 20,
)


def test_the_source_file_passes_its_own_schema_with_the_expected_rules():
    schema = infer_schema(SOURCE)
    result = validate_chunk(schema, SOURCE)
    assert (result.rejected_rows, len(result.valid)) == (0, 40)
    columns = schema.columns
    assert (str(columns["id"].dtype), columns["id"].unique, columns["id"].nullable) == ("Int64", True, False)
    assert [c.name for c in columns["id"].checks] == ["in_range"]
    assert str(columns["amount"].dtype) == "float64"
    assert [c.name for c in columns["german"].checks] == ["str_matches"]  # a comma decimal stays text
    assert columns["status"].checks[0].statistics == {"allowed_values": ["A", "B", "C"]}
    assert columns["note"].nullable and not columns["note"].unique
    assert schema.strict


def test_a_corrupted_copy_is_rejected_exactly_where_it_was_corrupted():
    schema = infer_schema(SOURCE)
    corrupted = SOURCE.copy()
    corrupted.loc[3, "email"] = "not-an-email"
    corrupted.loc[5, "status"] = "Z"
    corrupted.loc[7, "id"] = "999"
    corrupted.loc[9, "id"] = "1"  # duplicates row 0's id
    corrupted.loc[11, "visit"] = "soon"
    result = validate_chunk(schema, corrupted)
    assert result.rejected[["_row_number", "column", "failure_case"]].to_dict("records") == [
        {"_row_number": 2, "column": "id", "failure_case": "1"},
        {"_row_number": 5, "column": "email", "failure_case": "not-an-email"},
        {"_row_number": 7, "column": "status", "failure_case": "Z"},
        {"_row_number": 9, "column": "id", "failure_case": "999"},
        {"_row_number": 11, "column": "id", "failure_case": "1"},
        {"_row_number": 13, "column": "visit", "failure_case": "soon"},
    ]
    assert len(result.valid) == 34  # both rows holding id 1 are rejected


def test_the_draft_round_trips_through_pandera_yaml(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(infer_schema(SOURCE).to_yaml())
    assert validate_chunk(pa.DataFrameSchema.from_yaml(path), SOURCE).rejected_rows == 0
