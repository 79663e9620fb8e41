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
    # Every near-key's breaking rows are kept, not only the suggested key's (file 2 suggests its best near-key, id).
    assert psql(
        "SELECT partition_key, kind, key_columns, group_id, key_values, _row_number FROM keys.duplicate_groups WHERE source = %s"
        " ORDER BY partition_key = %s DESC, kind, key_columns, _row_number",
        (source, p1),
    ) == [
        (p1, "near_key", ["name"], 1, {"name": "Ann"}, 2),
        (p1, "near_key", ["name"], 1, {"name": "Ann"}, 6),
        (p2, "key", ["id"], 1, {"id": "6"}, 6),
        (p2, "key", ["id"], 1, {"id": "6"}, 7),
        (p2, "near_key", ["id"], 1, {"id": "6"}, 6),
        (p2, "near_key", ["id"], 1, {"id": "6"}, 7),
        (p2, "near_key", ["name"], 1, {"name": "Ann"}, 2),
        (p2, "near_key", ["name"], 1, {"name": "Ann"}, 5),
        (p2, "near_key", ["name"], 2, {"name": "Ed"}, 6),
        (p2, "near_key", ["name"], 2, {"name": "Ed"}, 7),
        (p2, "row", ["id", "name", "city"], 1, {"id": "6", "name": "Ed", "city": "Bonn"}, 6),
        (p2, "row", ["id", "name", "city"], 1, {"id": "6", "name": "Ed", "city": "Bonn"}, 7),
    ]
    assert metadata["near_key_violations"].value == (
        "| near-key | group | values | rows |\n| --- | --- | --- | --- |\n| name | 1 | name='Ann' | 2, 6 |\n\n"
        "Every group: keys.duplicate_groups, kind `near_key`."
    )
    # The second file's suggested key repeats 6: it is not compared, and says why.
    [comparison] = [e for e in second.get_asset_materialization_events() if e.asset_key.path[-1] == f"comparison_{source}"]
    assert comparison.materialization.metadata["comparison"].value == (
        "file patients_2.csv: key (id) is not unique: 2 rows have id='6' (1 key value(s) repeat, in 2 rows); choose another key with --key"
    )
    assert psql("SELECT count(*) FROM keys.comparisons WHERE source = %s", (source,)) == [(0,)]
    # The groups' lineage (read apart from the rows) is that of the same rows of the validated file.
    assert psql(
        f'SELECT count(v._row_number), count(*) FROM keys.duplicate_groups g LEFT JOIN validated."{source}" v ON v._partition = g.partition_key'
        " AND v._row_number = g._row_number AND v._source_file = g._source_file AND v._load_id = g._load_id WHERE g.source = %s",
        (source,),
    ) == [(12, 12)]


def test_a_declared_key_is_compared_file_to_file_and_every_difference_kept(landing, source, psql):
    defs = make_defs(landing, source, key=["id"])
    with dg.instance_for_test() as instance:
        (landing / "a.csv").write_text("id,name,city\n1,Ann,Berlin\n2,Bob,Köln\n3,Cy,Berlin\n4,Di,Köln\n")
        first = land(defs, instance)
        (landing / "b.csv").write_text("id,name,zip\n1,Ann,10115\n2,Bobby,50667\n3,Cy,10117\n6,Ed,53111\n7,Fe,\n")
        second = land(defs, instance)
    [comparison] = [e for e in second.get_asset_materialization_events() if e.asset_key.path[-1] == f"comparison_{source}"]
    metadata = comparison.materialization.metadata
    assert {k: metadata[k].value for k in ("key", "added", "removed", "changed", "unchanged", "added_columns", "removed_columns")} == {
        "key": "id", "added": 2, "removed": 1, "changed": 1, "unchanged": 2, "added_columns": "zip", "removed_columns": "city",
    }  # fmt: skip
    assert [r.data for r in metadata["changed_columns"].value.records] == [{"column": "name", "changed_rows": 1}]
    p1 = first.dagster_run.tags["dagster/partition"]
    p2 = second.dagster_run.tags["dagster/partition"]
    # The count columns mean what they meant before difference rows were kept.
    [(comparison_id, *counts)] = psql(
        "SELECT comparison_id, previous_partition_key, key_columns, added_columns, removed_columns, key_holds_previous, key_holds_current,"
        " only_in_previous, only_in_current, in_both, changed, changed_columns FROM keys.comparisons WHERE source = %s",
        (source,),
    )
    assert counts == [p1, ["id"], ["zip"], ["city"], True, True, 1, 2, 3, 1, {"name": 1}]
    assert psql(
        "SELECT partition_key_a, partition_key_b, kind, key_values, column_name, before, after, _row_number_a, _row_number_b"
        " FROM keys.comparison_rows WHERE comparison_id = %s ORDER BY kind, _row_number_a, _row_number_b",
        (comparison_id,),
    ) == [
        (p1, p2, "added", {"id": "6"}, None, None, None, None, 5),
        (p1, p2, "added", {"id": "7"}, None, None, None, None, 6),
        (p1, p2, "changed", {"id": "2"}, "name", "Bob", "Bobby", 3, 3),
        (p1, p2, "removed", {"id": "4"}, None, None, None, 5, None),
    ]
    # Compared again (a re-run of the partition), the file's differences are replaced, not added.
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(f"{source}_files", [p1, p2])
        again = dg.materialize([defs.resolve_assets_def(dg.AssetKey(["keys", f"comparison_{source}"]))], partition_key=p2, instance=instance)
    assert again.success
    assert psql("SELECT count(*), count(DISTINCT comparison_id) FROM keys.comparison_rows WHERE source = %s", (source,)) == [(4, 1)]


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


def compare_files(defs: dg.Definitions, instance, **config) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("compare_files")
    return job.execute_in_process(run_config={"ops": {"keys__file_comparisons": {"config": config}}}, instance=instance, raise_on_error=False)


def test_the_job_compare_files_compares_two_chosen_files_and_shows_a_masked_sample(landing, source, psql):
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        (landing / "jan.csv").write_text("id,email,city\n1,ann@example.org,Berlin\n2,bob@example.org,Köln\n3,cy@example.org,Bonn\n")
        first = land(defs, instance)
        (landing / "feb.csv").write_text("id,email,city\n1,ann@example.org,Berlin\n2,bob@example.net,Köln\n4,di@example.org,Bonn\n")
        land(defs, instance)
        (landing / "mar.csv").write_text("id,email,city\n1,ann@example.org,Bremen\n")
        land(defs, instance)
        # Not consecutive files, one named by its partition key: jan against mar, then jan against feb on city.
        p1 = first.dagster_run.tags["dagster/partition"]
        done = compare_files(defs, instance, source=source, file_a=p1, file_b="mar.csv")
        on_city = compare_files(defs, instance, source=source, file_a="jan.csv", file_b="feb.csv", key=["email"])
    assert done.success and on_city.success
    [event] = done.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert {k: metadata[k].value for k in ("file_a", "file_b", "key", "added", "removed", "changed", "unchanged")} == {
        "file_a": "jan.csv", "file_b": "mar.csv", "key": "id", "added": 0, "removed": 2, "changed": 1, "unchanged": 0,
    }  # fmt: skip
    [event] = on_city.get_asset_materialization_events()
    assert event.materialization.metadata["differences_sample"].value == (
        "| kind | key | column | before | after |\n| --- | --- | --- | --- | --- |\n"
        "| added | email='b***@example.net' |  |  |  |\n"
        "| added | email='d***@example.org' |  |  |  |\n"
        "| removed | email='b***@example.org' |  |  |  |\n"
        "| removed | email='c***@example.org' |  |  |  |\n\n"
        "Every difference: keys.comparison_rows, by comparison_id."
    )
    comparison_id = event.materialization.metadata["comparison_id"].value
    assert psql(
        "SELECT key_columns, rows_a, rows_b, added, removed, changed, unchanged, changed_columns FROM keys.file_comparisons WHERE comparison_id = %s",
        (comparison_id,),
    ) == [(["email"], 3, 3, 2, 2, 0, 1, {})]
    # The stored rows hold the values in clear (who may read them is the database roles' job).
    assert psql("SELECT kind, key_values FROM keys.comparison_rows WHERE comparison_id = %s ORDER BY kind, key_values::text", (comparison_id,)) == [
        ("added", {"email": "bob@example.net"}),
        ("added", {"email": "di@example.org"}),
        ("removed", {"email": "bob@example.org"}),
        ("removed", {"email": "cy@example.org"}),
    ]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"source": "nowhere", "file_a": "jan.csv", "file_b": "jan.csv"}, "source: no source 'nowhere' in harmonizer.yaml (sources: {source})"),
        ({"file_a": "jan.csv", "file_b": "dec.csv"}, "{source} has no loaded file 'dec.csv' (its loaded files: jan.csv)"),
        ({"file_a": "jan.csv", "file_b": "jan.csv", "key": ["nope"]}, "jan.csv: no key column 'nope' (its columns: id, email)"),
        (
            {"file_a": "jan.csv", "file_b": "jan.csv", "key": ["email"]},
            "jan.csv: key (email) is not unique: 2 rows have email='a***@example.org' (1 key value(s) repeat, in 2 rows); choose another key with --key",
        ),
    ],
)
def test_compare_files_with_a_bad_run_config_fails_with_one_line(landing, source, config, message):
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        (landing / "jan.csv").write_text("id,email\n1,ann@example.org\n2,ann@example.org\n")
        land(defs, instance)
        done = compare_files(defs, instance, **{"source": source, **config})
    assert not done.success
    [failure] = [e for e in done.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_failure_data.user_failure_data.description == message.format(source=source)
