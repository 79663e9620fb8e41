"""Who may do what in the Dagster UI: deploy/Caddyfile, as it is, run by Debian's caddy in front of
two real `dagster-webserver` processes on loopback (one `--read-only`, as the compose file's
webserver_viewer; one full, as webserver_operator), with two operators and two viewers whose
bcrypt hashes `caddy hash-password` makes here. The webservers serve a one-job code location written by
the test on a Dagster instance of their own that queues runs (no daemon: a launched run stays
QUEUED, so nothing executes)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import psutil
import pytest

from harmonizer_tests.deployment.harness import _signal_group, listening
from harmonizer_tests.deployment.test_deploy_files import _env_example
from harmonizer_tests.loopback import free_port

CADDY = next((p for p in ("/usr/bin/caddy", shutil.which("caddy")) if p and Path(p).exists()), None)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CADDY is None, reason="Debian caddy is not installed: apt-get install caddy")]
ROOT = Path(__file__).resolve().parents[2]
CADDYFILE = ROOT / "deploy" / "Caddyfile"
WEBSERVER = Path(sys.executable).parent / "dagster-webserver"
LOCATION, JOB, ASSET = "auth_probe", "probe_job", "probe_asset"
OPERATOR, VIEWER = ("olga", "operator-secret-1"), ("victor", "viewer-secret-2")
# The second of each role: routing goes by the list of operators' names, not by one name.
OPERATOR_2, VIEWER_2 = ("oscar", "operator-secret-3"), ("vera", "viewer-secret-4")
USERS = (OPERATOR, VIEWER, OPERATOR_2, VIEWER_2)
CHALLENGE = 'Basic realm="restricted"'

DEFINITIONS = f"""
import dagster as dg


@dg.asset
def {ASSET}():
    return 1


defs = dg.Definitions(assets=[{ASSET}], jobs=[dg.define_asset_job("{JOB}", selection=[{ASSET}])])
"""
INSTANCE = """
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status tags { key value } } }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""
PERMISSIONS = "{ permissions { permission value } }"


@dataclass
class Response:
    status: int
    headers: Message  # looked up without regard to case
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Proxy:
    port: int
    viewer_port: int
    operator_port: int

    def request(
        self, path: str, credentials: tuple[str, str] | None = None, data: dict | None = None, headers: dict | None = None, port: int | None = None
    ) -> Response:
        """GET (or POST `data` as JSON) through the proxy, or straight to a webserver's `port`."""
        sent = {**(headers or {})}
        if credentials:
            sent["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        if data is not None:
            sent["Content-Type"] = "application/json"
        body = json.dumps(data).encode() if data is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{port or self.port}{path}", data=body, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Response(response.status, response.headers, response.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, error.headers, error.read())

    def graphql(self, credentials: tuple[str, str] | None, query: str, variables: dict | None = None, path: str = "/graphql", **kwargs) -> dict:
        response = self.request(path, credentials, {"query": query, "variables": variables or {}}, **kwargs)
        assert response.status == 200, (path, response)
        return response.json()["data"]

    def launch(self, credentials: tuple[str, str], marker: str, path: str = "/graphql", **kwargs) -> dict:
        """launchRun of the probe job, tagged so the run (if any) can be found."""
        params = {
            "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": JOB},
            "executionMetadata": {"tags": [{"key": "test/marker", "value": marker}]},
        }
        return self.graphql(credentials, LAUNCH, {"params": params}, path=path, **kwargs)["launchRun"]

    def runs_marked(self, marker: str) -> list[dict]:
        query = "query Runs($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs { results { runId status } } } }"
        variables = {"filter": {"tags": [{"key": "test/marker", "value": marker}]}}
        return self.graphql(OPERATOR, query, variables)["runsOrError"]["results"]


def _location_loaded(port: int) -> bool:
    query = f'{{ workspaceLocationEntryOrError(name: "{LOCATION}") {{ ... on WorkspaceLocationEntry {{ loadStatus locationOrLoadError {{ __typename }} }} }} }}'
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", json.dumps({"query": query}).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entry = json.load(response)["data"]["workspaceLocationEntryOrError"]
    except OSError:
        return False
    return bool(entry) and entry["loadStatus"] == "LOADED" and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"


def _hash(password: str) -> str:
    return subprocess.run([CADDY, "hash-password", "--plaintext", password], capture_output=True, text=True, check=True).stdout.strip()


def _caddy_env(proxy_port: int, viewer_port: int, operator_port: int, hashes: dict[str, str]) -> dict[str, str]:
    """The environment the compose file's proxy service gets, with loopback addresses."""
    return {
        **os.environ,
        "HARMONIZER_UI_SITE": f"http://:{proxy_port}",
        "HARMONIZER_UI_BIND": "127.0.0.1",
        "HARMONIZER_UI_USERS": "\n".join(f"{name} {hash_}" for name, hash_ in hashes.items()),
        "HARMONIZER_UI_OPERATORS": f"{OPERATOR[0]} {OPERATOR_2[0]}",
        "HARMONIZER_UI_OPERATOR_UPSTREAM": f"127.0.0.1:{operator_port}",
        "HARMONIZER_UI_VIEWER_UPSTREAM": f"127.0.0.1:{viewer_port}",
    }


def _stop(processes: dict[str, tuple[psutil.Popen, Path]]) -> None:
    """Kill each process with its process group (a webserver's code server is in it): nothing they
    hold outlives the test, and a graceful shutdown is not what is tested here."""
    for process, _ in processes.values():
        _signal_group(process.pid, signal.SIGKILL)
    for process, _ in processes.values():
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    """user -> bcrypt hash of their password (cost 14, about a second each: made in parallel)."""
    with ThreadPoolExecutor(2) as pool:
        return dict(zip((name for name, _ in USERS), pool.map(_hash, (password for _, password in USERS)), strict=True))


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, hashes) -> Iterator[Proxy]:
    from dagster import DagsterInstance

    workdir = tmp_path_factory.mktemp("ui_auth")
    (workdir / "definitions.py").write_text(DEFINITIONS)
    (workdir / "workspace.yaml").write_text(f"load_from:\n  - python_file:\n      relative_path: definitions.py\n      location_name: {LOCATION}\n")
    home = workdir / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    # Created once here: two webservers creating a fresh instance's tables at once would race.
    DagsterInstance.from_config(str(home)).dispose()

    proxy = Proxy(free_port(), free_port(), free_port())
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    processes: dict[str, tuple[psutil.Popen, Path]] = {}

    def start(name: str, command: list[str], process_env: dict[str, str]) -> None:
        log = workdir / f"{name}.log"
        with open(log, "wb") as out:
            process = psutil.Popen(command, cwd=workdir, env=process_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        processes[name] = (process, log)

    def tails() -> str:
        return "\n".join(f"--- {name} ---\n{log.read_text(errors='replace')[-3000:]}" for name, (_, log) in processes.items())

    try:
        # Both webservers start at once, as compose starts them.
        for name, port, flags in (("viewer", proxy.viewer_port, ["--read-only"]), ("operator", proxy.operator_port, [])):
            start(name, [str(WEBSERVER), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml", *flags], env)
        caddy_env = _caddy_env(proxy.port, proxy.viewer_port, proxy.operator_port, hashes)
        start("caddy", [CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], caddy_env)

        deadline = time.monotonic() + 90
        waiting = {"viewer": proxy.viewer_port, "operator": proxy.operator_port}
        while waiting or not listening(proxy.port):
            dead = [name for name, (process, _) in processes.items() if process.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"{dead or 'timeout'} while waiting for {sorted(waiting) or 'caddy'}\n{tails()}")
            waiting = {name: port for name, port in waiting.items() if not _location_loaded(port)}
            time.sleep(0.3)
        yield proxy
    finally:
        _stop(processes)


def test_without_credentials_every_path_is_refused_with_a_basic_auth_challenge(proxy):
    for path in ("/", "/graphql", "/server_info", "/assets", "/runs", "/favicon.ico"):
        response = proxy.request(path)
        assert (response.status, response.headers.get("WWW-Authenticate"), response.body) == (401, CHALLENGE, b""), path
    response = proxy.request("/graphql", data={"query": PERMISSIONS})
    assert (response.status, response.headers.get("WWW-Authenticate")) == (401, CHALLENGE)


def test_a_wrong_password_or_an_unknown_user_is_refused(proxy):
    for credentials in (
        # Two, not more: each costs Caddy a bcrypt comparison (cost 14, about a second).
        (OPERATOR[0], VIEWER[1]),  # the operator's name with another user's (valid) password
        ("mallory", VIEWER[1]),
    ):
        response = proxy.request("/graphql", credentials, {"query": PERMISSIONS})
        assert (response.status, response.headers.get("WWW-Authenticate"), response.body) == (401, CHALLENGE, b""), credentials


def test_a_viewer_browses_the_ui_and_reads_graphql_but_cannot_launch(proxy):
    page = proxy.request("/", VIEWER)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.body.decode()
    assert '<title data-next-head="">Dagster</title>' in html and 'id="root"' in html
    # The page's scripts load through the proxy too.
    script = re.search(r'<script src="([^"]+\.js)"', html)
    assert script, html[:2000]
    assert proxy.request(script.group(1), VIEWER).status == 200

    assets = proxy.graphql(VIEWER, "{ assetNodes { assetKey { path } jobNames } }")["assetNodes"]
    assert assets == [{"assetKey": {"path": [ASSET]}, "jobNames": ["__ASSET_JOB", JOB]}]
    permissions = {p["permission"]: p["value"] for p in proxy.graphql(VIEWER, PERMISSIONS)["permissions"]}
    assert permissions["launch_pipeline_execution"] is False

    assert proxy.launch(VIEWER, "viewer") == {"__typename": "UnauthorizedError", "message": "Authorization failed"}
    assert proxy.runs_marked("viewer") == []


def test_an_operator_launches_a_run_that_the_viewer_then_sees(proxy):
    permissions = {p["permission"]: p["value"] for p in proxy.graphql(OPERATOR, PERMISSIONS)["permissions"]}
    assert permissions["launch_pipeline_execution"] is True

    launched = proxy.launch(OPERATOR, "operator")
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run = launched["run"]
    assert run["status"] == "QUEUED"  # the instance queues runs and no daemon dequeues them
    assert {"key": "test/marker", "value": "operator"} in run["tags"]
    assert proxy.runs_marked("operator") == [{"runId": run["runId"], "status": "QUEUED"}]
    # Both webservers share the instance: the viewer reads the run it could not have launched.
    query = "query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { jobName status } } }"
    assert proxy.graphql(VIEWER, query, {"id": run["runId"]})["runOrError"] == {"__typename": "Run", "jobName": JOB, "status": "QUEUED"}


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/graphql", {"Host": "webserver_operator:3000"}),
        ("/graphql", {"X-Forwarded-User": OPERATOR[0], "X-Forwarded-Host": "operator"}),
        ("//graphql", {}),
        ("/./graphql", {}),
        ("/%67raphql", {}),
        ("/graphql?operator=1", {}),
        ("/operator/../graphql", {}),
    ],
)
def test_a_viewer_reaches_the_full_webserver_by_no_path_or_header(proxy, path, headers):
    """Whatever the request looks like, a viewer's launch never succeeds: it is refused by the
    read-only webserver or finds no GraphQL endpoint at all."""
    marker = f"viewer-{path}-{sorted(headers)}"
    response = proxy.request(path, VIEWER, {"query": PERMISSIONS}, headers=headers)
    if response.status == 200:
        launched = proxy.launch(VIEWER, marker, path=path, headers=headers)
        assert launched == {"__typename": "UnauthorizedError", "message": "Authorization failed"}
    else:
        assert response.status in (404, 405), response
    assert proxy.runs_marked(marker) == []


def test_the_upstreams_are_the_read_only_and_the_full_webserver(proxy):
    """Asked directly, past the proxy: the viewer's upstream is the read-only webserver (a check of
    the test's own set-up, so that the tests above mean what they say)."""
    for port, can_launch in ((proxy.viewer_port, False), (proxy.operator_port, True)):
        permissions = {p["permission"]: p["value"] for p in proxy.graphql(None, PERMISSIONS, port=port)["permissions"]}
        assert permissions["launch_pipeline_execution"] is can_launch


def test_every_user_reaches_the_webserver_of_their_role(proxy):
    """Each operator named in HARMONIZER_UI_OPERATORS gets the full webserver; every other user the
    read-only one."""
    for credentials, can_launch in ((OPERATOR, True), (OPERATOR_2, True), (VIEWER, False), (VIEWER_2, False)):
        permissions = {p["permission"]: p["value"] for p in proxy.graphql(credentials, PERMISSIONS)["permissions"]}
        assert permissions["launch_pipeline_execution"] is can_launch, credentials[0]
    assert proxy.launch(OPERATOR_2, "second-operator")["__typename"] == "LaunchRunSuccess"
    assert proxy.launch(VIEWER_2, "second-viewer") == {"__typename": "UnauthorizedError", "message": "Authorization failed"}
    assert [run["status"] for run in proxy.runs_marked("second-operator")] == ["QUEUED"]
    assert proxy.runs_marked("second-viewer") == []


SHIPPED = _env_example()


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        # deploy/.env.example as shipped: its placeholders are not hashes.
        ({"HARMONIZER_UI_USERS": SHIPPED["HARMONIZER_UI_USERS"]}, "base64-decoding password"),
        ({"HARMONIZER_UI_USERS": OPERATOR[0]}, "username and password cannot be empty or missing"),
        ({"HARMONIZER_UI_USERS": f"{OPERATOR[0]} {{h}}\n{OPERATOR[0]} {{h}}"}, f"username is not unique: {OPERATOR[0]}"),
        ({"HARMONIZER_UI_OPERATORS": ""}, "malformed vars matcher: expected at least one value to match against"),
    ],
)
def test_caddy_refuses_to_start_without_distinct_users_with_real_hashes_and_an_operator(hashes, changes, error):
    changes = {name: value.format(h=hashes[OPERATOR[0]]) for name, value in changes.items()}
    env = {**_caddy_env(free_port(), free_port(), free_port(), hashes), **changes}
    checked = subprocess.run([CADDY, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env, capture_output=True, text=True)
    assert checked.returncode == 1
    assert error in checked.stderr.strip().splitlines()[-1]


def test_with_no_users_caddy_serves_nobody(hashes):
    """An empty HARMONIZER_UI_USERS is a valid file for Caddy (compose refuses it first): every
    request, with any credentials, is refused."""
    port = free_port()
    env = {**_caddy_env(port, free_port(), free_port(), hashes), "HARMONIZER_UI_USERS": ""}
    caddy = psutil.Popen([CADDY, "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"], env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            assert caddy.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        probe = Proxy(port, 0, 0)
        for credentials in (None, OPERATOR, ("", "")):
            assert probe.request("/graphql", credentials, {"query": PERMISSIONS}).status == 401, credentials
    finally:
        _stop({"caddy": (caddy, Path())})


def test_the_documented_single_sign_on_caddyfile_is_valid_and_asks_oauth2_proxy_first(tmp_path):
    """docs/deploying.md's forward_auth variant is not run here, only adapted by Caddy 2.6."""
    (snippet,) = re.findall(r"```caddyfile\n(.*?)```", (ROOT / "docs" / "deploying.md").read_text(), re.S)
    (tmp_path / "Caddyfile.oidc").write_text(snippet)
    env = {
        **os.environ,
        "HARMONIZER_UI_SITE": "http://:8080",
        "HARMONIZER_UI_BIND": "0.0.0.0",
        "HARMONIZER_UI_OPERATOR_UPSTREAM": "webserver_operator:3000",
        "HARMONIZER_UI_VIEWER_UPSTREAM": "webserver_viewer:3000",
    }
    adapt = [CADDY, "adapt", "--config", str(tmp_path / "Caddyfile.oidc"), "--adapter", "caddyfile"]
    adapted = subprocess.run(adapt, env=env, capture_output=True, text=True, check=True).stdout
    # In order: oauth2-proxy's pages, the forward_auth check, then the two webservers by group.
    assert re.findall(r'"dial":"([^"]+)"', adapted) == ["oauth2-proxy:4180", "oauth2-proxy:4180", "webserver_operator:3000", "webserver_viewer:3000"]
    # A groups header sent by the client is dropped before oauth2-proxy is asked.
    assert adapted.index('"delete":["X-Auth-Request-Groups"]') < adapted.index('"uri":"/oauth2/auth"')
