"""Domain logic and storage stay plain Python: only the Dagster wiring (definitions, resources,
the demo, and each stage's assets, job, sensors, schedules, run launcher) loads dagster on import; and
no module imports another that imports it back."""

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import harmonizer_pipeline

WIRING_TOP = {"definitions", "resources", "demo", "wiring"}
WIRING_LEAVES = {"assets", "job", "sensors", "schedules", "run_launcher"}

# Each plain module imported by a fresh fork of an interpreter that has loaded nothing of the
# project's (only the big libraries it uses, which load no dagster, so that each fork does not
# load them again); the wiring modules need no probe, loading dagster is what they do.
PROBE = """
import importlib, json, os, sys
import numpy, pandas, pandera.pandas, psycopg, pyarrow, pydantic, sqlalchemy, yaml
assert "dagster" not in sys.modules
loads = {}
for module in sys.argv[1:]:
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        importlib.import_module(module)
        os.write(write, b"1" if "dagster" in sys.modules else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.wait()
    loads[module] = answer.decode()  # empty when the import failed
print(json.dumps(loads))
"""


def is_wiring(module: str) -> bool:
    parts = module.split(".")[1:]
    return (len(parts) == 1 and parts[0] in WIRING_TOP) or (len(parts) > 1 and parts[-1] in WIRING_LEAVES)


@pytest.mark.slow
def test_only_dagster_wiring_modules_load_dagster():
    # Alembic's migration scripts run only inside alembic: they are no modules to import.
    modules = [m.name for m in pkgutil.walk_packages(harmonizer_pipeline.__path__, "harmonizer_pipeline.") if ".migrations." not in m.name]
    plain = sorted(m for m in modules if not is_wiring(m))
    assert len(plain) > 50 and {
        "harmonizer_pipeline.storage.writes",
        "harmonizer_pipeline.cli",
        "harmonizer_pipeline.settings",
        "harmonizer_pipeline.keys.comparison",
        "harmonizer_pipeline.keys.file_diff",
        "harmonizer_pipeline.keys.violations",
        "harmonizer_pipeline.quality.statistics",
        "harmonizer_pipeline.quality.statistics_display",
        "harmonizer_pipeline.bookkeeping.statistics",
        "harmonizer_pipeline.reports.summary",
        "harmonizer_pipeline.bookkeeping.summaries",
    } <= set(plain)
    assert {m for m in modules if is_wiring(m)} >= {"harmonizer_pipeline.definitions", "harmonizer_pipeline.resources", "harmonizer_pipeline.ingest.assets"}
    done = subprocess.run([sys.executable, "-c", PROBE, *plain], capture_output=True, text=True, timeout=600, check=True)
    loads = json.loads(done.stdout)
    assert {module: answer for module, answer in loads.items() if answer != "0"} == {}


def module_level_imports() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports at module level."""
    package = Path(harmonizer_pipeline.__file__).parent
    paths = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p for p in package.rglob("*.py")}
    graph = {}
    for module, path in paths.items():
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("harmonizer_pipeline"):
                imported |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names if a.name in paths}
        graph[module] = imported & set(paths) - {module}
    return graph


def test_the_package_has_no_import_cycle():
    graph = module_level_imports()
    assert graph["harmonizer_pipeline.settings"] >= {"harmonizer_pipeline.harmonize.settings", "harmonizer_pipeline.ingest.settings"}
    done: set[str] = set()

    def cycle_from(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return path[path.index(module) :] + [module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            found = cycle_from(imported, [*path, module])
            if found:
                return found
        done.add(module)
        return None

    assert [cycle for module in sorted(graph) if (cycle := cycle_from(module, []))] == []
