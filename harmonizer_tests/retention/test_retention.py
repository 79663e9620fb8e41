"""Retention on a real pipeline: files loaded through the sensor and load jobs, harmonized and
exported, then the policy applied with the clock set forward (`now` given to the service); the
ops/retention asset and its schedule through Dagster."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.resources import PostgresResource, build_resources
from harmonizer_pipeline.retention.assets import forget_gone_partitions
from harmonizer_pipeline.retention.expiry import apply_retention
from harmonizer_pipeline.settings import SettingsError, parse_settings
from harmonizer_tests.harmonize.test_harmonize_pipeline import harmonize, land, make_settings, table
from harmonizer_tests.ingest.test_ingest_pipeline import simulated_b2


class Run:
    """The run a retention service call belongs to, as its audit rows name it."""

    run_id, tags, parent_run_id = "retention-test", {"harmonizer/launched_by": "test"}, None


def counts(psql, names) -> dict[str, int]:
    a, b = names["a"], names["b"]
    return {
        table: psql(f"SELECT count(*) FROM {table}")[0][0]
        for table in (f'raw."{a}"', f'raw."{b}"', f'validated."{a}"', f'validated."{b}"', f'staged."{a}"', f'staged."{b}"', f'harmonized."{names["target"]}"')
    }


def test_each_layer_loses_files_older_than_its_limit_and_expired_files_are_not_loaded_again(tmp_path, names, psql):
    retention = {"raw": 10, "validated": 10, "staged": 30, "rejected_rows": 30, "exports": 20}
    settings = make_settings(tmp_path, names, retention=retention)
    defs = build_definitions(settings, build_resources())
    a, b, target = names["a"], names["b"], names["target"]
    postgres = PostgresResource()
    with dg.instance_for_test() as instance:
        (tmp_path / "a" / "jan.csv").write_text("id,full_name,mail\nC1,ann lee,ANN@X.ORG\nC2,bob roe,bob@x\n")
        (tmp_path / "b" / "feb.csv").write_text("kunde,vorname,nachname,mail\nC2,Bob,ROE,bob@roe.de\nC3,cy,,cy@x.de\n")
        assert [r.success for r in land(defs, instance, a) + land(defs, instance, b)] == [True, True]
        assert harmonize(defs, instance, target).success
        loaded = {tables: 2 for tables in counts(psql, names)} | {f'harmonized."{target}"': 3}
        assert counts(psql, names) == loaded
        now = dt.datetime.now(dt.UTC)

        # Nothing is old enough yet.
        assert apply_retention(settings, postgres.connect, Run(), now).removals == []
        # Eleven days on: raw and validated lose both files; the rest keeps them.
        later = apply_retention(settings, postgres.connect, Run(), now + dt.timedelta(days=11))
        assert sorted((r.asset, r.file, r.rows) for r in later.removals) == [
            (f"raw/{a}", "jan.csv", 2), (f"raw/{b}", "feb.csv", 2), (f"validated/{a}", "jan.csv", 2), (f"validated/{b}", "feb.csv", 2),
        ]  # fmt: skip
        assert later.expired == []
        # The profile statistics quote raw values: they leave with the raw rows.
        assert psql("SELECT count(*) FROM quality.column_statistics WHERE source IN (%s, %s)", (a, b)) == [(0,)]
        assert counts(psql, names) == loaded | {f'raw."{a}"': 0, f'raw."{b}"': 0, f'validated."{a}"': 0, f'validated."{b}"': 0}
        # A second run at the same time finds nothing left to remove.
        assert apply_retention(settings, postgres.connect, Run(), now + dt.timedelta(days=11)).removals == []

        # A month on: staged and the rejected rows go too; the target loses every row through its merge.
        month = apply_retention(settings, postgres.connect, Run(), now + dt.timedelta(days=31))
        # jan.csv's one rejected value (bob@x) was the mapping's: it leaves with the staged rows.
        assert sorted((r.asset, r.file, r.rows) for r in month.removals if r.partition_key) == [(f"staged/{a}", "jan.csv", 2), (f"staged/{b}", "feb.csv", 2)]
        [export_folder] = [r for r in month.removals if r.partition_key is None]
        assert export_folder.asset == f"export/{target}" and export_folder.file == str(tmp_path / "exports" / target / now.date().isoformat())
        assert not (tmp_path / "exports" / target / now.date().isoformat()).exists()
        assert counts(psql, names) == {tables: 0 for tables in loaded}
        assert not list((tmp_path / "exports" / "pages").rglob("*.html"))  # the files' pages quote their values: gone with the raw rows
        # jan.csv left first (C2 kept feb.csv's row, which lost its duplicate), then feb.csv.
        assert psql(f'SELECT _operation, customer FROM harmonized."{target}_changes" ORDER BY _merge_id, customer') == [
            ("delete", "C1"), ("update", "C2"), ("delete", "C2"), ("delete", "C3"),
        ]  # fmt: skip
        assert psql("SELECT count(*) FROM quality.rejected_rows WHERE source IN (%s, %s)", (a, b)) == [(0,)]
        assert sorted(month.expired) == sorted(psql("SELECT source, partition_key FROM ops.file_registry WHERE source IN (%s, %s)", (a, b)))
        assert psql("SELECT source, object_key, status, sha256 IS NOT NULL FROM ops.file_registry WHERE source IN (%s, %s) ORDER BY id", (a, b)) == [
            (a, "jan.csv", "expired", True), (b, "feb.csv", "expired", True),
        ]  # fmt: skip
        audit = psql(
            "SELECT action, asset, file, rows_in, launched_by FROM ops.audit_log WHERE run_id = 'retention-test' AND action = 'expire' AND partition_key IS NOT NULL ORDER BY id"
        )
        assert [(action, asset, file, rows) for action, asset, file, rows, _ in audit] == [
            ("expire", f"raw/{a}", "jan.csv", 2), ("expire", "quality/column_statistics", "jan.csv", 6), ("expire", f"pages/{a}", "jan.csv", 1),
            ("expire", f"validated/{a}", "jan.csv", 2),
            ("expire", f"raw/{b}", "feb.csv", 2), ("expire", "quality/column_statistics", "feb.csv", 8), ("expire", f"pages/{b}", "feb.csv", 1),
            ("expire", f"validated/{b}", "feb.csv", 2),
            ("expire", f"staged/{a}", "jan.csv", 2), ("expire", "ops/file_registry", "jan.csv", None),
            ("expire", f"staged/{b}", "feb.csv", 2), ("expire", "ops/file_registry", "feb.csv", None),
        ]  # fmt: skip
        assert {launched_by for *_, launched_by in audit} == {"test"}

        # ops/retention (nothing left to remove) deletes the expired files' dynamic partitions.
        assert len(instance.get_dynamic_partitions(f"{a}_files")) == 1
        run = defs.resolve_job_def("retention").execute_in_process(instance=instance)
        assert instance.get_dynamic_partitions(f"{a}_files") == [] and instance.get_dynamic_partitions(f"{b}_files") == []
        [materialization] = run.asset_materializations_for_node("ops__retention")
        assert materialization.metadata["summary"].value == "nothing older than its layer's limit"
        assert materialization.metadata["partitions_deleted"].value.count("- `") == 2
        assert forget_gone_partitions(instance, settings, postgres) == []

        # The same files stay where they were: the sensor loads nothing again, and the same content
        # under a new name is a duplicate of the expired file.
        (tmp_path / "a" / "jan_again.csv").write_text((tmp_path / "a" / "jan.csv").read_text())
        assert land(defs, instance, a) == [] and land(defs, instance, b) == []
        assert psql("SELECT status, error FROM ops.file_registry WHERE source = %s AND object_key = 'jan_again.csv'", (a,)) == [
            ("duplicate", "same content as jan.csv (expired)")
        ]
        assert harmonize(defs, instance, target).success
        assert table(psql, target) == []


def test_retention_daily_runs_when_a_limit_is_set(tmp_path, names):
    schedule = build_definitions(make_settings(tmp_path, names, retention={"staged": 90}), build_resources()).resolve_schedule_def("retention_daily")
    assert (schedule.cron_schedule, schedule.job_name, schedule.default_status) == ("0 2 * * *", "retention", dg.DefaultScheduleStatus.RUNNING)
    unset = build_definitions(make_settings(tmp_path, names), build_resources()).resolve_schedule_def("retention_daily")
    assert unset.default_status == dg.DefaultScheduleStatus.STOPPED


def test_export_folders_in_b2_older_than_the_limit_are_deleted(tmp_path, names, psql):
    resources, _ = simulated_b2()
    bucket = resources["landing"].b2_api().create_bucket("exports", "allPrivate")
    target = names["target"]
    for name in (f"out/{target}/2025-01-01/a.csv", f"out/{target}/2025-01-01/a.zip", f"out/{target}/2025-02-10/a.csv", f"out/{target}/notes.txt"):
        bucket.upload_bytes(b"x", name)
    bucket.upload_bytes(b"y", f"out/{target}/2025-01-01/a.csv")  # a second version: it goes too
    settings = make_settings(tmp_path, names, export={"b2": {"bucket": "exports", "prefix": "out/"}}, retention={"exports": 30})
    outcome = apply_retention(settings, PostgresResource().connect, Run(), dt.datetime(2025, 2, 15, tzinfo=dt.UTC), resources["landing"].b2_api)
    assert [(r.asset, r.file, r.rows) for r in outcome.removals] == [(f"export/{target}", f"b2://exports/out/{target}/2025-01-01/", 3)]
    assert sorted(v.file_name for v, _ in bucket.ls(f"out/{target}/", latest_only=False, recursive=True)) == [
        f"out/{target}/2025-02-10/a.csv", f"out/{target}/notes.txt",
    ]  # fmt: skip
    assert psql("SELECT action, asset, file, rows_in FROM ops.audit_log WHERE file = %s", (f"b2://exports/out/{target}/2025-01-01/",)) == [
        ("expire", f"export/{target}", f"b2://exports/out/{target}/2025-01-01/", 3)
    ]


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ({"raw": 0}, "retention.raw: Input should be greater than 0"),
        ({"validated": -3}, "retention.validated: Input should be greater than 0"),
        ({"staged": "soon"}, "retention.staged: Input should be a valid integer, unable to parse string as an integer"),
        ({"rejected_rows": 1.5}, "retention.rejected_rows: Input should be a valid integer, got a number with a fractional part"),
        ({"exports": 0}, "retention.exports: Input should be greater than 0"),
        ({"cron": "daily"}, "retention.cron: 'daily' is not a cron string of five fields (minute hour day month weekday)"),
        ({"mapped": 3}, "retention.mapped: Extra inputs are not permitted"),
    ],
)
def test_bad_retention_settings_name_the_field(section, line):
    with pytest.raises(SettingsError) as caught:
        parse_settings(json.dumps({"retention": section}), base_dir=Path.cwd())
    assert caught.value.lines == [f"harmonizer.yaml: {line}"]
