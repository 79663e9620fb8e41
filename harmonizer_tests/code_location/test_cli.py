"""The `harmonizer` console script as a person runs it: database, demo, and the UI on the same instance."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.settings import CONFIG_ENV, load_settings
from harmonizer_pipeline.storage import postgres
from harmonizer_tests.code_location.test_definitions import SAMPLE_ASSETS
from harmonizer_tests.code_location.test_settings import BAD_SETTINGS, bad_settings_lines

HARMONIZER = [sys.executable, "-m", "harmonizer_pipeline.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*HARMONIZER, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_db_url_prints_the_configured_database(database_url):
    done = run_cli("db", "url")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == database_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:s3cret@db.example:5432/h", "postgresql://user:***@db.example:5432/h"),
        ("postgresql+psycopg2://user:s3cret@db/h", "postgresql+psycopg2://user:***@db/h"),
        ("postgresql://postgres:@/h?host=/tmp/sock", "postgresql://postgres:@/h?host=/tmp/sock"),
    ],
)
def test_passwords_are_redacted(url, expected):
    assert postgres.redact(url) == expected


def test_non_postgres_urls_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"database URL scheme 'mysql' is not PostgreSQL"):
        postgres.libpq_url("mysql://u@h/db")
    with pytest.raises(ValueError, match=r"database URL must look like postgresql://"):
        postgres.libpq_url("not a url")
    assert postgres.sqlalchemy_url("postgresql://u@h/db", "psycopg2") == "postgresql+psycopg2://u@h/db"


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory, server_url, database_url) -> Iterator[dict[str, str]]:
    """Environment of a `harmonizer demo` with its own home and its own fresh database."""
    name = postgres.database_of(database_url) + "_demo"
    postgres.ensure_database(server_url, name)
    yield {
        **os.environ,
        postgres.HOME_ENV: str(tmp_path_factory.mktemp("home")),
        postgres.DATABASE_URL_ENV: postgres.with_database(server_url, name),
    }
    postgres.drop_database(server_url, name)


@pytest.fixture(scope="module")
def demo_home(demo_env) -> tuple[Path, subprocess.CompletedProcess]:
    return Path(demo_env[postgres.HOME_ENV]), run_cli("demo", env=demo_env)


PAGES_PER_SOURCE = ["clinic_a", "clinic_b", "clinic_c", "partner_feed"]  # one file each, one page each


def test_demo_runs_the_pipeline_and_prints_where_results_are(demo_home):
    home, done = demo_home
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    runs = [line for line in lines if line.startswith("run ")]
    assert [line.split(" ", 2)[2] for line in runs] == [
        "clinic_a patients_2026-11.csv: loaded",
        "clinic_b export.csv: loaded",
        "clinic_c patienten_2026-11.xlsx: loaded",
        "partner_feed patients_2026-11-20.json: loaded",
        "harmonize patients: done",
        "trends: done (ops.run_metrics; ops/trends_<source> in the UI)",
        "relations: done, 13 foreign-key candidate(s) between the sources' latest files and the targets"
        " (keys.foreign_keys; keys/relations in the UI, its lines paste into harmonizer.yaml's relations:)",
    ]
    assert "  clinic_a patients_2026-11.csv loaded 25 rows -> raw.clinic_a" in lines
    assert "  clinic_b export.csv loaded 15 rows -> raw.clinic_b" in lines
    assert "  clinic_c patienten_2026-11.xlsx loaded 7 rows -> raw.clinic_c" in lines
    assert "  partner_feed patients_2026-11-20.json loaded 6 rows -> raw.partner_feed" in lines
    gates = [line for line in lines if " -> validated." in line]
    assert [line.split("@")[0] for line in gates] == [
        "  clinic_a patients_2026-11.csv",
        "  clinic_b export.csv",
        "  clinic_c patienten_2026-11.xlsx",
        "  partner_feed patients_2026-11-20.json",
    ]
    assert gates[0].endswith(
        " warn: 1 of 25 rows rejected (4.00%) and quarantined in quality.rejected_rows, within max_reject_rate 5.00% -> validated.clinic_a"
    )
    assert gates[1].endswith(" ok: all 15 rows passed -> validated.clinic_b")
    assert gates[3].endswith(
        " warn: 1 of 6 rows rejected (16.67%) and quarantined in quality.rejected_rows, within max_reject_rate 20.00% -> validated.partner_feed"
    )
    keys = [line for line in lines if "minimal keys" in line]
    assert [line.split(": ", 1)[1] for line in keys] == [
        "key patient_id (smallest exact key without NULLs, identifier-like names); 4 minimal keys, 0 repeated rows",
        "key id (smallest exact key without NULLs, identifier-like names); 2 minimal keys, 0 repeated rows",
        "key E-Mail (smallest exact key without NULLs); 10 minimal keys, 0 repeated rows",
        "key id (smallest exact key without NULLs, identifier-like names); 9 minimal keys, 0 repeated rows",
    ]
    assert (
        "harmonized.patients: 44 rows on key last_name, first_name, birth_date from 50 mapped rows (44 keys merged: 44 inserted,"
        " 0 updated, 0 deleted); 6 duplicate rows merged (6 keys), 6 values rejected, 1 fuzzy match candidate(s)"
    ) in lines
    exports = lines.index(next(line for line in lines if line.startswith("export/patients: ")))
    assert lines[exports].startswith(f"export/patients: {home / 'exports' / 'patients'}/")
    assert lines[exports + 1 : exports + 8] == [
        "  patients.csv",
        "  patients.parquet",
        "  patients_unique_records.csv",
        "  patients_duplicate_records.csv",
        "  patients.xlsx",
        "  patients_report.html",
        f"  patients_{lines[exports].rsplit('/', 1)[1]}.zip",
    ]
    assert re.fullmatch(r"  patients_changes_\d{8}T\d{6}\.\d{6}Z\.csv", lines[exports + 8])
    assert lines[exports + 9] == lines[exports + 8].replace(".csv", ".parquet")
    pages = home / "exports" / "pages"
    assert f"HTML pages of the files: {pages}/<source>/ (each target's: <target>_report.html above)" in lines
    assert sorted(p.relative_to(pages).parts[0] for p in pages.rglob("*.html")) == PAGES_PER_SOURCE
    assert "make dev" in done.stdout


def test_audit_prints_what_the_demo_did(demo_home, demo_env):
    home, done = demo_home
    assert done.returncode == 0
    listed = run_cli("audit", "--json", env=demo_env)
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    day = next(e["file"] for e in entries if e["action"] == "export").split("/")[1]
    # (file, rows, rows valid, rows staged: clinic_c's row without a birth date is left out)
    files = {"clinic_a": ("patients_2026-11.csv", 25, 24, 24), "clinic_b": ("export.csv", 15, 15, 15),
             "clinic_c": ("patienten_2026-11.xlsx", 7, 7, 6), "partner_feed": ("patients_2026-11-20.json", 6, 5, 5)}  # fmt: skip
    per_file = [
        (action, status, name, rows_in, rows_out)
        for name, rows, valid, staged in files.values()
        for action, status, rows_in, rows_out in [
            ("load", "loaded", rows, rows), ("gate", "warn" if valid < rows else "ok", rows, valid), ("profile", "done", rows, None),
            ("keys", "done", valid, None), ("compare", "done", None, None), ("stage", "done", valid, staged),
        ]
    ]  # fmt: skip
    changes = next(e["file"] for e in entries if "_changes_" in (e["file"] or "")).rsplit(".", 1)[0]
    exported = [("export", "done", f"patients/{day}/{name}", rows_in, rows) for name, rows_in, rows in [
        (f"{changes.rsplit('/', 1)[1]}.csv", None, 44), (f"{changes.rsplit('/', 1)[1]}.parquet", None, 44),
        ("patients.csv", 44, 44), ("patients.parquet", 44, 44), ("patients_unique_records.csv", 44, 38), ("patients_duplicate_records.csv", 44, 12),
        ("patients.xlsx", 44, 44), ("patients_report.html", 44, None), (f"patients_{day}.zip", 44, None),
    ]]  # fmt: skip
    trends = [("trends", "done", None, None, None)] * len(files)
    # The merge recomputed the 44 keys of the 50 staged rows: all new.
    assert sorted(((e["action"], e["status"], e["file"], e["rows_in"], e["rows_out"]) for e in entries), key=str) == sorted(
        # keys/relations read every source's file and the 44 merged rows.
        [*per_file, ("harmonize", "done", None, 44, 44), *exported, *trends, ("relations", "done", None, 97, 13)],
        key=str,
    )
    assert {e["launched_by"] for e in entries} == {"make demo"}
    one = run_cli("audit", "--file", "export.csv", env=demo_env).stdout.splitlines()
    assert sorted(line.split()[2:5] for line in one[1:]) == [
        ["compare", "done", "keys/comparison_clinic_b"], ["gate", "ok", "validated/clinic_b"], ["keys", "done", "keys/clinic_b"],
        ["load", "loaded", "raw/clinic_b"], ["profile", "done", "quality/profile_clinic_b"], ["stage", "done", "staged/clinic_b"],
    ]  # fmt: skip


def test_demo_runs_are_stored_in_the_postgres_instance(demo_home, demo_env, monkeypatch):
    home, done = demo_home
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[1]
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    monkeypatch.setenv("HARMONIZER_DAGSTER_PG_URL", postgres.sqlalchemy_url(demo_env[postgres.DATABASE_URL_ENV], "psycopg2"))
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["harmonizer/launched_by"] == "make demo"
        assert instance.get_latest_materialization_event(dg.AssetKey(["raw", "clinic_a"])).run_id == run_id
        assert instance.get_dynamic_partitions("clinic_a_files") == [run.tags["dagster/partition"]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_dev_ui_shows_the_demo_runs(demo_home, demo_env):
    home, done = demo_home
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[1]
    port = _free_port()
    # `dagster dev` does not stop its children on SIGTERM without a terminal: own process group.
    process = subprocess.Popen(
        [*HARMONIZER, "dev", "-p", str(port)],
        env=demo_env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        runs = None
        while time.monotonic() < deadline:
            try:
                answer = _graphql(port, "{ runsOrError { ... on Runs { results { runId status } } } }")
                runs = {r["runId"]: r["status"] for r in answer["data"]["runsOrError"]["results"]}
                break
            except OSError:
                time.sleep(1)
        assert runs is not None, "dagster dev did not answer within 120 s"
        assert runs[run_id] == "SUCCESS"
        nodes = _graphql(port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} == SAMPLE_ASSETS
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_embedded_server_starts_once_when_several_processes_ask_at_once(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != postgres.DATABASE_URL_ENV}
    env[postgres.HOME_ENV] = str(tmp_path / "home")
    probe = (
        "import psycopg, warnings; warnings.simplefilter('ignore');"
        "from harmonizer_pipeline.storage.postgres import resolve_database_url as r;"
        "c = psycopg.connect(r());"
        "print(c.execute('select pg_postmaster_start_time(), current_database()').fetchone())"
    )
    try:
        starters = [subprocess.Popen([sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        outputs = [p.communicate(timeout=180) for p in starters]
        assert [p.returncode for p in starters] == [0, 0, 0], [err for _, err in outputs]
        assert len({out for out, _ in outputs}) == 1  # one server, one start time, one database
        assert "'harmonizer')" in outputs[0][0]
        assert (tmp_path / "home" / "pgdata" / "PG_VERSION").exists()
        again = run_cli("db", "start", env=env)
        assert again.returncode == 0 and "embedded server" in again.stdout
    finally:
        stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "embedded PostgreSQL stopped"
    assert run_cli("db", "stop", env=env).stdout.strip() == "embedded PostgreSQL was not running"


def test_a_production_process_without_a_database_url_never_starts_the_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != postgres.DATABASE_URL_ENV}
    env.update({postgres.HOME_ENV: str(tmp_path), postgres.ENVIRONMENT_ENV: "production"})
    done = run_cli("db", "url", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: HARMONIZER_ENVIRONMENT=production needs HARMONIZER_DATABASE_URL: the embedded PostgreSQL server is for development only"
    )
    assert not (tmp_path / "pgdata").exists()


def test_inspect_reports_what_the_readers_detect_as_json(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes("id;name;amount\n007;Jürgen;1.234,50\n008;Zoë;\n".encode("cp1252"))
    done = run_cli("inspect", str(path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {k: report[k] for k in ("format", "delimiter", "rows", "columns")} == {
        "format": "csv",
        "delimiter": ";",
        "rows": 2,
        "columns": ["id", "name", "amount"],
    }
    assert report["encoding"] in {"cp1252", "windows-1252"}


def test_inspect_prints_a_readable_summary(tmp_path):
    path = tmp_path / "people.tsv"
    path.write_text("id\tname\n1\tAnn\n", encoding="utf-8")
    done = run_cli("inspect", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:5] == ["format     tsv", "encoding   utf-8", "delimiter  \t", "header     True", "rows       1"]
    assert lines[5] == "columns    id, name"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "ragged.csv: line 3 has 3 fields, the header has 2"),
        ("empty.csv", b"", "empty.csv: "),
        ("missing.csv", None, "missing.csv: cannot open: No such file or directory"),
    ],
)
def test_inspect_bad_input_exits_non_zero_with_one_line_and_no_traceback(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    done = run_cli("inspect", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(message)
    assert "Traceback" not in done.stderr


def test_profile_reports_types_pii_and_scores_as_json(tmp_path):
    path = tmp_path / "patients.csv"
    path.write_text(
        "id,email,card,visit\n"
        + "".join(f"{n},user{n}@example.com,4111 1111 1111 1111,2024-01-{n:02d}\n" for n in range(1, 21))
        + "21,,1234 5678 1234 5678,\n",
        encoding="utf-8",
    )
    done = run_cli("profile", str(path), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == 21
    by_name = {c["name"]: c for c in report["columns"]}
    assert [c["name"] for c in report["columns"]] == ["id", "email", "card", "visit"]
    assert {n: by_name[n]["semantic_type"] for n in by_name} == {"id": "integer", "email": "email", "card": "categorical", "visit": "date"}
    assert (by_name["email"]["nulls"], by_name["email"]["empties"], by_name["email"]["distinct"]) == (0, 1, 21)
    assert by_name["email"]["pii"] == ["email"] and by_name["card"]["pii"] == ["card"]  # 20 of 21 pass Luhn
    assert by_name["visit"]["pattern"] == "9999-99-99"
    assert (by_name["id"]["min"], by_name["id"]["max"]) == ("1", "21")
    assert 0 < report["quality_score"] <= 100


STATISTICS_CSV = """\
id,amount,phone,visit,colour,size,empty
1,"1,5",(212) 555-3999,13/01/2024,red,S,
2,"2,5",020 7946 0357,02/02/2024,blue,M,
3,,+1 415 555 2741,28/02/2024,red,S,
4,"-3,0",030 1234567,15/03/2024,blue,M,
"""


def test_profile_shows_statistics_with_pii_values_masked(tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text(STATISTICS_CSV, encoding="utf-8")
    done = run_cli("profile", str(path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # Under each column's line, a line of its statistics (none for the empty column); then the measures across columns.
    assert [line.strip() for line in lines if line.startswith("    ")] + [line.strip() for line in lines[-3:]] == [
        "numbers: mean 2.5 std 1.29099 min 1 p5 1.15 p25 1.75 median 2.5 p75 3.25 p95 3.85 max 4; zeros 0, negatives 0",
        "numbers: mean 0.333333 std 2.92973 min -3 p5 -2.55 p25 -0.75 median 1.5 p75 2 p95 2.4 max 2.5; zeros 0, negatives 1",
        "length 11-15 (mean 13.25); top *** **99 (1), *** **57 (1), +1 *** **41 (1)",  # a phone column from three countries, masked
        "dates: 2024-01-13 to 2024-03-15, 63 day(s), the busiest 2024-01-13 (1 rows)",  # day first: 13/01
        "length 3-4 (mean 3.5); top red (2), blue (2)",
        "length 1-1 (mean 1.0); top S (2), M (2)",
        "missing together: empty (3 rows); amount + empty (1 rows)",
        "correlations (Pearson / Spearman): id ~ amount -0.875 / -0.500",
        "associations (Cramér's V, bias-corrected): colour ~ size 1.000",
    ]
    report = json.loads(run_cli("profile", str(path), "--json", "--show-pii").stdout)
    by_name = {c["name"]: c for c in report["columns"]}
    assert (by_name["phone"]["semantic_type"], by_name["phone"]["pii"]) == ("phone", ["phone"])
    assert by_name["phone"]["statistics"]["top_values"] == [["(212) 555-3999", 1], ["020 7946 0357", 1], ["+1 415 555 2741", 1], ["030 1234567", 1]]
    assert by_name["empty"]["statistics"] is None  # all empty: nothing to describe
    amount = by_name["amount"]["statistics"]
    assert {k: amount[k] for k in ("kind", "count", "invalid", "min", "p50", "max", "zeros", "negatives")} == {
        "kind": "numbers", "count": 3, "invalid": 0, "min": -3.0, "p50": 1.5, "max": 2.5, "zeros": 0, "negatives": 1,
    }  # fmt: skip
    assert amount["histogram"] == {"edges": [-3.0, -1.1666666666666667, 0.6666666666666665, 2.5], "counts": [1, 0, 2]}
    assert {k: report[k] for k in ("sampled_rows", "missing_patterns", "associations")} == {
        "sampled_rows": 4,
        "missing_patterns": [{"columns": ["empty"], "rows": 3}, {"columns": ["amount", "empty"], "rows": 1}],
        "associations": [{"columns": ["colour", "size"], "cramers_v": 1.0, "rows": 4}],
    }
    [correlation] = report["correlations"]
    assert correlation == {"columns": ["id", "amount"], "pearson": pytest.approx(-0.8751857342005341), "spearman": -0.5, "rows": 3}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ragged.csv", b"a,b\n1,2\n3,4,5\n", "ragged.csv: line 3 has 3 fields, the header has 2"),
        ("binary.csv", b"\x00\x01\x02garbage\x00" * 50, "binary.csv: binary content"),
    ],
)
def test_profile_bad_input_exits_2_with_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    done = run_cli("profile", str(path), "--json")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1


VALIDATE_SCHEMA = """\
schema_type: dataframe
columns:
  id: {dtype: int64, coerce: true, unique: true}
  status: {dtype: str, checks: {isin: [A, B]}}
"""


def test_validate_counts_rejections_by_check_and_exits_1(tmp_path):
    (tmp_path / "schema.yaml").write_text(VALIDATE_SCHEMA)
    data = tmp_path / "data.csv"
    data.write_text("id,status\n1,A\n2,C\nx,B\n4,B\n")
    done = run_cli("validate", str(data), "--schema", str(tmp_path / "schema.yaml"), "--json")
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout) == {
        "rows": 4,
        "valid_rows": 2,
        "rejected_rows": 2,
        "structure_errors": [],
        "failures": [
            {"check": "coerce_dtype('int64')", "column": "id", "count": 1},
            {"check": "isin(['A', 'B'])", "column": "status", "count": 1},
        ],
        "sample": [
            {"_row_number": 3, "column": "status", "check": "isin(['A', 'B'])", "failure_case": "C"},
            {"_row_number": 4, "column": "id", "check": "coerce_dtype('int64')", "failure_case": "x"},
        ],
    }
    data.write_text("id,status\n1,A\n2,B\n")
    clean = run_cli("validate", str(data), "--schema", str(tmp_path / "schema.yaml"))
    assert (clean.returncode, clean.stdout.strip()) == (0, "2 rows: 2 valid, 0 rejected")


@pytest.mark.parametrize(
    ("schema_text", "data_text", "message"),
    [
        (None, "id,status\n1,A\n", "schema "),
        ("columns: [unclosed", "id,status\n1,A\n", "schema "),
        (VALIDATE_SCHEMA, "a,b\n1,2\n3,4,5\n", "data.csv: line 3 has 3 fields"),
    ],
)
def test_validate_bad_schema_or_file_exits_2_with_one_line(tmp_path, schema_text, data_text, message):
    if schema_text is not None:
        (tmp_path / "schema.yaml").write_text(schema_text)
    (tmp_path / "data.csv").write_text(data_text)
    done = run_cli("validate", str(tmp_path / "data.csv"), "--schema", str(tmp_path / "schema.yaml"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1


def test_infer_schema_writes_a_schema_its_file_passes_and_a_corrupted_copy_fails(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("id,email,status\n1,a@b.org,A\n2,c@d.net,B\n3,e@f.com,A\n")
    written = run_cli("infer-schema", str(data), "-o", str(tmp_path / "schema.yaml"))
    assert written.returncode == 0, written.stderr
    assert written.stdout.strip() == f"schema for 3 columns written to {tmp_path / 'schema.yaml'}"
    assert run_cli("validate", str(data), "--schema", str(tmp_path / "schema.yaml")).returncode == 0
    corrupted = tmp_path / "corrupted.csv"
    corrupted.write_text("id,email,status\n1,a@b.org,A\n2,broken,B\n")
    done = run_cli("validate", str(corrupted), "--schema", str(tmp_path / "schema.yaml"), "--json")
    assert done.returncode == 1 and json.loads(done.stdout)["rejected_rows"] == 1


def test_keys_prints_minimal_keys_near_keys_and_the_suggestion_as_json(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text("order_no,line,sku,qty\n1,1,A,2\n1,2,B,1\n2,1,A,2\n2,2,C,5\n3,1,B,1\n3,2,A,3\n")
    done = run_cli("keys", str(data), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["rows"], report["columns"]) == (6, ["order_no", "line", "sku", "qty"])
    # Sorted by size, then names; each key's columns sorted.
    assert report["minimal_keys"] == [["line", "order_no"], ["order_no", "qty"], ["order_no", "sku"]]
    assert report["suggested_key"] == ["line", "order_no"]
    assert report["duplicate_rows"] == 0 and report["seconds"] > 0
    assert all(0 < k["uniqueness"] < 1 for k in report["near_keys"])
    capped = json.loads(run_cli("keys", str(data), "--json", "--max-size", "1").stdout)
    # No single column is a key; qty (4 distinct values in 6 rows) comes closest.
    assert capped["minimal_keys"] == [] and capped["suggested_key"] == ["qty"]


def test_keys_keeps_what_desbordante_reports_off_the_console_unless_verbose(tmp_path):
    data = tmp_path / "one_country.csv"
    data.write_text("id,country\n1,DE\n2,DE\n3,DE\n")  # one value in a column: PyroUCC reports "Got Median... == 0"
    quiet = run_cli("keys", str(data))
    assert (quiet.returncode, quiet.stderr) == (0, "")
    assert quiet.stdout.splitlines()[1:3] == ["  key       id", "suggested key: id (smallest exact key without NULLs, identifier-like names)"]
    verbose = run_cli("keys", str(data), "--verbose")
    assert verbose.stdout.splitlines()[1:] == quiet.stdout.splitlines()[1:]
    assert verbose.stderr.startswith("desbordante WARNING: Got MedianInvertedEntropy == 0\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "missing.csv: cannot open: No such file or directory"),
        (["data.csv", "--max-size", "0"], "Invalid value for '--max-size': 0 is not in the range x>=1"),
    ],
)
def test_keys_bad_input_exits_2_with_one_line(tmp_path, args, message):
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    done = subprocess.run([*HARMONIZER, "keys", *args], capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.fixture
def bad_config(tmp_path, monkeypatch) -> Iterator[Path]:
    """HARMONIZER_CONFIG names a harmonizer.yaml with four bad fields (test_settings.BAD_SETTINGS)."""
    path = tmp_path / "harmonizer.yaml"
    path.write_text(BAD_SETTINGS)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    load_settings.cache_clear()
    yield path
    load_settings.cache_clear()


@pytest.mark.parametrize("command", ["demo", "dev"])
def test_commands_that_load_settings_print_a_line_per_bad_field_and_exit_2(bad_config, command):
    result = CliRunner().invoke(main, [command])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"error: {line}" for line in bad_settings_lines(bad_config)]


def test_harmonizer_demo_with_a_bad_config_prints_the_lines_and_no_traceback(bad_config):
    done = subprocess.run([str(Path(sys.executable).parent / "harmonizer"), "demo"], capture_output=True, text=True, timeout=180)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [f"error: {line}" for line in bad_settings_lines(bad_config)]
    assert "Traceback" not in done.stderr
