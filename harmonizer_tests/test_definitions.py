"""The code location loads, and its asset graph runs on the bundled sample data."""

import dagster as dg
import pandas as pd
import pytest
from psycopg import sql

from harmonizer_pipeline.definitions import defs
from harmonizer_pipeline.resources.postgres import adbc_connection, resolve_database_url
from harmonizer_pipeline.resources.table_store import read_frame


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"raw/clinic_a", "raw/clinic_b", "ops/load_summary"}
    assert defs.resolve_job_def("harmonize_all") is not None


@pytest.fixture(scope="module")
def demo_run():
    result = dg.materialize(list(defs.assets), resources=defs.resources)
    assert result.success
    return result


def test_demo_graph_materializes_every_asset_with_row_counts(demo_run):
    counts = {
        e.asset_key.to_user_string(): e.materialization.metadata["dagster/row_count"].value
        for e in demo_run.get_asset_materialization_events()
    }
    assert counts == {"raw/clinic_a": 24, "raw/clinic_b": 15, "ops/load_summary": 2}


def test_demo_raw_layer_keeps_text_exactly_as_written(demo_run, psql):
    first = psql(
        sql.SQL("SELECT patient_id, postal_code, balance, _source_file, _row_number FROM raw.clinic_a ORDER BY _row_number LIMIT 4")
    )
    assert first == [
        ("P0001", "071239", "22,46", "patients_2026-11.csv", 2),
        ("P0002", "055810", "", "patients_2026-11.csv", 3),
        ("P0003", "083657", "", "patients_2026-11.csv", 4),
        ("P0004", "073963", "N/A", "patients_2026-11.csv", 5),
    ]
    assert psql("SELECT count(*) FROM raw.clinic_a WHERE balance IS NULL") == [(0,)]


def test_load_summary_counts_files_and_rows(demo_run):
    with adbc_connection(resolve_database_url()) as conn:
        frame = read_frame(conn, "ops", "load_summary")
    expected = pd.DataFrame({"source": ["clinic_a", "clinic_b"], "files": [1, 1], "rows": [24, 15]})
    pd.testing.assert_frame_equal(frame, expected)
