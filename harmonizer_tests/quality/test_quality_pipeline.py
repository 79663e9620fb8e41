"""validated/<source> behind its blocking gate, quarantine in quality.rejected_rows, and
quality/profile_<source> with drift, run through Dagster's own APIs on a real PostgreSQL."""

import json
from pathlib import Path

import dagster as dg
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.ingest.assets import files_partitions
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import parse_settings
from harmonizer_pipeline.wiring import GATED_EAGER

SCHEMA_YAML = """\
schema_type: dataframe
columns:
  id: {dtype: int64, nullable: false, unique: true}
  name: {dtype: str, nullable: false}
  age:
    dtype: int64
    nullable: true
    checks: {in_range: {min_value: 0, max_value: 130}}
  sex:
    dtype: str
    checks: {isin: [F, M]}
coerce: true
strict: true
"""

# One planted error per row from line 3 on; line 7 and 8 share an id.
PLANTED = """\
id,name,age,sex
1,Ann,34,F
2,Bob,-3,M
3,,41,F
4,Dan,abc,M
5,Eve,29,X
6,Fay,30,F
6,Gus,55,M
8,Hal,,M
"""


class Patients(pa.DataFrameModel):
    """The same rules as SCHEMA_YAML, as a class named by import path."""

    id: Series[int] = pa.Field(unique=True)
    name: Series[str]
    age: Series[int] = pa.Field(ge=0, le=130, nullable=True)
    sex: Series[str] = pa.Field(isin=["F", "M"])

    class Config:
        coerce = True
        strict = True


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    (tmp_path / "patients.yaml").write_text(SCHEMA_YAML)
    return folder


@pytest.fixture
def source(schema) -> str:
    return schema.replace("t_", "q_")


def make_defs(landing: Path, source: str, *, schema: str | None = "patients.yaml", max_reject_rate: float = 0, chunk_rows: int = 100_000):
    config = {"landing": {"local": {"path": str(landing), "glob": "*.csv"}}, "max_reject_rate": max_reject_rate}
    if schema:
        config["schema"] = schema
    text = json.dumps({"sources": {source: config}, "ingest": {"chunk_rows": chunk_rows}})
    settings = parse_settings(text, base_dir=landing.parent)
    partitions = files_partitions(source)

    @dg.asset(key=["harmonized", source], partitions_def=partitions, deps=[dg.AssetKey(["validated", source])], automation_condition=GATED_EAGER)
    def downstream() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    defs = build_definitions(settings, build_resources())
    return dg.Definitions.merge(defs, dg.Definitions(assets=[downstream]))


def land_and_load(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    sensor = defs.sensors[0]
    return launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))


def automation_requests(defs: dg.Definitions, instance, source: str, cursor) -> tuple[set[str], object]:
    """The partitions of harmonized/<source> one evaluation of its automation condition requests, and its cursor."""
    key = dg.AssetKey(["harmonized", source])
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(key), cursor=cursor)
    return result.get_requested_partitions(key), result.cursor


def materialize_downstream(defs: dg.Definitions, instance, source: str, partition: str) -> dg.ExecuteInProcessResult:
    """validated/<source> and the asset downstream of it, in one run, as automation would launch them."""
    job = dg.define_asset_job("gated", selection=[f"validated/{source}", f"harmonized/{source}"])
    resolved = dg.Definitions.merge(defs, dg.Definitions(jobs=[job])).resolve_job_def("gated")
    return resolved.execute_in_process(instance=instance, partition_key=partition, raise_on_error=False)


def gate_evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "schema_gate"]
    return evaluation


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


EXPECTED_REJECTIONS = [
    (3, "age", "in_range(0, 130)", "-3"),
    (4, "name", "not_nullable", ""),
    (5, "age", "coerce_dtype('Int64')", "abc"),
    (6, "sex", "isin(['F', 'M'])", "X"),
    (7, "id", "field_uniqueness", "6"),
    (8, "id", "field_uniqueness", "6"),
]


def rejected(psql, source: str) -> list[tuple]:
    return psql(
        "SELECT _row_number, column_name, check_name, failure_case FROM quality.rejected_rows WHERE source = %s ORDER BY _row_number, column_name",
        (source,),
    )


def test_a_failing_gate_blocks_downstream_and_quarantines_exactly_the_planted_errors(landing, source, psql):
    (landing / "patients.csv").write_text(PLANTED)
    defs = make_defs(landing, source, max_reject_rate=0.25, chunk_rows=3)  # duplicates span chunks
    with dg.instance_for_test() as instance:
        _, cursor = automation_requests(defs, instance, source, None)  # the evaluation before the file landed
        [run] = land_and_load(defs, instance)
        assert not run.success
        assert materialized(run) == {f"raw/{source}", f"validated/{source}", f"quality/profile_{source}"}
        gate = gate_evaluation(run)
        assert (gate.passed, gate.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert gate.description == "6 of 8 rows rejected (75.00%), over max_reject_rate 25.00%"
        assert gate.metadata["max_reject_rate"].value == 0.25
        failures = {(r.data["check"], r.data["column"]): r.data["count"] for r in gate.metadata["failures"].value.records}
        assert failures == {
            ("in_range(0, 130)", "age"): 1, ("not_nullable", "name"): 1, ("coerce_dtype('Int64')", "age"): 1,
            ("isin(['F', 'M'])", "sex"): 1, ("field_uniqueness", "id"): 2,
        }  # fmt: skip
        sample = gate.metadata["failing_rows_sample"].value.records
        assert [r.data["_row_number"] for r in sample] == [3, 4, 5, 6, 7, 8]
        assert rejected(psql, source) == EXPECTED_REJECTIONS
        # Rows that passed flow on, typed; the rows that failed are nowhere but in quarantine.
        assert psql(f'SELECT id, name, age, sex, _row_number FROM validated."{source}" ORDER BY id') == [
            (1, "Ann", 34, "F", 2),
            (8, "Hal", None, "M", 9),
        ]
        [(severity, rows, valid, rejected_count)] = psql(
            "SELECT severity, rows, valid_rows, rejected_rows FROM quality.gate_results WHERE source = %s", (source,)
        )
        assert (severity, rows, valid, rejected_count) == ("error", 8, 2, 6)

        partition = run.dagster_run.tags["dagster/partition"]
        blocked = materialize_downstream(defs, instance, source, partition)
        assert not blocked.success
        assert materialized(blocked) == {f"validated/{source}"}  # harmonized/<source> did not run
        assert instance.get_latest_materialization_event(dg.AssetKey(["harmonized", source])) is None
        record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(["validated", source]), "schema_gate"))
        assert (record.run_id, record.status.value) == (blocked.run_id, "FAILED")
        # Declarative automation holds it back as well (the warning test shows it would request it).
        assert automation_requests(defs, instance, source, cursor)[0] == set()
        # Validating the file again replaces its quarantine records instead of adding to them.
        assert rejected(psql, source) == EXPECTED_REJECTIONS


def test_a_gate_within_max_reject_rate_warns_and_lets_downstream_run(landing, source, psql):
    (landing / "patients.csv").write_text(PLANTED)
    defs = make_defs(landing, source, schema=f"{__name__}:Patients", max_reject_rate=0.8)
    with dg.instance_for_test() as instance:
        _, cursor = automation_requests(defs, instance, source, None)
        [run] = land_and_load(defs, instance)
        assert run.success
        gate = gate_evaluation(run)
        assert (gate.passed, gate.severity) == (True, dg.AssetCheckSeverity.WARN)
        assert gate.description == "6 of 8 rows rejected (75.00%) and quarantined in quality.rejected_rows, within max_reject_rate 80.00%"
        # The class states the age range as ge/le, so pandera names that check differently.
        expected = [(3, "age", "greater_than_or_equal_to(0)", "-3"), *EXPECTED_REJECTIONS[1:]]
        assert rejected(psql, source) == expected
        partition = run.dagster_run.tags["dagster/partition"]
        assert automation_requests(defs, instance, source, cursor)[0] == {partition}
        downstream = materialize_downstream(defs, instance, source, partition)
        assert downstream.success
        assert materialized(downstream) == {f"validated/{source}", f"harmonized/{source}"}


def test_a_file_with_the_wrong_columns_fails_the_gate_as_a_structure_error(landing, source, psql):
    (landing / "patients.csv").write_text("id,name,age,colour\n1,Ann,34,red\n2,Bob,40,blue\n")
    defs = make_defs(landing, source, max_reject_rate=1.0)
    with dg.instance_for_test() as instance:
        [run] = land_and_load(defs, instance)
    gate = gate_evaluation(run)
    assert (run.success, gate.passed, gate.severity) == (False, False, dg.AssetCheckSeverity.ERROR)
    assert gate.description.startswith("wrong file structure, all 2 rows rejected: ")
    assert "colour" in gate.description and "sex" in gate.description
    assert [(r, c, k) for r, c, k, _ in rejected(psql, source)] == [(2, None, "structure"), (3, None, "structure")]
    assert psql(f'SELECT count(*) FROM validated."{source}"') == [(0,)]


def test_a_source_without_a_schema_passes_its_rows_as_text(landing, source, psql):
    (landing / "patients.csv").write_text(PLANTED)
    with dg.instance_for_test() as instance:
        [run] = land_and_load(make_defs(landing, source, schema=None), instance)
    assert run.success
    assert gate_evaluation(run).description == "all 8 rows passed"
    assert psql(f'SELECT age FROM validated."{source}" ORDER BY _row_number LIMIT 3') == [("34",), ("-3",), ("41",)]


def people(rows: int, *, name_column: str = "name", blank_emails: int = 0, statuses=("active", "inactive"), phone: bool = False) -> str:
    header = ["id", name_column, "email", "status"] + (["phone"] if phone else [])
    lines = [",".join(header)]
    for i in range(rows):
        email = "" if i < blank_emails else f"person{i}@example.com"
        cells = [str(i + 1), f"Person {i % 7}" + (" " if i == 3 else ""), email, statuses[i % len(statuses)]]
        lines.append(",".join(cells + ([f"+49 30 {1000000 + i}"] if phone else [])))
    return "\n".join(lines) + "\n"


def test_profiles_are_stored_by_run_shown_in_the_ui_and_compared_with_the_previous_file(landing, source, psql):
    defs = make_defs(landing, source, schema=None)
    with dg.instance_for_test() as instance:
        (landing / "people_1.csv").write_text(people(20))
        [first] = land_and_load(defs, instance)
        (landing / "people_2.csv").write_text(people(20, name_column="full_name", blank_emails=10, statuses=("active", "inactive", "paused"), phone=True))
        [second] = land_and_load(defs, instance)
    assert first.success and second.success
    [profile] = [e for e in first.get_asset_materialization_events() if e.asset_key.path[0] == "quality"]
    metadata = profile.materialization.metadata
    assert (metadata["rows"].value, metadata["recommendation_count"].value) == (20, 2)
    columns = {r.data["column"]: r.data for r in metadata["columns"].value.records}
    assert {name: c["semantic_type"] for name, c in columns.items()} == {
        "id": "integer", "name": "categorical", "email": "email", "status": "categorical",
    }  # fmt: skip
    assert columns["email"]["pii"] == "email" and columns["id"]["pattern"] == "99"
    assert "| email | email | 0 | 0 | 20 |" in metadata["profile"].value
    assert "### `name`: whitespace" in metadata["recommendations"].value and "```sql" in metadata["recommendations"].value
    shown = metadata["statistics"].value.splitlines()
    assert shown[0] == "- `id` (integer) numbers: mean 10.5 std 5.91608 min 1 p5 1.95 p25 5.75 median 10.5 p75 15.25 p95 19.05 max 20; zeros 0, negatives 0"
    # The e-mail column is PII: its top values are masked where they are shown.
    assert shown[2] == "- `email` (email) length 19-20 (mean 19.5); top p***@example.com (1), p***@example.com (1), p***@example.com (1)"
    assert "person" not in "\n".join(shown[2:])
    [first_drift] = [e for e in first.get_asset_check_evaluations() if e.check_name == "drift"]
    assert (first_drift.passed, first_drift.description) == (True, "first file of the source: nothing to compare with")

    stored = psql(
        "SELECT partition_key, column_name, semantic_type, nulls, empties, distinct_values, pii FROM quality.column_profiles"
        " WHERE source = %s ORDER BY profiled_at, position",
        (source,),
    )
    first_key, second_key = (run.dagster_run.tags["dagster/partition"] for run in (first, second))
    assert stored[:4] == [
        (first_key, "id", "integer", 0, 0, 20, []),
        (first_key, "name", "categorical", 0, 0, 8, []),
        (first_key, "email", "email", 0, 0, 20, ["email"]),
        (first_key, "status", "categorical", 0, 0, 2, []),
    ]
    assert [row[1] for row in stored[4:]] == ["id", "full_name", "email", "status", "phone"]
    assert psql(
        "SELECT column_name, kind, count, mean, p50, length_max FROM quality.column_statistics WHERE source = %s AND partition_key = %s ORDER BY position",
        (source, first_key),
    ) == [
        ("id", "numbers", 20, 10.5, 10.5, None),
        ("name", "text", None, None, None, 9),
        ("email", "text", None, None, None, 20),
        ("status", "text", None, None, None, 8),
    ]
    # 'Person 3 ' carries a trailing space, and so is also a second spelling of 'Person 3'.
    assert psql(
        "SELECT column_name, issue, rows FROM quality.recommendations WHERE source = %s AND partition_key = %s ORDER BY issue",
        (source, first_key),
    ) == [("name", "inconsistent_case", 3), ("name", "whitespace", 1)]

    [drift] = [e for e in second.get_asset_check_evaluations() if e.check_name == "drift"]
    assert (drift.passed, drift.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert drift.description == f"5 change(s) since {first_key}"
    assert psql(
        "SELECT previous_partition_key, kind, column_name, detail FROM quality.schema_history WHERE source = %s ORDER BY detected_at, kind, column_name",
        (source,),
    ) == [
        (first_key, "added_column", "phone", "new column 'phone' (phone)"),
        (first_key, "distinct_rate_jump", "email", "distinct 100.0% → 55.0%"),
        (first_key, "new_categories", "status", "new values ['paused']"),
        (first_key, "null_rate_jump", "email", "missing 0.0% → 50.0%"),
        (first_key, "renamed_column", "full_name", "'name' is now 'full_name'"),
    ]


def test_a_file_with_only_a_header_is_validated_and_profiled_as_empty(landing, source, psql):
    (landing / "patients.csv").write_text("id,name,age,sex\n")
    with dg.instance_for_test() as instance:
        [run] = land_and_load(make_defs(landing, source), instance)
    assert run.success
    assert gate_evaluation(run).description == "all 0 rows passed"
    assert psql(f'SELECT count(*) FROM validated."{source}"') == [(0,)]
    assert psql("SELECT column_name, semantic_type, rows FROM quality.column_profiles WHERE source = %s ORDER BY position", (source,)) == [
        ("id", "free text", 0),
        ("name", "free text", 0),
        ("age", "free text", 0),
        ("sex", "free text", 0),
    ]


def test_validated_rows_keep_their_raw_lineage_and_their_files_own_columns(landing, source, psql):
    # The lineage the raw step gives a whole file is read once per file, not per row.
    (landing / "a.csv").write_text(people(4))
    (landing / "b.csv").write_text(people(3, phone=True))
    with dg.instance_for_test() as instance:
        runs = land_and_load(make_defs(landing, source, schema=None), instance)
    assert [run.success for run in runs] == [True, True]
    columns = "_source_file, _load_id, _ingested_at, _partition, _row_number, id, phone"
    validated = psql(f'SELECT {columns} FROM validated."{source}" ORDER BY _source_file, _row_number')
    assert len(validated) == 7 and validated == psql(f'SELECT {columns} FROM raw."{source}" ORDER BY _source_file, _row_number')
