"""Benchmark profiling and validating one file: harmonizer's profile and schema gate against
ydata-profiling in minimal mode and plain pandera validation of the same frame.

Run:  .venv/bin/python bench/bench_quality.py [--rows N] [--ydata-python PATH] [--json PATH]

A CSV of N rows (default 1,000,000) × 20 columns of the kinds files carry (ids, UUIDs, names,
e-mails, phones, dates in two formats, timestamps, countries, postal codes with leading zeros,
decimals, currency amounts, quantities with planted negative outliers, yes/no flags, statuses,
URLs, IPs, card numbers, free text with blanks) is generated once, deterministically, into
bench/.data/ (gitignored), with a pandera YAML schema for it. Then, each in a fresh subprocess
(its peak RSS its own, read by the parent from os.wait4), one after the other:

- harmonizer_profile: the profile step's computation over the file's 20 text columns:
  quality.statistics.profile_with_statistics (the column profiles and their statistics:
  quantiles, histograms, dates per period, lengths, missing patterns, Pearson and Spearman
  correlations, Cramér's V), as the profile asset computes them;
- harmonizer_profile_only: quality.profiling.profile_frame, the column profiles without the
  statistics (what the statistics cost is the difference);
- harmonizer_validate: the schema gate of validated/<source> (quality.gate): whole-file
  uniqueness, then lazy validation chunk by chunk (100,000 rows), rejected rows collected;
- harmonizer_profile_validate: both, one after the other, in one process;
- harmonizer_report: the HTML page of `harmonizer report` (reports.file_report.frame_report):
  the profile with its statistics, the quality findings, the keys (Desbordante), rendered with
  its inline SVG charts, values of PII columns masked;
- pandera: plain `schema.validate(frame, lazy=True)` of the whole frame (pandera's own way);
- ydata_minimal: `ProfileReport(frame, minimal=True).get_description()` (the profile without
  rendering the HTML report, the part comparable to ours), run by a separate interpreter
  because ydata-profiling 4.18 pins pandas < 3: `--ydata-python`, default
  bench/.data/venv-ydata/bin/python, created on first use with
  `python3.11 -m venv bench/.data/venv-ydata && bench/.data/venv-ydata/bin/pip install
  "ydata-profiling>=4.18" "pandas<3" "setuptools<81"`;
- ydata_minimal_report: `ProfileReport(frame, minimal=True).to_html()`, its minimal report with
  histograms, rendered: what harmonizer_report is compared with.

Each child first reads the CSV (as text with pyarrow for harmonizer and pandera, as raw/<source>
holds it; pandas.read_csv with its type inference for ydata, as its users do), then times only
the operation; `rss_before` is the process's peak RSS after the read,
`peak_rss` after the operation. Targets: profile time ≥ 5× faster than ydata minimal, and a
lower peak RSS; the same for the report against ydata's minimal report. Exit status 1 when a
target fails or a scenario fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from children import peak_rss_mb, run_child

DATA_DIR = Path(__file__).resolve().parent / ".data"
DEFAULT_ROWS = 1_000_000
DEFAULT_YDATA_PYTHON = DATA_DIR / "venv-ydata" / "bin" / "python"
DATA_VERSION = 1
SEED = 20261123
CHUNK_ROWS = 100_000
SPEEDUP_TARGET = 5.0
SCENARIOS = (
    "harmonizer_profile", "harmonizer_profile_only", "harmonizer_validate", "harmonizer_profile_validate",
    "harmonizer_report", "pandera", "ydata_minimal", "ydata_minimal_report",
)  # fmt: skip

SCHEMA_YAML = """\
schema_type: dataframe
columns:
  customer_id: {dtype: int64, nullable: false, unique: true}
  customer_uuid: {dtype: str, nullable: false, checks: {str_matches: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'}}
  first_name: {dtype: str, nullable: false}
  last_name: {dtype: str, nullable: false}
  email: {dtype: str, nullable: true, checks: {str_matches: '^[^@\\s]+@[^@\\s]+\\.[a-z]{2,}$'}}
  phone: {dtype: str, nullable: true, checks: {str_matches: '^\\+\\d[\\d ]{7,16}$'}}
  birth_date: {dtype: 'datetime64[ns]', nullable: false, checks: {in_range: {min_value: '1900-01-01', max_value: '2026-12-31'}}}
  signup_at: {dtype: 'datetime64[ns]', nullable: false}
  country: {dtype: str, nullable: false, checks: {isin: [DE, NL, FR, BE, AT, CH, PL, DK, SE, IT]}}
  postal_code: {dtype: str, nullable: false, checks: {str_matches: '^\\d{5}$'}}
  city: {dtype: str, nullable: false}
  balance: {dtype: float64, nullable: true, checks: {greater_than_or_equal_to: 0}}
  price: {dtype: str, nullable: false, checks: {str_matches: '^€\\d+\\.\\d{2}$'}}
  quantity: {dtype: int64, nullable: false, checks: {in_range: {min_value: 0, max_value: 1000}}}
  active: {dtype: str, nullable: false, checks: {isin: ['yes', 'no']}}
  status: {dtype: str, nullable: false, checks: {isin: [new, active, churned, paused]}}
  website: {dtype: str, nullable: true, checks: {str_startswith: 'https://'}}
  ip_address: {dtype: str, nullable: false}
  card_number: {dtype: str, nullable: true, checks: {str_length: {min_value: 16, max_value: 16}}}
  comment: {dtype: str, nullable: true}
coerce: true
strict: true
"""


def csv_path(rows: int) -> Path:
    return DATA_DIR / f"quality_{rows}.csv"


def schema_path() -> Path:
    return DATA_DIR / "quality_schema.yaml"


def generate_csv(rows: int) -> Path:
    """The benchmark file (regenerated when its version or row count changes)."""
    import numpy as np
    import pandas as pd

    path, stamp = csv_path(rows), csv_path(rows).with_suffix(".json")
    if path.exists() and stamp.exists() and json.loads(stamp.read_text()) == {"version": DATA_VERSION, "rows": rows}:
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    first = np.array(["Anna", "Jürgen", "Zoë", "José", "Łukasz", "Søren", "François", "Mia", "Noah", "Emma", "Lukas", "Sofia"])
    last = np.array(["Meyer", "Müller", "van Dijk", "O'Neil", "Schmidt", "Weber", "Fischer", "Dubois", "Nowak", "Jensen"])
    cities = np.array(["Berlin", "Köln", "Utrecht", "Paris", "Wien", "Zürich", "Kraków", "Aarhus", "Malmö", "Milano"])
    countries = np.array(["DE", "NL", "FR", "BE", "AT", "CH", "PL", "DK", "SE", "IT"])
    ids = np.arange(1, rows + 1)
    i = ids.astype(str)
    fn, ln = first[rng.integers(0, len(first), rows)], last[rng.integers(0, len(last), rows)]
    birth = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 30_000, rows), unit="D")
    iso = birth.strftime("%Y-%m-%d").to_numpy()
    dotted = birth.strftime("%d.%m.%Y").to_numpy()
    signup = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 150_000_000, rows), unit="s")).strftime("%Y-%m-%dT%H:%M:%S")
    blanks = rng.random(rows)
    random_bytes = rng.bytes(16 * rows)
    email = np.char.add(np.char.add(np.char.lower(fn.astype("U")), np.char.add(".", i)), "@example.com")
    email = np.where(blanks < 0.01, np.char.replace(email, "@", " at "), np.where(blanks > 0.97, "", email))
    frame = pd.DataFrame(
        {
            "customer_id": i,
            "customer_uuid": [str(uuid.UUID(bytes=random_bytes[k : k + 16])) for k in range(0, 16 * rows, 16)],
            "first_name": fn,
            "last_name": ln,
            "email": email,
            "phone": np.where(blanks > 0.95, "", np.char.add("+49 30 ", rng.integers(1_000_000, 9_999_999, rows).astype(str))),
            "birth_date": np.where(rng.random(rows) < 0.005, dotted, iso),  # a second date format in 0.5% of rows
            "signup_at": signup,
            "country": countries[rng.integers(0, len(countries), rows)],
            "postal_code": np.char.zfill(rng.integers(0, 99_999, rows).astype(str), 5),
            "city": cities[rng.integers(0, len(cities), rows)],
            "balance": np.where(blanks > 0.9, "", np.round(rng.gamma(2.0, 150.0, rows), 2).astype(str)),
            "price": np.char.add("€", np.char.mod("%.2f", rng.uniform(1, 500, rows))),
            "quantity": np.where(rng.random(rows) < 0.002, -rng.integers(1, 50, rows), rng.integers(0, 100, rows)).astype(str),
            "active": np.where(rng.random(rows) < 0.7, "yes", "no"),
            "status": np.array(["new", "active", "churned", "paused"])[rng.integers(0, 4, rows)],
            "website": np.where(blanks > 0.5, "", np.char.add("https://shop.example.com/u/", i)),
            "ip_address": [f"10.{a}.{b}.{c}" for a, b, c in rng.integers(0, 256, (rows, 3))],
            "card_number": np.where(blanks > 0.8, "", np.char.zfill(rng.integers(0, 10**15, rows).astype(str), 16)),
            "comment": np.where(blanks > 0.3, "", np.char.add("Called about order ", (ids % 997).astype(str))),
        }
    )
    frame.to_csv(path, index=False)
    stamp.write_text(json.dumps({"version": DATA_VERSION, "rows": rows}))
    return path


def _text_frame(path: Path):
    """The file as raw/<source> holds it: every value as text ('' stays ''), `_row_number` beside.
    Read by pyarrow into pandas' Arrow-backed strings, so the frame costs about the file's size."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, dtype="str", keep_default_na=False, engine="pyarrow")
    return frame.assign(_row_number=np.arange(2, len(frame) + 2))


def _schema():
    from harmonizer_pipeline.quality.validation import load_schema

    return load_schema(str(schema_path()))


def _profile(frame) -> dict:
    from harmonizer_pipeline.quality.statistics import profile_with_statistics

    profile, statistics = profile_with_statistics(frame)
    return {"quality_score": profile.quality_score, "columns": len(profile.columns), "associations": len(statistics.associations)}


def _profile_only(frame) -> dict:
    from harmonizer_pipeline.quality.profiling import profile_frame

    profile = profile_frame(frame)
    return {"quality_score": profile.quality_score, "columns": len(profile.columns)}


def _validate(frame, schema) -> dict:
    from harmonizer_pipeline.quality.gate import PartitionValidation, unique_column_sets, uniqueness_rejections

    unique = sorted({c for _, group, _ in unique_column_sets(schema) for c in group})
    validation = PartitionValidation(schema, uniqueness_rejections(schema, frame[["_row_number", *unique]]), lambda rejected: None)
    passed = sum(len(v) for v in validation.run(frame.iloc[i : i + CHUNK_ROWS] for i in range(0, len(frame), CHUNK_ROWS)))
    summary = validation.summary
    return {"valid_rows": passed, "rejected_rows": summary.rejected_rows, "failures": sum(summary.failures.values())}


def scenario(name: str, path: Path) -> dict:
    if name in ("ydata_minimal", "ydata_minimal_report"):
        import pandas as pd
        from ydata_profiling import ProfileReport

        frame = pd.read_csv(path)
        before = peak_rss_mb()
        start = time.perf_counter()
        report = ProfileReport(frame, minimal=True, progress_bar=False)
        if name == "ydata_minimal":
            detail = {"columns": len(report.get_description().variables), "pandas": pd.__version__}
        else:
            detail = {"html_bytes": len(report.to_html().encode()), "pandas": pd.__version__}
        seconds = time.perf_counter() - start
    else:
        frame = _text_frame(path)
        schema = _schema() if name not in ("harmonizer_profile", "harmonizer_profile_only", "harmonizer_report") else None
        before = peak_rss_mb()
        start = time.perf_counter()
        if name == "harmonizer_profile":
            detail = _profile(frame)
        elif name == "harmonizer_profile_only":
            detail = _profile_only(frame)
        elif name == "harmonizer_validate":
            detail = _validate(frame, schema)
        elif name == "harmonizer_profile_validate":
            detail = {**_profile(frame), **_validate(frame, schema)}
        elif name == "harmonizer_report":
            from harmonizer_pipeline.privacy.policy import MASKED
            from harmonizer_pipeline.reports.file_report import frame_report

            columns = [c for c in frame.columns if not c.startswith("_")]
            detail = {"html_bytes": len(frame_report(path.name, frame, columns, [], MASKED).encode())}
        elif name == "pandera":
            from pandera.errors import SchemaErrors

            data = frame.drop(columns=["_row_number"])
            try:
                schema.validate(data, lazy=True)
                detail = {"failure_cases": 0}
            except SchemaErrors as errors:
                detail = {"failure_cases": len(errors.failure_cases)}
        else:
            raise SystemExit(f"unknown scenario {name}")
        seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 3), "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1), **detail}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--ydata-python", default=str(DEFAULT_YDATA_PYTHON))
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        args.result.write_text(json.dumps(scenario(args.scenario, args.csv)))
        return 0

    path = generate_csv(args.rows)
    schema_path().write_text(SCHEMA_YAML)
    print(f"{path.name}: {args.rows:,} rows × 20 columns, {path.stat().st_size / 1e6:.0f} MB")
    results = {}
    for name in SCENARIOS:
        python = args.ydata_python if name.startswith("ydata") else sys.executable
        if name.startswith("ydata") and not Path(python).exists():
            results[name] = {"error": f"{python} not found (see this script's docstring to create it)"}
        else:
            results[name] = run_child(__file__, name, path, python)
        print(f"  {name:<28} {json.dumps(results[name], ensure_ascii=False)}", flush=True)

    ok = all("error" not in r for r in results.values())
    ours, ydata, pandera = results["harmonizer_profile"], results["ydata_minimal"], results["pandera"]
    print("\nratios:")
    if ok:
        speedup = ydata["seconds"] / ours["seconds"]
        memory = ours["peak_rss_mb"] / ydata["peak_rss_mb"]
        gate = results["harmonizer_validate"]
        print(
            f"  profile: ydata minimal {ydata['seconds']:.1f} s / harmonizer profile {ours['seconds']:.1f} s = {speedup:.1f}× faster "
            f"(target {SPEEDUP_TARGET:.0f}×); peak RSS {ours['peak_rss_mb']:.0f} MB vs {ydata['peak_rss_mb']:.0f} MB = {memory:.2f}"
        )
        print(
            f"  validation: plain pandera {pandera['seconds']:.1f} s / harmonizer gate {gate['seconds']:.1f} s = "
            f"{pandera['seconds'] / gate['seconds']:.1f}× faster; pandera reports {pandera['failure_cases']:,} failure "
            f"cases, the gate {gate['failures']:,} on {gate['rejected_rows']:,} rows (in pandera a column with a value "
            "its dtype cannot take stays text, and its other checks fail or error on every row)"
        )
        report, ydata_report = results["harmonizer_report"], results["ydata_minimal_report"]
        report_speedup = ydata_report["seconds"] / report["seconds"]
        report_memory = report["peak_rss_mb"] / ydata_report["peak_rss_mb"]
        print(
            f"  report: ydata minimal report {ydata_report['seconds']:.1f} s / harmonizer report {report['seconds']:.1f} s = "
            f"{report_speedup:.1f}× faster (target {SPEEDUP_TARGET:.0f}×); peak RSS {report['peak_rss_mb']:.0f} MB vs "
            f"{ydata_report['peak_rss_mb']:.0f} MB = {report_memory:.2f}"
        )
        ok = speedup >= SPEEDUP_TARGET and memory < 1 and report_speedup >= SPEEDUP_TARGET and report_memory < 1
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
