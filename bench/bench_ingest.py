"""Benchmark loading a landed CSV into raw/<source> through the real asset, against psql's \\copy,
dlt and pandas read_csv + to_sql.

Run:  .venv/bin/python bench/bench_ingest.py [--rows-small N] [--rows-large N] [--peers-10m {all,fast}] [--json PATH]

Two CSVs of 15 messy text columns (ids, codes with leading zeros, unicode names, quoted fields with
commas and the odd embedded quote, decimal commas, dates in two formats, e-mails, empty fields,
'N/A') are generated once, deterministically and streamed, into bench/.data/ (gitignored). Each
file then goes, one scenario after the other (small file first, then the large one):

- asset: one tick of the source's landing sensor (lists the folder, SHA-256 of the file, registry
  row) and the in-process run of its load job (detect the dialect, COPY the file in segments for
  PostgreSQL's CSV parser to parse into raw.<source> while checking the bytes, swap the partition
  in, mark the file loaded), on a test Dagster instance, the way `make demo` and the daemon do it;
- psql_copy: `\\copy` of the file into a pre-created table of 15 text columns (the ceiling);
- pandas_to_sql: read_csv(dtype=str, chunksize=100,000) + to_sql through SQLAlchemy + psycopg2;
- dlt: the filesystem source piped into its read_csv reader, with dlt's default pipeline settings.

Every scenario runs in a fresh subprocess (this script with the hidden `--scenario NAME`), so its
peak RSS is its own: the parent reads the child's ru_maxrss from os.wait4 once it exits. All tables
live in a throwaway database `harmonizer_bench_ingest` on the project's server (embedded or
HARMONIZER_DATABASE_URL), dropped at the end; children get HARMONIZER_HOME (staging) and dlt's
folders under a temporary directory, so the developer's state is never touched.
Exit status is 1 when a loaded row count differs from the file's or any target fails.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from harmonizer_pipeline.bookkeeping import schema as bookkeeping_schema
from harmonizer_pipeline.storage.postgres import (
    DATABASE_URL_ENV,
    HOME_ENV,
    drop_database,
    ensure_database,
    psql_command,
    resolve_database_url,
    sqlalchemy_url,
    with_database,
)

BENCH_DATABASE = "harmonizer_bench_ingest"  # not bench_io's database: both may run at once
SCHEMA = "bench"
DATA_DIR = Path(__file__).resolve().parent / ".data"
DEFAULT_SMALL_ROWS = 1_000_000
DEFAULT_LARGE_ROWS = 10_000_000
GENERATE_CHUNK_ROWS = 250_000  # fixed: the file's content must not depend on anything but its row count
DATA_VERSION = 1  # bump when the generator changes, so old files are regenerated
SEED = 20240611
READ_CHUNK_ROWS = 100_000  # pandas read_csv chunks
TO_SQL_CHUNKSIZE = 10_000
REPEATS = 3  # the asset and \copy, up to MEDIAN_MAX_ROWS rows; pandas and dlt take minutes and run once
MEDIAN_MAX_ROWS = 2_000_000
RSS_LIMIT_MB = 1024
COPY_RATIO_TARGET = 1.5  # asset time ≤ this × \copy time
DLT_SPEEDUP_TARGET = 4.0  # asset rows/s ≥ this × dlt rows/s
SLOW_PEERS = ("pandas_to_sql", "dlt")

COLUMNS = [
    "id", "patient_code", "first_name", "last_name", "email", "phone", "street", "city",
    "postal_code", "birth_date", "visit_date", "amount", "quantity", "status", "comment",
]  # fmt: skip
FIRST_NAMES = [
    ("Anna", "anna"), ("Jürgen", "juergen"), ("Zoë", "zoe"), ("José", "jose"), ("Łukasz", "lukasz"),
    ("Søren", "soren"), ("François", "francois"), ("Siobhán", "siobhan"), ("Đorđe", "djordje"),
    ("太郎", "taro"), ("Ингрид", "ingrid"), ("Chloé", "chloe"), ("Mikael", "mikael"), ("Dana", "dana"),
]  # fmt: skip
LAST_NAMES = [
    ("Müller", "mueller"), ("O'Brien", "obrien"), ("García", "garcia"), ("Nguyễn", "nguyen"),
    ("Smith, Jr.", "smith"), ("Dvořák", "dvorak"), ("Østergaard", "ostergaard"), ("山田", "yamada"),
    ("van der Berg", "vanderberg"), ("Kowalski", "kowalski"), ("Papadopoulos", "papadopoulos"),
    ("Ährenfeld", "aehrenfeld"),
]  # fmt: skip
DOMAINS = ["example.com", "mail.example.org", "klinik-süd.example", "test.example.net"]
STREETS = ["Hauptstraße", "Rue de l'Église", "Main St", "Calle Mayor", "Ulica Długa", "Kungsgatan", "銀座通り"]
CITIES = ["Berlin", "München", "Zürich", "São Paulo", "Kraków", "東京", "Frankfurt, am Main", "Washington, D.C.",
          "Reykjavík", "Paris"]  # fmt: skip
STATUSES = ["A01", "B02", "C03", "007", "N/A", ""]
# (phrase, weight): the embedded quotes are rare, as in real exports.
COMMENT_PHRASES = [
    ("follow-up in 3 months", 20), ("allergic to penicillin, latex", 10), ("no remarks", 25),
    ("Überweisung erhalten", 10), ("需要复诊", 5), ("called twice; no answer", 10), ("BP 120/80, HR 72", 15),
    ("N/A", 3), ('patient said "fine"', 1), ('6\'2" tall', 1),
]  # fmt: skip


# --- data -------------------------------------------------------------------------------------


def csv_path(rows: int) -> Path:
    return DATA_DIR / f"ingest_{rows}.csv"


def _quote_csv(values):
    """CSV fields: quoted (inner quotes doubled) only where a comma or quote requires it."""
    import pyarrow.compute as pc

    needs = pc.or_(pc.match_substring(values, ","), pc.match_substring(values, '"'))
    if not pc.any(needs).as_py():
        return values
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(needs, quoted, values)


def _chunk_bytes(start: int, rows: int) -> bytes:
    """CSV lines of rows start+1 .. start+rows, reproducible chunk by chunk; built in Arrow, not Python."""
    # Imported here, like each scenario's libraries: a child's peak RSS should hold only what it uses.
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([SEED, start])

    def pick(choices, p=None):
        return pa.array(choices, pa.string()).take(rng.choice(len(choices), rows, p=p))

    def mask(share: float):
        return rng.random(rows) < share

    def blank(values, share: float, text: str = ""):
        return pc.if_else(mask(share), text, values)

    def digits(low: int, high: int, width: int = 0):
        text = pa.array(rng.integers(low, high, rows)).cast(pa.string())
        return pc.utf8_lpad(text, width=width, padding="0") if width else text

    def join(*parts, sep: str = ""):
        return pc.binary_join_element_wise(*parts, sep)

    name_index = rng.integers(0, len(FIRST_NAMES), rows)
    last_index = rng.integers(0, len(LAST_NAMES), rows)
    first = pa.array([n for n, _ in FIRST_NAMES]).take(name_index)
    last = pa.array([n for n, _ in LAST_NAMES]).take(last_index)
    email = join(
        pa.array([a for _, a in FIRST_NAMES]).take(name_index), ".", pa.array([a for _, a in LAST_NAMES]).take(last_index),
        digits(0, 1000), "@", pick(DOMAINS),
    )  # fmt: skip
    street = join(pick(STREETS), " ", digits(1, 300), sep="")
    street = pc.if_else(mask(0.1), join(street, ", Apt ", digits(1, 40)), street)
    days = rng.integers(-14_600, 19_000, rows).astype(np.int32)  # 1930 .. 2022
    birth = pa.array(days, pa.date32()).cast(pa.string())  # ISO 2024-01-31
    visit_days = pa.array(rng.integers(16_000, 20_000, rows).astype(np.int32), pa.date32())
    visit = pc.if_else(  # mostly 31.01.2024, some ISO: two formats in one column
        mask(0.1), visit_days.cast(pa.string()), pc.strftime(visit_days.cast(pa.timestamp("s")), format="%d.%m.%Y")
    )
    cents = rng.integers(0, 500_000_00, rows)
    euros = cents // 100
    thousands = join(pa.array(euros // 1000).cast(pa.string()), ".", pc.utf8_lpad(pa.array(euros % 1000).cast(pa.string()), width=3, padding="0"))
    amount = join(pc.if_else(pa.array(euros >= 1000), thousands, pa.array(euros).cast(pa.string())), ",",
                  pc.utf8_lpad(pa.array(cents % 100).cast(pa.string()), width=2, padding="0"))  # fmt: skip
    phrases, weights = zip(*COMMENT_PHRASES)
    p = np.array(weights) / sum(weights)
    comment = pc.if_else(mask(0.3), join(pick(phrases, p), "; ", pick(phrases, p)), pick(phrases, p))
    columns = [
        pa.array(np.arange(start + 1, start + rows + 1)).cast(pa.string()),
        digits(0, 10**8, width=8),  # 00012345
        first,
        blank(last, 0.01),
        blank(email, 0.03),
        blank(join("0", digits(30, 999), " ", digits(100_000, 9_999_999)), 0.05),  # 0301 2345678
        street,
        blank(pick(CITIES), 0.02),
        digits(1_000, 100_000, width=5),  # 01234
        blank(birth, 0.02),
        visit,
        blank(blank(amount, 0.03), 0.02, "N/A"),  # 1.234,50
        blank(blank(digits(0, 1000), 0.05), 0.03, "N/A"),
        pick(STATUSES),
        blank(comment, 0.2),
    ]
    lines = join(*map(_quote_csv, columns), sep=",")
    lines = join(lines, "", sep="\n")
    offsets = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[offsets[0] : offsets[-1]].tobytes()


def csv_is_current(rows: int) -> bool:
    """Whether bench/.data/ingest_<rows>.csv exists with the right rows, size and generator version."""
    path, meta_path = csv_path(rows), csv_path(rows).with_suffix(".json")
    if not (path.exists() and meta_path.exists()):
        return False
    return json.loads(meta_path.read_text()) == {"rows": rows, "bytes": path.stat().st_size, "version": DATA_VERSION}


def ensure_csv(rows: int) -> Path:
    """bench/.data/ingest_<rows>.csv, generated (in a child process) unless current."""
    # Not in this process: a child's ru_maxrss starts from its parent's RSS at fork time
    # (Linux carries the high-water mark across fork and exec), so the parent must stay small.
    if not csv_is_current(rows):
        subprocess.run([sys.executable, __file__, "--generate", str(rows)], check=True)
    return csv_path(rows)


def generate_csv(rows: int) -> Path:
    """Write bench/.data/ingest_<rows>.csv chunk by chunk, then its metadata file."""
    path, meta_path = csv_path(rows), csv_path(rows).with_suffix(".json")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {path} ({rows:,} rows) ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    part = path.with_name(f".{path.name}.part")
    with part.open("wb") as handle:
        handle.write((",".join(COLUMNS) + "\n").encode())
        for start in range(0, rows, GENERATE_CHUNK_ROWS):
            handle.write(_chunk_bytes(start, min(GENERATE_CHUNK_ROWS, rows - start)))
    os.replace(part, path)
    meta_path.write_text(json.dumps({"rows": rows, "bytes": path.stat().st_size, "version": DATA_VERSION}))
    size_mb = path.stat().st_size / 2**20
    print(f"  {size_mb:,.0f} MB in {time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
    return path


# --- helpers ----------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> tuple[float, object]:
    """Seconds `action` takes, and what it returns."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def repeats_for(rows: int) -> int:
    """Median of REPEATS for the fast scenarios on files up to MEDIAN_MAX_ROWS; one run above."""
    return REPEATS if rows <= MEDIAN_MAX_ROWS else 1


def max_rss_mb() -> float:
    """This process's peak RSS so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count_rows(url: str, schema: str, table: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))).fetchone()[0]


def settle(url: str, *drops: sql.Composable) -> None:
    """Drop what a run left behind, then CHECKPOINT so its dirty pages are not the next run's cost."""
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in drops:
            conn.execute(statement)
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass  # an external server where we are not superuser: a little more noise


def dlt_credentials(url: str) -> str:
    """The URL with a Unix-socket folder moved from `?host=/path` into the host part, percent-encoded.

    dlt's PostgresCredentials insists on a host in the URL's netloc (`host` is a required field);
    libpq and psycopg2 read a percent-encoded absolute path there as the socket folder.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    socket_dir = query.pop("host", None)
    if parts.hostname or not socket_dir:
        return url
    user = parts.username or ""
    auth = f"{user}:{parts.password or ''}@" if user else ""
    port = query.pop("port", None) or parts.port or 5432
    netloc = f"{auth}{quote(socket_dir, safe='')}:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


def text_table(url: str, schema: str, table: str, columns: list[str]) -> None:
    """(Re)create schema.table with text columns, committed on its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        definition = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in columns)
        conn.execute(sql.SQL("CREATE TABLE {}.{} ({})").format(sql.Identifier(schema), sql.Identifier(table), definition))


def run_failure(run) -> str:
    """The error of a failed in-process run, for the scenario's log."""
    for event in run.all_events:
        if event.is_step_failure or event.is_run_failure:
            error = getattr(event.event_specific_data, "error", None)
            return error.to_string() if error else (event.message or event.event_type_value)
    return "run failed without a failure event"


# --- scenarios (each runs in its own child process) ---------------------------------------------


def scenario_asset(url: str, rows: int, work: Path) -> dict:
    """Sensor tick + in-process run of load_<source>, median of repeats_for(rows) (a fresh source each time)."""
    # Imported here, like each scenario's libraries (harmonizer_pipeline.resources itself imports
    # Dagster, so every child's baseline holds it: compare the RSS growth column).
    import dagster as dg

    from harmonizer_pipeline.bookkeeping import registry
    from harmonizer_pipeline.definitions import build_definitions
    from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
    from harmonizer_pipeline.resources import PostgresResource, build_resources
    from harmonizer_pipeline.settings import parse_settings

    def defs_for(source: str, folder: Path, glob: str) -> dg.Definitions:
        text = json.dumps({"sources": {source: {"landing": {"local": {"path": str(folder), "glob": glob}}}}})
        # build_resources() reads HARMONIZER_DATABASE_URL, which the parent set to the bench database.
        return build_definitions(parse_settings(text, base_dir=folder), build_resources())

    def load(defs: dg.Definitions, instance: dg.DagsterInstance) -> tuple[float, float]:
        sensor = defs.sensors[0]
        tick_seconds, tick = timed(lambda: evaluate_sensor(defs, sensor, instance))
        run_seconds, runs = timed(lambda: launch_requests(defs, sensor, instance, tick))
        if len(runs) != 1:
            raise RuntimeError(f"the sensor requested {len(runs)} runs, expected 1")
        if not runs[0].success:
            raise RuntimeError(f"run {runs[0].run_id} failed:\n{run_failure(runs[0])}")
        return tick_seconds, run_seconds

    path = csv_path(rows)
    warm_folder = work / "warm_up_landing"
    warm_folder.mkdir(parents=True, exist_ok=True)
    (warm_folder / "warm_up.csv").write_text("id,name\n1,Ann\n2,Bob\n", encoding="utf-8")
    ticks, runs, totals, loaded = [], [], [], []
    with dg.instance_for_test() as instance:
        # A fresh process's first run spends seconds importing Dagster's run machinery and
        # loading the ADBC driver; a deployment's code server pays that once, not per file.
        load(defs_for(f"warm_up_{rows}", warm_folder, "*.csv"), instance)
        baseline = max_rss_mb()
        for repeat in range(repeats_for(rows)):
            # A source of its own per load: the registry would call the same file a duplicate.
            source = f"bench_{rows}_r{repeat}"
            tick_seconds, run_seconds = load(defs_for(source, path.parent, path.name), instance)
            ticks.append(tick_seconds)
            runs.append(run_seconds)
            totals.append(tick_seconds + run_seconds)
            loaded.append(count_rows(url, "raw", source))
            with PostgresResource(database_url=url).connect() as conn:
                entry = registry.entries(conn, source)[0]
            if entry.status != "loaded" or entry.rows != loaded[-1]:
                raise RuntimeError(f"registry says {entry.status} with {entry.rows} rows, raw.{source} holds {loaded[-1]}")
            settle(
                url,
                sql.SQL("DROP TABLE {}.{}").format(sql.Identifier("raw"), sql.Identifier(source)),
                sql.SQL("DELETE FROM ops.file_registry WHERE source = {}").format(sql.Literal(source)),
            )
    return {
        "seconds": statistics.median(totals),
        "tick_seconds": statistics.median(ticks),
        "run_seconds": statistics.median(runs),
        "rows_loaded": min(loaded) if len(set(loaded)) == 1 else -1,
        "baseline_rss_mb": baseline,
        "note": f"median of {len(totals)}" if len(totals) > 1 else "one run",
    }


def scenario_psql_copy(url: str, rows: int, work: Path) -> dict:
    """psql \\copy of the file into a pre-created table of text columns, median of repeats_for(rows)."""
    path = csv_path(rows)
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    table = f"copy_{rows}"
    baseline = max_rss_mb()
    seconds, loaded = [], []
    for _ in range(repeats_for(rows)):
        # Created in its own transaction, as the asset's table is before COPY (no WAL-skipping shortcut).
        text_table(url, SCHEMA, table, header)
        copy = f"\\copy {SCHEMA}.{table} FROM '{path}' WITH (FORMAT csv, HEADER true)"
        command = [*psql_command(url), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", copy]
        seconds.append(timed(functools.partial(subprocess.run, command, check=True))[0])
        loaded.append(count_rows(url, SCHEMA, table))
        settle(url, sql.SQL("DROP TABLE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table)))
    return {
        "seconds": statistics.median(seconds),
        "rows_loaded": loaded[0] if len(set(loaded)) == 1 else -1,
        "baseline_rss_mb": baseline,
        "note": (f"median of {len(seconds)}; " if len(seconds) > 1 else "") + "15 text columns, '' → NULL",
    }


def scenario_pandas_to_sql(url: str, rows: int, work: Path) -> dict:
    """pandas read_csv(dtype=str, chunksize=100,000, keep_default_na=False) + to_sql (psycopg2, chunksize 10,000)."""
    import pandas as pd
    import sqlalchemy

    table = f"to_sql_{rows}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SCHEMA)))
    engine = sqlalchemy.create_engine(sqlalchemy_url(url, "psycopg2"))
    baseline = max_rss_mb()

    def load() -> None:
        reader = pd.read_csv(csv_path(rows), dtype=str, chunksize=READ_CHUNK_ROWS, keep_default_na=False)
        for number, chunk in enumerate(reader):
            chunk.to_sql(table, engine, schema=SCHEMA, if_exists="replace" if number == 0 else "append",
                         index=False, chunksize=TO_SQL_CHUNKSIZE)  # fmt: skip

    seconds, _ = timed(load)
    engine.dispose()
    loaded = count_rows(url, SCHEMA, table)
    settle(url, sql.SQL("DROP TABLE {}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table)))
    return {"seconds": seconds, "rows_loaded": loaded, "baseline_rss_mb": baseline, "note": "one run"}


def scenario_dlt(url: str, rows: int, work: Path) -> dict:
    """dlt: filesystem(file) | read_csv(dtype=str, keep_default_na=False) into postgres, default pipeline settings."""
    import dlt
    from dlt.sources.filesystem import filesystem, read_csv

    path = csv_path(rows)
    dataset = f"dlt_{rows}"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_ingest_{rows}",
        destination=dlt.destinations.postgres(credentials=dlt_credentials(url)),
        dataset_name=dataset,
        pipelines_dir=str(work / "dlt_pipelines"),
    )
    # The documented way to load a CSV file with dlt: list it with the filesystem source and pipe
    # it into the read_csv transformer (pandas chunks of 10,000 rows turned into dicts). Only the
    # pandas options differ from dlt's defaults: text kept as read, like raw/<source> keeps it.
    resource_ = (filesystem(bucket_url=path.parent.as_uri(), file_glob=path.name) | read_csv(dtype=str, keep_default_na=False)).with_name("ingest")
    baseline = max_rss_mb()
    seconds, info = timed(lambda: pipeline.run(resource_))
    info.raise_on_failed_jobs()
    loaded = count_rows(url, dataset, "ingest")
    settle(url, *(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)) for s in (dataset, f"{dataset}_staging")))
    file_format = pipeline.destination.capabilities().preferred_loader_file_format
    return {"seconds": seconds, "rows_loaded": loaded, "baseline_rss_mb": baseline,
            "note": f"one run; extract + normalize + load ({file_format} files)"}  # fmt: skip


SCENARIOS: dict[str, Callable[[str, int, Path], dict]] = {
    "psql_copy": scenario_psql_copy,
    "asset": scenario_asset,
    "pandas_to_sql": scenario_pandas_to_sql,
    "dlt": scenario_dlt,
}
LABELS = {
    "psql_copy": "psql \\copy",
    "asset": "asset: landing → raw",
    "pandas_to_sql": "pandas read_csv+to_sql",
    "dlt": "dlt (filesystem|read_csv)",
}


def child_main(name: str, url: str, rows: int, result_path: Path) -> None:
    """Run one scenario and write its result as JSON."""
    work = result_path.parent / f"{name}_{rows}"
    work.mkdir(parents=True, exist_ok=True)
    result = SCENARIOS[name](url, rows, work)
    result_path.write_text(json.dumps(result))


# --- parent -----------------------------------------------------------------------------------


def run_scenario(name: str, url: str, rows: int, workdir: Path) -> dict:
    """Run one scenario in a fresh child; its output goes to a log shown only if it fails."""
    result_path, log_path = workdir / f"{name}_{rows}.json", workdir / f"{name}_{rows}.log"
    argv = [sys.executable, __file__, "--scenario", name, "--rows", str(rows), "--url", url, "--result", str(result_path)]
    # Children never touch the developer's state: their database is the bench database, their
    # HARMONIZER_HOME (staging folder) and dlt's folders are temporary.
    env = {
        **os.environ,
        DATABASE_URL_ENV: url,
        HOME_ENV: str(workdir / f"home_{name}_{rows}"),
        "DLT_DATA_DIR": str(workdir / f"dlt_data_{rows}"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
    }
    began = time.perf_counter()
    with log_path.open("w") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
        # wait4 gives this child's own rusage (ru_maxrss includes its reaped children, e.g. psql).
        _, status, usage = os.wait4(child.pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise RuntimeError(f"scenario {name} ({rows:,} rows) exited with {returncode}:\n{tail}")
    result = json.loads(result_path.read_text())
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    print(f"  {name}: {result['seconds']:.1f} s (child {time.perf_counter() - began:.0f} s)", file=sys.stderr, flush=True)
    return {**result, "peak_rss_mb": peak, "rss_growth_mb": peak - result["baseline_rss_mb"]}


def targets(results: dict[int, dict], sizes: list[int]) -> tuple[list[dict], list[str]]:
    """The targets with their measured values and PASS/FAIL, and informational ratios."""
    checks, info = [], []
    small = sizes[0]

    def rate(rows: int, name: str) -> tuple[float, str]:
        """rows/s of a scenario at this size, else the small file's rate, labelled extrapolated."""
        result = results[rows][name]
        if "seconds" in result:
            return rows / result["seconds"], ""
        return small / results[small][name]["seconds"], f" (extrapolated from the {small:,}-row rate)"

    def check(name: str, value: float, op: str, target: float, unit: str) -> None:
        passed = value <= target if op == "≤" else value >= target if op == "≥" else value < target
        checks.append({"name": name, "value": value, "op": op, "target": target, "unit": unit, "passed": passed})

    for rows in sizes:
        asset = results[rows]["asset"]
        asset_rate = rows / asset["seconds"]
        check(f"{rows:,} rows: asset time / \\copy time", asset["seconds"] / results[rows]["psql_copy"]["seconds"], "≤", COPY_RATIO_TARGET, "×")
        dlt_rate, note = rate(rows, "dlt")
        check(f"{rows:,} rows: asset rows/s / dlt rows/s{note}", asset_rate / dlt_rate, "≥", DLT_SPEEDUP_TARGET, "×")
        pandas_rate, note = rate(rows, "pandas_to_sql")
        info.append(f"{rows:,} rows: asset rows/s / pandas read_csv+to_sql rows/s{note}: {asset_rate / pandas_rate:.1f}×")
        info.append(f"{rows:,} rows: asset run alone (without the sensor tick) / \\copy time: "
                    f"{asset['run_seconds'] / results[rows]['psql_copy']['seconds']:.2f}×")  # fmt: skip
    largest = sizes[-1]
    check(f"{largest:,} rows: asset peak RSS", results[largest]["asset"]["peak_rss_mb"], "<", float(RSS_LIMIT_MB), " MB")
    if len(sizes) > 1:
        growth = [results[rows]["asset"]["rss_growth_mb"] for rows in sizes]
        info.append(f"asset RSS growth over its warmed-up baseline: {growth[0]:.0f} MB at {sizes[0]:,} rows, "
                    f"{growth[-1]:.0f} MB at {sizes[-1]:,} rows (must not grow with the file)")  # fmt: skip
    return checks, info


def tree_state() -> str:
    """The checked-out commit, '-dirty' when files differ from it: what was measured."""
    try:
        described = subprocess.run(["git", "-C", str(DATA_DIR.parent), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return described.stdout.strip()


def print_report(sizes: list[int], results: dict[int, dict], checks: list[dict], info: list[str], rows_ok: bool,
                 parent_rss: float, tree: str) -> None:  # fmt: skip
    print(f"\nharmonizer ingest benchmark: landed CSV → raw/<source>, {len(COLUMNS)} text columns, database {BENCH_DATABASE}")
    print(f"tree {tree}; peak RSS includes the parent's {parent_rss:.0f} MB at fork (Linux carries it into children)")
    for rows in sizes:
        size_mb = csv_path(rows).stat().st_size / 2**20
        print(f"\n{rows:,} rows: {csv_path(rows).relative_to(DATA_DIR.parent.parent)} ({size_mb:,.0f} MB)")
        print(f"{'scenario':<30}{'seconds':>9}{'rows/s':>11}{'MB/s':>7}{'peak RSS MB':>13}{'RSS growth':>12}  note")
        for name, result in results[rows].items():
            if "skipped" in result:
                print(f"{LABELS[name]:<30}{'—':>9}{'—':>11}{'—':>7}{'—':>13}{'—':>12}  skipped: {result['skipped']}")
                continue
            seconds = result["seconds"]
            note = result.get("note", "")
            if result["rows_loaded"] != rows:
                note += f"; LOADED {result['rows_loaded']:,} ROWS"
            print(f"{LABELS[name]:<30}{seconds:>9.2f}{rows / seconds:>11,.0f}{size_mb / seconds:>7.0f}"
                  f"{result['peak_rss_mb']:>13.0f}{result['rss_growth_mb']:>12.0f}  {note}")  # fmt: skip
            if name == "asset":
                for part, label in (("tick_seconds", "  sensor tick (list, hash)"), ("run_seconds", "  run (detect, COPY, swap)")):
                    kind = "median of its own" if repeats_for(rows) > 1 else "of the same run"
                    print(f"{label:<30}{result[part]:>9.2f}{rows / result[part]:>11,.0f}{size_mb / result[part]:>7.0f}  {kind}")
    print(f"\nloaded row counts equal the files' rows: {'PASS' if rows_ok else 'FAIL'}")
    print("\ntargets:")
    width = max(len(check["name"]) for check in checks) + 2
    for check in checks:
        value = f"{check['value']:.2f}{check['unit']}" if check["unit"] == "×" else f"{check['value']:.0f}{check['unit']}"
        target = f"(target {check['op']} {check['target']:g}{check['unit']})"
        print(f"  {check['name']:<{width}}{value:>9}  {target:<20}{'PASS' if check['passed'] else 'FAIL'}")
    print("\nfor information:")
    for line in info:
        print(f"  {line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows-small", type=int, default=DEFAULT_SMALL_ROWS, help="rows of the small file (run first)")
    parser.add_argument("--rows-large", type=int, default=DEFAULT_LARGE_ROWS, help="rows of the large file; 0 skips it")
    parser.add_argument(
        "--peers-10m", choices=["all", "fast"], default="all",
        help="fast: skip pandas to_sql and dlt on the large file (they take many minutes); "
             "its ratios then use their small-file rates, labelled extrapolated",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", type=int, metavar="ROWS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        child_main(args.scenario, args.url, args.rows, args.result)
        return 0
    if args.generate:
        generate_csv(args.generate)
        return 0
    if args.rows_small < 1 or args.rows_large < 0:
        parser.error("--rows-small must be positive and --rows-large zero (skip) or positive")
    sizes = [args.rows_small] + ([args.rows_large] if args.rows_large else [])

    tree = tree_state()
    load_before = os.getloadavg()[0]
    server_url = resolve_database_url()
    drop_database(server_url, BENCH_DATABASE)  # left over by an interrupted run: its registry would call files duplicates
    ensure_database(server_url, BENCH_DATABASE)
    url = with_database(server_url, BENCH_DATABASE)
    bookkeeping_schema.upgrade(url)
    results: dict[int, dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench_ingest_") as folder:
            for rows in sizes:
                ensure_csv(rows)
                results[rows] = {}
                for name in SCENARIOS:
                    if name in SLOW_PEERS and rows != sizes[0] and args.peers_10m == "fast":
                        results[rows][name] = {"skipped": "--peers-10m fast"}
                        continue
                    print(f"running {name} on {rows:,} rows ...", file=sys.stderr, flush=True)
                    results[rows][name] = run_scenario(name, url, rows, Path(folder))
    finally:
        drop_database(server_url, BENCH_DATABASE)
    rows_ok = all(r["rows_loaded"] == rows for rows in sizes for r in results[rows].values() if "skipped" not in r)
    checks, info = targets(results, sizes)
    parent_rss = max_rss_mb()
    tree += f"; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} CPUs"
    print_report(sizes, results, checks, info, rows_ok, parent_rss, tree)
    if args.json:
        payload = {
            "sizes": sizes,
            "tree": tree,
            "parent_rss_mb": parent_rss,
            "scenarios": {str(rows): results[rows] for rows in sizes},
            "targets": checks,
            "info": info,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if rows_ok and all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
