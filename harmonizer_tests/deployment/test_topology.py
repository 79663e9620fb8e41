"""The deployment's process topology for real: `dagster code-server start`, `dagster-webserver`
and `dagster-daemon run` with deploy/dagster.yaml on PostgreSQL (harmonizer_tests/deployment/harness.py,
fixture `deployed`). A file dropped into the landing folder is loaded by the sensor the daemon
runs, automation carries it on to harmonized/ and export/, and every claim is read back through
the webserver's GraphQL API and from PostgreSQL."""

import hashlib
import urllib.request

import psycopg
import pytest

from harmonizer_tests.deployment.harness import LOCATION, METADATA_FRAGMENT, SAMPLE_FILE, DeploymentError, metadata

pytestmark = pytest.mark.slow

SHA256 = hashlib.sha256(SAMPLE_FILE.read_bytes()).hexdigest()
PARTITION = f"{SAMPLE_FILE.name}@{SHA256[:12]}"
HEADER = SAMPLE_FILE.read_text().splitlines()[0].split(",")
LINEAGE = ["_row_number", "_source_file", "_load_id", "_ingested_at", "_partition"]
ROWS, REJECTED = 25, 1  # the sample's data lines; P0025's birth date 1985-13-40 is no date

CHECKS_QUERY = (
    METADATA_FRAGMENT
    + """
query Checks($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    ... on AssetNode {
      assetChecksOrError {
        ... on AssetChecks {
          checks {
            name
            blocking
            executionForLatestMaterialization {
              runId status
              evaluation { severity success description metadataEntries { ...Meta } }
            }
          }
        }
      }
    }
  }
}
"""
)


def checks(deployed, path: list[str]) -> dict[str, dict]:
    node = deployed.graphql(CHECKS_QUERY, {"key": {"path": path}})["assetNodeOrError"]
    return {c["name"]: c for c in node["assetChecksOrError"]["checks"]}


def only_materialization(deployed, path: list[str]) -> tuple[dict, dict]:
    [event] = deployed.materializations(path)
    return event, metadata(event["metadataEntries"])


def query(deployed, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(deployed.database_url) as conn:
        return conn.execute(sql, params).fetchall()


def test_the_landing_sensor_launched_one_load_run_that_succeeded(deployed):
    assert deployed.automation_status == "RUNNING"
    # The file landed under a running sensor: its first tick found the folder empty, a later one the file.
    assert deployed.empty_tick["status"] == "SKIPPED"
    assert "SUCCESS" in [t["status"] for t in deployed.sensor_state("clinic_a_landing")["ticks"]]
    [run] = deployed.runs(job="load_clinic_a")
    assert run == deployed.load_run
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (run["status"], run["jobName"]) == ("SUCCESS", "load_clinic_a")
    assert {k: tags[k] for k in ("harmonizer/source", "harmonizer/file", "dagster/sensor_name", "dagster/partition", "dagster/code_location")} == {
        "harmonizer/source": "clinic_a",
        "harmonizer/file": SAMPLE_FILE.name,
        "dagster/sensor_name": "clinic_a_landing",
        "dagster/partition": PARTITION,
        "dagster/code_location": LOCATION,
    }
    # The tags the sensor set find the same run.
    assert [r["runId"] for r in deployed.runs(tags={"harmonizer/source": "clinic_a", "harmonizer/file": SAMPLE_FILE.name})] == [run["runId"]]


def test_the_file_materialized_raw_and_validated_with_row_counts_and_the_gate(deployed):
    run_id = deployed.load_run["runId"]
    raw, raw_meta = only_materialization(deployed, ["raw", "clinic_a"])
    assert (raw["runId"], raw["partition"]) == (run_id, PARTITION)
    assert {k: raw_meta[k] for k in ("file", "sha256", "format", "encoding", "delimiter", "dagster/partition_row_count", "partition")} == {
        "file": SAMPLE_FILE.name, "sha256": SHA256, "format": "csv", "encoding": "utf-8", "delimiter": ",",
        "dagster/partition_row_count": ROWS, "partition": PARTITION,
    }  # fmt: skip
    assert [name for name, _ in raw_meta["dagster/column_schema"]] == HEADER + LINEAGE

    validated, validated_meta = only_materialization(deployed, ["validated", "clinic_a"])
    assert (validated["runId"], validated["partition"], validated_meta["dagster/partition_row_count"]) == (run_id, PARTITION, ROWS - REJECTED)
    assert dict(validated_meta["dagster/column_schema"])["birth_date"] == "timestamp without time zone"

    gate = checks(deployed, ["validated", "clinic_a"])["schema_gate"]
    execution = gate["executionForLatestMaterialization"]
    assert (gate["blocking"], execution["runId"], execution["status"]) == (True, run_id, "SUCCEEDED")
    assert (execution["evaluation"]["severity"], execution["evaluation"]["success"]) == ("WARN", True)
    assert execution["evaluation"]["description"] == ("1 of 25 rows rejected (4.00%) and quarantined in quality.rejected_rows, within max_reject_rate 5.00%")
    gate_meta = metadata(execution["evaluation"]["metadataEntries"])
    assert (gate_meta["rows"], gate_meta["rejected_rows"], gate_meta["max_reject_rate"]) == (ROWS, REJECTED, 0.05)
    assert gate_meta["failures"] == [{"check": "coerce_dtype('datetime64[ns]')", "column": "birth_date", "count": 1}]

    _, profile_meta = only_materialization(deployed, ["quality", "profile_clinic_a"])
    assert profile_meta["rows"] == ROWS
    assert [c["column"] for c in profile_meta["columns"]] == HEADER
    drift = checks(deployed, ["quality", "profile_clinic_a"])["drift"]["executionForLatestMaterialization"]
    assert (drift["status"], drift["evaluation"]["description"]) == ("SUCCEEDED", "first file of the source: nothing to compare with")

    _, keys_meta = only_materialization(deployed, ["keys", "clinic_a"])
    assert (keys_meta["rows"], keys_meta["suggested_key"]) == (ROWS - REJECTED, "patient_id")


def test_the_rows_are_in_postgresql(deployed):
    run_id = deployed.load_run["runId"]
    assert query(deployed, "SELECT _partition, _load_id, count(*) FROM raw.clinic_a GROUP BY 1, 2") == [(PARTITION, run_id, ROWS)]
    assert query(deployed, "SELECT _partition, count(*) FROM validated.clinic_a GROUP BY 1") == [(PARTITION, ROWS - REJECTED)]
    assert query(deployed, "SELECT partition_key, _row_number, column_name, check_name, failure_case FROM quality.rejected_rows") == [
        (PARTITION, 26, "birth_date", "coerce_dtype('datetime64[ns]')", "1985-13-40")
    ]
    assert query(deployed, "SELECT object_key, status, rows, run_id FROM ops.file_registry") == [(SAMPLE_FILE.name, "loaded", ROWS, run_id)]


def test_automation_carried_the_load_on_to_harmonized_and_export(deployed):
    runs = deployed.automation_runs()
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(runs)
    # The tag the instance's per-target run limit counts (deploy/dagster.yaml).
    assert [{t["key"]: t["value"] for t in r["tags"]}["harmonizer/target"] for r in runs] == ["patients"] * len(runs)
    by_asset = {"/".join(k["path"]): r["runId"] for r in runs for k in r["assetSelection"]}

    harmonized, harmonized_meta = only_materialization(deployed, ["harmonized", "patients"])
    assert harmonized["runId"] == by_asset["harmonized/patients"]
    assert {k: harmonized_meta[k] for k in ("rows_mapped", "duplicate_keys", "dagster/row_count")} == {
        "rows_mapped": ROWS - REJECTED,
        "duplicate_keys": 0,
        "dagster/row_count": ROWS - REJECTED,
    }
    assert query(deployed, "SELECT count(*), count(DISTINCT (last_name, first_name, birth_date)) FROM harmonized.patients") == [
        (ROWS - REJECTED, ROWS - REJECTED)
    ]

    export, export_meta = only_materialization(deployed, ["export", "patients"])
    assert export["runId"] == by_asset["export/patients"]
    directory = export_meta["directory"]
    assert directory.startswith(str(deployed.workdir / "home" / "exports" / "patients"))
    rows = {r["output"]: r["rows"] for r in export_meta["rows"]}
    assert rows["patients.csv"] == ROWS - REJECTED
    csv = (deployed.workdir / directory / "patients.csv").read_text().splitlines()
    assert len(csv) == 1 + ROWS - REJECTED


def test_the_daemon_sent_the_quarantine_warning_to_the_alert_webhook(deployed):
    """harmonizer_alerts, run by the daemon on PostgreSQL storage, posts the file's warning."""
    try:
        [alert] = deployed.wait_for(
            "the quarantine warning at the alert webhook",
            lambda: [a for a in deployed.alerts.on("/alerts") if a["check"] == "quarantine"],
            timeout=120,
        )
    except DeploymentError as err:
        ticks = [line for line in deployed.logs["daemon"].read_text(errors="replace").splitlines() if "harmonizer_alerts" in line]
        raise AssertionError(f"{err}\nthe alert sensor's ticks:\n" + "\n".join(ticks)) from None
    load_run = deployed.load_run["runId"]
    assert {k: alert[k] for k in ("event", "asset", "check", "severity", "file", "partition", "job", "run_id", "run_url")} == {
        "event": "check_warning", "asset": "validated/clinic_a", "check": "quarantine", "severity": "WARN",
        "file": SAMPLE_FILE.name, "partition": PARTITION, "job": "load_clinic_a", "run_id": load_run,
        "run_url": f"{deployed.url}/runs/{load_run}",
    }  # fmt: skip
    assert alert["counts"] == {"rows": ROWS, "rejected_rows": REJECTED, "reject_rate": REJECTED / ROWS, "max_reject_rate": 0.05}
    assert alert["message"] == "1 of 25 rows rejected (4.00%) and quarantined in quality.rejected_rows, within max_reject_rate 5.00%"
    # The link opens the run in the UI.
    with urllib.request.urlopen(alert["run_url"], timeout=30) as page:
        assert page.status == 200
