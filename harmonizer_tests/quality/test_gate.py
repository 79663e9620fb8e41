"""The gate of one file: uniqueness over the whole file although rows come in chunks, and the verdict."""

import pandas as pd
import pandera.pandas as pa
import pytest

from harmonizer_pipeline.quality.gate import GateSummary, PartitionValidation, uniqueness_rejections, validate_frame, verdict
from harmonizer_tests.quality.test_validation import raw


def run_in_chunks(schema: pa.DataFrameSchema, frame: pd.DataFrame, size: int) -> tuple[pd.DataFrame, pd.DataFrame, GateSummary]:
    collected = []
    validation = PartitionValidation(schema, uniqueness_rejections(schema, frame), collected.append)
    valid = pd.concat(list(validation.run(frame.iloc[i : i + size] for i in range(0, len(frame), size))))
    rejected = pd.concat(collected, ignore_index=True) if collected else pd.DataFrame()
    return valid, rejected, validation.summary


def test_duplicates_in_different_chunks_are_all_rejected_and_null_is_no_duplicate():
    schema = pa.DataFrameSchema({"id": pa.Column("int64", unique=True, nullable=True), "name": pa.Column(str)}, coerce=True)
    frame = raw(id=["7", "1", "007", "", "2", None, "1"], name=["a", "b", "c", "d", "e", "f", "g"])
    valid, rejected, summary = run_in_chunks(schema, frame, size=2)
    # '7' and '007' are the same integer; the blank and the NULL are missing values, not duplicates.
    assert rejected[["_row_number", "column", "check", "failure_case"]].values.tolist() == [
        [2, "id", "field_uniqueness", "7"],
        [3, "id", "field_uniqueness", "1"],
        [4, "id", "field_uniqueness", "007"],
        [8, "id", "field_uniqueness", "1"],
    ]
    assert valid["_row_number"].tolist() == [5, 6, 7]
    assert valid["id"].tolist()[1] == 2 and str(valid["id"].dtype) == "Int64"
    assert (summary.rows, summary.rejected_rows, dict(summary.failures)) == (7, 4, {("field_uniqueness", "id"): 4})


def test_report_duplicates_exclude_first_keeps_the_first_row_of_each_value():
    schema = pa.DataFrameSchema({"id": pa.Column(str, unique=True, report_duplicates="exclude_first")})
    valid, rejected, _ = run_in_chunks(schema, raw(id=["a", "b", "a", "a"]), size=1)
    assert rejected["_row_number"].tolist() == [4, 5]
    assert valid["_row_number"].tolist() == [2, 3]


def test_a_unique_column_combination_is_checked_over_the_whole_file():
    schema = pa.DataFrameSchema({"first": pa.Column(str), "last": pa.Column(str)}, unique=["first", "last"])
    valid, rejected, _ = run_in_chunks(schema, raw(first=["Ann", "Ann", "Bob", "Ann"], last=["Lee", "Kim", "Lee", "Lee"]), size=2)
    assert rejected[["_row_number", "column", "check"]].values.tolist() == [
        [2, "first", "multiple_fields_uniqueness"],
        [2, "last", "multiple_fields_uniqueness"],
        [5, "first", "multiple_fields_uniqueness"],
        [5, "last", "multiple_fields_uniqueness"],
    ]
    assert valid["_row_number"].tolist() == [3, 4]


def test_a_whole_file_gives_the_same_result_as_its_chunks():
    schema = pa.DataFrameSchema({"id": pa.Column("int64", unique=True), "age": pa.Column("int64", pa.Check.ge(0), nullable=True)}, coerce=True)
    frame = raw(id=["1", "2", "2", "x"], age=["-1", "5", "", "3"])
    whole_valid, whole = validate_frame(schema, frame, on_rejected=lambda _: None)
    chunked_valid, _, chunked = run_in_chunks(schema, frame, size=1)
    assert whole_valid["_row_number"].tolist() == chunked_valid["_row_number"].tolist() == []
    assert dict(whole.failures) == dict(chunked.failures) == {
        ("greater_than_or_equal_to(0)", "age"): 1, ("field_uniqueness", "id"): 2, ("coerce_dtype('int64')", "id"): 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "rejected", "structure", "max_rate", "severity", "description"),
    [
        (10, 0, [], 0.0, "ok", "all 10 rows passed"),
        (10, 1, [], 0.0, "error", "1 of 10 rows rejected (10.00%), over max_reject_rate 0.00%"),
        (10, 1, [], 0.1, "warn", "1 of 10 rows rejected (10.00%) and quarantined in quality.rejected_rows, within max_reject_rate 10.00%"),
        (10, 2, [], 0.1, "error", "2 of 10 rows rejected (20.00%), over max_reject_rate 10.00%"),
        (0, 0, [], 0.0, "ok", "all 0 rows passed"),
        (3, 3, ["column_in_schema: age"], 1.0, "error", "wrong file structure, all 3 rows rejected: column_in_schema: age"),
    ],
)
def test_the_verdict(rows, rejected, structure, max_rate, severity, description):
    decision = verdict(GateSummary(rows=rows, rejected_rows=rejected, structure_errors=structure), max_rate)
    assert (decision.severity, decision.passed, decision.description) == (severity, severity != "error", description)
