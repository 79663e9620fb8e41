"""The production process topology on this machine, for the topology and UI tests.

The three processes the compose file runs, started the same way after its one-shot `harmonizer
db migrate`: `dagster code-server start`
(the code location over gRPC), `dagster-webserver` and `dagster-daemon run`, both reading a
workspace.yaml that points at the gRPC server, all with DAGSTER_HOME holding a copy of
`deploy/dagster.yaml` as it is (PostgreSQL storage from HARMONIZER_DAGSTER_PG_URL, queued runs,
the default run launcher). A harmonizer.yaml with the shipped `clinic_a` source (landing in a
local folder of the test) and its `patients` target is the code location's configuration.

`deployment()` starts them, waits until each is ready (gRPC answering, the location loaded in
the webserver, the daemons healthy), yields a `Deployment` that speaks GraphQL to the
webserver, and stops every process it started, with their children, even when the body fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

from harmonizer_pipeline.storage import postgres
from harmonizer_pipeline.yaml_loader import load_yaml
from harmonizer_tests.loopback import Inbox, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INSTANCE_YAML = PROJECT_ROOT / "deploy" / "dagster.yaml"
SHIPPED_CONFIG = PROJECT_ROOT / "harmonizer.yaml"
SAMPLE_FILE = PROJECT_ROOT / "harmonizer_pipeline" / "sample_data" / "landing" / "clinic_a" / "patients_2026-11.csv"
BIN = Path(sys.executable).parent
LOCATION = "harmonizer"
REPOSITORY = "__repository__"
SOURCE, TARGET = "clinic_a", "patients"
# The daemons the deployment needs: sensors, the run queue and declarative automation.
NEEDED_DAEMONS = ("SENSOR", "QUEUED_RUN_COORDINATOR", "ASSET")

T = TypeVar("T")

# Values of every metadata entry type the harmonizer emits, for `metadata()`.
METADATA_FRAGMENT = """
fragment Meta on MetadataEntry {
  label
  __typename
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on BoolMetadataEntry { boolValue }
  ... on TextMetadataEntry { text }
  ... on MarkdownMetadataEntry { mdStr }
  ... on PathMetadataEntry { path }
  ... on JsonMetadataEntry { jsonString }
  ... on TableSchemaMetadataEntry { schema { columns { name type } } }
  ... on TableMetadataEntry { table { records } }
}
"""


def metadata(entries: list[dict]) -> dict[str, Any]:
    """label -> value of GraphQL metadata entries queried with METADATA_FRAGMENT."""
    values = {}
    for entry in entries:
        kind = entry["__typename"]
        if kind == "TableSchemaMetadataEntry":
            value = [(c["name"], c["type"]) for c in entry["schema"]["columns"]]
        elif kind == "TableMetadataEntry":
            value = [json.loads(r) for r in entry["table"]["records"]]
        elif kind == "JsonMetadataEntry":
            value = json.loads(entry["jsonString"])
        else:
            value = next((v for k, v in entry.items() if k not in ("label", "__typename")), None)
        values[entry["label"]] = value
    return values


class DeploymentError(RuntimeError):
    pass


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


ALERT_WEBHOOK_ENV = "HZ_DEPLOY_ALERT_WEBHOOK"


def write_config(directory: Path, landing: Path, ui_url: str, ingest: dict | None = None, gated: bool = True) -> Path:
    """harmonizer.yaml with the shipped clinic_a source (landing in `landing`; without its schema
    unless `gated`), its target, alerts to a webhook (its URL in ALERT_WEBHOOK_ENV), and `ingest`
    settings if given."""
    shipped = load_yaml(SHIPPED_CONFIG.read_text())  # as harmonizer reads it (`on:` stays a key)
    source = dict(shipped["sources"][SOURCE])
    source["landing"] = {"local": {"path": str(landing), "glob": "*.csv"}}
    source["schema"] = str((SHIPPED_CONFIG.parent / source["schema"]).resolve())
    if not gated:
        del source["schema"]
    config = {
        "sources": {SOURCE: source},
        "targets": {TARGET: shipped["targets"][TARGET]},
        "schedules": {**shipped.get("schedules", {}), "running": False},
        "alerts": {"ui_url": ui_url, "webhook": {"url_env": ALERT_WEBHOOK_ENV}},
        **({"ingest": ingest} if ingest else {}),
    }
    path = directory / "harmonizer.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return path


@dataclass
class Deployment:
    workdir: Path
    env: dict[str, str]
    database_url: str
    landing: Path
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    processes: dict[str, psutil.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    alerts: Inbox | None = None  # the loopback server the alert webhook posts to
    automation_status: str | None = None  # the target's automation sensor's status, as deployed
    load_run: dict | None = None  # the landing sensor's finished load run (sample_deployment)
    empty_tick: dict | None = None  # the landing sensor's first tick, before the file landed
    timings: dict[str, float] = field(default_factory=dict)  # seconds from start to each stage

    def mark(self, stage: str) -> None:
        self.timings[stage] = round(time.monotonic() - self.started_at, 1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def workspace(self) -> Path:
        return self.workdir / "workspace.yaml"

    # -- processes ------------------------------------------------------------------------------

    def start(self, name: str, command: list[str]) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        self.logs[name] = log
        with open(log, "ab") as out:  # a restarted process adds to its log
            # A session of its own: stopping it reaches whatever it spawned in its process group.
            self.processes[name] = psutil.Popen(command, cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def migrate(self) -> None:
        """`harmonizer db migrate` run to its end, as the compose file's one-shot service runs it
        before the code server starts."""
        self.start("migrate", [str(BIN / "harmonizer"), "db", "migrate"])
        # Done, not dead: it leaves the processes the deployment watches (its log stays).
        if self.processes.pop("migrate").wait(timeout=120) != 0:
            raise self.fail("harmonizer db migrate failed")

    def start_code_server(self) -> None:
        """`dagster code-server start` on the deployment's port, once it answers."""
        self.start(
            "code-server",
            [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(self.grpc_port),
             "-m", "harmonizer_pipeline.definitions", "--location-name", LOCATION],
        )  # fmt: skip
        self.wait_for(f"the code server on 127.0.0.1:{self.grpc_port}", self._grpc_ready, timeout=180)

    def start_daemon(self) -> None:
        """`dagster-daemon run`, once the daemons the deployment needs are healthy."""
        self.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)])
        self.wait_for(f"healthy daemons {', '.join(NEEDED_DAEMONS)}", self._daemons_healthy, timeout=180)

    def kill(self, name: str) -> None:
        """SIGKILL a process and everything it started, as a crash or an OOM kill would."""
        process = self.processes.pop(name)
        family = [process, *process.children(recursive=True)]
        _signal_group(process.pid, signal.SIGKILL)
        for member in family:
            _signal(member, signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for name, path in self.logs.items():
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            process = self.processes.get(name)
            state = "running" if process and process.poll() is None else f"exited {process.poll() if process else '?'}"
            parts.append(f"--- {name} ({state}), last {lines} lines of {path} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def fail(self, message: str) -> DeploymentError:
        return DeploymentError(f"{message}\n{self.log_tails()}")

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
        """Poll `probe` until it returns something truthy; a dead process or the timeout fails
        with `what` and the tail of every process's log."""
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise self.fail(f"{name} exited with {process.returncode} while waiting for {what}")
            try:
                value = probe()
                if value:
                    return value
            except (OSError, DeploymentError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise self.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")
            time.sleep(interval)

    def stop(self) -> list[str]:
        """Stop every process (daemon, webserver, code server), their process groups and any
        descendant that left them; returns what is still alive or listening afterwards."""
        everyone: list[psutil.Process] = []
        for name in ("daemon", "webserver", "code-server"):
            process = self.processes.get(name)
            if process is None:
                continue
            try:
                family = [process, *process.children(recursive=True)]
            except psutil.NoSuchProcess:
                family = [process]
            everyone.extend(family)
            _signal_group(process.pid, signal.SIGTERM)
            for member in family[1:]:
                _signal(member, signal.SIGTERM)
            _, alive = psutil.wait_procs(family, timeout=20)
            if alive:
                _signal_group(process.pid, signal.SIGKILL)
                for member in alive:
                    _signal(member, signal.SIGKILL)
                psutil.wait_procs(alive, timeout=10)
            process.wait()
        left = [f"port {port} still listening" for port in (self.grpc_port, self.web_port) if listening(port)]
        for process in everyone:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(f"pid {process.pid} ({' '.join(process.cmdline()[:4])}) still running")
            except psutil.NoSuchProcess:
                pass
        return left

    # -- GraphQL --------------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        """POST a query to the webserver's /graphql; the `data`, or DeploymentError on errors."""
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            raise DeploymentError(f"GraphQL HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}") from None
        if body.get("errors"):
            raise DeploymentError(f"GraphQL errors: {json.dumps(body['errors'])[:2000]}")
        return body["data"]

    def runs(self, job: str | None = None, tags: dict[str, str] | None = None) -> list[dict]:
        """Runs (newest first) with their status, job, tags and asset selection."""
        data = self.graphql(
            """
            query Runs($filter: RunsFilter) {
              runsOrError(filter: $filter) {
                __typename
                ... on Runs { results { runId status jobName tags { key value } assetSelection { path } } }
                ... on PythonError { message }
              }
            }
            """,
            {"filter": {**({"pipelineName": job} if job else {}), **({"tags": [{"key": k, "value": v} for k, v in tags.items()]} if tags else {})}},
        )["runsOrError"]
        if data["__typename"] != "Runs":
            raise DeploymentError(f"runsOrError: {data}")
        return data["results"]

    def materializations(self, path: list[str]) -> list[dict]:
        """Materializations of an asset (newest first) with run, partition and metadata."""
        data = self.graphql(
            METADATA_FRAGMENT
            + """
            query Asset($key: AssetKeyInput!) {
              assetOrError(assetKey: $key) {
                __typename
                ... on Asset { assetMaterializations { runId partition metadataEntries { ...Meta } } }
              }
            }
            """,
            {"key": {"path": path}},
        )["assetOrError"]
        return data.get("assetMaterializations", []) if data["__typename"] == "Asset" else []

    def automation_runs(self) -> list[dict]:
        """The target's automation sensor's runs, once harmonized/ and export/ have each been in one
        and all have finished: one run for both, or two when export waited for a keys run."""
        automation = {"dagster/sensor_name": AUTOMATION_SENSOR}

        def finished() -> list[dict] | None:
            runs = self.runs(tags=automation)
            selected = {"/".join(k["path"]) for r in runs for k in r["assetSelection"] or []}
            done = all(r["status"] in TERMINAL for r in runs) and {"harmonized/patients", "export/patients"} <= selected
            return runs if runs and done else None

        return self.wait_for(f"the {AUTOMATION_SENSOR} sensor's runs of harmonized/patients and export/patients to finish", finished, timeout=300)

    def sensor_selector(self, name: str) -> dict:
        return {"repositoryName": REPOSITORY, "repositoryLocationName": LOCATION, "sensorName": name}

    def sensor_state(self, name: str) -> dict:
        """A sensor's status as the UI shows it (RUNNING or STOPPED) and its latest ticks."""
        data = self.graphql(
            """
            query Sensor($selector: SensorSelector!) {
              sensorOrError(sensorSelector: $selector) {
                __typename
                ... on Sensor { sensorState { status ticks(limit: 5) { status skipReason } } }
                ... on PythonError { message }
                ... on SensorNotFoundError { message }
              }
            }
            """,
            {"selector": self.sensor_selector(name)},
        )["sensorOrError"]
        if data["__typename"] != "Sensor":
            raise DeploymentError(f"sensor {name}: {data}")
        return data["sensorState"]

    def sensor_status(self, name: str) -> str:
        return self.sensor_state(name)["status"]

    # -- readiness ------------------------------------------------------------------------------

    def _grpc_ready(self) -> bool:
        from dagster._grpc.client import DagsterGrpcClient

        try:
            DagsterGrpcClient(port=self.grpc_port, host="127.0.0.1").ping("ready?")
        except Exception:  # noqa: BLE001 - not serving yet
            return False
        return True

    def _location_loaded(self) -> bool:
        try:
            data = self.graphql(
                f"""
                query {{
                  workspaceLocationEntryOrError(name: "{LOCATION}") {{
                    __typename
                    ... on WorkspaceLocationEntry {{
                      loadStatus
                      locationOrLoadError {{ __typename ... on PythonError {{ message stack }} }}
                    }}
                  }}
                }}
                """,
                timeout=5,
            )["workspaceLocationEntryOrError"]
        except (OSError, DeploymentError):
            return False
        if data is None or data["__typename"] != "WorkspaceLocationEntry" or data["loadStatus"] != "LOADED":
            return False
        loaded = data["locationOrLoadError"]
        if loaded and loaded["__typename"] == "PythonError":
            raise self.fail(f"the webserver could not load location {LOCATION}: {loaded['message']}{''.join(loaded['stack'])}")
        return loaded is not None

    def _daemons_healthy(self) -> bool:
        statuses = self.graphql("query { instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }", timeout=5)
        healthy = {d["daemonType"] for d in statuses["instance"]["daemonHealth"]["allDaemonStatuses"] if d["healthy"]}
        return set(NEEDED_DAEMONS) <= healthy


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal(process: psutil.Process, sig: int) -> None:
    try:
        process.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


@contextmanager
def deployment(
    workdir: Path,
    server_url: str,
    database: str,
    before_daemon: Callable[[Deployment], None] | None = None,
    instance: dict | None = None,
    ingest: dict | None = None,
    gated: bool = True,
) -> Iterator[Deployment]:
    """Start the topology in `workdir` on a fresh `database` of the server (Dagster's instance and
    the harmonizer's tables both, as `make dev` has them); `before_daemon` runs once the webserver
    is up and before the daemon starts (to drop files, switch sensors). `instance` replaces
    top-level sections of deploy/dagster.yaml, `ingest` sets harmonizer.yaml's, `gated=False`
    leaves the source's schema out. Drops the database after."""
    postgres.ensure_database(server_url, database)
    database_url = postgres.with_database(server_url, database)
    home = workdir / "home"
    dagster_home = home / "dagster_home"
    landing = workdir / "landing"
    for folder in (dagster_home, landing):
        folder.mkdir(parents=True, exist_ok=True)
    instance_config = {**yaml.safe_load(INSTANCE_YAML.read_text()), **(instance or {})}
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config, sort_keys=False))
    alerts = Inbox()
    alerts.thread.start()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "HARMONIZER_"))},
        "DAGSTER_HOME": str(dagster_home),
        "HARMONIZER_DAGSTER_PG_URL": postgres.sqlalchemy_url(database_url, "psycopg2"),
        postgres.DATABASE_URL_ENV: database_url,
        postgres.HOME_ENV: str(home),
        "HARMONIZER_CONFIG": str(workdir / "harmonizer.yaml"),
        ALERT_WEBHOOK_ENV: f"{alerts.url}/alerts",
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    deployed = Deployment(workdir=workdir, env=env, database_url=database_url, landing=landing, alerts=alerts)
    write_config(workdir, landing, deployed.url, ingest, gated)
    deployed.workspace.write_text(
        yaml.safe_dump({"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": deployed.grpc_port, "location_name": LOCATION}}]})
    )
    try:
        deployed.migrate()
        deployed.mark("bookkeeping migrated")
        deployed.start_code_server()
        deployed.mark("code server serving")
        deployed.start(
            "webserver",
            [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(deployed.web_port), "-w", str(deployed.workspace)],
        )
        deployed.wait_for(f"location {LOCATION} loaded in the webserver at {deployed.url}", deployed._location_loaded, timeout=180)
        deployed.mark("webserver loaded the location")
        if before_daemon is not None:
            before_daemon(deployed)
        deployed.start_daemon()
        deployed.mark("daemons healthy")
        yield deployed
    finally:
        left = deployed.stop()
        alerts.server.shutdown()
        alerts.server.server_close()
        postgres.drop_database(server_url, database)
    if left:
        raise DeploymentError("after stopping the deployment: " + "; ".join(left))


AUTOMATION_SENSOR = "automation_patients"  # declared running by the code location
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


@contextmanager
def sample_deployment(workdir: Path, server_url: str, database: str, timeout: float = 300) -> Iterator[Deployment]:
    """The deployment with the sample clinic_a file dropped into its landing folder while the
    daemon runs, after the landing sensor's first tick found the folder empty (a file arriving
    under a running sensor). Yields once the sensor's load run has finished (`deployed.load_run`),
    whatever its status."""

    def prepare(deployed: Deployment) -> None:
        deployed.automation_status = deployed.sensor_status(AUTOMATION_SENSOR)

    with deployment(workdir, server_url, database, before_daemon=prepare) as deployed:
        sensor = f"{SOURCE}_landing"
        deployed.empty_tick = deployed.wait_for(
            f"the {sensor} sensor's first finished tick",
            lambda: next((t for t in deployed.sensor_state(sensor)["ticks"] if t["status"] != "STARTED"), None),
            timeout=120,
        )
        deployed.mark("landing sensor ticked")
        shutil.copyfile(SAMPLE_FILE, deployed.landing / SAMPLE_FILE.name)
        deployed.load_run = deployed.wait_for(
            f"the {sensor} sensor's load_{SOURCE} run to finish",
            lambda: next((r for r in deployed.runs(job=f"load_{SOURCE}") if r["status"] in TERMINAL), None),
            timeout=timeout,
        )
        deployed.mark("load run finished")
        yield deployed
