"""The private Dagster seam the IO manager stands on (dagster._core.storage.db_io_manager).

Every official database integration imports it; it is not public API, so a Dagster upgrade
that changes it must fail here first, with a readable message."""

import ast
import inspect
import re
from pathlib import Path

from dagster._core.storage import db_io_manager

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_db_io_manager_seam_is_as_the_io_manager_expects():
    assert db_io_manager.TableSlice._fields == ("table", "schema", "database", "columns", "partition_dimensions")
    assert db_io_manager.TablePartitionDimension._fields == ("partition_expr", "partitions")
    params = inspect.signature(db_io_manager.DbIOManager.__init__).parameters
    assert {"type_handlers", "db_client", "database", "io_manager_name", "default_load_type"} <= set(params)
    client_methods = {"delete_table_slice", "get_select_statement", "ensure_schema_exists", "connect"}
    assert client_methods <= set(vars(db_io_manager.DbClient))
    assert {"handle_output", "load_input", "supported_types"} <= set(vars(db_io_manager.DbTypeHandler))


def test_handle_output_deletes_the_slice_inside_the_same_connection_as_the_write():
    # The replace-a-partition-in-one-transaction guarantee relies on this order in one `with connect`.
    source = inspect.getsource(db_io_manager.DbIOManager.handle_output)
    connect = source.index("self._db_client.connect(")
    ensure = source.index("ensure_schema_exists(")
    delete = source.index("delete_table_slice(")
    write = source.index("handler.handle_output(")
    assert connect < ensure < delete < write


def test_run_launcher_seam_is_as_the_health_check_expects():
    # monitoring/run_launcher.py reads where the DefaultRunLauncher started a run and asks that server.
    from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
    from dagster._core.launcher.default_run_launcher import DefaultRunLauncher
    from dagster._core.storage.tags import GRPC_INFO_TAG
    from dagster._grpc.client import DagsterGrpcClient
    from dagster._grpc.types import CanCancelExecutionResult, GetCurrentRunsResult

    assert "GRPC_INFO_TAG" in inspect.getsource(DefaultRunLauncher.launch_run_from_grpc_client) and GRPC_INFO_TAG == ".dagster/grpc_info"
    assert {"get_current_runs", "can_cancel_execution", "get_server_id"} <= set(vars(DagsterGrpcClient))
    assert CheckRunHealthResult._fields[:2] == ("status", "msg") and {"RUNNING", "FAILED"} <= set(WorkerStatus.__members__)
    assert "current_runs" in GetCurrentRunsResult.__annotations__ and "can_cancel" in CanCancelExecutionResult.__annotations__


def _private_imports_in_code() -> set[tuple[str, str]]:
    found = set()
    for path in (PROJECT_ROOT / "harmonizer_pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dagster._"):
                found |= {(node.module, alias.name) for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {(alias.name, "") for alias in node.names if alias.name.startswith("dagster._")}
    return found


def _private_imports_documented() -> set[tuple[str, str]]:
    text = (PROJECT_ROOT / "docs" / "dagster-apis.md").read_text()
    section = text.split("## Private modules", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in section.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`dagster._"):
            [module] = re.findall(r"`([^`]+)`", cells[0])
            documented |= {(module, name) for name in re.findall(r"`([^`]+)`", cells[1])}
    return documented


def test_the_code_imports_exactly_the_private_dagster_names_docs_explain():
    assert _private_imports_in_code() == _private_imports_documented()
