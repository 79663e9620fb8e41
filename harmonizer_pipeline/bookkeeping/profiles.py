"""A file's profiles (no dagster): quality.column_profiles, one row per column per profiling run
with the whole profile as JSON beside the figures people query most; quality.recommendations,
the fixes suggested with each profile; quality.schema_history, the drift findings between a file
and the previous file of its source."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from psycopg.types.json import Jsonb

from harmonizer_pipeline.quality.drift import DriftFinding
from harmonizer_pipeline.quality.profiling import ColumnProfile, FileProfile
from harmonizer_pipeline.quality.recommendations import Recommendation


def save_profile(conn, source: str, partition_key: str, run_id: str, profile: FileProfile, recommendations: Sequence[Recommendation]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.column_profiles (source, partition_key, run_id, position, column_name, semantic_type, rows,"
            " nulls, empties, distinct_values, minimum, maximum, pattern, pii, quality_score, file_quality_score, profile)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    source,
                    partition_key,
                    run_id,
                    position,
                    c.name,
                    c.semantic_type,
                    c.rows,
                    c.nulls,
                    c.empties,
                    c.distinct,
                    c.minimum,
                    c.maximum,
                    c.patterns[0][0] if c.patterns else None,
                    c.pii,
                    c.quality_score,
                    profile.quality_score,
                    Jsonb(dataclasses.asdict(c)),
                )  # fmt: skip
                for position, c in enumerate(profile.columns)
            ],
        )
        cur.executemany(
            "INSERT INTO quality.recommendations (source, partition_key, run_id, column_name, issue, detail, rows, pandas_fix, sql_fix)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(source, partition_key, run_id, r.column, r.issue, r.detail, r.rows, r.pandas, r.sql) for r in recommendations],
        )


def latest_profile(conn, source: str, partition_keys: Sequence[str]) -> tuple[str, FileProfile] | None:
    """The newest profile of the last of `partition_keys` (oldest first) that has one."""
    found = conn.execute(
        "SELECT DISTINCT ON (partition_key) partition_key, run_id FROM quality.column_profiles"
        " WHERE source = %s AND partition_key = ANY(%s) ORDER BY partition_key, profiled_at DESC",
        (source, list(partition_keys)),
    ).fetchall()
    runs = dict(found)
    key = next((k for k in reversed(partition_keys) if k in runs), None)
    if key is None:
        return None
    rows = conn.execute(
        "SELECT profile FROM quality.column_profiles WHERE run_id = %s AND source = %s AND partition_key = %s ORDER BY position",
        (runs[key], source, key),
    ).fetchall()
    columns = [_column_profile(profile) for (profile,) in rows]
    return key, FileProfile(columns[0].rows if columns else 0, columns)


def latest_recommendations(conn, source: str, partition_key: str) -> list[Recommendation]:
    """The fixes recommended with the file's latest profile."""
    rows = conn.execute(
        "SELECT r.column_name, r.issue, r.detail, r.rows, r.pandas_fix, r.sql_fix FROM quality.recommendations r"
        " JOIN quality.column_profiles p USING (run_id, source, partition_key, column_name)"
        " WHERE (r.run_id, r.source, r.partition_key) = (SELECT run_id, source, partition_key FROM quality.column_profiles"
        " WHERE source = %s AND partition_key = %s ORDER BY profiled_at DESC LIMIT 1) ORDER BY p.position, r.issue",
        (source, partition_key),
    ).fetchall()
    return [Recommendation(*row) for row in rows]


def _column_profile(stored: dict | str) -> ColumnProfile:
    fields = json.loads(stored) if isinstance(stored, str) else dict(stored)
    fields["top_values"] = [tuple(pair) for pair in fields["top_values"]]
    fields["patterns"] = [tuple(pair) for pair in fields["patterns"]]
    return ColumnProfile(**fields)


def record_drift(conn, source: str, partition_key: str, previous_key: str, run_id: str, findings: Sequence[DriftFinding]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO quality.schema_history (source, partition_key, previous_partition_key, run_id, kind, column_name,"
            " detail, previous_value, current_value) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(source, partition_key, previous_key, run_id, f.kind, f.column, f.detail, f.previous, f.current) for f in findings],
        )


def latest_profile_scores(conn) -> list[tuple[str, str, float, int, int]]:
    """(source, partition_key, file quality score, columns, recommendations) of each file's latest profile."""
    return conn.execute(
        "SELECT p.source, p.partition_key, p.file_quality_score, count(*),"
        " (SELECT count(*) FROM quality.recommendations r WHERE r.run_id = p.run_id AND r.source = p.source"
        "  AND r.partition_key = p.partition_key)"
        " FROM quality.column_profiles p WHERE p.run_id = ("
        "  SELECT q.run_id FROM quality.column_profiles q WHERE q.source = p.source AND q.partition_key = p.partition_key"
        "  ORDER BY q.profiled_at DESC LIMIT 1)"
        " GROUP BY p.source, p.partition_key, p.file_quality_score, p.run_id ORDER BY p.source, p.partition_key"
    ).fetchall()


def flagged_pii(conn, sources: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """Per source, each column a profile of any of its files flagged as PII, with the kinds flagged."""
    rows = conn.execute(
        "SELECT source, column_name, array_agg(DISTINCT kind ORDER BY kind) FROM quality.column_profiles, unnest(pii) AS kind"
        " WHERE source = ANY(%s) GROUP BY source, column_name",
        (list(sources),),
    ).fetchall()
    found: dict[str, dict[str, list[str]]] = {}
    for source, column, kinds in rows:
        found.setdefault(source, {})[column] = list(kinds)
    return found
