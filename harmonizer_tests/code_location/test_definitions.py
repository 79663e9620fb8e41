"""The code location loads, its sensors load the bundled sample data, and the demo target is
harmonized and exported end to end, with the numbers the demo prints."""

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import dagster as dg
import openpyxl
import pandas as pd
import pytest
from psycopg import sql

from harmonizer_pipeline.bookkeeping import registry
from harmonizer_pipeline.definitions import defs
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.settings import CONFIG_ENV
from harmonizer_tests.code_location.test_settings import BAD_SETTINGS, bad_settings_lines
from harmonizer_tests.loopback import free_port

SAMPLE_SOURCES = ("clinic_a", "clinic_b", "clinic_c", "partner_feed")
# Per sample source: its raw, validated, profile, keys, comparison, trends and staged assets; the target's two.
SAMPLE_ASSETS = {
    key
    for name in SAMPLE_SOURCES
    for key in (
        f"raw/{name}",
        f"validated/{name}",
        f"quality/profile_{name}",
        f"keys/{name}",
        f"keys/comparison_{name}",
        f"ops/trends_{name}",
        f"staged/{name}",
    )
} | {"harmonized/patients", "export/patients", "ops/retention", "keys/file_comparisons", "keys/relations"}


def test_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == SAMPLE_ASSETS
    assert sorted(s.name for s in defs.sensors) == sorted(
        [f"{name}_landing" for name in SAMPLE_SOURCES] + [f"automation_{name}" for name in (*SAMPLE_SOURCES, "patients")]
    )
    automation = {s.name: s for s in defs.sensors if isinstance(s, dg.AutomationConditionSensorDefinition)}
    assert automation["automation_patients"].run_tags == {"harmonizer/target": "patients"}
    assert automation["automation_clinic_a"].run_tags == {"harmonizer/source": "clinic_a"}
    assert {s.default_status for s in automation.values()} == {dg.DefaultSensorStatus.RUNNING}
    assert defs.resolve_job_def("load_clinic_a").partitions_def.name == "clinic_a_files"


ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def bare_shell() -> dict[str, str]:
    """A new user's shell in the repository root: the project's venv active, no harmonizer or Dagster variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARMONIZER_", "DAGSTER_"))}
    return {**env, "VIRTUAL_ENV": sys.prefix, "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"}


@pytest.mark.slow
@pytest.mark.parametrize("command", [["dagster", "definitions", "validate", "-w", "workspace.yaml"], ["dg", "check", "defs"]])
def test_dagsters_standard_commands_validate_the_code_location_in_the_repository_root(command):
    done = subprocess.run(command, cwd=ROOT, env=bare_shell(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("All code locations passed validation." if command[0] == "dagster" else "All definitions loaded successfully.") in done.stdout + done.stderr


@pytest.mark.slow
def test_dg_lists_the_code_locations_definitions_in_the_repository_root():
    done = subprocess.run(["dg", "list", "defs", "--json"], cwd=ROOT, env=bare_shell(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert {asset["asset_key"] for asset in listed["assets"]} == SAMPLE_ASSETS
    assert {sensor["name"] for sensor in listed["sensors"]} == {s.name for s in defs.sensors}


@pytest.mark.slow
def test_dagster_dev_serves_the_code_location_from_the_repository_root():
    port, homes_before = free_port(), set(ROOT.glob(".tmp_dagster_home_*"))
    server = subprocess.Popen(
        ["dagster", "dev", "-p", str(port)], cwd=ROOT, env=bare_shell(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    try:
        deadline, served = time.monotonic() + 180, None
        while served is None and time.monotonic() < deadline and server.poll() is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query, headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    nodes = json.load(response)["data"]["assetNodes"]
                served = {"/".join(node["assetKey"]["path"]) for node in nodes} if nodes else None
            except OSError:
                pass
            if served is None:
                time.sleep(1)
        assert served == SAMPLE_ASSETS
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            # A loaded machine can take longer to shut the webserver and daemon down: not the point here.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=60)
        for home in set(ROOT.glob(".tmp_dagster_home_*")) - homes_before:
            shutil.rmtree(home, ignore_errors=True)  # left behind only when killed


def test_dagster_shows_a_line_per_bad_setting_first_and_no_frame_of_the_settings_code(tmp_path):
    config, home = tmp_path / "harmonizer.yaml", tmp_path / "dagster_home"
    config.write_text(BAD_SETTINGS)
    home.mkdir()
    (home / "dagster.yaml").write_text("")  # a throwaway instance: validation needs no database
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "harmonizer_pipeline.definitions"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "DAGSTER_HOME": str(home), CONFIG_ENV: str(config)},
    )  # fmt: skip
    assert done.returncode == 1
    shown = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout).splitlines()
    [start] = [i for i, line in enumerate(shown) if line.endswith(" - ERROR - Validation failed for code location harmonizer_pipeline.definitions:")]
    first, *rest = bad_settings_lines(config)
    assert shown[start + 1 : start + 8] == ["", f"harmonizer_pipeline.settings.SettingsError: {first}", *rest, "", "Stack Trace:"]
    # Below it only Dagster's hidden frames and the line of definitions.py that raises.
    frames = [line.strip() for line in shown if line.strip().startswith("File ")]
    assert [frame.split(",")[0] for frame in frames] == [f'File "{sys.modules["harmonizer_pipeline.definitions"].__file__}"']
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("environment", "error"),
    [
        (
            "production",
            "DeploymentError: HARMONIZER_ENVIRONMENT=production needs HARMONIZER_DATABASE_URL: the embedded PostgreSQL server is for development only",
        ),
        ("staging", "DeploymentError: HARMONIZER_ENVIRONMENT='staging' is not one of development, production"),
    ],
)
def test_a_deployed_code_location_without_its_database_stops_at_start_up_with_one_line(tmp_path, environment, error):
    env = {**bare_shell(), "HARMONIZER_ENVIRONMENT": environment, "HARMONIZER_HOME": str(tmp_path)}
    done = subprocess.run(
        ["dagster", "definitions", "validate", "-m", "harmonizer_pipeline.definitions"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    shown = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr).splitlines()
    assert done.returncode == 1
    assert f"harmonizer_pipeline.storage.postgres.{error}" in shown
    assert not (tmp_path / "pgdata").exists()  # no embedded server was started


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("home")
        patch.setenv("HARMONIZER_HOME", str(home))
        yield home / "exports" / "patients" / dt.datetime.now(dt.UTC).date().isoformat()


@pytest.fixture(scope="module")
def sample_runs(exports):
    with dg.instance_for_test() as instance:
        runs = {
            sensor.name: launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))
            for sensor in (defs.resolve_sensor_def(f"{name}_landing") for name in SAMPLE_SOURCES)
        }
        harmonize = defs.resolve_job_def("harmonize_patients")
        runs["harmonize"] = [harmonize.execute_in_process(instance=instance, raise_on_error=False) for _ in range(2)]
        return runs


def test_sensors_load_every_sample_file(sample_runs, psql):
    assert {name: [r.success for r in runs] for name, runs in sample_runs.items()} == {
        "clinic_a_landing": [True],
        "clinic_b_landing": [True],
        "clinic_c_landing": [True],
        "partner_feed_landing": [True],
        "harmonize": [True, True],
    }
    with PostgresResource().connect() as conn:
        loaded = {(e.source, e.object_key): (e.status, e.rows) for e in registry.entries(conn)}
    assert loaded[("clinic_a", "patients_2026-11.csv")] == ("loaded", 25)
    assert loaded[("clinic_b", "export.csv")] == ("loaded", 15)


def test_raw_layer_keeps_text_exactly_as_written_with_lineage(sample_runs, psql):
    first = psql(sql.SQL("SELECT patient_id, postal_code, balance, _source_file, _row_number FROM raw.clinic_a ORDER BY _row_number LIMIT 4"))
    assert first == [
        ("P0001", "10115", "22,46", "patients_2026-11.csv", 2),
        ("P0002", "50667", "", "patients_2026-11.csv", 3),
        ("P0003", "20095", "", "patients_2026-11.csv", 4),
        ("P0004", "10117", "N/A", "patients_2026-11.csv", 5),
    ]
    assert psql("SELECT count(*) FROM raw.clinic_a WHERE balance IS NULL") == [(0,)]
    assert psql("SELECT count(DISTINCT _load_id), count(DISTINCT _partition) FROM raw.clinic_b") == [(1, 1)]


def test_sample_files_are_gated_typed_and_their_bad_row_is_quarantined(sample_runs, psql):
    assert psql("SELECT count(*), min(birth_date)::text FROM validated.clinic_a") == [(24, "1947-10-04 00:00:00")]
    assert psql("SELECT source, _row_number, column_name, check_name, failure_case FROM quality.rejected_rows WHERE source IN ('clinic_a', 'clinic_b')") == [
        ("clinic_a", 26, "birth_date", "coerce_dtype('datetime64[ns]')", "1985-13-40")
    ]
    # clinic_b's DataFrameModel reads its day-first dates.
    assert psql("SELECT dob::text FROM validated.clinic_b WHERE id = 'B-001'") == [("1978-09-01 00:00:00",)]
    assert psql("SELECT source, severity FROM quality.gate_results WHERE source IN ('clinic_a', 'clinic_b') ORDER BY source") == [
        ("clinic_a", "warn"),
        ("clinic_b", "ok"),
    ]


def materialization(run: dg.ExecuteInProcessResult, key: str) -> dict:
    [event] = [e for e in run.get_asset_materialization_events() if e.asset_key.to_user_string() == key]
    return event.materialization.metadata


def test_the_sample_sources_harmonize_into_one_row_per_patient(sample_runs, psql):
    first, again = sample_runs["harmonize"]
    metadata = materialization(first, "harmonized/patients")
    # 51 validated rows (24 + 15 + 7 + 5); Leon Krüger's 30.02.1999 is no date, so his row is left out.
    assert {k: metadata[k].value for k in ("rows_mapped", "duplicate_keys", "merged_rows", "rejected_values", "match_candidates")} == {
        "rows_mapped": 50,
        "duplicate_keys": 6,
        "merged_rows": 6,
        "rejected_values": 6,
        "match_candidates": 1,
    }
    assert metadata["dagster/row_count"].value == 44
    assert [(r.data["source"], r.data["rows_in"], r.data["rows_mapped"], r.data["left_out"]) for r in metadata["sources"].value.records] == [
        ("clinic_a", 24, 24, 0),
        ("clinic_b", 15, 15, 0),
        ("clinic_c", 7, 6, 1),
        ("partner_feed", 5, 5, 0),
    ]
    # Duplicates within clinic C and across sources, merged on the key; the most complete row is kept.
    assert psql("SELECT _group, last_name, first_name, birth_date::text, _source, _kept FROM harmonized.patients_duplicates ORDER BY _group, NOT _kept") == [
        (1, "Becker", "Jonas", "1985-04-03", "clinic_c", True),
        (1, "Becker", "Jonas", "1985-04-03", "clinic_c", False),
        (2, "McDonald", "Mia", "1968-06-06", "partner_feed", True),
        (2, "McDonald", "Mia", "1968-06-06", "clinic_b", False),
        (3, "Müller", "Emma", "1949-09-19", "clinic_c", True),
        (3, "Müller", "Emma", "1949-09-19", "clinic_a", False),
        (4, "O'Neil", "Lukas", "1990-11-02", "clinic_c", True),
        (4, "O'Neil", "Lukas", "1990-11-02", "clinic_a", False),
        (5, "Schmidt", "Paul", "2003-09-07", "partner_feed", True),
        (5, "Schmidt", "Paul", "2003-09-07", "clinic_b", False),
        (6, "van Dijk", "Mia", "1957-07-28", "clinic_c", True),
        (6, "van Dijk", "Mia", "1957-07-28", "clinic_a", False),
    ]
    # Standardized: Excel's 1099 padded, the phone in E.164, lb in kg, "Deutschland" as DE, "w" as F.
    assert psql(
        "SELECT postal_code, phone, round(weight_kg::numeric, 2)::text, country, sex, email, street FROM harmonized.patients"
        " WHERE last_name = 'van Dijk' AND first_name = 'Mia'"
    ) == [("01099", "+493514445566", "60.01", "DE", "F", "mia.vandijk@example.de", "Prager Straße 12")]
    assert psql(
        "SELECT source, _row_number, column_name, check_name, failure_case FROM quality.rejected_rows"
        " WHERE check_name LIKE 'harmonize:%%' AND source = ANY(%s) ORDER BY source, _row_number, check_name",
        (list(SAMPLE_SOURCES),),
    ) == [
        ("clinic_c", 4, "email", "harmonize:email", "jonas.becker@@mail.de"),
        ("clinic_c", 6, "phone", "harmonize:phone", "12"),
        ("clinic_c", 7, "birth_date", "harmonize:date", "30.02.1999"),
        ("clinic_c", 7, "birth_date", "harmonize:required", None),
        ("partner_feed", 1, "email", "harmonize:email", "ana.meyer(at)mail.de"),
        ("partner_feed", 6, "phone", "harmonize:phone", "not known"),
    ]
    assert psql("SELECT left_first_name, right_first_name, left_last_name, score, block FROM harmonized.patients_match_candidates") == [
        ("Ana", "Anna", "Meyer", 95, "1967-01-03")
    ]
    assert psql(
        "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_constraint c CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum WHERE c.conrelid = 'harmonized.patients'::regclass AND c.contype = 'p'"
    ) == [(["last_name", "first_name", "birth_date"],)]
    # Running it again changes nothing.
    assert {k: materialization(again, "harmonized/patients")[k].value for k in ("rows_mapped", "merged_rows", "dagster/row_count")} == {
        "rows_mapped": 50,
        "merged_rows": 6,
        "dagster/row_count": 44,
    }
    assert psql("SELECT count(*) FROM quality.rejected_rows WHERE check_name LIKE 'harmonize:%'") == [(6,)]


def test_exports_hold_exactly_the_harmonized_table(sample_runs, exports, database_url):
    metadata = materialization(sample_runs["harmonize"][1], "export/patients")
    assert metadata["directory"].value == str(exports)
    names = ["patients.csv", "patients.parquet", "patients_unique_records.csv", "patients_duplicate_records.csv", "patients.xlsx", "patients_report.html"]
    zipped = f"patients_{exports.name}.zip"
    assert [r.data["file"] for r in metadata["files"].value.records] == [*names, zipped]
    with PostgresResource().connect() as conn:
        cur = conn.execute("SELECT * FROM harmonized.patients ORDER BY last_name, first_name, birth_date")
        table = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])
    csv = pd.read_csv(exports / "patients.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == list(table.columns)
    assert len(csv) == 44
    assert csv["postal_code"].tolist() == ["" if pd.isna(v) else v for v in table["postal_code"]]
    assert csv["birth_date"].tolist() == [d.isoformat() for d in table["birth_date"]]
    parquet = pd.read_parquet(exports / "patients.parquet")
    assert parquet["last_name"].tolist() == table["last_name"].tolist()
    assert parquet["weight_kg"].round(6).fillna(-1).tolist() == table["weight_kg"].astype(float).round(6).fillna(-1).tolist()
    unique = pd.read_csv(exports / "patients_unique_records.csv", dtype=str)
    duplicates = pd.read_csv(exports / "patients_duplicate_records.csv", dtype=str)
    assert (len(unique), len(duplicates)) == (38, 12)
    assert duplicates["_kept"].tolist() == ["true", "false"] * 6
    workbook = openpyxl.load_workbook(exports / "patients.xlsx", read_only=True)
    assert workbook.sheetnames == ["data", "duplicates", "rejected rows", "quality summary", "keys"]
    data = list(workbook["data"].iter_rows(values_only=True))
    assert data[0] == tuple(table.columns) and len(data) == 45
    assert data[1][:3] == ("Jonas", "Becker", dt.datetime(1985, 4, 3))
    assert len(list(workbook["keys"].iter_rows(values_only=True))) == 5  # header + one file per source
    with zipfile.ZipFile(exports / zipped) as archive:
        assert sorted(archive.namelist()) == sorted([*names, "summary.md"])
        summary = archive.read("summary.md").decode()
    # The merge's summary, then one per file merged (reports.summary; its texts are tested in harmonizer_tests/reports).
    # The latest merge recorded: the run after it found nothing to change.
    assert summary.startswith("# patients\n\n## The latest merge\n\nThe merge of patients took in 4 new files and recomputed 44 keys: 44 rows inserted.")
    assert [line for line in summary.splitlines() if line.startswith("### ")] == [
        "### clinic_a: patients_2026-11.csv", "### clinic_b: export.csv", "### clinic_c: patienten_2026-11.xlsx", "### partner_feed: patients_2026-11-20.json",
    ]  # fmt: skip
    # How each file was read, as the registry kept it.
    found = [line.split(": ", 1)[1].split(". ")[0] for line in summary.splitlines() if " arrived in " in line]
    assert found == [
        "1.2 kB, 25 rows, read as CSV in UTF-8", "638 bytes, 15 rows, read as CSV in Windows-1252", "5.7 kB, 7 rows, read as Excel",
        "2.6 kB, 6 rows, read as JSON in UTF-8",
    ]  # fmt: skip
