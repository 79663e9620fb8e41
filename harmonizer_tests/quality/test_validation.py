"""Pandera schemas gating raw text: planted errors must come back exactly, passing rows typed."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest

from harmonizer_pipeline.quality.validation import SchemaLoadError, load_schema, validate_chunk

TEXT = pd.StringDtype("pyarrow", na_value=np.nan)


def raw(**columns) -> pd.DataFrame:
    """A raw chunk: text columns, `_row_number` from 2 (line 1 is the header) and a lineage column."""
    rows = len(next(iter(columns.values())))
    frame = pd.DataFrame({name: pd.Series(values, dtype=TEXT) for name, values in columns.items()})
    return frame.assign(_row_number=np.arange(2, rows + 2), _source_file="f.csv")


SCHEMA_YAML = """\
schema_type: dataframe
version: 0.35.0
columns:
  id:
    dtype: int64
    coerce: true
    unique: true
  amount:
    dtype: float64
    coerce: true
    nullable: true
    checks:
      greater_than_or_equal_to: 0
  status:
    dtype: str
    checks:
      isin: [A, B]
  email:
    dtype: str
    nullable: true
    checks:
      str_matches: '^[^@ ]+@[^@ ]+$'
strict: true
"""


@pytest.fixture
def yaml_schema(tmp_path) -> pa.DataFrameSchema:
    (tmp_path / "patients.yaml").write_text(SCHEMA_YAML)
    return load_schema("patients.yaml", base_dir=tmp_path)


def test_every_planted_failure_is_reported_and_only_clean_rows_pass_typed(yaml_schema):
    chunk = raw(
        id=["1", "2", "x", "2", "5"],
        amount=["1.5", "-3", "2", None, "4"],
        status=["A", "C", "B", "A", "B"],
        email=["a@b.org", "a@b.org", "nope", None, "c@d.net"],
    )
    result = validate_chunk(yaml_schema, chunk)
    assert result.rejected.drop(columns="message").to_dict("records") == [
        {"_row_number": 3, "column": "amount", "check": "greater_than_or_equal_to(0)", "failure_case": "-3"},
        {"_row_number": 3, "column": "id", "check": "field_uniqueness", "failure_case": "2"},
        {"_row_number": 3, "column": "status", "check": "isin(['A', 'B'])", "failure_case": "C"},
        {"_row_number": 4, "column": "email", "check": "str_matches('^[^@ ]+@[^@ ]+$')", "failure_case": "nope"},
        {"_row_number": 4, "column": "id", "check": "coerce_dtype('int64')", "failure_case": "x"},
        {"_row_number": 5, "column": "id", "check": "field_uniqueness", "failure_case": "2"},
    ]
    assert result.rejected["message"][0] == "column 'amount' fails greater_than_or_equal_to(0) with '-3'"
    assert (result.rows, result.rejected_rows, result.structure_errors) == (5, 3, [])
    assert result.valid["_row_number"].tolist() == [2, 6]
    assert result.valid["id"].tolist() == [1, 5] and result.valid["id"].dtype == np.int64
    assert result.valid["amount"].tolist() == [1.5, 4.0]
    assert result.valid["_source_file"].tolist() == ["f.csv", "f.csv"]  # lineage kept beside a strict schema


def test_a_clean_chunk_passes_whole(yaml_schema):
    result = validate_chunk(yaml_schema, raw(id=["1", "2"], amount=["0", None], status=["A", "B"], email=[None, "x@y.z"]))
    assert (result.rejected_rows, len(result.rejected), result.valid["id"].tolist()) == (0, 0, [1, 2])


def test_missing_and_unexpected_columns_reject_every_row_as_structure(yaml_schema):
    result = validate_chunk(yaml_schema, raw(id=["1", "2"], amount=["1", "2"], status=["A", "B"], mail=["a@b", "c@d"]))
    assert result.structure_errors == ["column_in_schema: mail", "column_in_dataframe: email"]
    assert result.valid.empty and result.rejected_rows == 2
    assert result.rejected[["_row_number", "check"]].to_dict("records") == [
        {"_row_number": 2, "check": "structure"},
        {"_row_number": 3, "check": "structure"},
    ]
    assert result.rejected["message"][0] == "column_in_schema: mail; column_in_dataframe: email"


def test_a_dataframe_model_import_path_loads(tmp_path, monkeypatch):
    (tmp_path / "my_schemas.py").write_text(
        textwrap.dedent(
            """
            import pandera.pandas as pa
            from pandera.typing import Series

            class Patients(pa.DataFrameModel):
                id: Series[int] = pa.Field(coerce=True, gt=0)
                code: Series[str] = pa.Field(str_length={"min_value": 3, "max_value": 3})
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for spec in ("my_schemas:Patients", "my_schemas.Patients"):
        schema = load_schema(spec)
        result = validate_chunk(schema, raw(id=["1", "0"], code=["007", "07"]))
        assert result.rejected[["_row_number", "column", "failure_case"]].to_dict("records") == [
            {"_row_number": 3, "column": "code", "failure_case": "07"},
            {"_row_number": 3, "column": "id", "failure_case": "0"},
        ]
    sys.modules.pop("my_schemas", None)


@pytest.mark.parametrize(
    ("spec", "content", "message"),
    [
        ("missing.yaml", None, "schema missing.yaml: no such file"),
        ("broken.yaml", "columns: [unclosed", "schema broken.yaml: "),
        ("nomodule", None, "schema 'nomodule': expected a .yaml file or an import path"),
        ("no_such_module:Model", None, "schema no_such_module:Model: cannot import Model from no_such_module"),
        ("json:dumps", None, "schema json:dumps: dumps is a function, not a DataFrameModel or DataFrameSchema"),
    ],
)
def test_bad_schemas_are_one_line_errors(tmp_path, spec, content, message):
    if content is not None:
        (tmp_path / spec).write_text(content)
    with pytest.raises(SchemaLoadError) as caught:
        load_schema(spec, base_dir=tmp_path)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_blank_values_count_as_missing(yaml_schema):
    result = validate_chunk(yaml_schema, raw(id=["1", "2", " "], amount=["", "2", "3"], status=["A", "", "B"], email=["", "x@y.z", None]))
    # amount '' coerces to NULL (nullable); status '' is a missing required value; id ' ' likewise
    # (and, being int64, cannot be coerced either: pandera says both).
    assert result.rejected[["_row_number", "column", "check", "failure_case"]].to_dict("records") == [
        {"_row_number": 3, "column": "status", "check": "not_nullable", "failure_case": ""},
        {"_row_number": 4, "column": "id", "check": "coerce_dtype('int64')", "failure_case": " "},
        {"_row_number": 4, "column": "id", "check": "not_nullable", "failure_case": " "},
    ]
    assert result.valid["amount"].isna().tolist() == [True]


def test_a_value_that_cannot_be_typed_does_not_hide_the_other_failures_of_its_row_or_column():
    schema = pa.DataFrameSchema(
        {
            "age": pa.Column("int64", pa.Check.ge(0)),
            "sex": pa.Column(str, pa.Check.isin(["F", "M"])),
            "born": pa.Column("datetime64[ns]"),
        },
        coerce=True,
    )
    frame = raw(age=["abc", "5", "-1", "7"], sex=["X", "F", "M", "F"], born=["2001-01-02", "2001-13-45", "1999-05-06", "2000-01-01"])
    result = validate_chunk(schema, frame)
    assert result.rejected[["_row_number", "column", "check", "failure_case"]].values.tolist() == [
        [2, "age", "coerce_dtype('int64')", "abc"],
        [2, "sex", "isin(['F', 'M'])", "X"],
        [3, "born", "coerce_dtype('datetime64[ns]')", "2001-13-45"],
        [4, "age", "greater_than_or_equal_to(0)", "-1"],
    ]
    assert result.valid["_row_number"].tolist() == [5]
    assert (str(result.valid["age"].dtype), str(result.valid["born"].dtype)) == ("int64", "datetime64[ns]")
