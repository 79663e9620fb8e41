"""Schedules from harmonizer.yaml, evaluated at given times with Dagster's own contexts."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from harmonizer_pipeline.definitions import build_definitions, defs
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import parse_settings

BERLIN = dt.timezone(dt.timedelta(hours=1))


def test_the_shipped_schedules_take_cron_and_time_zone_from_harmonizer_yaml():
    found = {s.name: (s.cron_schedule, s.execution_timezone, s.default_status) for s in defs.schedules}
    stopped = dg.DefaultScheduleStatus.STOPPED
    assert found == {
        "harmonize_patients_schedule": ("0 6 * * *", "Europe/Berlin", stopped),
        **{f"full_profile_{s}": ("0 3 * * 0", "Europe/Berlin", stopped) for s in ("clinic_a", "clinic_b", "clinic_c", "partner_feed")},
        # Stopped while no retention limit is set (harmonizer.yaml sets none).
        "retention_daily": ("0 2 * * *", "Europe/Berlin", stopped),
    }
    with dg.instance_for_test():
        assert defs.resolve_schedule_def("harmonize_patients_schedule").job_name == "harmonize_patients"


def make_defs(tmp_path: Path, source: str, **schedules) -> dg.Definitions:
    (tmp_path / "landing").mkdir(exist_ok=True)
    config = {
        "sources": {source: {"landing": {"local": {"path": "landing", "glob": "*.csv"}}, "target": f"{source}_t"}},
        "targets": {f"{source}_t": {"columns": {"id": {}}, "key": ["id"], "schedule": "30 7 * * 1-5"}},
        "schedules": {"timezone": "Europe/Berlin", "running": True, **schedules},
    }
    return build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())


def test_a_target_schedule_overrides_the_default_and_runs_its_harmonize_job(tmp_path, schema):
    source = schema.replace("t_", "s_")
    local = make_defs(tmp_path, source)
    # Resolved on a live instance: Dagster's definitions load context refers to the current one.
    with dg.instance_for_test() as instance:
        schedule = local.resolve_schedule_def(f"harmonize_{source}_t_schedule")
        assert (schedule.cron_schedule, schedule.execution_timezone, schedule.default_status) == (
            "30 7 * * 1-5",
            "Europe/Berlin",
            dg.DefaultScheduleStatus.RUNNING,
        )
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 23, 7, 30, tzinfo=BERLIN), repository_def=local.get_repository_def()
        )
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["harmonizer/launched_by"] == f"schedule harmonize_{source}_t_schedule"
    assert schedule.job_name == f"harmonize_{source}_t"


def test_the_daemon_ticks_at_the_cron_times_in_the_configured_time_zone(tmp_path, schema):
    """The iterator Dagster's scheduler daemon ticks by: weekdays 07:30 Berlin time, across the
    switch to summer time (28 March 2027), so 06:30 UTC before it and 05:30 UTC after."""
    from dagster._utils.schedules import schedule_execution_time_iterator

    source = schema.replace("t_", "s_")
    local = make_defs(tmp_path, source, full_profile="0 4 * * 6")
    with dg.instance_for_test():
        harmonize = local.resolve_schedule_def(f"harmonize_{source}_t_schedule")
        profile = local.resolve_schedule_def(f"full_profile_{source}")

    def ticks(schedule: dg.ScheduleDefinition, count: int) -> list[str]:
        start = dt.datetime(2027, 3, 25, 12, 0, tzinfo=dt.UTC).timestamp()
        times = schedule_execution_time_iterator(start, schedule.cron_schedule, schedule.execution_timezone)
        return [next(times).astimezone(dt.UTC).strftime("%a %d %H:%M") for _ in range(count)]

    assert ticks(harmonize, 3) == ["Fri 26 06:30", "Mon 29 05:30", "Tue 30 05:30"]
    assert ticks(profile, 2) == ["Sat 27 03:00", "Sat 03 02:00"]


def test_the_full_profile_schedule_profiles_the_latest_file_again(tmp_path, schema):
    source = schema.replace("t_", "s_")
    local = make_defs(tmp_path, source, full_profile="0 4 * * 6")
    saturday = dt.datetime(2026, 11, 28, 4, 0, tzinfo=BERLIN)
    with dg.instance_for_test() as instance:
        schedule = local.resolve_schedule_def(f"full_profile_{source}")
        empty = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=saturday, repository_def=local.get_repository_def())
        )
        assert empty.run_requests == [] and empty.skip_message == f"no file of {source} has been loaded yet"
        sensor = local.sensors[0]
        for name in ("a.csv", "b.csv"):
            (tmp_path / "landing" / name).write_text(f"id,city\n1,Köln\n2,{name}\n")
            launch_requests(local, sensor, instance, evaluate_sensor(local, sensor, instance))
        latest = instance.get_dynamic_partitions(f"{source}_files")[-1]
        # A file landed after it that failed to load has nothing to profile: the loaded one is taken.
        (tmp_path / "landing" / "c.csv").write_text("id,city\n1,Köln\n2,x,y\n")
        [failed] = launch_requests(local, sensor, instance, evaluate_sensor(local, sensor, instance))
        assert not failed.success and instance.get_dynamic_partitions(f"{source}_files")[-1].startswith("c.csv@")
        [request] = schedule.evaluate_tick(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=saturday, repository_def=local.get_repository_def())
        ).run_requests
        assert latest.startswith("b.csv@") and (request.partition_key, request.run_key) == (latest, f"{latest}@{saturday.isoformat()}")
        run = local.resolve_job_def(f"profile_{source}").execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)
        assert run.success
        assert [e.asset_key.to_user_string() for e in run.get_asset_materialization_events()] == [f"quality/profile_{source}"]


def test_null_switches_a_schedule_off(tmp_path, schema):
    source = schema.replace("t_", "s_")
    local = make_defs(tmp_path, source, full_profile=None)
    assert [s.name for s in local.schedules] == [f"harmonize_{source}_t_schedule", "retention_daily"]


def test_null_harmonize_leaves_only_targets_with_a_cron_of_their_own(tmp_path, schema):
    source = schema.replace("t_", "s_")
    (tmp_path / "landing").mkdir()
    config = {
        "sources": {source: {"landing": {"local": {"path": "landing", "glob": "*.csv"}}, "target": f"{source}_t"}},
        "targets": {f"{source}_t": {"columns": {"id": {}}, "key": ["id"]}, f"{source}_u": {"columns": {"id": {}}, "key": ["id"], "schedule": "0 5 * * *"}},
        "schedules": {"harmonize": None, "full_profile": None},
    }
    local = build_definitions(parse_settings(json.dumps(config), base_dir=tmp_path), build_resources())
    assert [s.name for s in local.schedules] == [f"harmonize_{source}_u_schedule", "retention_daily"]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ('schedules: {harmonize: "61 * * * *"}', "schedules.harmonize: '61 * * * *' is not a cron string of five fields"),
        ("schedules: {full_profile: '@daily'}", "schedules.full_profile: '@daily' is not a cron string of five fields"),
        ("schedules: {timezone: Mars/Base}", "schedules.timezone: unknown time zone 'Mars/Base'"),
        ("schedules: {running: sometimes}", "schedules.running: Input should be a valid boolean"),
        ("schedules: {every: day}", "schedules.every: Extra inputs are not permitted"),
        ("targets: {t: {columns: {id: {}}, key: [id], schedule: '* *'}}", "targets.t.schedule: '* *' is not a cron string"),
    ],
)
def test_bad_schedule_fields_name_the_field(fragment, message):
    from harmonizer_pipeline.settings import SettingsError

    with pytest.raises(SettingsError) as caught:
        parse_settings(fragment, base_dir=Path("/tmp"))
    assert message in str(caught.value)
