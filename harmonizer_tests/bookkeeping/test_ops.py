"""Run metrics, run-to-run trends and the audit log: the domain functions, then the assets on an
instance (files landed by the sensor, the harmonize job) and `harmonizer audit`."""

import datetime as dt
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg
import pytest

from harmonizer_pipeline.bookkeeping import audit, metrics
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.monitoring import trends
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import SettingsError, parse_settings
from harmonizer_tests.automation_ticks import AutomationTicks
from harmonizer_tests.harmonize.test_harmonize_pipeline import SCHEMA, land

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def planted(values: dict[str, list[float]], asset: str = "raw/s") -> pd.DataFrame:
    """History rows: file f<i> measured at minute i, one value per metric."""
    rows = [
        (f"f{i}", asset, metric, value, f"run{i}", T0 + dt.timedelta(minutes=i))
        for metric, series in values.items()
        for i, value in enumerate(series)
        if value is not None
    ]
    return pd.DataFrame(rows, columns=["partition_key", "asset", "metric", "value", "run_id", "recorded_at"])


def test_robust_z_uses_median_and_mad_then_mean_deviation_then_infinity():
    z, median, mad = trends.robust_z(20.0, [10.0, 11.0, 12.0, 13.0, 14.0])
    assert (median, mad) == (12.0, 1.0) and z == pytest.approx(0.6745 * 8)
    # MAD 0 (most values equal): the mean absolute deviation stands in.
    z, median, mad = trends.robust_z(5.0, [1.0, 1.0, 1.0, 1.0, 3.0])
    assert (median, mad) == (1.0, 0.0) and z == pytest.approx(4 / (1.253314 * 0.4))
    assert trends.robust_z(2.0, [1.0] * 5)[0] == math.inf
    assert trends.robust_z(0.0, [1.0] * 5)[0] == -math.inf
    assert trends.robust_z(1.0, [1.0] * 5)[0] == 0.0


def test_the_latest_file_is_judged_against_its_history():
    history = planted({
        "rows": [100, 102, 98, 101, 99, 100, 5000],
        "rejected_share": [0.01, 0.02, 0.01, 0.015, 0.01, 0.012, 0.011],
        "duration_seconds": [0.2, 0.21, 0.2, 0.2, 0.2, 0.2, 0.9],  # 4.5x, but within the one-second tolerance
    })  # fmt: skip
    report = trends.compare(history, min_history=5, window=30, threshold=3.5, shown=3)
    assert report.latest_partition == "f6" and report.runs == 7
    assert [(t.metric, t.latest, t.median, t.history) for t in report.anomalies] == [("rows", 5000.0, 100.0, 6)]
    assert {t.metric: t.anomaly for t in report.trends} == {"rows": True, "rejected_share": False, "duration_seconds": False}
    assert report.table["file"].tolist() == ["f4", "f5", "f6"]
    text = trends.markdown(report)
    assert text.splitlines()[:3] == ["| file | rows | rejected_share | duration_seconds |", "|---|---|---|---|", "| f4 | 99 | 0.01 | 0.2 |"]
    assert "**1 anomaly in f6:**\n- `raw/s` rows = 5000 (median 100, robust z 3305)" in text  # 0.6745 * 4900 / MAD 1


def test_too_little_history_judges_nothing_and_a_rerun_replaces_a_files_value():
    report = trends.compare(planted({"rows": [1, 1, 1, 1, 50]}), min_history=5, window=30, threshold=3.5, shown=10)
    assert report.trends == [] and trends.markdown(report).endswith("Not enough history yet to judge the latest file.")
    # f5 measured twice (a re-run): only its last value counts, and it is back in line.
    history = planted({"rows": [10, 10, 10, 10, 10, 99]})
    rerun = pd.DataFrame([("f5", "raw/s", "rows", 10.0, "again", T0 + dt.timedelta(hours=1))], columns=history.columns)
    report = trends.compare(pd.concat([history, rerun]), min_history=5, window=30, threshold=3.5, shown=10)
    assert [(t.latest, t.anomaly) for t in report.trends] == [(10.0, False)]
    # The window bounds the history: only the last 5 earlier files count.
    report = trends.compare(planted({"rows": [1000, 1000, 10, 10, 10, 10, 10, 10]}), min_history=5, window=5, threshold=3.5, shown=10)
    assert [(t.history, t.median, t.anomaly) for t in report.trends] == [(5, 10.0, False)]
    assert trends.compare(planted({}), 5, 30, 3.5, 10).latest_partition is None


def test_a_rerun_of_an_older_file_is_the_latest_run_and_is_judged_against_the_others():
    history = planted({"rows": [10, 10, 11, 10, 9, 10]})
    # f1 measured again after f5 (a manual re-run of its partition), with far more rows.
    rerun = pd.DataFrame([("f1", "raw/s", "rows", 500.0, "again", T0 + dt.timedelta(hours=1))], columns=history.columns)
    report = trends.compare(pd.concat([history, rerun]), min_history=5, window=30, threshold=3.5, shown=3)
    assert report.latest_partition == "f1" and report.runs == 6
    assert [(t.latest, t.median, t.history, t.anomaly) for t in report.trends] == [(500.0, 10.0, 5, True)]  # f0, f2..f5
    assert report.table["file"].tolist() == ["f4", "f5", "f1"]


@pytest.mark.parametrize(
    "tags, expected",
    [
        ({"dagster/parent_run_id": "abc", "dagster/sensor_name": "s_landing"}, "re-run of abc"),
        ({"dagster/parent_run_id": "abc", "user": "ann@x.org"}, "re-run of abc by ann@x.org"),
        ({"dagster/sensor_name": "s_landing", "parent": "abc"}, "re-run of abc"),
        # The retry daemon's tags: the parent's, plus dagster/retry_number (and parent/root run ids).
        (
            {"dagster/parent_run_id": "abc", "dagster/root_run_id": "abc", "dagster/retry_number": "1", "dagster/sensor_name": "s_landing"},
            "automatic retry 1 of abc (sensor s_landing)",
        ),
        ({"dagster/parent_run_id": "def", "dagster/root_run_id": "abc", "dagster/retry_number": "2"}, "automatic retry 2 of def"),
        ({"harmonizer/launched_by": "make demo", "dagster/sensor_name": "s"}, "make demo"),
        ({"dagster/schedule_name": "harmonize_patients_schedule"}, "schedule harmonize_patients_schedule"),
        ({"dagster/from_automation_condition": "true", "dagster/sensor_name": "default_automation_condition_sensor"}, "declarative automation"),
        ({"dagster/sensor_name": "clinic_a_landing"}, "sensor clinic_a_landing"),
        ({"dagster/backfill": "bf1"}, "backfill bf1"),
        ({"user": "ann@x.org"}, "user ann@x.org"),
        ({}, "manual (UI, CLI or API)"),
    ],
)
def test_launched_by_names_who_or_what_started_the_run(tags, expected):
    tags = dict(tags)
    assert audit.launched_by(tags, tags.pop("parent", None)) == expected


def test_one_line_keeps_a_failures_whole_description_and_a_database_errors_first_line():
    assert audit.one_line(dg.Failure("x.csv: cannot read it\n  line 2 has 3 fields\n")) == "x.csv: cannot read it line 2 has 3 fields"
    assert audit.one_line(psycopg.errors.LockNotAvailable("ERROR: lock timeout\nCONTEXT: SQL statement")) == "LockNotAvailable: ERROR: lock timeout"
    assert audit.one_line(ValueError()) == "ValueError"
    assert audit.one_line(dg.Failure("a" * 20 + "b" * 20), most=12) == "aaaa … bbbbb"


@pytest.mark.parametrize(
    "field, message",
    [
        ({"min_history": 3}, "trends.min_history: Input should be greater than or equal to 5"),  # the issue: at least 5 prior runs
        ({"window": 0}, "trends.window: Input should be greater than or equal to 3"),
        ({"window": 4}, "trends: window 4 is smaller than min_history 5: no file would ever be judged"),
        ({"z_threshold": -1}, "trends.z_threshold: Input should be greater than 0"),
        ({"shown_runs": "all"}, "trends.shown_runs: Input should be a valid integer"),
        ({"zscore": 3}, "trends.zscore: Extra inputs are not permitted"),
    ],
)
def test_bad_trend_settings_name_the_field(field, message):
    with pytest.raises(SettingsError) as caught:
        parse_settings(json.dumps({"trends": field}), base_dir=Path("."))
    assert message in str(caught.value)


def make_defs(tmp_path: Path, source: str, target: str, mapping: dict | None = None) -> dg.Definitions:
    (tmp_path / "in").mkdir()
    (tmp_path / "schema.yaml").write_text(SCHEMA)
    config = {
        "sources": {source: {"landing": {"local": {"path": "in", "glob": "*.csv"}}, "schema": "schema.yaml", "target": target, "mapping": mapping or {}}},
        "targets": {target: {"columns": {"id": {"required": True}, "name": {}}, "key": ["id"]}},
        "export": {"directory": str(tmp_path / "exports"), "formats": ["csv"], "zip": False},
    }
    (tmp_path / "harmonizer.yaml").write_text(json.dumps(config))  # for jobs rebuilt in another process (reexecutable)
    return build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())


def test_loads_gate_decisions_harmonization_and_export_are_audited_and_measured(tmp_path, schema, psql, database_url):
    suffix = schema.removeprefix("t_")
    source, target = f"au_{suffix}", f"aut_{suffix}"
    good, bad = f"good_{suffix}.csv", f"bad_{suffix}.csv"
    defs = make_defs(tmp_path, source, target)
    (tmp_path / "in" / good).write_text("id,name\nC1,ann\nC2,bob\nC3,\n")
    (tmp_path / "in" / bad).write_text("id,name\nX1,eve\nX2,fay\n")  # every id breaks the schema: the gate blocks it
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def(f"{source}_landing")
        from harmonizer_pipeline.demo import evaluate_sensor, launch_requests

        runs = launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance), tags={"dagster/sensor_name": sensor.name})
        assert sorted(r.success for r in runs) == [False, True]
        run_of = {r.dagster_run.tags["harmonizer/file"]: r.run_id for r in runs}
        harmonize = defs.resolve_job_def(f"harmonize_{target}").execute_in_process(
            instance=instance, tags={"dagster/schedule_name": f"harmonize_{target}_schedule"}
        )
    rows = psql(
        "SELECT action, status, asset, file, sha256, rows_in, rows_out, launched_by, run_id FROM ops.audit_log"
        " WHERE asset LIKE %s ORDER BY id", (f"%{suffix}",),
    )  # fmt: skip
    sha = {name: hashlib.sha256((tmp_path / "in" / name).read_bytes()).hexdigest() for name in (good, bad)}
    by_sensor = f"sensor {source}_landing"
    loads = sorted(r for r in rows if r[0] not in ("harmonize", "export"))
    assert loads == sorted([
        ("load", "loaded", f"raw/{source}", good, sha[good], 3, 3, by_sensor, run_of[good]),
        ("gate", "ok", f"validated/{source}", good, sha[good], 3, 3, by_sensor, run_of[good]),
        ("profile", "done", f"quality/profile_{source}", good, sha[good], 3, None, by_sensor, run_of[good]),
        ("keys", "done", f"keys/{source}", good, sha[good], 3, None, by_sensor, run_of[good]),
        ("compare", "done", f"keys/comparison_{source}", good, sha[good], None, None, by_sensor, run_of[good]),
        ("stage", "done", f"staged/{source}", good, sha[good], 3, 3, by_sensor, run_of[good]),
        ("load", "loaded", f"raw/{source}", bad, sha[bad], 2, 2, by_sensor, run_of[bad]),
        ("gate", "error", f"validated/{source}", bad, sha[bad], 2, 0, by_sensor, run_of[bad]),
        ("profile", "done", f"quality/profile_{source}", bad, sha[bad], 2, None, by_sensor, run_of[bad]),  # the gate blocks keys, not the profile
    ])  # fmt: skip
    by_schedule = f"schedule harmonize_{target}_schedule"
    [day] = [p.name for p in (tmp_path / "exports" / target).iterdir()]
    exported = tmp_path / "exports" / target / day

    def export(name: str, rows_out: int | None, rows_in: int | None = 3) -> tuple:
        digest = hashlib.sha256((exported / name).read_bytes()).hexdigest()
        return ("export", "done", f"export/{target}", f"{target}/{day}/{name}", digest, rows_in, rows_out, by_schedule, harmonize.run_id)

    [changes] = sorted(p.stem for p in exported.glob(f"{target}_changes_*.csv"))
    # One row per exported file: its bytes' SHA-256, its rows of the 3 harmonized; the merge's
    # change files first (3 keys inserted), then the full export.
    assert [r for r in rows if r[0] in ("harmonize", "export")] == [
        ("harmonize", "done", f"harmonized/{target}", None, None, 3, 3, by_schedule, harmonize.run_id),
        export(f"{changes}.csv", 3, None),
        export(f"{changes}.parquet", 3, None),
        export(f"{target}.csv", 3),
        export(f"{target}_unique_records.csv", 3),
        export(f"{target}_duplicate_records.csv", 0),
        export(f"{target}_report.html", None),  # the target's page: no rows of its own
    ]
    measured = {
        (asset, metric): value
        for asset, metric, value in psql("SELECT asset, metric, value FROM ops.run_metrics WHERE subject = %s AND run_id = %s", (source, run_of[good]))
    }
    assert {k: v for k, v in measured.items() if k[1] != "duration_seconds"} == {
        (f"raw/{source}", "rows"): 3.0,
        (f"validated/{source}", "rows"): 3.0,
        (f"validated/{source}", "rejected_rows"): 0.0,
        (f"validated/{source}", "rejected_share"): 0.0,
        (f"quality/profile_{source}", "quality_score"): pytest.approx(measured[(f"quality/profile_{source}", "quality_score")]),
        (f"quality/profile_{source}", "null_rate"): pytest.approx(1 / 6),  # one blank name of 3 rows x 2 columns
        (f"quality/profile_{source}", "null_rate:id"): 0.0,
        (f"quality/profile_{source}", "null_rate:name"): pytest.approx(1 / 3),
        (f"keys/{source}", "key_uniqueness"): 1.0,
        (f"keys/{source}", "minimal_keys"): 2.0,  # id, and name (ann, bob, blank)
        (f"keys/{source}", "duplicate_rows"): 0.0,
    }
    assert all(measured[(a, "duration_seconds")] > 0 for a in (f"raw/{source}", f"validated/{source}", f"keys/{source}"))
    assert 0 < measured[(f"quality/profile_{source}", "quality_score")] <= 100

    # `harmonizer audit --file NAME` prints the file's entries; --json gives them whole.
    cli = [sys.executable, "-m", "harmonizer_pipeline.cli", "audit"]
    table = subprocess.run([*cli, "--file", good], capture_output=True, text=True, check=True).stdout.splitlines()
    assert table[0].split() == ["at", "action", "status", "asset", "partition_key", "file", "sha256", "rows_in", "rows_out", "launched_by", "run_id"]
    # (The profile runs beside the gate, in either order.)
    assert sorted(line.split()[2:4] for line in table[1:]) == [
        ["compare", "done"],
        ["gate", "ok"],
        ["keys", "done"],
        ["load", "loaded"],
        ["profile", "done"],
        ["stage", "done"],
    ]
    assert all(sha[good][:12] in line and by_sensor in line for line in table[1:])
    # An exported file by its name: the CSV, not the unique or duplicate records beside it.
    [header, line] = subprocess.run([*cli, "--file", f"{target}.csv"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert line.split()[2:6] == ["export", "done", f"export/{target}", f"{target}/{day}/{target}.csv"]
    lines = subprocess.run([*cli, "--file", bad, "--json"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert sorted((e["action"], e["status"], e["rows_out"], e["sha256"]) for e in map(json.loads, lines)) == [
        ("gate", "error", 0, sha[bad]),
        ("load", "loaded", 2, sha[bad]),
        ("profile", "done", None, sha[bad]),
    ]
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    later = subprocess.run([*cli, "--file", good, "--since", tomorrow], capture_output=True, text=True, check=True)
    assert later.stdout == "no audit entries matching\n"
    wrong = subprocess.run([*cli, "--since", "yesterday"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "Invalid value for '--since': 'yesterday' does not match the formats '%Y-%m-%d'" in wrong.stderr


def test_a_failed_load_is_audited_with_its_error(tmp_path, schema, psql):
    suffix = schema.removeprefix("t_")
    source = f"af_{suffix}"
    defs = make_defs(tmp_path, source, f"aft_{suffix}")
    (tmp_path / "in" / "ragged.csv").write_text("id,name\nC1,ann,extra\n")
    with dg.instance_for_test() as instance:
        [run] = land(defs, instance, source)
    assert not run.success
    assert psql("SELECT action, status, file, rows_out, detail, launched_by FROM ops.audit_log WHERE asset = %s", (f"raw/{source}",)) == [
        ("load", "failed", "ragged.csv", None, "ragged.csv: line 2 has 3 fields, the header has 2", "manual (UI, CLI or API)")
    ]


def test_trends_asset_warns_on_an_anomaly_and_plots_the_latest_figures(tmp_path, schema, database_url):
    source = f"tr_{schema.removeprefix('t_')}"
    defs = make_defs(tmp_path, source, f"trt_{schema.removeprefix('t_')}")
    trends_job = defs.resolve_job_def("ops_trends")
    with psycopg.connect(database_url) as conn:
        for i, rows in enumerate([100, 101, 99, 100, 102]):
            metrics.record(conn, f"r{i}", source, f"f{i}", f"raw/{source}", {"rows": rows, "duration_seconds": 0.5})
            metrics.record(conn, f"r{i}", source, f"f{i}", f"validated/{source}", {"rejected_share": 0.0})
    with dg.instance_for_test() as instance:
        result = trends_job.execute_in_process(instance=instance)
        [check] = result.get_asset_check_evaluations()
        assert (check.passed, check.description) == (True, "fewer than 5 earlier files: nothing to judge yet")
        with psycopg.connect(database_url) as conn:
            metrics.record(conn, "r5", source, "f5", f"raw/{source}", {"rows": 2000, "duration_seconds": 0.6})
            metrics.record(conn, "r5", source, "f5", f"validated/{source}", {"rejected_share": 0.0})
        result = trends_job.execute_in_process(instance=instance)
        [check] = result.get_asset_check_evaluations()
        assert (check.passed, check.severity, check.description) == (
            False, dg.AssetCheckSeverity.WARN, "1 of 3 metrics of f5 are anomalies"
        )  # fmt: skip
        [finding] = check.metadata["findings"].value.records
        assert finding.data == {
            "asset": f"raw/{source}",
            "metric": "rows",
            "latest": 2000.0,
            "median": 100.0,
            "robust_z": "1282",
            "history": 5,
        }  # 0.6745 * 1900 / MAD 1
        [materialization] = [m.materialization for m in result.get_asset_materialization_events() if m.asset_key.path[1] == f"trends_{source}"]
        plotted = materialization.metadata
        assert (plotted["rows"], plotted["rejected_share"], plotted["duration_seconds"]) == (
            dg.FloatMetadataValue(2000.0), dg.FloatMetadataValue(0.0), dg.FloatMetadataValue(0.6)
        )  # fmt: skip
        assert (plotted["files_measured"].value, plotted["latest_partition"].value, plotted["anomalies"].value) == (6, "f5", 1)
        assert plotted["last_runs"].value.splitlines()[:2] == ["| file | rows | rejected_share | duration_seconds |", "|---|---|---|---|"]


def test_automation_refreshes_trends_after_a_file_was_measured(tmp_path, schema):
    suffix = schema.removeprefix("t_")
    source = f"ta_{suffix}"
    defs = make_defs(tmp_path, source, f"tat_{suffix}")
    trends_key = dg.AssetKey(["ops", f"trends_{source}"])
    with dg.instance_for_test() as instance:
        requested = AutomationTicks(defs, instance, trends_key)
        assert requested() == (0,)
        (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\n")
        assert [r.success for r in land(defs, instance, source)] == [True]
        assert requested() == (1,)
        assert defs.resolve_job_def("ops_trends").execute_in_process(instance=instance).success
        assert requested() == (0,)
        (tmp_path / "in" / "bad.csv").write_text("id,name\nX1,eve\n")
        assert [r.success for r in land(defs, instance, source)] == [False]
        assert requested() == (1,)  # a blocked file was measured too (raw, validated): its figures count


def reexecutable_load_job() -> dg.JobDefinition:
    """The load job of the source HZ_OPS_SOURCE configured in HZ_OPS_CONFIG (rebuilt in each
    process that executes it)."""
    from harmonizer_pipeline.settings import load_settings_file

    settings = load_settings_file(Path(os.environ["HZ_OPS_CONFIG"]))
    return build_definitions(settings, build_resources()).resolve_job_def(f"load_{os.environ['HZ_OPS_SOURCE']}")


def reexecutable(tmp_path: Path, source: str, monkeypatch) -> None:
    """Make reexecutable_load_job the load job of `source` (as make_defs configured it)."""
    monkeypatch.setenv("HZ_OPS_CONFIG", str(tmp_path / "harmonizer.yaml"))
    monkeypatch.setenv("HZ_OPS_SOURCE", source)


def test_a_manual_rerun_is_audited_as_a_rerun_of_its_parent(tmp_path, schema, psql, monkeypatch):
    suffix = schema.removeprefix("t_")
    source = f"ar_{suffix}"
    defs = make_defs(tmp_path, source, f"art_{suffix}")
    reexecutable(tmp_path, source, monkeypatch)
    (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\nC2,bob\n")
    with dg.instance_for_test() as instance:
        [first] = land(defs, instance, source)
        assert first.success
        # What "Re-execute all" in the UI does: the same job, with the run's tags (its partition
        # among them), as a child of the run.
        rerun = dg.execute_job(
            dg.reconstructable(reexecutable_load_job), instance, tags=first.dagster_run.tags,
            run_config={"execution": {"config": {"in_process": {}}}},
            reexecution_options=dg.ReexecutionOptions(parent_run_id=first.run_id),
        )  # fmt: skip
        assert rerun.success
    assert psql(
        "SELECT action, status, rows_out, launched_by, run_id FROM ops.audit_log WHERE asset IN (%s, %s) ORDER BY id",
        (f"raw/{source}", f"validated/{source}"),
    ) == [
        ("load", "loaded", 2, "manual (UI, CLI or API)", first.run_id),
        ("gate", "ok", 2, "manual (UI, CLI or API)", first.run_id),
        ("load", "loaded", 2, f"re-run of {first.run_id}", rerun.run_id),
        ("gate", "ok", 2, f"re-run of {first.run_id}", rerun.run_id),
    ]


def test_an_automatic_retry_is_audited_as_one_and_keeps_the_first_launcher(tmp_path, schema, psql, monkeypatch):
    from dagster._core.storage.tags import RETRY_NUMBER_TAG, TAGS_TO_MAYBE_OMIT_ON_RETRY

    from harmonizer_pipeline.demo import evaluate_sensor, launch_requests

    suffix = schema.removeprefix("t_")
    source = f"rt_{suffix}"
    defs = make_defs(tmp_path, source, f"rtt_{suffix}")
    reexecutable(tmp_path, source, monkeypatch)
    landed, away = tmp_path / "in" / "one.csv", tmp_path / "one.csv"
    landed.write_text("id,name\nC1,ann\n")
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def(f"{source}_landing")
        tick = evaluate_sensor(defs, sensor, instance)
        landed.rename(away)  # gone for a moment after the sensor saw it: the load fails
        [first] = launch_requests(defs, sensor, instance, tick, tags={"dagster/sensor_name": sensor.name})
        assert not first.success
        away.rename(landed)  # back, the same version
        # What the retry daemon (deploy/dagster.yaml run_retries) launches, as dagster's
        # auto_run_reexecution.retry_run builds it: the parent's tags less those a retry omits,
        # the retry's number, re-executed from the failure.
        _, group = instance.get_run_group(first.run_id)
        tags = {k: v for k, v in first.dagster_run.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY} | {RETRY_NUMBER_TAG: str(len(group))}
        retry = dg.execute_job(
            dg.reconstructable(reexecutable_load_job), instance, tags=tags, run_config={"execution": {"config": {"in_process": {}}}},
            reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        )  # fmt: skip
        assert retry.success
    rows = psql(
        "SELECT action, status, rows_out, launched_by, run_id, detail FROM ops.audit_log WHERE asset IN (%s, %s) ORDER BY id",
        (f"raw/{source}", f"validated/{source}"),
    )
    assert [r[:5] for r in rows] == [
        ("load", "failed", None, f"sensor {source}_landing", first.run_id),
        ("load", "loaded", 1, f"automatic retry 1 of {first.run_id} (sensor {source}_landing)", retry.run_id),
        ("gate", "ok", 1, f"automatic retry 1 of {first.run_id} (sensor {source}_landing)", retry.run_id),
    ]
    assert rows[0][5].startswith("cannot read 'one.csv' in ")


@pytest.mark.parametrize(
    "refusal, head, tail",
    [
        # The rows: PostgreSQL refuses to attach them (the table has a constraint their partition lacks).
        (
            "ALTER TABLE raw.\"{source}\" ADD CONSTRAINT no_boom CHECK (id <> 'BOOM')",
            'ProgrammingError: INVALID_ARGUMENT: [libpq] Failed to execute query \'ALTER TABLE "raw"."{source}" ATTACH PARTITION',
            """ FOR VALUES IN ('two.csv@d23136199f58')': ERROR:  child table is missing constraint "no_boom\"""",
        ),
        # The bookkeeping in the write's transaction, after the registry row was updated in it.
        (
            "CREATE FUNCTION ops.\"refuse_{source}\"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no space left for {source}'; END $$;"
            " CREATE TRIGGER \"refuse_{source}\" BEFORE INSERT ON ops.run_metrics FOR EACH ROW WHEN (NEW.subject = '{source}')"
            ' EXECUTE FUNCTION ops."refuse_{source}"()',
            'OperationalError: IO: [libpq] Failed to execute query \'INSERT INTO "ops"."run_metrics"',
            "': ERROR:  no space left for {source}",
        ),
    ],
    ids=["rows", "bookkeeping"],
)
def test_a_load_failing_on_a_database_error_is_audited_and_its_file_failed(tmp_path, schema, psql, refusal, head, tail):
    suffix = schema.removeprefix("t_")
    source = f"ad_{suffix}"
    head, tail = head.format(source=source), tail.format(source=source)
    defs = make_defs(tmp_path, source, f"adt_{suffix}")
    (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\n")
    with dg.instance_for_test() as instance:
        assert [r.success for r in land(defs, instance, source)] == [True]
        psql(refusal.format(source=source))
        (tmp_path / "in" / "two.csv").write_text("id,name\nBOOM,bob\n")
        [run] = land(defs, instance, source)
    # The run still fails, with the database's error.
    assert not run.success
    [failure] = run.get_step_failure_events()
    assert failure.step_key == f"raw__{source}" and tail in failure.event_specific_data.error.cause.message
    sha = hashlib.sha256(b"id,name\nBOOM,bob\n").hexdigest()
    rows = psql("SELECT action, status, file, sha256, rows_out, run_id, detail FROM ops.audit_log WHERE asset = %s ORDER BY id", (f"raw/{source}",))
    assert [r[:6] for r in rows] == [
        ("load", "loaded", "one.csv", hashlib.sha256(b"id,name\nC1,ann\n").hexdigest(), 1, rows[0][5]),
        ("load", "failed", "two.csv", sha, None, run.run_id),
    ]
    detail = rows[1][6]
    assert detail.startswith(head) and detail.endswith(tail) and "\n" not in detail
    # The file is failed with the same reason, not left pending; none of its rows stayed.
    assert psql("SELECT object_key, status, error FROM ops.file_registry WHERE source = %s ORDER BY first_seen", (source,)) == [
        ("one.csv", "loaded", None),
        ("two.csv", "failed", detail),
    ]
    assert psql(f'SELECT id FROM raw."{source}"') == [("C1",)]


def test_a_load_failing_before_its_rows_are_written_is_audited_and_its_file_failed(tmp_path, schema, psql, database_url, monkeypatch):
    from harmonizer_pipeline.storage.catalog import lock_table
    from harmonizer_pipeline.storage.postgres import harmonizer_home

    suffix = schema.removeprefix("t_")
    source = f"ab_{suffix}"
    defs = make_defs(tmp_path, source, f"abt_{suffix}")
    (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\n")
    # Every connection of the run gives up waiting for a lock after 300 ms (libpq reads PGOPTIONS).
    monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=300")
    # Another writer of raw.<source> holds the table's lock: the IO manager fails taking it, after
    # it opened its transaction and before it wrote a row.
    with psycopg.connect(database_url) as other, dg.instance_for_test() as instance:
        lock_table(other, "raw", source)
        [run] = land(defs, instance, source)
    assert not run.success
    [failure] = run.get_step_failure_events()
    assert failure.step_key == f"raw__{source}" and "canceling statement due to lock timeout" in failure.event_specific_data.error.cause.message
    rows = psql("SELECT action, status, file, sha256, rows_out, run_id, detail FROM ops.audit_log WHERE asset = %s ORDER BY id", (f"raw/{source}",))
    assert [r[:6] for r in rows] == [("load", "failed", "one.csv", hashlib.sha256(b"id,name\nC1,ann\n").hexdigest(), None, run.run_id)]
    detail = rows[0][6]
    # A lock not granted in time is the infrastructure's failure: the landing sensor tries the file again.
    assert detail == (
        "ProgrammingError: INVALID_STATE: [libpq] Execution error [PGRES_FATAL_ERROR]: ERROR:  canceling statement due to lock timeout"
        " (attempt 1 of 3; tried again in 60 s)"
    )
    # Not left pending; no table was made; the staged copy is gone.
    assert psql("SELECT object_key, status, error FROM ops.file_registry WHERE source = %s", (source,)) == [("one.csv", "failed", detail)]
    assert psql("SELECT to_regclass(%s)", (f'raw."{source}"',)) == [(None,)]
    assert not any((harmonizer_home() / "staging" / source).glob("*"))


def test_manual_materializations_of_profile_keys_comparison_and_trends_are_audited(tmp_path, schema, psql):
    suffix = schema.removeprefix("t_")
    source = f"am_{suffix}"
    defs = make_defs(tmp_path, source, f"amt_{suffix}")
    with dg.instance_for_test() as instance:
        for name, text in [("jan.csv", "id,name\nC1,ann\nC2,bob\n"), ("feb.csv", "id,name\nC1,ann\nC3,cy\n")]:
            (tmp_path / "in" / name).write_text(text)
            assert [r.success for r in land(defs, instance, source)] == [True]
        jan, feb = instance.get_dynamic_partitions(f"{source}_files")
        # A person materializes the second file's profile, keys and comparison again, then the trends (UI: "Materialize").
        again = defs.resolve_job_def(f"load_{source}").execute_in_process(
            instance=instance, partition_key=feb,
            asset_selection=[dg.AssetKey(["quality", f"profile_{source}"]), dg.AssetKey(["keys", source]), dg.AssetKey(["keys", f"comparison_{source}"])],
        )  # fmt: skip
        trends_run = defs.resolve_job_def("ops_trends").execute_in_process(instance=instance)
    rows = psql(
        "SELECT action, status, asset, partition_key, file, sha256, rows_in, launched_by, run_id, detail FROM ops.audit_log"
        " WHERE run_id IN (%s, %s) ORDER BY action", (again.run_id, trends_run.run_id),
    )  # fmt: skip
    sha, manual = hashlib.sha256(b"id,name\nC1,ann\nC3,cy\n").hexdigest(), "manual (UI, CLI or API)"
    assert rows == [
        ("compare", "done", f"keys/comparison_{source}", feb, "feb.csv", sha, None, manual, again.run_id,
         f"1 key(s) only in {jan}, 1 only in this file, 0 changed"),
        ("keys", "done", f"keys/{source}", feb, "feb.csv", sha, 2, manual, again.run_id, "key id; 2 minimal keys, 0 repeated rows"),
        ("profile", "done", f"quality/profile_{source}", feb, "feb.csv", sha, 2, manual, again.run_id,
         f"quality score 100.0, 0 recommendation(s), 2 change(s) since {jan}"),
        ("trends", "done", f"ops/trends_{source}", None, None, None, None, manual, trends_run.run_id, "fewer than 5 earlier files: nothing to judge yet"),
    ]  # fmt: skip


def test_a_failed_export_is_audited_with_its_error_and_the_run_still_fails(tmp_path, schema, psql):
    suffix = schema.removeprefix("t_")
    source, target = f"ae_{suffix}", f"aet_{suffix}"
    defs = make_defs(tmp_path, source, target)
    (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\n")
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / target).write_text("a file where the target's folder goes")
    with dg.instance_for_test() as instance:
        assert [r.success for r in land(defs, instance, source)] == [True]
        days = {dt.datetime.now(dt.UTC).date()}
        run = defs.resolve_job_def(f"harmonize_{target}").execute_in_process(instance=instance, raise_on_error=False)
        days.add(dt.datetime.now(dt.UTC).date())
    assert not run.success
    [failure] = run.get_step_failure_events()
    assert failure.step_key == f"export__{target}" and failure.event_specific_data.error.cause.cls_name == "NotADirectoryError"
    rows = psql("SELECT action, status, file, sha256, rows_out, run_id, detail FROM ops.audit_log WHERE asset = %s", (f"export/{target}",))
    assert len(rows) == 1 and rows[0][:6] == ("export", "failed", None, None, None, run.run_id)
    assert rows[0][6] in {f"NotADirectoryError: [Errno 20] Not a directory: '{tmp_path}/exports/{target}/{day}'" for day in days}


def test_a_duplicate_the_landing_sensor_sets_aside_is_audited(tmp_path, schema, psql):
    suffix = schema.removeprefix("t_")
    source = f"as_{suffix}"
    defs = make_defs(tmp_path, source, f"ast_{suffix}")
    content = b"id,name\nC1,ann\n"
    (tmp_path / "in" / "a.csv").write_bytes(content)
    with dg.instance_for_test() as instance:
        assert [r.success for r in land(defs, instance, source)] == [True]
        (tmp_path / "in" / "b.csv").write_bytes(content)
        assert land(defs, instance, source) == []  # no run: the sensor registers it as a duplicate
    assert psql(
        "SELECT action, status, run_id, launched_by, asset, partition_key, file, sha256, detail FROM ops.audit_log WHERE file = 'b.csv' AND asset = %s",
        (f"raw/{source}",),
    ) == [
        (
            "load",
            "duplicate",
            "",
            f"sensor {source}_landing",
            f"raw/{source}",
            None,
            "b.csv",
            hashlib.sha256(content).hexdigest(),
            "same content as a.csv (loaded)",
        )
    ]


def test_the_export_description_names_the_folder_the_files_go_to(tmp_path, monkeypatch):
    from harmonizer_pipeline.storage.postgres import HOME_ENV

    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    key = dg.AssetKey(["export", "people"])
    for export, folder in [({}, tmp_path / "home" / "exports"), ({"directory": "out"}, tmp_path / "out")]:
        config = {
            "sources": {"s": {"landing": {"local": {"path": "in"}}, "target": "people"}},
            "targets": {"people": {"columns": {"id": {}}, "key": ["id"]}},
            "export": export,
        }
        defs = build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())
        description = defs.resolve_assets_def(key).specs_by_key[key].description
        assert description.startswith(f"harmonized.people as csv, parquet, xlsx under {folder}/people/<run date>/, with ")


def test_a_failed_staging_is_audited_with_its_error_and_the_run_still_fails(tmp_path, schema, psql):
    suffix = schema.removeprefix("t_")
    source, target = f"ah_{suffix}", f"aht_{suffix}"
    defs = make_defs(tmp_path, source, target, mapping={"name": "full_name"})  # a column the file does not have
    (tmp_path / "in" / "one.csv").write_text("id,name\nC1,ann\n")
    with dg.instance_for_test() as instance:
        [run] = land(defs, instance, source)
    assert not run.success
    [failure] = run.get_step_failure_events()
    message = f"one.csv: {source}: mapping of 'name' names column(s) ['full_name'] the data does not have; it has ['id', 'name', "
    assert failure.step_key == f"staged__{source}" and failure.event_specific_data.user_failure_data.description.startswith(message)
    [(action, status, asset, rows_out, run_id, detail)] = psql(
        "SELECT action, status, asset, rows_out, run_id, detail FROM ops.audit_log WHERE run_id = %s AND action = 'stage'", (run.run_id,)
    )
    assert (action, status, asset, rows_out, run_id) == ("stage", "failed", f"staged/{source}", None, run.run_id)
    assert detail.startswith(message)
