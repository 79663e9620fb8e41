"""The deployment files (deploy/, .dockerignore) agree with Dagster and with each other.

Docker and Helm are not needed: the production dagster.yaml is loaded by Dagster's own instance
loader onto a real PostgreSQL database, the Helm run-queue values go through the run coordinator's
own config schema, and the commands of the Dockerfile and docker-compose.yaml are parsed by the
installed Dagster CLIs. The compose file is checked against the Dockerfile (image, command, ports,
mount points) and the workspace file it mounts.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import click
import dotenv
import psycopg
import pytest
import yaml

from harmonizer_pipeline.settings import load_settings_file
from harmonizer_pipeline.storage import postgres
from harmonizer_tests.code_location.test_yaml_examples import keys

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MODULE = PYPROJECT["tool"]["dagster"]["module_name"]
LOCATION = PYPROJECT["tool"]["dagster"]["code_location_name"]
WEBSERVERS = ("webserver_viewer", "webserver_operator")
APP_SERVICES = ("user_code", *WEBSERVERS, "daemon")
MIGRATE = ["harmonizer", "db", "migrate"]

# What deploy/dagster.yaml promises: runs tagged by the code, limited per tag value.
EXPECTED_TAG_LIMITS = {"harmonizer/target": 1, "harmonizer/source": 2}
EXPECTED_MAX_RUNS = 4


# ---- helpers -----------------------------------------------------------------------------------


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Instructions of deploy/Dockerfile per stage, continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    buffer = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical = buffer + line
        buffer = ""
        keyword, _, rest = logical.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append((keyword.upper(), rest.strip()))
    return stages


def _runtime_stage() -> list[tuple[str, str]]:
    return _dockerfile_stages()[-1]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _runtime_stage():
        if keyword == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def _dockerfile_cmd() -> list[str]:
    commands = [rest for keyword, rest in _runtime_stage() if keyword == "CMD"]
    assert len(commands) == 1
    return yaml.safe_load(commands[0])  # exec form: a JSON array


def _dockerfile_copies() -> list[tuple[str, str]]:
    """(source in the build context, destination) of the runtime stage's COPYs from the context."""
    copies = []
    for keyword, rest in _runtime_stage():
        if keyword == "COPY" and not rest.startswith("--from"):
            source, destination = rest.split()
            copies.append((source, destination))
    return copies


def _env_example() -> dict[str, str]:
    """deploy/.env.example as compose reads it: a single-quoted value is taken literally (a bcrypt
    hash holds `$`) and may span lines (HARMONIZER_UI_USERS)."""
    values = dotenv.dotenv_values(DEPLOY / ".env.example", interpolate=False)
    assert all(value is not None for value in values.values()), values
    return {key: value or "" for key, value in values.items()}


_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with the values of .env.example."""

    def value(match: re.Match) -> str:
        name, operator, argument = match.groups()
        if env.get(name):
            return env[name]
        if operator and operator.endswith("-"):
            return argument
        raise AssertionError(f"${{{name}}} has no value in .env.example")

    return _VARIABLE.sub(value, text)


def _compose() -> dict:
    return _yaml(DEPLOY / "docker-compose.yaml")


def _compose_resolved() -> dict:
    """docker-compose.yaml as compose sees it with deploy/.env copied from .env.example: as compose
    does, the YAML is read first and its strings interpolated after (a value may span lines)."""

    def resolved(node):
        if isinstance(node, dict):
            return {key: resolved(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolved(value) for value in node]
        return _interpolate(node, example) if isinstance(node, str) else node

    example = _env_example()
    return resolved(_compose())


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> volume name or host path, from short-syntax volume entries (interpolated)."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *_ = entry.split(":")
        mounts[target] = source
    return mounts


def _parse_cli(group: click.Command, args: list[str]) -> dict:
    """Parse argv with the installed click command (without running it); returns its params."""
    command = group
    while isinstance(command, click.Group):
        name, *args = args
        command = command.commands[name]
    return command.make_context(command.name, list(args)).params


def _dagster_cli() -> click.Group:
    from dagster._cli import cli

    return cli


def _host_path_of(container_path: str, service: dict) -> Path:
    """The file in deploy/ that a bind mount of `service` puts at container_path."""
    source = _mounts(service)[container_path]
    assert source.startswith("./"), f"{container_path} is not bind-mounted from deploy/"
    return DEPLOY / source


def _workspace_command_params(service: dict, cli: click.Command) -> dict:
    """The params of a service's `... -w <workspace>` command as the installed CLI parses them,
    with the file in deploy/ that is mounted there in place of the container path."""
    command = service["command"]
    container_path = command[command.index("-w") + 1]
    workspace_file = _host_path_of(container_path, service)
    return _parse_cli(cli, [str(workspace_file) if arg == container_path else arg for arg in command[1:]])


# ---- deploy/dagster.yaml -------------------------------------------------------------------------


@pytest.fixture
def dagster_pg_url(server_url: str):
    """A database of its own for a Dagster instance (its tables are created on first use)."""
    name = f"harmonizer_deploy_{os.getpid()}_{secrets.token_hex(3)}"
    postgres.ensure_database(server_url, name)
    yield postgres.sqlalchemy_url(postgres.with_database(server_url, name), "psycopg2")
    postgres.drop_database(server_url, name)


def test_dagster_yaml_passes_dagsters_instance_schema(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("HARMONIZER_DAGSTER_PG_URL", "postgresql+psycopg2://u:p@h:5432/d")
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    # The URL is read from the environment when the instance starts, never written in the file.
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "HARMONIZER_DAGSTER_PG_URL"}


def test_dagster_yaml_builds_a_queued_instance_on_postgres(tmp_path, monkeypatch, dagster_pg_url):
    from dagster import DagsterInstance, job, op
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    from harmonizer_pipeline.monitoring.run_launcher import CheckedDefaultRunLauncher

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("HARMONIZER_DAGSTER_PG_URL", dagster_pg_url)

    @op
    def noop():
        pass

    @job
    def deploy_probe():
        noop()

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, CheckedDefaultRunLauncher)
        # The daemon checks started runs' workers every 30 s (and never resumes one: the launcher cannot).
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_runtime_seconds > 0
        assert (instance.run_monitoring_poll_interval_seconds, instance.run_monitoring_max_resume_run_attempts) == (30, 0)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
        # Retries are for a dead run worker: a file that failed its gate would only fail again.
        assert instance.run_retries_retry_on_asset_or_op_failure is False

        # The daemon dequeues by the instance's concurrency config.
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == EXPECTED_MAX_RUNS
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
        assert {key: limit["limit"] for key, limit in limits.items()} == EXPECTED_TAG_LIMITS
        assert all(limit["value"] == {"applyLimitPerUniqueValue": True} for limit in limits.values())

        run = instance.create_run_for_job(job_def=deploy_probe)

    # The run went to the PostgreSQL database the URL names.
    with psycopg.connect(postgres.libpq_url(dagster_pg_url)) as conn:
        stored = conn.execute("SELECT pipeline_name FROM runs WHERE run_id = %s", (run.run_id,)).fetchall()
    assert stored == [("deploy_probe",)]


def test_tag_limits_name_tags_the_code_sets():
    from harmonizer_pipeline.definitions import defs
    from harmonizer_pipeline.settings import load_settings

    for target in load_settings().targets:
        job = defs.resolve_job_def(f"harmonize_{target}")
        assert job.tags.get("harmonizer/target") == target
    # harmonizer/source is set on each file's run by the landing sensor (test_topology checks it).


# ---- Dockerfile -----------------------------------------------------------------------------------


def test_dockerfile_runtime_image():
    stages = _dockerfile_stages()
    assert all(rest.startswith("python:3.11-slim") for _, rest in (stage[0] for stage in stages))
    runtime = _runtime_stage()
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "4000") in runtime

    env = _dockerfile_env()
    assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    copies = dict(_dockerfile_copies())
    assert copies["deploy/dagster.yaml"] == f"{env['DAGSTER_HOME']}/dagster.yaml"
    assert copies["harmonizer.yaml"] == env["HARMONIZER_CONFIG"]
    assert "HARMONIZER_DATABASE_URL" not in env  # comes from the deployment, never baked in
    assert env["HARMONIZER_ENVIRONMENT"] == "production"  # so a container without it stops, never starts an embedded server


def test_the_image_installs_the_projects_dependencies_and_dagster_k8s(tmp_path):
    """The build stage's own requirements command, run on pyproject.toml: the run pods of the
    Helm chart's K8sRunLauncher import dagster_k8s from this image."""
    [command] = [rest for keyword, rest in _dockerfile_stages()[0] if keyword == "RUN" and "requirements.txt" in rest]
    argv = shlex.split(command.split(">", 1)[0])
    assert argv[:2] == ["python", "-c"]
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    printed = subprocess.run([sys.executable, "-c", argv[2]], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert printed.splitlines() == PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["k8s"]
    assert any(line.startswith("dagster-k8s") for line in printed.splitlines())
    assert _yaml(DEPLOY / "helm" / "values.yaml")["runLauncher"]["type"] == "K8sRunLauncher"
    [check] = [rest for keyword, rest in _dockerfile_stages()[0] if keyword == "RUN" and "import harmonizer_pipeline.definitions" in rest]
    assert "dagster_k8s" in check  # the build fails when the image cannot import it


def test_dockerfile_cmd_is_a_valid_code_server_command():
    cmd = _dockerfile_cmd()
    assert cmd[:3] == ["dagster", "code-server", "start"]
    params = _parse_cli(_dagster_cli(), cmd[1:])
    assert params["module_name"] == MODULE
    assert params["host"] == "0.0.0.0"
    assert params["port"] == 4000


def test_image_config_reads_landing_from_the_compose_landing_volume(tmp_path):
    """The Dockerfile's copy of harmonizer.yaml (landing paths rewritten by its sed) loads, and every
    local landing folder lies in the volume docker-compose.yaml mounts for the landing zone."""
    env = _dockerfile_env()
    config_dir = PurePosixPath(env["HARMONIZER_CONFIG"]).parent
    runs = " ".join(rest for keyword, rest in _runtime_stage() if keyword == "RUN")
    rewrite = re.search(r"sed -i 's#([^#]*)#([^#]*)#' (\S+)", runs)
    assert rewrite and rewrite.group(3) == env["HARMONIZER_CONFIG"]
    text = re.sub(rewrite.group(1), rewrite.group(2), (ROOT / "harmonizer.yaml").read_text())

    # Rebuild the image's config folder: harmonizer.yaml plus what is COPYed next to it.
    image_dir = tmp_path / "image"
    landing_copy = None
    for source, destination in _dockerfile_copies():
        if destination.startswith(f"{config_dir}/") and source != "harmonizer.yaml":
            shutil.copytree(ROOT / source, image_dir / PurePosixPath(destination).relative_to(config_dir))
        if source.endswith("/landing"):
            landing_copy = (source, PurePosixPath(destination))
    (image_dir / "harmonizer.yaml").write_text(text)
    settings = load_settings_file(image_dir / "harmonizer.yaml")

    mounts = _mounts(_compose_resolved()["services"]["user_code"])
    landing_target = PurePosixPath(next(t for t in mounts if mounts[t] == _env_example()["HARMONIZER_LANDING"]))
    assert landing_copy and landing_copy[1] == landing_target
    local = {name: s.landing.local.path for name, s in settings.sources.items() if s.landing.local}
    assert local, "the example config has local sources"
    for name, path in local.items():
        relative = PurePosixPath(path).relative_to(landing_target)  # raises when outside the volume
        # The image starts the volume with the sample files in the folder the config reads.
        assert (ROOT / landing_copy[0] / relative).is_dir(), name

    exports = PurePosixPath(env["HARMONIZER_HOME"]) / "exports"
    assert str(exports) in mounts


# ---- docker-compose.yaml and workspace.yaml ----------------------------------------------------------


def test_compose_has_the_services_built_from_the_dockerfile_behind_one_proxy():
    services = _compose_resolved()["services"]
    assert set(services) == {"postgres", "migrate", *APP_SERVICES, "proxy"}

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert "/var/lib/postgresql/data" in _mounts(pg)

    images = set()
    for name in APP_SERVICES:
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        images.add(services[name]["image"])
        assert services[name]["healthcheck"]["test"]
    assert len(images) == 1

    assert services["user_code"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in (*WEBSERVERS, "daemon"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_healthy"
    # The UI has no login of its own: only the authenticating proxy publishes a port, on loopback.
    assert {name for name, service in services.items() if "ports" in service} == {"proxy"}
    assert services["proxy"]["ports"] == ["127.0.0.1:3000:8080"]


def test_compose_migrates_the_bookkeeping_tables_before_the_code_server_starts():
    from harmonizer_pipeline.cli import main

    services = _compose_resolved()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == MIGRATE
    _parse_cli(main, migrate["command"][1:])
    assert migrate["image"] == services["user_code"]["image"] and migrate["build"] == services["user_code"]["build"]
    assert migrate["restart"] == "no"  # one-shot: done once it exited 0
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["user_code"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["environment"]["HARMONIZER_DATABASE_URL"] == services["user_code"]["environment"]["HARMONIZER_DATABASE_URL"]


def test_compose_user_code_runs_the_dockerfile_cmd():
    assert _compose()["services"]["user_code"]["command"] == _dockerfile_cmd()


def test_webserver_and_daemon_reach_the_user_code_server_through_the_workspace():
    from dagster._core.workspace.config_schema import process_workspace_config
    from dagster._daemon.cli import cli as daemon_cli
    from dagster_webserver.cli import cli as webserver_cli

    services = _compose_resolved()["services"]
    user_code = _parse_cli(_dagster_cli(), services["user_code"]["command"][1:])
    for name, cli in (*((webserver, webserver_cli) for webserver in WEBSERVERS), ("daemon", daemon_cli)):
        workspace_file = _workspace_command_params(services[name], cli)["workspace"][0]
        assert Path(workspace_file) == DEPLOY / "workspace.yaml"

        workspace = _yaml(Path(workspace_file))
        assert process_workspace_config(workspace).success
        (entry,) = workspace["load_from"]
        server = entry["grpc_server"]
        assert server["host"] == "user_code" and server["host"] in services
        assert server["port"] == user_code["port"]
        assert server["location_name"] == LOCATION

    assert _parse_cli(webserver_cli, ["-h", "0.0.0.0", "-p", "3000"])["port"] == 3000
    assert "liveness-check" in " ".join(services["daemon"]["healthcheck"]["test"])


def test_compose_variables_are_all_in_env_example():
    text = (DEPLOY / "docker-compose.yaml").read_text()
    used = {match.group(1) for match in _VARIABLE.finditer(text)}
    example = _env_example()
    assert used and used <= set(example), sorted(used - set(example))
    # Placeholders only: no real password or key is shipped.
    assert example["POSTGRES_PASSWORD"].startswith("change-me")
    assert example["B2_APPLICATION_KEY_ID"] == "" and example["B2_APPLICATION_KEY"] == ""
    # No secret written into the compose file: passwords, keys and URL passwords are variables.
    for service in _compose()["services"].values():
        for key, value in (service.get("environment") or {}).items():
            value = _VARIABLE.sub("__VAR__", str(value))
            if re.search(r"PASSWORD|SECRET|TOKEN|_KEY", key):
                assert value == "__VAR__", key
            if "://" in value:
                assert urlsplit(value).password in (None, "__VAR__"), key


def test_compose_urls_point_both_dagster_and_the_pipeline_at_the_postgres_service():
    services = _compose_resolved()["services"]
    env = services["user_code"]["environment"]
    data_url = env["HARMONIZER_DATABASE_URL"]
    dagster_url = env["HARMONIZER_DAGSTER_PG_URL"]
    assert data_url.startswith("postgresql://")
    assert dagster_url.startswith("postgresql+psycopg2://")  # dagster-postgres needs the driver named
    assert postgres.libpq_url(dagster_url) == data_url
    parts = urlsplit(data_url)
    assert parts.hostname == "postgres" and parts.port == 5432
    pg_env = services["postgres"]["environment"]
    assert (parts.username, parts.password, parts.path.lstrip("/")) == (
        pg_env["POSTGRES_USER"],
        pg_env["POSTGRES_PASSWORD"],
        pg_env["POSTGRES_DB"],
    )
    for name in (*WEBSERVERS, "daemon"):
        assert services[name]["environment"]["HARMONIZER_DAGSTER_PG_URL"] == dagster_url
        assert "HARMONIZER_DATABASE_URL" not in services[name]["environment"]


def test_compose_shares_step_logs_between_runs_and_the_webservers():
    services = _compose_resolved()["services"]
    storage = f"{_dockerfile_env()['DAGSTER_HOME']}/storage"
    for name in WEBSERVERS:
        assert _mounts(services["user_code"])[storage] == _mounts(services[name])[storage]


# ---- the authenticating proxy: deploy/Caddyfile --------------------------------------------------

PASSWORD_HASH_PLACEHOLDER = "replace-with-the-output-of-caddy-hash-password"
CADDYFILE_VARIABLE = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)\}")


def test_the_proxy_sends_viewers_to_the_read_only_webserver_and_operators_to_the_full_one():
    from dagster_webserver.cli import cli as webserver_cli

    services = _compose_resolved()["services"]
    proxy = services["proxy"]
    env = proxy["environment"]
    assert proxy["image"] == "caddy:2"
    assert proxy["command"][:2] == ["caddy", "run"] and proxy["command"][-2:] == ["--adapter", "caddyfile"]
    config = proxy["command"][proxy["command"].index("--config") + 1]
    assert _host_path_of(config, proxy) == DEPLOY / "Caddyfile"
    assert f"./Caddyfile:{config}:ro" in proxy["volumes"]

    viewer = _workspace_command_params(services["webserver_viewer"], webserver_cli)
    operator = _workspace_command_params(services["webserver_operator"], webserver_cli)
    assert (viewer["read_only"], operator["read_only"]) == (True, False)
    assert env["HARMONIZER_UI_VIEWER_UPSTREAM"] == f"webserver_viewer:{viewer['port']}"
    assert env["HARMONIZER_UI_OPERATOR_UPSTREAM"] == f"webserver_operator:{operator['port']}"
    assert {name: proxy["depends_on"][name]["condition"] for name in WEBSERVERS} == dict.fromkeys(WEBSERVERS, "service_healthy")

    # The site listens on the container port the compose file publishes, on every interface of the
    # container (the host side stays on loopback).
    (published,) = proxy["ports"]
    assert urlsplit(env["HARMONIZER_UI_SITE"]).port == int(published.rsplit(":", 1)[1])
    assert env["HARMONIZER_UI_BIND"] == "0.0.0.0"


def test_the_caddyfile_reads_exactly_the_variables_the_proxy_service_sets():
    used = set(CADDYFILE_VARIABLE.findall((DEPLOY / "Caddyfile").read_text()))
    assert used == set(_compose()["services"]["proxy"]["environment"])
    # The users and their hashes come from deploy/.env, and compose stops when one is missing.
    proxy_env = _compose()["services"]["proxy"]["environment"]
    for name in ("HARMONIZER_UI_USERS", "HARMONIZER_UI_OPERATORS"):
        assert proxy_env[name] == f"${{{name}:?set {name} in deploy/.env}}"
    # One line per user, and the shipped placeholders are not bcrypt hashes: Caddy refuses them
    # (test_ui_auth.py).
    example = _env_example()
    users = [line.split(" ") for line in example["HARMONIZER_UI_USERS"].splitlines()]
    assert users == [["olga", PASSWORD_HASH_PLACEHOLDER], ["victor", PASSWORD_HASH_PLACEHOLDER]]
    assert example["HARMONIZER_UI_OPERATORS"] == "olga"


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".harmonizer", "bench", "harmonizer_tests", "deploy/.env"} <= patterns
    # What the Dockerfile copies must stay in the context.
    used = {source.split("/")[0] for source, _ in _dockerfile_copies()} | {"pyproject.toml", "README.md"}
    assert not used & patterns


# ---- Helm values ---------------------------------------------------------------------------------


def test_helm_values_run_our_code_server_with_the_k8s_run_launcher():
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runRetries"] == {"enabled": True, "maxRetries": 1, "retryOnAssetOrOpFailure": False}
    assert values["dagsterDaemon"]["runMonitoring"] == {
        "enabled": True,
        "startTimeoutSeconds": 300,
        "pollIntervalSeconds": 30,
        "maxResumeRunAttempts": 0,
    }

    user = values["dagster-user-deployments"]
    assert user["enabled"] and user["enableSubchart"]
    (deployment,) = user["deployments"]
    assert deployment["name"] == LOCATION  # the chart's workspace.yaml names the location after it
    assert str(4000) in _dockerfile_cmd() and deployment["port"] == 4000
    # The chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`.
    argv = ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", str(deployment["port"]), *deployment["codeServerArgs"]]
    params = _parse_cli(_dagster_cli(), argv[1:])
    assert params["module_name"] == MODULE
    assert {"name": "harmonizer-env"} in deployment["envSecrets"]

    # The code server starts once an init container of the same image migrated the bookkeeping tables.
    (migrate,) = deployment["initContainers"]
    assert migrate["command"] == MIGRATE
    assert migrate["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert {"secretRef": {"name": "harmonizer-env"}} in migrate["envFrom"]

    pg = values["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"]
    assert "postgresqlPassword" not in pg
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]


# The release name of the install command in deploy/README.md; the chart names its Services after it.
HELM_RELEASE = "harmonizer"


def test_helm_values_give_viewers_a_read_only_webserver_and_ingresses_admit_each_group_to_its_own():
    values = _yaml(DEPLOY / "helm" / "values.yaml")
    assert values["dagsterWebserver"] == {"enableReadOnly": True}
    assert values["ingress"] == {"enabled": False}  # one set of annotations could not tell the groups apart
    assert f"helm upgrade --install {HELM_RELEASE} dagster/dagster" in (DEPLOY / "README.md").read_text()

    ingresses = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all((DEPLOY / "helm" / "ingress-oauth2-proxy.yaml").read_text())}
    assert all(doc["apiVersion"] == "networking.k8s.io/v1" and doc["kind"] == "Ingress" for doc in ingresses.values())

    def routes(ingress: dict) -> dict[tuple[str, str], str]:
        return {(rule["host"], path["path"]): path["backend"]["service"]["name"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}

    def admitted_groups(ingress: dict) -> set[str]:
        auth_url = urlsplit(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"])
        assert auth_url.path == "/oauth2/auth"
        (groups,) = [value for key, _, value in (p.partition("=") for p in auth_url.query.split("&")) if key == "allowed_groups"]
        return set(groups.split(","))

    viewer, operator = ingresses["harmonizer-ui-viewer"], ingresses["harmonizer-ui-operator"]
    assert routes(viewer) == {("harmonizer.example.org", "/"): f"{HELM_RELEASE}-dagster-webserver-read-only"}
    assert routes(operator) == {("harmonizer-ops.example.org", "/"): f"{HELM_RELEASE}-dagster-webserver"}
    assert admitted_groups(viewer) == {"harmonizer-viewers", "harmonizer-operators"}
    assert admitted_groups(operator) == {"harmonizer-operators"}
    for ingress in (viewer, operator):
        assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-signin"].endswith("/oauth2/start?rd=$escaped_request_uri")
    # Only oauth2-proxy's own pages go without authentication, and nothing else reaches a webserver.
    oauth2 = ingresses.pop("harmonizer-ui-oauth2")
    assert "annotations" not in oauth2["metadata"]
    assert routes(oauth2) == {("harmonizer.example.org", "/oauth2"): "oauth2-proxy", ("harmonizer-ops.example.org", "/oauth2"): "oauth2-proxy"}
    assert set(ingresses) == {"harmonizer-ui-viewer", "harmonizer-ui-operator"}


def test_helm_run_queue_has_the_limits_of_dagster_yaml(tmp_path, monkeypatch):
    """Render the queued run coordinator as the chart does and load it with Dagster's own schema."""
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator

    coordinator = _yaml(DEPLOY / "helm" / "values.yaml")["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    rendered = {
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued["maxConcurrentRuns"],
                "tag_concurrency_limits": queued["tagConcurrencyLimits"],
            },
        }
    }
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _ = dagster_instance_config(str(tmp_path))
    helm_queue = QueuedRunCoordinator.from_config_value(None, config["run_coordinator"]["config"]).get_run_queue_config()

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("HARMONIZER_DAGSTER_PG_URL", "postgresql+psycopg2://u:p@h:5432/d")
    compose_config, _ = dagster_instance_config(str(tmp_path))
    runs = compose_config["concurrency"]["runs"]
    assert helm_queue.max_concurrent_runs == runs["max_concurrent_runs"] == EXPECTED_MAX_RUNS
    assert helm_queue.tag_concurrency_limits == runs["tag_concurrency_limits"]


# ---- every YAML file Dagster, Compose or Helm reads ----------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "harmonizer_pipeline/dagster_instance.yaml",
        "workspace.yaml",
        "deploy/dagster.yaml",
        "deploy/workspace.yaml",
        "deploy/docker-compose.yaml",
        "deploy/helm/values.yaml",
    ],
)
def test_deploy_yaml_keys_are_strings_even_under_yaml_1_1(path):
    # Dagster and Helm read YAML 1.1, where a key such as `on:` or `no:` is a boolean.
    document = _yaml(ROOT / path)
    assert isinstance(document, dict) and document
    assert [key for key in keys(document) if not isinstance(key, str)] == []
