"""The run launcher of a harmonizer instance: Dagster's DefaultRunLauncher, plus a worker health
check, so run monitoring (dagster.yaml `run_monitoring`) marks failed a run whose worker died.

The DefaultRunLauncher starts each run as a subprocess of the code server and offers no health
check: a run whose worker died while its code server lived is failed by that server itself,
unless its clean-up thread died meanwhile (it does when the database is away at that moment);
then the run stayed STARTED, holding its place in the run queue, until the maximum runtime.
Here the daemon asks the code server that started the run (the `.dagster/grpc_info` tag the
launcher writes) whether it still executes it: `GetCurrentRuns` on a plain server,
`CanCancelExecution` through the proxy `dagster code-server start` runs (it forwards only that).
The proxy forwards to the server of its latest code reload, which knows only its own runs, so
once the server id differs from the one at launch (a reload or a restart) the answer proves
nothing and the run is taken to live: a file load's own heartbeat (the landing sensor) and the
maximum runtime still bound it. Loaded by the webserver and the daemon: imports dagster only.
"""

from __future__ import annotations

import json

import grpc
from dagster import DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.client import DagsterGrpcClient
from dagster._grpc.types import CanCancelExecutionRequest, CanCancelExecutionResult, GetCurrentRunsResult
from dagster._serdes import deserialize_value

SERVER_ID_TAG = "harmonizer/code_server_id"


def _client(run: DagsterRun) -> tuple[DagsterGrpcClient, str] | None:
    info = run.tags.get(GRPC_INFO_TAG)
    if not info:
        return None
    server = json.loads(info)
    client = DagsterGrpcClient(port=server.get("port"), socket=server.get("socket"), host=server.get("host", "localhost"), use_ssl=bool(server.get("use_ssl")))
    return client, server.get("socket") or f"{server.get('host')}:{server.get('port')}"


class CheckedDefaultRunLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose run workers the run-monitoring daemon can check."""

    def launch_run(self, context: LaunchRunContext) -> None:
        super().launch_run(context)
        run = self._instance.get_run_by_id(context.dagster_run.run_id)
        found = _client(run) if run else None
        if run is not None and found is not None:
            self._instance.add_run_tags(run.run_id, {SERVER_ID_TAG: found[0].get_server_id()})

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        found = _client(run)
        if found is None:
            # Executed in a process of its own (`harmonizer demo`, execute_in_process): nothing to ask.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not launched through a code server")
        client, where = found
        try:
            running = self._runs(client, run)
        except Exception as exc:  # noqa: BLE001 - unreachable now is no proof of death; the maximum runtime still bounds it
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"code server {where} not reachable ({type(exc).__name__}); assumed running", transient=True)
        if running is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"code server {where} was reloaded or restarted since the launch; assumed running")
        if running:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"the code server at {where} no longer runs it: its run worker is gone")

    @staticmethod
    def _runs(client: DagsterGrpcClient, run: DagsterRun) -> bool | None:
        """Whether the server executes the run; None when it cannot tell."""
        try:
            return run.run_id in deserialize_value(client.get_current_runs(), GetCurrentRunsResult).current_runs
        except Exception as exc:
            # The client wraps the gRPC error it got.
            cause = exc.__cause__ if isinstance(exc.__cause__, grpc.RpcError) else exc
            if not isinstance(cause, grpc.RpcError) or cause.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        # The proxy of `dagster code-server start`: its answer is about the server of its latest load only.
        if run.tags.get(SERVER_ID_TAG) != client.get_server_id():
            return None
        answer = client.can_cancel_execution(CanCancelExecutionRequest(run_id=run.run_id))
        return deserialize_value(answer, CanCancelExecutionResult).can_cancel
