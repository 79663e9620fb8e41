"""The code location loads, and its sensors load the bundled sample data end to end."""

import dagster as dg
import pytest
from psycopg import sql

from harmonizer_pipeline.definitions import defs
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.ingest import registry
from harmonizer_pipeline.resources import PostgresResource


# Per sample source: its raw, validated, profile, keys and comparison assets.
SAMPLE_ASSETS = {
    key
    for name in ("clinic_a", "clinic_b")
    for key in (f"raw/{name}", f"validated/{name}", f"quality/profile_{name}", f"keys/{name}", f"keys/comparison_{name}")
}


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == SAMPLE_ASSETS
    assert sorted(s.name for s in defs.sensors) == ["clinic_a_landing", "clinic_b_landing"]
    assert defs.resolve_job_def("load_clinic_a").partitions_def.name == "clinic_a_files"


@pytest.fixture(scope="module")
def sample_runs():
    with dg.instance_for_test() as instance:
        return {
            sensor.name: launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))
            for sensor in defs.sensors
        }


def test_sensors_load_every_sample_file(sample_runs, psql):
    assert {name: [r.success for r in runs] for name, runs in sample_runs.items()} == {
        "clinic_a_landing": [True],
        "clinic_b_landing": [True],
    }
    with PostgresResource().connect() as conn:
        loaded = {(e.source, e.object_key): (e.status, e.rows) for e in registry.entries(conn)}
    assert loaded[("clinic_a", "patients_2026-11.csv")] == ("loaded", 25)
    assert loaded[("clinic_b", "export.csv")] == ("loaded", 15)


def test_raw_layer_keeps_text_exactly_as_written_with_lineage(sample_runs, psql):
    first = psql(
        sql.SQL(
            "SELECT patient_id, postal_code, balance, _source_file, _row_number FROM raw.clinic_a "
            "ORDER BY _row_number LIMIT 4"
        )
    )
    assert first == [
        ("P0001", "071239", "22,46", "patients_2026-11.csv", 2),
        ("P0002", "055810", "", "patients_2026-11.csv", 3),
        ("P0003", "083657", "", "patients_2026-11.csv", 4),
        ("P0004", "073963", "N/A", "patients_2026-11.csv", 5),
    ]
    assert psql("SELECT count(*) FROM raw.clinic_a WHERE balance IS NULL") == [(0,)]
    assert psql("SELECT count(DISTINCT _load_id), count(DISTINCT _partition) FROM raw.clinic_b") == [(1, 1)]


def test_sample_files_are_gated_typed_and_their_bad_row_is_quarantined(sample_runs, psql):
    assert psql("SELECT count(*), min(birth_date)::text FROM validated.clinic_a") == [(24, "1947-10-04 00:00:00")]
    assert psql(
        "SELECT source, _row_number, column_name, check_name, failure_case FROM quality.rejected_rows"
        " WHERE source IN ('clinic_a', 'clinic_b')"
    ) == [("clinic_a", 26, "birth_date", "coerce_dtype('datetime64[ns]')", "1985-13-40")]
    # clinic_b's DataFrameModel reads its day-first dates.
    assert psql("SELECT dob::text FROM validated.clinic_b WHERE id = 'B-001'") == [("1978-09-01 00:00:00",)]
    assert psql(
        "SELECT source, severity FROM quality.gate_results WHERE source IN ('clinic_a', 'clinic_b') ORDER BY source"
    ) == [("clinic_a", "warn"), ("clinic_b", "ok")]
