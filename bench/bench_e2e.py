"""End-to-end benchmark: a 1M-row source file from landing to export through the real assets.

Run:  .venv/bin/python bench/bench_e2e.py [--rows N] [--json PATH]

The file (bench/.data/e2e_<N>.csv, generated once) is a patient list of 15 columns as a clinic
would send it: day-first dates, sex as m/w/1/2, e-mails and phones as typed (1% bad each),
postal codes, decimal-comma balances, weights in pounds, and 2% of the patients twice (a later
visit row of the same person). A throwaway harmonizer.yaml maps it into a target `e2e_people`
(business key last_name, first_name, birth_date; most_complete wins; fuzzy match within birth
date) with a pandera schema gating it.

In one fresh process (its peak RSS from its own VmHWM), on the project's PostgreSQL server
(embedded, or HARMONIZER_DATABASE_URL) in a throwaway database `harmonizer_bench_e2e`:
the landing sensor's tick, the load job (raw, validated + gate, profile, keys, comparison),
then the harmonize job (harmonized: the merge in PostgreSQL and the fuzzy candidates; export:
the merge's change files, then CSV, Parquet, Excel, unique/duplicate files, zip), each step's
seconds and rows/s from Dagster's own event log. Every step runs in this one process, one after
another (execute_in_process), where a deployment's multiprocess executor runs profile, keys and
staged side by side. Targets (issue 16's): under 30 s wall and under 1.5 GB peak RSS; the design
before incremental harmonization took 48.5 s and 1.8 GB (the old tool promised 1-5 minutes and
up to 2 GB for 1M-10M rows).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from children import peak_rss_mb, step_seconds

DATA_DIR = Path(__file__).resolve().parent / ".data"
PROJECT = Path(__file__).resolve().parents[1]
BENCH_DATABASE = "harmonizer_bench_e2e"
DATA_VERSION = 1
SECONDS_TARGET = 30.0
RSS_TARGET_MB = 1536.0

SCHEMA_YAML = """\
schema_type: dataframe
version: 0.22.0
columns:
  patient_id: {dtype: str, nullable: false, unique: true}
  first_name: {dtype: str, nullable: false}
  last_name: {dtype: str, nullable: false}
  birth_date: {dtype: str, nullable: false, checks: {str_matches: '^\\d{2}\\.\\d{2}\\.\\d{4}$'}}
coerce: true
strict: false
"""

CONFIG = """\
sources:
  e2e_clinic:
    landing: {{local: {{path: {landing}, glob: "*.csv"}}}}
    format: {{format: csv, delimiter: ";"}}
    schema: {schema}
    max_reject_rate: 0.01
    target: e2e_people
    mapping:
      birth_date: {{column: birth_date, formats: ["%d.%m.%Y"]}}
      street: {{combine: [street, house_no]}}
      balance: {{column: balance, nulls: ["N/A"], decimal_comma: true}}
      weight_kg: {{column: weight_lb, unit: {{from: lb, to: kg}}}}
      sex: {{column: sex, values: {{M: ["1"], F: ["2"]}}}}
targets:
  e2e_people:
    columns:
      first_name: {{type: text, required: true, rules: [person_name]}}
      last_name: {{type: text, required: true, rules: [{{person_name: {{family: true}}}}]}}
      birth_date: {{type: date, required: true}}
      sex: {{type: text, rules: [{{value_map: {{mapping: {{M: [m], F: [w, f]}}}}}}]}}
      email: {{type: text, rules: [email]}}
      phone: {{type: text, rules: [{{phone: {{region: DE}}}}]}}
      street: {{type: text}}
      postal_code: {{type: text, rules: [{{postal_code: {{country: DE}}}}]}}
      city: {{type: text, rules: [text]}}
      country: {{type: text, rules: [country]}}
      balance: {{type: float}}
      weight_kg: {{type: float}}
    key: [last_name, first_name, birth_date]
    survivorship: most_complete
    match: {{columns: [first_name, last_name], block_on: [birth_date], threshold: 90}}
export:
  directory: {exports}
"""


def e2e_csv(rows: int) -> Path:
    """The patient list of `rows` rows (generated once, seeded)."""
    import numpy as np
    import pandas as pd

    path, stamp = DATA_DIR / f"e2e_{rows}.csv", DATA_DIR / f"e2e_{rows}.json"
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == {"version": DATA_VERSION, "rows": rows}:
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261123)
    first = np.array(["Anna", "Lukas", "Mia", "Elias", "Emma", "Noah", "Sofia", "Jonas", "Marie", "Paul", "Lea", "Finn", "Clara", "Ben", "Ida"])
    last = np.array(["Müller", "Schmidt", "Meyer", "Weber", "Wagner", "Becker", "Hoffmann", "van Dijk", "O'Neil", "McDonald", "Krüger", "Schulz"])
    cities = np.array(["Berlin", "Köln", "Hamburg", "München", "Dresden"])
    unique = rows - rows // 50  # 2% of the rows repeat an earlier patient
    days = rng.integers(0, 365 * 80, unique)
    born = pd.Timestamp("1940-01-01") + pd.to_timedelta(days, unit="D")
    person = rng.integers(0, 10**9, unique)
    frame = pd.DataFrame(
        {
            "first_name": first[rng.integers(0, len(first), unique)],
            "last_name": np.char.add(last[rng.integers(0, len(last), unique)], np.char.mod("-%d", person % 9973)),
            "birth_date": born.strftime("%d.%m.%Y"),
            "sex": np.array(["m", "w", "1", "2"])[rng.integers(0, 4, unique)],
            "email": np.char.mod("p%d@example.de", person),
            "phone": np.char.mod("030 %07d", rng.integers(0, 10**7, unique)),
            "street": np.array(["Hauptstraße", "Ring", "Lindenweg", "Marktplatz"])[rng.integers(0, 4, unique)],
            "house_no": rng.integers(1, 200, unique).astype(str),
            "postal_code": np.char.mod("%05d", rng.integers(1067, 99999, unique)),
            "city": cities[rng.integers(0, len(cities), unique)],
            "country": np.array(["DE", "Deutschland", "Germany"])[rng.integers(0, 3, unique)],
            "balance": np.char.replace(np.char.mod("%.2f", rng.random(unique) * 500), ".", ","),
            "weight_lb": np.round(rng.random(unique) * 150 + 90, 1).astype(str),
        }
    )
    bad = rng.random(unique)
    frame.loc[bad < 0.01, "email"] = "broken@@mail"
    frame.loc[(bad >= 0.01) & (bad < 0.02), "phone"] = "12"
    repeats = frame.sample(rows - unique, random_state=1).assign(email=None)  # a later, sparser row of the same patient
    frame = pd.concat([frame, repeats], ignore_index=True)
    frame.insert(0, "patient_id", [f"E{i:08d}" for i in range(rows)])
    frame.to_csv(path, sep=";", index=False)
    stamp.write_text(json.dumps({"version": DATA_VERSION, "rows": rows}))
    return path


def run_pipeline(csv: Path, work: Path) -> dict:
    """The child: land the file, run the load job and the harmonize job, report."""
    import shutil

    import dagster as dg

    from harmonizer_pipeline.definitions import build_definitions
    from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
    from harmonizer_pipeline.resources import build_resources
    from harmonizer_pipeline.settings import parse_settings

    landing, exports = work / "landing", work / "exports"
    landing.mkdir()
    shutil.copy(csv, landing / csv.name)
    (work / "schema.yaml").write_text(SCHEMA_YAML)
    config = CONFIG.format(landing=landing, schema=work / "schema.yaml", exports=exports)
    defs = build_definitions(parse_settings(config, base_dir=work), build_resources())
    began = time.perf_counter()
    with dg.instance_for_test() as instance:
        sensor = defs.sensors[0]
        tick = time.perf_counter()
        result = evaluate_sensor(defs, sensor, instance)
        tick = time.perf_counter() - tick
        [load] = launch_requests(defs, sensor, instance, result)
        harmonize = defs.resolve_job_def("harmonize_e2e_people").execute_in_process(instance=instance, raise_on_error=False)
        wall = time.perf_counter() - began
        steps = {"sensor tick": round(tick, 2), **step_seconds(instance, load.run_id), **step_seconds(instance, harmonize.run_id)}
        ok = load.success and harmonize.success
        metadata = {}
        for run in (load, harmonize):
            for event in run.get_asset_materialization_events():
                m = event.materialization.metadata
                metadata[event.asset_key.to_user_string()] = {
                    k: m[k].value
                    for k in ("dagster/row_count", "dagster/partition_row_count", "rows_mapped", "merged_rows", "rejected_values", "match_candidates")
                    if k in m
                }
    files = sorted((p.name, p.stat().st_size) for p in exports.rglob("*") if p.is_file())
    return {"ok": ok, "seconds": round(wall, 2), "steps": steps, "assets": metadata, "files": files}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = run_pipeline(args.csv, args.child.parent)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        args.child.write_text(json.dumps(result))
        return 0

    sys.path.insert(0, str(PROJECT))
    from harmonizer_pipeline.bookkeeping import schema
    from harmonizer_pipeline.storage.postgres import DATABASE_URL_ENV, HOME_ENV, drop_database, ensure_database, resolve_database_url, with_database

    csv = e2e_csv(args.rows)
    server = resolve_database_url()
    drop_database(server, BENCH_DATABASE)
    ensure_database(server, BENCH_DATABASE)
    schema.upgrade(with_database(server, BENCH_DATABASE))
    try:
        with tempfile.TemporaryDirectory(prefix="bench_e2e_") as folder:
            work = Path(folder)
            out = work / "result.json"
            env = {**os.environ, DATABASE_URL_ENV: with_database(server, BENCH_DATABASE), HOME_ENV: str(work / "home")}
            subprocess.run([sys.executable, __file__, "--child", str(out), "--csv", str(csv)], env=env, cwd=PROJECT, check=True)
            result = json.loads(out.read_text())
    finally:
        drop_database(server, BENCH_DATABASE)
    print(f"harmonizer end to end: {args.rows:,}-row CSV ({csv.stat().st_size / 1e6:.0f} MB) from landing to export, {os.cpu_count()} CPUs")
    for step, seconds in result["steps"].items():
        rate = f"{args.rows / seconds:>12,.0f} rows/s" if seconds > 0 else ""
        print(f"  {step:<40} {seconds:>7.2f} s {rate}")
    for asset, figures in result["assets"].items():
        print(f"  {asset:<40} {json.dumps(figures)}")
    print(f"  files: {', '.join(f'{name} ({size / 1e6:.1f} MB)' for name, size in result['files'])}")
    wall, rss = result["seconds"], result["peak_rss_mb"]
    passed = result["ok"] and wall < SECONDS_TARGET and rss < RSS_TARGET_MB
    print(f"  runs succeeded: {'yes' if result['ok'] else 'NO'}")
    print(f"  wall {wall:.1f} s (target < {SECONDS_TARGET:.0f} s: {'PASS' if wall < SECONDS_TARGET else 'FAIL'}; {wall / SECONDS_TARGET:.2f}× the target)")
    print(f"  peak RSS {rss:.0f} MB (target < {RSS_TARGET_MB:.0f} MB: {'PASS' if rss < RSS_TARGET_MB else 'FAIL'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
