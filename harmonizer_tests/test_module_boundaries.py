"""Domain logic and storage stay plain Python: only the Dagster wiring (definitions, resources,
the demo, and each stage's assets, sensors, schedules, run launcher) loads dagster on import."""

import json
import subprocess
import sys

import pytest

WIRING_TOP = {"definitions", "resources", "demo"}
WIRING_LEAVES = {"assets", "sensors", "schedules", "run_launcher"}

# Each module imported by a fresh fork of an interpreter that has loaded nothing of the project's.
PROBE = """
import importlib, json, os, pkgutil, sys
import harmonizer_pipeline
loads = {}
for module in sorted(m.name for m in pkgutil.walk_packages(harmonizer_pipeline.__path__, "harmonizer_pipeline.")):
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
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600, check=True)
    loads = json.loads(done.stdout)
    assert len(loads) > 60 and "harmonizer_pipeline.storage.writes" in loads and "harmonizer_pipeline.cli" in loads
    assert {module for module, answer in loads.items() if answer not in ("0", "1")} == set()
    assert {module for module, answer in loads.items() if answer == "1"} == {module for module in loads if is_wiring(module)}
