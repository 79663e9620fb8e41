"""ops.run_metrics: the figures each materialization records, for run-to-run trends (no dagster).

Long format, one row per (run, subject, partition, asset, metric): subject is a source (its
partition the file) or a target. Metric names: rows, rejected_rows, rejected_share,
quality_score, null_rate and null_rate:<column> (share of values missing: NULL or blank),
key_uniqueness (share of rows the suggested key tells apart), minimal_keys, duplicate_rows,
duration_seconds.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from psycopg import sql

from harmonizer_pipeline.bookkeeping.statements import execute, insert

METRICS_TABLE = sql.Identifier("ops", "run_metrics")


def record(conn, run_id: str, subject: str, partition_key: str | None, asset: str, metrics: Mapping[str, float | None]) -> None:
    rows = [
        (run_id, subject, partition_key, asset, name, float(value)) for name, value in metrics.items() if value is not None and value == value
    ]  # NaN: nothing measured
    insert(conn, METRICS_TABLE, ["run_id", "subject", "partition_key", "asset", "metric", "value"], rows)


def history(conn, subject: str) -> pd.DataFrame:
    """Every metric of the subject: partition_key, asset, metric, value, run_id, recorded_at, oldest first."""
    rows = execute(
        conn,
        sql.SQL("SELECT partition_key, asset, metric, value, run_id, recorded_at FROM {} WHERE subject = {} ORDER BY recorded_at, id").format(
            METRICS_TABLE, sql.Literal(subject)
        ),
    )
    return pd.DataFrame(rows, columns=["partition_key", "asset", "metric", "value", "run_id", "recorded_at"])
