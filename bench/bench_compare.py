"""Benchmark `harmonizer compare`: two CSV files of N rows × 20 columns compared on their key,
against the obvious pandas way (an outer merge with indicator, then column by column).

Run:  .venv/bin/python bench/bench_compare.py [--rows N] [--json PATH]

Files (generated once into bench/.data/): compare_<N>_a.csv and compare_<N>_b.csv, an `id` key
and 19 text columns; B lacks 1% of A's rows, adds 1% new ones, and changes 5% of rows in `c03`
and 1% in `c11` (the two overlap by chance).

Scenarios, each in a fresh subprocess (peak RSS from its own VmHWM):
- harmonizer: what `harmonizer compare A B --key id -o DIR` does: read both files with the
  ingestion readers, compare (keys.comparison), write added/removed/changed CSVs; the read,
  compare and write seconds apart;
- pandas_merge: read with pandas (all text), `merge(how="outer", indicator=True)`, then per
  column `ne` over the matched rows.
Checks: both find the planted counts exactly. Target: the comparison itself under 5 s on 1M rows.
Exit status 1 when a check or the target fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from children import peak_rss_mb, run_child

DATA_DIR = Path(__file__).resolve().parent / ".data"
SEED = 20261207
COMPARE_TARGET_SECONDS = 5.0


def files(rows: int) -> tuple[Path, Path, dict]:
    """The two files and the planted counts."""
    import numpy as np
    import pandas as pd

    a_path, b_path, stamp = DATA_DIR / f"compare_{rows}_a.csv", DATA_DIR / f"compare_{rows}_b.csv", DATA_DIR / f"compare_{rows}.json"
    if a_path.exists() and b_path.exists() and stamp.exists():
        return a_path, b_path, json.loads(stamp.read_text())
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    a = pd.DataFrame({"id": np.arange(rows).astype(str), **{f"c{i:02d}": rng.integers(0, 10_000, rows).astype(str) for i in range(1, 20)}})
    removed = rng.choice(rows, rows // 100, replace=False)
    b = a.drop(index=pd.Index(removed))
    added = pd.DataFrame({"id": np.arange(rows, rows + rows // 100).astype(str), **{c: "new" for c in a.columns[1:]}})
    kept = b.index.to_numpy()
    changed_3 = rng.choice(kept, rows // 20, replace=False)
    changed_11 = rng.choice(kept, rows // 100, replace=False)
    b = b.copy()
    b.loc[changed_3, "c03"] = "changed"
    b.loc[changed_11, "c11"] = "changed"
    b = pd.concat([b, added], ignore_index=True)
    a.to_csv(a_path, index=False)
    b.to_csv(b_path, index=False)
    changed = len(set(changed_3) | set(changed_11))
    planted = {
        "added": rows // 100,
        "removed": rows // 100,
        "changed": changed,
        "unchanged": len(kept) - changed,
        "changed_columns": {"c03": rows // 20, "c11": rows // 100},
    }
    stamp.write_text(json.dumps(planted))
    return a_path, b_path, planted


def harmonizer(a_path: Path, b_path: Path) -> dict:
    import pandas as pd

    from harmonizer_pipeline.ingest.readers import open_table
    from harmonizer_pipeline.keys.file_diff import PiiColumns, compare_texts, write_differences
    from harmonizer_pipeline.privacy.policy import MASKED

    started = time.perf_counter()
    a, b = (pd.concat(list(open_table(p).chunks()), ignore_index=True) for p in (a_path, b_path))
    read = time.perf_counter() - started
    pii = PiiColumns(None, None, [a, b])
    result = compare_texts(a, b, (a_path.name, b_path.name), ["id"], pii, MASKED.value)
    compared = time.perf_counter() - started - read
    with tempfile.TemporaryDirectory() as out:
        write_differences(result, Path(out), pii.kinds(a.columns), MASKED.value)
    written = time.perf_counter() - started - read - compared
    return {"read_seconds": round(read, 2), "compare_seconds": round(compared, 2), "write_seconds": round(written, 2), **result.counts,
            "changed_columns": result.changed_columns}  # fmt: skip


def pandas_merge(a_path: Path, b_path: Path) -> dict:
    import pandas as pd

    started = time.perf_counter()
    a, b = (pd.read_csv(p, dtype=str, keep_default_na=False) for p in (a_path, b_path))
    read = time.perf_counter() - started
    joined = a.merge(b, on="id", how="outer", indicator=True, suffixes=("_a", "_b"))
    both = joined[joined["_merge"] == "both"]
    per_column = {c: int(both[f"{c}_a"].ne(both[f"{c}_b"]).sum()) for c in a.columns[1:]}
    changed = int(pd.concat([both[f"{c}_a"].ne(both[f"{c}_b"]) for c in a.columns[1:]], axis=1).any(axis=1).sum())
    compared = time.perf_counter() - started - read
    sides = joined["_merge"].value_counts()
    return {"read_seconds": round(read, 2), "compare_seconds": round(compared, 2), "added": int(sides["right_only"]), "removed": int(sides["left_only"]),
            "changed": changed, "unchanged": int(sides["both"]) - changed, "changed_columns": {c: n for c, n in per_column.items() if n}}  # fmt: skip


SCENARIOS = {"harmonizer": harmonizer, "pandas_merge": pandas_merge}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:  # a child: --csv names file A, B is beside it
        b_path = args.csv.with_name(args.csv.name.replace("_a.csv", "_b.csv"))
        result = SCENARIOS[args.scenario](args.csv, b_path)
        args.result.write_text(json.dumps({**result, "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return 0
    a_path, _, planted = files(args.rows)
    results = {name: run_child(__file__, name, a_path, sys.executable) for name in SCENARIOS}
    failed = False
    for name, result in results.items():
        found = {k: result.get(k) for k in planted}
        ok = found == planted
        failed |= not ok
        print(f"{name:<13} read {result.get('read_seconds')} s, compare {result.get('compare_seconds')} s, write {result.get('write_seconds', '-')} s,"
              f" peak {result.get('peak_rss_mb')} MB; counts {'as planted' if ok else f'WRONG: {found} != {planted}'}")  # fmt: skip
    seconds = results["harmonizer"].get("compare_seconds")
    if args.rows >= 1_000_000 and (seconds is None or seconds > COMPARE_TARGET_SECONDS):
        print(f"target missed: the comparison took {seconds} s (target {COMPARE_TARGET_SECONDS} s)")
        failed = True
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "planted": planted, "results": results}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
