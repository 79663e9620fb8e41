"""keys/<source> and keys/comparison_<source> on landed files, through Dagster's own APIs."""

import json
import logging
from pathlib import Path

import dagster as dg
import pytest

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import parse_settings


@pytest.fixture
def source(schema) -> str:
    return schema.replace("t_", "k_")


@pytest.fixture
def landing(tmp_path) -> Path:
    folder = tmp_path / "landing"
    folder.mkdir()
    return folder


def make_defs(landing: Path, source: str, **config) -> dg.Definitions:
    text = json.dumps({"sources": {source: {"landing": {"local": {"path": str(landing), "glob": "*.csv"}}, **config}}})
    return build_definitions(parse_settings(text, base_dir=landing), build_resources())


def land(defs: dg.Definitions, instance) -> dg.ExecuteInProcessResult:
    sensor = defs.sensors[0]
    [run] = launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))
    return run


def test_keys_of_each_file_and_the_comparison_with_the_previous_one(landing, source, psql):
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        (landing / "patients_1.csv").write_text("id,name,city\n1,Ann,Berlin\n2,Bob,Köln\n3,Cy,Berlin\n4,Di,Köln\n5,Ann,Köln\n")
        first = land(defs, instance)
        # 4 deleted, 6 inserted (twice: the key no longer holds), Bob renamed.
        (landing / "patients_2.csv").write_text("id,name,city\n1,Ann,Berlin\n2,Bobby,Köln\n3,Cy,Berlin\n5,Ann,Köln\n6,Ed,Bonn\n6,Ed,Bonn\n")
        second = land(defs, instance)
    assert first.success and second.success
    [keys] = [e for e in first.get_asset_materialization_events() if e.asset_key.to_user_string() == f"keys/{source}"]
    metadata = keys.materialization.metadata
    assert (metadata["suggested_key"].value, metadata["minimal_key_count"].value) == ("id", 2)
    assert [r.data["columns"] for r in metadata["minimal_keys"].value.records] == ["id", "city, name"]
    p1, p2 = (run.dagster_run.tags["dagster/partition"] for run in (first, second))
    assert psql(
        "SELECT partition_key, suggested_key, suggestion_reason, suggested_key_unique, duplicate_rows, key_duplicate_groups"
        " FROM keys.key_summary WHERE source = %s ORDER BY analysed_at",
        (source,),
    ) == [
        (p1, ["id"], "smallest exact key without NULLs, identifier-like names", True, 0, 0),
        (p2, ["id"], "no exact key; best near-key (83.33% unique)", False, 1, 1),
    ]
    assert psql("SELECT columns, size, has_nulls FROM keys.unique_keys WHERE source = %s AND partition_key = %s ORDER BY size", (source, p1)) == [
        (["id"], 1, False),
        (["city", "name"], 2, False),
    ]
    assert psql(
        "SELECT kind, key_columns, group_id, key_values, _row_number FROM keys.duplicate_groups WHERE source = %s ORDER BY kind, _row_number",
        (source,),
    ) == [
        ("key", ["id"], 1, {"id": "6"}, 6),
        ("key", ["id"], 1, {"id": "6"}, 7),
        ("row", ["id", "name", "city"], 1, {"id": "6", "name": "Ed", "city": "Bonn"}, 6),
        ("row", ["id", "name", "city"], 1, {"id": "6", "name": "Ed", "city": "Bonn"}, 7),
    ]
    # The groups' lineage (read apart from the rows) is that of the same rows of the validated file.
    assert psql(
        f'SELECT g.kind, g._row_number FROM keys.duplicate_groups g JOIN validated."{source}" v ON v._partition = g.partition_key'
        " AND v._row_number = g._row_number AND v._source_file = g._source_file AND v._load_id = g._load_id"
        " WHERE g.source = %s ORDER BY g.kind, g._row_number",
        (source,),
    ) == [("key", 6), ("key", 7), ("row", 6), ("row", 7)]


def test_a_declared_key_is_compared_file_to_file(landing, source, psql):
    defs = make_defs(landing, source, key=["id"])
    with dg.instance_for_test() as instance:
        (landing / "a.csv").write_text("id,name,city\n1,Ann,Berlin\n2,Bob,Köln\n3,Cy,Berlin\n4,Di,Köln\n")
        first = land(defs, instance)
        (landing / "b.csv").write_text("id,name,zip\n1,Ann,10115\n2,Bobby,50667\n3,Cy,10117\n6,Ed,53111\n6,Ed,53111\n")
        second = land(defs, instance)
    [comparison] = [e for e in second.get_asset_materialization_events() if e.asset_key.path[-1] == f"comparison_{source}"]
    assert comparison.materialization.metadata["changed"].value == 1
    p1 = first.dagster_run.tags["dagster/partition"]
    assert psql(
        "SELECT previous_partition_key, key_columns, added_columns, removed_columns, key_holds_previous, key_holds_current,"
        " only_in_previous, only_in_current, in_both, changed, changed_columns FROM keys.comparisons WHERE source = %s",
        (source,),
    ) == [(p1, ["id"], ["zip"], ["city"], True, False, 1, 1, 3, 1, {"name": 1})]
    assert psql(
        "SELECT kind, group_id, key_values, _row_number FROM keys.duplicate_groups WHERE source = %s AND kind = 'key' ORDER BY _row_number",
        (source,),
    ) == [("key", 1, {"id": "6"}, 5), ("key", 1, {"id": "6"}, 6)]


def test_what_desbordante_reports_goes_to_the_runs_debug_log_not_the_console(landing, source, capfd):
    # One value in `country`: PyroUCC reports "Got Median... == 0" for it.
    (landing / "one_country.csv").write_text("id,name,country\n1,Ann,DE\n2,Bob,DE\n3,Cy,DE\n")
    with dg.instance_for_test() as instance:
        run = land(make_defs(landing, source), instance)
        logs = instance.all_logs(run.run_id)
    assert run.success
    [engine] = [entry for entry in logs if entry.user_message.startswith("Desbordante printed:")]
    assert (engine.level, engine.step_key) == (logging.DEBUG, f"keys__{source}")
    assert "\ndesbordante WARNING: Got MedianInvertedEntropy == 0\n" in engine.user_message
    shown = capfd.readouterr()
    assert "Got Median" not in shown.out + shown.err
