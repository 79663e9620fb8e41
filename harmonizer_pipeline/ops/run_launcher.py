"""The run launcher of a harmonizer instance: Dagster's DefaultRunLauncher, plus a worker health
check, so run monitoring (dagster.yaml `run_monitoring`) marks failed a run whose worker died.

The DefaultRunLauncher starts each run as a subprocess of the code server (`dagster code-server`,
or the one `dagster dev` starts) and offers no health check: a run whose worker died while its
code server lived is failed by that server itself, but a run outliving its code server (the
server or its container restarted, or its clean-up thread died while the database was away)
stayed STARTED, holding its place in the run queue, until the maximum runtime. Here the daemon
asks the code server that started the run (the `dagster/grpc_info` tag the launcher wrote)
whether it still executes it. Loaded by the webserver and the daemon: imports dagster only.
"""

from __future__ import annotations

import json

from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import GetCurrentRunsResult
from dagster._serdes import deserialize_value

GRPC_INFO_TAG = "dagster/grpc_info"


class CheckedDefaultRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers the run-monitoring daemon can check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        info = run.tags.get(GRPC_INFO_TAG)
        if not info:
            # Executed in a process of its own (`harmonizer demo`, execute_in_process): nothing to ask.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched through a code server")
        server = json.loads(info)
        where = server.get("socket") or f"{server.get('host')}:{server.get('port')}"
        client = DagsterGrpcClient(
            port=server.get("port"), socket=server.get("socket"), host=server.get("host", "localhost"), use_ssl=bool(server.get("use_ssl"))
        )
        try:
            current = deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs
        except Exception as exc:  # noqa: BLE001 - unreachable now is no proof of death; the maximum runtime still bounds it
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"code server {where} not reachable ({type(exc).__name__}); assumed running", transient=True)
        if run.run_id in current:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the code server at {where} no longer runs it: its run worker is gone")
