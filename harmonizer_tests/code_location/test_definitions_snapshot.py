"""The code location's shape for the shipped harmonizer.yaml, compared with a snapshot: asset keys,
their groups, partitions, deps, checks and automation conditions; jobs, schedules and sensors.
A change to any of them shows up here as a diff to review. After an intended change:
`.venv/bin/python -m pytest harmonizer_tests/code_location/test_definitions_snapshot.py --update-snapshots`."""

import json
from pathlib import Path

import dagster as dg

from harmonizer_pipeline.definitions import defs

SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "definitions.json"


def condition_text(condition: dg.AutomationCondition | None) -> str | None:
    """name[label](children) all the way down, e.g. AND[after harmonized](SINCE(...), NOT(...))."""
    if condition is None:
        return None
    label = condition.get_label()
    children = ", ".join(condition_text(child) for child in condition.children)
    return f"{condition.name}{f'[{label}]' if label else ''}{f'({children})' if children else ''}"


def partitions_text(partitions: dg.PartitionsDefinition | None) -> str | None:
    return None if partitions is None else str(partitions)


def definitions_shape(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    checks: dict[str, list] = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(key)
        checks.setdefault(key.asset_key.to_user_string(), []).append({"name": key.name, "blocking": spec.blocking})
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": partitions_text(node.partitions_def),
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "checks": checks.get(key.to_user_string(), []),
            "automation_condition": condition_text(node.automation_condition),
        }
    jobs = {}
    for job in sorted(definitions.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):
            continue  # Dagster's implicit asset job
        jobs[job.name] = {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys),
            "partitions": partitions_text(job.partitions_def),
            "tags": dict(sorted(job.tags.items())),
        }
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name, "default_status": s.default_status.value}
        for s in sorted(definitions.schedules or [], key=lambda s: s.name)
    }
    sensors = {}
    for sensor in sorted(definitions.sensors or [], key=lambda s: s.name):
        automation = isinstance(sensor, dg.AutomationConditionSensorDefinition)
        sensors[sensor.name] = {
            "kind": "automation" if automation else "sensor",
            "targets": str(sensor.asset_selection) if automation else sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
        }
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors}


def test_the_definitions_match_their_snapshot(request):
    shape = json.loads(json.dumps(definitions_shape(defs)))
    if request.config.getoption("--update-snapshots"):
        SNAPSHOT.write_text(json.dumps(shape, indent=1, sort_keys=False) + "\n")
    assert shape == json.loads(SNAPSHOT.read_text())
