"""Benchmark PostgresPandasIOManager against pandas to_sql/read_sql and psql's \\copy.

Run:  .venv/bin/python bench/bench_io.py [--rows N] [--json PATH]

Every scenario runs in a fresh subprocess (this script with the hidden `--scenario NAME`), so
its peak RSS is its own: the parent reads the child's ru_maxrss from os.wait4 once it exits.
All tables live in a throwaway database `harmonizer_bench` on the project's server (embedded
or HARMONIZER_DATABASE_URL), dropped at the end, so concurrent test runs are not disturbed.
Exit status is 1 when the round-trip check or any target fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy
from dagster import (
    AssetIn,
    AssetKey,
    PythonObjectDagsterType,
    asset,
    build_input_context,
    build_output_context,
    materialize,
    materialize_to_memory,
)

from harmonizer_pipeline.resources import PostgresPandasIOManager
from harmonizer_pipeline.storage.postgres import (
    drop_database,
    ensure_database,
    psql_command,
    resolve_database_url,
    sqlalchemy_url,
    with_database,
)
from harmonizer_pipeline.storage.writes import DataFrameChunks

BENCH_DATABASE = "harmonizer_bench"
SCHEMA = "bench"
IO_TABLE = "io_table"  # written by the IO manager, read by iomanager_read, read_sql and verify
TO_SQL_TABLE = "to_sql_target"
COPY_TABLE = "copy_target"
IO_KEY = AssetKey([SCHEMA, IO_TABLE])
DEFAULT_ROWS = 1_000_000
CHUNK_ROWS = 100_000
TO_SQL_CHUNKSIZE = 10_000
SEED = 20240601
CSV_NULL = r"\N"  # NULL marker in the CSV, so an unquoted empty field stays an empty string
STREAMED_RSS_LIMIT_MB = 600
REPEATS = 3  # for the fast scenarios; to_sql and read_sql take minutes and run once

# Column → PostgreSQL type, for the \copy target table; make_chunk builds columns in this order.
PG_TYPES = {
    "id": "bigint",
    "visits": "bigint",
    "qty": "bigint",
    "price": "double precision",
    "ratio": "double precision",
    "flag": "boolean",
    "created_at": "timestamp with time zone",
    "birth_date": "date",
    "code": "text",
    "city": "text",
    "note": "text",
    "region": "text",
}
WORDS = ["alpha", "beta", "Grüße", "naïve", "café", "日本語", "emoji 🙂", 'say "hi"', "a, b, c", "it's",
         "line\nbreak", "tab\there", "back\\slash", "Zürich", "Ωmega", "x"]  # fmt: skip
REGIONS = ["north", "south", "east", "west", "central"]
CITIES = ["Berlin", "München", "Zürich", "São Paulo", "Kraków", "東京", "Reykjavík", "Paris"]
EPOCH_US = pd.Timestamp("2015-01-01", tz="UTC").value // 1_000
TEN_YEARS_US = 10 * 365 * 86_400 * 1_000_000


# --- data -------------------------------------------------------------------------------------


@functools.cache
def text_pool() -> pa.Array:
    """2048 texts of 14-27 words mixing quotes, commas, newlines, tabs, backslashes and unicode."""
    rng = np.random.default_rng(SEED)
    return pa.array([" ".join(rng.choice(WORDS, size=int(rng.integers(14, 28)))) for _ in range(2048)])


def make_chunk(start: int, rows: int) -> pd.DataFrame:
    """Rows start..start+rows-1 of the benchmark table; each chunk is reproducible on its own."""
    rng = np.random.default_rng([SEED, start])

    def mask(share: float = 0.05) -> np.ndarray:
        return rng.random(rows) < share

    def text(values: pa.Array, empty_share: float = 0.0) -> pd.api.extensions.ExtensionArray:
        # Built in Arrow: Python str objects of ~150 UCS-4 characters each would dwarf the chunk.
        values = pc.if_else(mask(empty_share), "", values)
        return pd.array(pc.if_else(mask(), pa.scalar(None, pa.string()), values), dtype="str")

    def pick(choices: list[str] | pa.Array) -> pa.Array:
        return pa.array(choices, pa.string()).take(rng.integers(0, len(choices), rows))

    ids = np.arange(start, start + rows, dtype=np.int64)
    qty = pd.array(rng.integers(0, 1_000, rows), dtype="Int64")
    qty[mask()] = pd.NA
    price = rng.gamma(2.0, 50.0, rows)
    price[mask()] = np.nan
    flag = pd.array(rng.random(rows) < 0.5, dtype="boolean")
    flag[mask()] = pd.NA
    created = pd.to_datetime(EPOCH_US + rng.integers(0, TEN_YEARS_US, rows), unit="us", utc=True)
    created = created.astype("datetime64[us, UTC]").where(~mask())
    dates = (np.datetime64("1940-01-01") + rng.integers(0, 30_000, rows).astype("timedelta64[D]")).astype(object)
    dates[mask()] = None  # datetime.date objects, object dtype
    notes = pc.binary_join_element_wise(pa.array(ids).cast(pa.string()), pick(text_pool()), " ")
    codes = pa.array([f"C{v:06x}" for v in rng.integers(0, 1 << 24, rows).tolist()])
    columns = {
        "id": ids,
        "visits": rng.integers(0, 10**9, rows, dtype=np.int64),
        "qty": qty,
        "price": price,
        "ratio": rng.standard_normal(rows),
        "flag": flag,
        "created_at": created,
        "birth_date": dates,
        "code": text(codes, empty_share=0.01),
        "city": text(pick(CITIES), empty_share=0.02),
        "note": text(notes, empty_share=0.01),
        "region": text(pick(REGIONS)),
    }
    return pd.DataFrame(columns, index=pd.RangeIndex(start, start + rows))


class GeneratedChunks:
    """The benchmark table in chunks of CHUNK_ROWS rows, generated lazily; `seconds` sums the generating."""

    def __init__(self, rows: int):
        self.rows = rows
        self.seconds = 0.0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for start in range(0, self.rows, CHUNK_ROWS):
            began = time.perf_counter()
            chunk = make_chunk(start, min(CHUNK_ROWS, self.rows - start))
            self.seconds += time.perf_counter() - began
            yield chunk


def make_frame(rows: int) -> pd.DataFrame:
    """The whole benchmark table in one DataFrame."""
    return pd.concat(GeneratedChunks(rows))


# --- helpers ----------------------------------------------------------------------------------


def io_manager(url: str) -> PostgresPandasIOManager:
    return PostgresPandasIOManager(database_url=url)


def engine(url: str) -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(sqlalchemy_url(url, "psycopg2"))


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Seconds `action` takes, and what it returns."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def median_seconds(action: Callable[[], object]) -> float:
    """Median wall time of REPEATS runs of `action`: single runs on a 2-core machine vary by ±20 %."""
    return statistics.median(timed(action)[0] for _ in range(REPEATS))


def streamed_asset(chunks: GeneratedChunks):
    """Asset bench/io_table returning `chunks` as DataFrameChunks."""

    @asset(name=IO_TABLE, key_prefix=[SCHEMA])
    def io_table() -> DataFrameChunks:
        return DataFrameChunks(chunks)

    return io_table


def frame_mismatch(expected: pd.DataFrame, actual: pd.DataFrame) -> str | None:
    """None if assert_frame_equal(check_dtype=True) passes, else which columns differ and how."""
    try:
        pd.testing.assert_frame_equal(expected, actual, check_dtype=True)
        return None
    except AssertionError as exc:
        first = str(exc).strip().splitlines()
    differing = []
    for column in expected.columns.intersection(actual.columns):
        try:
            pd.testing.assert_series_equal(expected[column], actual[column], check_dtype=True)
        except AssertionError:
            sample = f"{expected[column].iloc[0]!r} → {actual[column].iloc[0]!r}"
            differing.append(f"{column} ({expected[column].dtype} → {actual[column].dtype}, e.g. {sample})")
    return f"{first[0]} ... differing columns: {'; '.join(differing) or 'none (frame-level)'}"


# --- scenarios (each runs in its own child process) ---------------------------------------------


def scenario_iomanager_write_whole(url: str, rows: int) -> dict:
    """DbIOManager.handle_output of the whole DataFrame (built before timing), median of REPEATS;
    one dagster.materialize of the same asset is timed too, for the note."""
    # Timed the way the read is: the IO manager object a run builds, called as a run calls it,
    # without the run's own start-up and event logging (which psql \copy does not pay either).
    frame = make_frame(rows)
    manager = io_manager(url).create_io_manager(None)
    dagster_type = PythonObjectDagsterType(pd.DataFrame)
    # A context records metadata once: each write gets its own (building one takes microseconds).
    seconds = median_seconds(lambda: manager.handle_output(build_output_context(asset_key=IO_KEY, dagster_type=dagster_type), frame))

    @asset(name=IO_TABLE, key_prefix=[SCHEMA])
    def io_table() -> pd.DataFrame:
        return frame

    end_to_end, _ = timed(lambda: materialize([io_table], resources={"io_manager": io_manager(url)}))
    return {"seconds": seconds, "note": f"one whole materialize run: {end_to_end:.2f} s"}


def scenario_iomanager_write_streamed(url: str, rows: int) -> dict:
    """dagster.materialize of an asset returning DataFrameChunks generated lazily (generation is timed too)."""
    chunks = GeneratedChunks(rows)
    seconds, _ = timed(lambda: materialize([streamed_asset(chunks)], resources={"io_manager": io_manager(url)}))
    return {"seconds": seconds, "note": f"incl. {chunks.seconds:.2f} s generating chunks"}


def scenario_verify(url: str, rows: int) -> dict:
    """A real run of a downstream asset loading bench/io_table as pd.DataFrame, compared with the source frame."""
    outcome: dict = {}

    @asset(key_prefix=[SCHEMA], ins={"source": AssetIn(key=IO_KEY)})
    def verify_roundtrip(source: pd.DataFrame) -> None:
        # SQL promises no row order, so compare in id order.
        outcome["mismatch"] = frame_mismatch(make_frame(rows), source.sort_values("id", ignore_index=True))

    upstream = streamed_asset(GeneratedChunks(rows))  # not selected: only names the IO manager's table
    materialize([upstream, verify_roundtrip], resources={"io_manager": io_manager(url)}, selection=[verify_roundtrip])
    return {"passed": outcome["mismatch"] is None, "detail": outcome["mismatch"] or f"{rows:,} rows equal"}


def scenario_iomanager_read(url: str, rows: int) -> dict:
    """DbIOManager.load_input of bench/io_table as pd.DataFrame, called the way a run calls it."""
    # We time the IO manager object PostgresPandasIOManager builds for a run, through Dagster's
    # DbIOManager.load_input (table slice from the asset key, pd.DataFrame type handler, ADBC
    # COPY read, dtype restore), but without a run's startup and event logging, which read_sql
    # does not pay either. The verify scenario runs the same load inside a real materialize.
    manager = io_manager(url).create_io_manager(None)
    context = build_input_context(
        asset_key=IO_KEY,
        dagster_type=PythonObjectDagsterType(pd.DataFrame),
        upstream_output=build_output_context(asset_key=IO_KEY),
    )
    seconds = median_seconds(lambda: manager.load_input(context))
    return {"seconds": seconds}


def scenario_to_sql_write(url: str, rows: int) -> dict:
    """pandas DataFrame.to_sql through SQLAlchemy + psycopg2 (default method, chunksize 10,000)."""
    frame = make_frame(rows)
    bench_engine = engine(url)
    seconds, _ = timed(lambda: frame.to_sql(TO_SQL_TABLE, bench_engine, schema=SCHEMA, if_exists="replace", index=False, chunksize=TO_SQL_CHUNKSIZE))
    bench_engine.dispose()
    return {"seconds": seconds}


def _read_sql(url: str, rows: int, driver: str) -> dict:
    bench_engine = sqlalchemy.create_engine(sqlalchemy_url(url, driver))
    seconds, frame = timed(lambda: pd.read_sql(f"SELECT * FROM {SCHEMA}.{IO_TABLE}", bench_engine))
    bench_engine.dispose()
    assert len(frame) == rows, f"read {len(frame)} rows, expected {rows}"
    return {"seconds": seconds}


def scenario_read_sql(url: str, rows: int) -> dict:
    """pandas.read_sql of bench.io_table (the IO manager's table) through SQLAlchemy + psycopg2."""
    return _read_sql(url, rows, "psycopg2")


def scenario_read_sql_psycopg3(url: str, rows: int) -> dict:
    """The same through SQLAlchemy + psycopg 3, what a bare postgresql:// URL means in SQLAlchemy 2.1."""
    return {**_read_sql(url, rows, "psycopg"), "note": "SQLAlchemy's default PostgreSQL driver"}


def scenario_psql_copy(url: str, rows: int) -> dict:
    """psql \\copy of a CSV of the table into a pre-created table; only the \\copy is timed."""
    with tempfile.TemporaryDirectory(prefix="bench_io_") as folder:
        csv_path = Path(folder) / "table.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as handle:
            for chunk in GeneratedChunks(rows):
                chunk.to_csv(handle, header=handle.tell() == 0, index=False, na_rep=CSV_NULL)
        columns = ", ".join(f"{name} {pg_type}" for name, pg_type in PG_TYPES.items())
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.{COPY_TABLE}")
            conn.execute(f"CREATE TABLE {SCHEMA}.{COPY_TABLE} ({columns})")
        copy = f"\\copy {SCHEMA}.{COPY_TABLE} FROM '{csv_path}' WITH (FORMAT csv, HEADER true, NULL '{CSV_NULL}')"
        command = [*psql_command(url), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", f"TRUNCATE {SCHEMA}.{COPY_TABLE}", "-c", copy]
        # The TRUNCATE before each \copy costs milliseconds and is counted against psql, not us.
        seconds = median_seconds(lambda: subprocess.run(command, check=True))
        size_mb = csv_path.stat().st_size / 2**20
    return {"seconds": seconds, "note": f"CSV of {size_mb:,.0f} MB written untimed"}


SCENARIOS: dict[str, Callable[[str, int], dict]] = {
    "iomanager_write_whole": scenario_iomanager_write_whole,
    "iomanager_write_streamed": scenario_iomanager_write_streamed,
    "verify": scenario_verify,
    "iomanager_read": scenario_iomanager_read,
    "to_sql_write": scenario_to_sql_write,
    "read_sql": scenario_read_sql,
    "read_sql_psycopg3": scenario_read_sql_psycopg3,
    "psql_copy": scenario_psql_copy,
}


def max_rss_mb() -> float:
    """This process's peak RSS so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@asset
def warm_up() -> int:
    """Trivial asset, materialized in memory before any timing."""
    return 0


def child_main(name: str, url: str, rows: int, result_path: Path) -> None:
    """Run one scenario and write its result, with the RSS reached before it, as JSON."""
    # A fresh process's first materialize spends ~0.7 s lazily importing Dagster's run machinery
    # (ephemeral instance, event log); a deployment pays that once per process, not per write.
    materialize_to_memory([warm_up])
    baseline = max_rss_mb()
    result = SCENARIOS[name](url, rows)
    result_path.write_text(json.dumps({**result, "baseline_rss_mb": baseline}))


# --- parent -----------------------------------------------------------------------------------


def run_scenario(name: str, url: str, rows: int, workdir: Path) -> dict:
    """Run one scenario in a fresh child; its output goes to a log shown only if it fails."""
    result_path, log_path = workdir / f"{name}.json", workdir / f"{name}.log"
    argv = [sys.executable, __file__, "--scenario", name, "--rows", str(rows)]
    argv += ["--url", url, "--result", str(result_path)]
    with log_path.open("w") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        # wait4 gives this child's own rusage (ru_maxrss includes its reaped children, e.g. psql).
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"scenario {name} exited with {child.returncode}:\n{tail}")
    result = json.loads(result_path.read_text())
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    return {**result, "peak_rss_mb": peak, "rss_growth_mb": peak - result["baseline_rss_mb"]}


def targets(results: dict) -> list[dict]:
    """The four targets, each with its measured value and PASS/FAIL."""
    write = results["iomanager_write_whole"]["seconds"]
    read = results["iomanager_read"]["seconds"]
    streamed_rss = results["iomanager_write_streamed"]["peak_rss_mb"]
    checks = [
        ("iomanager write vs to_sql", results["to_sql_write"]["seconds"] / write, "≥", 25.0, "×"),
        ("iomanager write vs psql \\copy", results["psql_copy"]["seconds"] / write, "≥", 1.0, "×"),
        ("iomanager read vs read_sql", results["read_sql"]["seconds"] / read, "≥", 10.0, "×"),
        ("  (read_sql over psycopg 3)", results["read_sql_psycopg3"]["seconds"] / read, "≥", 10.0, "×"),
        ("streamed write peak RSS", streamed_rss, "<", float(STREAMED_RSS_LIMIT_MB), " MB"),
    ]
    return [
        {"name": name, "value": value, "op": op, "target": target, "unit": unit,
         "passed": value >= target if op == "≥" else value < target}
        for name, value, op, target, unit in checks
    ]  # fmt: skip


def print_report(rows: int, results: dict, checks: list[dict]) -> None:
    """The results table, the round-trip check and the targets."""
    print(f"\nharmonizer IO benchmark: {rows:,} rows × {len(PG_TYPES)} columns, database {BENCH_DATABASE}\n")
    print(f"{'scenario':<26}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}{'RSS growth MB':>15}  note")
    for name, result in results.items():
        if name == "verify":
            continue
        rate = rows / result["seconds"]
        print(f"{name:<26}{result['seconds']:>9.2f}{rate:>12,.0f}{result['peak_rss_mb']:>13.0f}{result['rss_growth_mb']:>15.0f}  {result.get('note', '')}")
    verify = results["verify"]
    print(f"\nround trip (IO manager write → pd.DataFrame load, assert_frame_equal check_dtype=True): "
          f"{'PASS' if verify['passed'] else 'FAIL'} — {verify['detail']}")  # fmt: skip
    print("\ntargets:")
    for check in checks:
        value = f"{check['value']:.1f}{check['unit']}"
        target = f"(target {check['op']} {check['target']:g}{check['unit']})"
        print(f"  {check['name']:<32}{value:>10}  {target:<22}{'PASS' if check['passed'] else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows in the benchmark table")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        child_main(args.scenario, args.url, args.rows, args.result)
        return 0

    server_url = resolve_database_url()
    ensure_database(server_url, BENCH_DATABASE)
    url = with_database(server_url, BENCH_DATABASE)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        with tempfile.TemporaryDirectory(prefix="bench_io_") as folder:
            results = {}
            for name in SCENARIOS:
                print(f"running {name} ...", file=sys.stderr, flush=True)
                results[name] = run_scenario(name, url, args.rows, Path(folder))
    finally:
        drop_database(server_url, BENCH_DATABASE)
    checks = targets(results)
    print_report(args.rows, results, checks)
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "scenarios": results, "targets": checks}, indent=2))
    return 0 if results["verify"]["passed"] and all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
