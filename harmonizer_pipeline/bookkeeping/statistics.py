"""A file's profile statistics (no dagster): quality.column_statistics (one row per column per
profiling run), quality.missing_patterns and quality.column_associations, written with the
profile, read back as the dataclasses of harmonizer_pipeline.quality.statistics, and removed with the file's raw rows
(retention) or the file (erasure)."""

from __future__ import annotations

import dataclasses

from psycopg import sql
from psycopg.types.json import Jsonb

from harmonizer_pipeline.quality.statistics import (
    Association,
    ColumnStatistics,
    DateStatistics,
    FileStatistics,
    Histogram,
    MissingPattern,
    NumberStatistics,
    TextStatistics,
)

_NUMBER_FIELDS = ("count", "invalid", "mean", "std", "minimum", "p5", "p25", "p50", "p75", "p95", "maximum", "zeros", "negatives")
_COLUMNS = (
    "source, partition_key, run_id, position, column_name, semantic_type, file_rows, sampled_rows, kind, count, invalid, mean, std,"
    " minimum, p5, p25, p50, p75, p95, maximum, zeros, negatives, first_date, last_date, period, length_min, length_mean, length_max,"
    " histogram, top_values"
)


def save_statistics(conn, source: str, partition_key: str, run_id: str, statistics: FileStatistics) -> None:
    """Record the file's statistics under its profiling run (the caller's transaction)."""
    file_figures = (statistics.rows, statistics.sampled_rows)
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO quality.column_statistics ({_COLUMNS}) VALUES ({', '.join(['%s'] * 30)})",
            [(source, partition_key, run_id, position, *_column_row(c, file_figures)) for position, c in enumerate(statistics.columns)],
        )
        cur.executemany(
            "INSERT INTO quality.missing_patterns (source, partition_key, run_id, rank, columns, rows) VALUES (%s, %s, %s, %s, %s, %s)",
            [(source, partition_key, run_id, rank, p.columns, p.rows) for rank, p in enumerate(statistics.missing_patterns, 1)],
        )
        cur.executemany(
            "INSERT INTO quality.column_associations (source, partition_key, run_id, position, column_a, column_b, measure, value, rows)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (source, partition_key, run_id, position, a.column_a, a.column_b, a.measure, a.value, a.rows)
                for position, a in enumerate(statistics.associations)
            ],
        )


def _column_row(c: ColumnStatistics, file_figures: tuple[int, int]) -> tuple:
    numbers, dates, text = c.numbers, c.dates, c.text
    kind = "numbers" if numbers else "dates" if dates else "text" if text else "none"
    number_figures = tuple(getattr(numbers, name) for name in _NUMBER_FIELDS) if numbers else (None,) * len(_NUMBER_FIELDS)
    if dates:
        number_figures = (dates.count, dates.invalid, *number_figures[2:])
    histogram = (
        {"edges": numbers.histogram.edges, "counts": numbers.histogram.counts} if numbers
        else {"periods": dates.periods} if dates
        else {"edges": text.length_histogram.edges, "counts": text.length_histogram.counts} if text
        else None
    )  # fmt: skip
    return (
        c.column,
        c.semantic_type,
        *file_figures,
        kind,
        *number_figures,
        dates.first if dates else None,
        dates.last if dates else None,
        dates.period if dates else None,
        text.length_min if text else None,
        text.length_mean if text else None,
        text.length_max if text else None,
        Jsonb(histogram) if histogram is not None else None,
        Jsonb(text.top_values) if text else None,
    )


def load_statistics(conn, source: str, partition_key: str) -> FileStatistics | None:
    """The statistics of the file's latest profiling run that recorded them; None when none did."""
    columns = conn.execute(
        f"SELECT {_COLUMNS} FROM quality.column_statistics WHERE run_id = ("
        " SELECT run_id FROM quality.column_statistics WHERE source = %s AND partition_key = %s ORDER BY profiled_at DESC LIMIT 1)"
        " AND source = %s AND partition_key = %s ORDER BY position",
        (source, partition_key, source, partition_key),
    ).fetchall()
    if not columns:
        return None
    run_id, file_rows, sampled_rows = columns[0][2], columns[0][6], columns[0][7]
    patterns = conn.execute(
        "SELECT columns, rows FROM quality.missing_patterns WHERE run_id = %s AND source = %s AND partition_key = %s ORDER BY rank",
        (run_id, source, partition_key),
    ).fetchall()
    associations = conn.execute(
        "SELECT column_a, column_b, measure, value, rows FROM quality.column_associations"
        " WHERE run_id = %s AND source = %s AND partition_key = %s ORDER BY position",
        (run_id, source, partition_key),
    ).fetchall()
    return FileStatistics(
        rows=file_rows,
        sampled_rows=sampled_rows,
        columns=[_column_statistics(row) for row in columns],
        missing_patterns=[MissingPattern(list(names), rows) for names, rows in patterns],
        associations=[Association(*row) for row in associations],
    )


def _column_statistics(row: tuple) -> ColumnStatistics:
    fields = dict(zip([name.strip() for name in _COLUMNS.split(",")], row, strict=True))
    kind, histogram = fields["kind"], fields["histogram"]
    column = ColumnStatistics(fields["column_name"], fields["semantic_type"])
    if kind == "numbers":
        figures = {name: fields[name] for name in _NUMBER_FIELDS}
        return dataclasses.replace(column, numbers=NumberStatistics(**figures, histogram=Histogram(histogram["edges"], histogram["counts"])))
    if kind == "dates":
        periods = [(label, rows) for label, rows in histogram["periods"]]
        dates = DateStatistics(fields["count"], fields["invalid"], fields["first_date"].isoformat(), fields["last_date"].isoformat(), fields["period"], periods)
        return dataclasses.replace(column, dates=dates)
    if kind == "text":
        top_values = [(value, rows) for value, rows in fields["top_values"]]
        length_histogram = Histogram(histogram["edges"], histogram["counts"])
        text = TextStatistics(fields["length_min"], fields["length_mean"], fields["length_max"], length_histogram, top_values)
        return dataclasses.replace(column, text=text)
    return column


STATISTICS_TABLES = ("column_statistics", "missing_patterns", "column_associations")


def delete_statistics(conn, source: str, partition_key: str) -> int:
    """Remove every stored statistic of the file (they quote its raw values); rows removed."""
    return sum(
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE source = %s AND partition_key = %s").format(sql.Identifier("quality", table)), (source, partition_key)
        ).rowcount
        for table in STATISTICS_TABLES
    )
