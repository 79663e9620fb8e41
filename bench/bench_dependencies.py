"""Functional dependencies on a synthetic file (relations/dependencies.py): find_dependencies on
all rows against file_dependencies (the pipeline's: searched on a sample of SAMPLE_ROWS rows,
every one found measured again on all rows), wall time and peak RSS of each in a process of its
own, and whether both find the same dependencies.

    .venv/bin/python bench/bench_dependencies.py [--rows 1000000] [--only sampled|full]

The file: 15 columns with planted zip -> city (0.1% of the cities mistyped), store -> region and
store -> manager, product -> category and product -> price, (first, last) -> email and back, a
row id and random columns (as the module docstring's measurements).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd


def synthetic(rows: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zips = rng.integers(0, 5_000, rows)
    city = np.array([f"city {z % 1_200}" for z in range(5_000)], dtype=object)[zips]
    typos = rng.random(rows) < 0.001
    city[typos] = [f"{c}x" for c in city[typos]]
    stores = rng.integers(0, 300, rows)
    products = rng.integers(0, 2_000, rows)
    first, last = rng.integers(0, 400, rows), rng.integers(0, 600, rows)
    return pd.DataFrame(
        {
            "row_id": np.arange(rows).astype(str),
            "zip": zips.astype(str),
            "city": city,
            "store": stores.astype(str),
            "region": (stores % 12).astype(str),
            "manager": (stores % 97).astype(str),
            "product": products.astype(str),
            "category": (products % 40).astype(str),
            "price": (products % 350).astype(str),
            "first": first.astype(str),
            "last": last.astype(str),
            "email": [f"{f}.{la}@example.org" for f, la in zip(first, last)],
            "quantity": rng.integers(1, 20, rows).astype(str),
            "day": rng.integers(0, 365, rows).astype(str),
            "channel": rng.choice(["web", "shop", "phone"], rows),
        }
    )


def run(rows: int, how: str) -> dict:
    from harmonizer_pipeline.keys.discovery import encode
    from harmonizer_pipeline.relations.dependencies import file_dependencies, find_dependencies

    frame = synthetic(rows)
    codes = encode(frame)
    started = time.perf_counter()
    found = file_dependencies(frame, codes) if how == "sampled" else find_dependencies(frame, codes=codes)
    seconds = time.perf_counter() - started
    return {
        "how": how,
        "rows": rows,
        "seconds": round(seconds, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "dependencies": [[list(d.lhs), d.rhs, d.exact, d.violating_rows] for d in found],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["sampled", "full"])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        assert args.only is not None
        print(json.dumps(run(args.rows, args.only)))
        return 0
    results = {}
    for how in [args.only] if args.only else ["sampled", "full"]:
        done = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--only", how, "--child"], capture_output=True, text=True, check=True)
        results[how] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{how}: {results[how]['seconds']} s, peak RSS {results[how]['peak_rss_mb']} MB, {len(results[how]['dependencies'])} dependencies", flush=True)
    if len(results) == 2:
        sampled, full = ({tuple(map(str, d)) for d in results[h]["dependencies"]} for h in ("sampled", "full"))
        print(f"same dependencies: {sampled == full}; only sampled: {sorted(sampled - full)}; only full: {sorted(full - sampled)}")
    for how, result in results.items():
        for lhs, rhs, exact, violating in result["dependencies"]:
            print(f"  {how}: {', '.join(lhs)} -> {rhs} {'exact' if exact else f'approximate, {violating} rows'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
