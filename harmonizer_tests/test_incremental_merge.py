"""The merge of harmonized/<target> against its oracles, on a real PostgreSQL: the incremental
merge after random sequences of files equals a full rebuild row for row (target, duplicates,
rejections), and both equal a plain pandas reading of the survivorship rules. Files are written
straight into the registry and staged.<source> (what ingest and staged/<source> leave there), so
hypothesis can try hundreds of sequences; the Dagster wiring is tested in test_harmonize_pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from harmonizer_pipeline.harmonize import candidates, merge as merging, store
from harmonizer_pipeline.ingest import registry
from harmonizer_pipeline.quality import store as quality_store
from harmonizer_pipeline.settings import parse_settings

KEYS = ["k1", "k2", "k3", "k4", "k5", "k6"]


def make_settings(survivorship: str = "latest_file", snapshot_b: bool = False, history: bool = False, match: bool = False):
    suffix = uuid.uuid4().hex[:10]
    a, b, target = f"ma_{suffix}", f"mb_{suffix}", f"mt_{suffix}"
    config = {
        "sources": {
            a: {"landing": {"local": {"path": "a", "glob": "*.csv"}}, "target": target},
            b: {"landing": {"local": {"path": "b", "glob": "*.csv"}}, "target": target, "mode": "snapshot" if snapshot_b else "append"},
        },
        "targets": {
            target: {
                "columns": {"k": {"type": "text"}, "v": {"type": "text"}, "n": {"type": "integer"}},
                "key": ["k"],
                "survivorship": survivorship,
                **({"source_priority": [b, a]} if survivorship == "source_priority" else {}),
                "history": history,
                **({"match": {"columns": ["v"], "block_on": ["n"], "threshold": 80}} if match else {}),
            }
        },
    }
    return parse_settings(json.dumps(config), base_dir=Path.cwd()), a, b, target


class Files:
    """Files landed, superseded, blocked and removed, as ingest and staged/<source> record them."""

    def __init__(self, conn, settings, target: str):
        self.conn, self.settings, self.target = conn, settings, target
        registry.ensure_registry(conn)
        quality_store.ensure_quality_tables(conn)
        store.ensure_bookkeeping(conn)
        for source in settings.sources_of(target):
            store.ensure_staged_table(conn, source, settings.targets[target], "_partition")
        conn.commit()
        self.versions = 0

    def land(self, source: str, name: str, rows: list[tuple], blocked: bool = False) -> str:
        self.versions += 1
        partition, load_id = f"{name}@v{self.versions}", f"run-{uuid.uuid4().hex[:8]}"
        self.conn.execute(
            "INSERT INTO ops.file_registry (source, object_key, object_version, content_id, status, partition_key, rows)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (source, name, str(self.versions), f"c{self.versions}", "blocked" if blocked else "loaded", partition, len(rows)),
        )
        if not blocked:
            with self.conn.cursor().copy(f'COPY staged."{source}" (k, v, n, _source, _source_file, _row_number, _load_id, _partition) FROM STDIN') as copy:
                for number, (k, v, n) in enumerate(rows, start=2):
                    copy.write_row((k, v, n, source, name, number, load_id, partition))
            # A value the mapping could not read is kept as a rejection of the file.
            rejected = pd.DataFrame(
                [(number, "v", "harmonize:email", f"bad {k}", "v: email could not standardize") for number, (k, v, _) in enumerate(rows, start=2) if v is None],
                columns=["_row_number", "column", "check", "failure_case", "message"],
            )
            quality_store.copy_rejected(self.conn, source, partition, load_id, rejected)
            counts = {"rows_in": len(rows), "rows_staged": len(rows), "rows_left_out": 0, "rejected_values": len(rejected)}
            store.record_staged(self.conn, source, partition, self.target, load_id, load_id, counts)
        self.conn.commit()
        return partition

    def remove(self, source: str, partition: str) -> None:
        store.drop_staged(self.conn, source, partition)
        self.conn.commit()

    def merge(self, rebuild: bool = False) -> merging.MergeResult:
        result = merging.merge(self.conn, self.settings, self.target, f"run-{uuid.uuid4().hex[:8]}", rebuild=rebuild)
        target = self.settings.targets[self.target]
        if target.match and result.merge_id:
            candidates.refresh(self.conn, self.target, target, result.merge_id, rebuild)
        self.conn.commit()
        return result


def state(psql_conn, target: str, sources: list[str]) -> dict[str, list]:
    def rows(query, params=()):
        return psql_conn.execute(query, params).fetchall()

    return {
        "target": rows(f'SELECT k, v, n, _source, _source_file, _row_number, _load_id, _duplicates FROM harmonized."{target}" ORDER BY k'),
        "duplicates": rows(f'SELECT _group, k, v, n, _source, _source_file, _row_number, _kept FROM harmonized."{target}_duplicates"'),
        "rejections": rows(
            "SELECT source, partition_key, _row_number, check_name, failure_case FROM quality.rejected_rows"
            " WHERE source = ANY(%s) AND check_name LIKE 'harmonize:%%' ORDER BY 1, 2, 3",
            (sources,),
        ),
    }


def reference(conn, settings, target_name: str) -> tuple[list, list]:
    """Survivors and duplicate groups by a plain reading of the rules over every current file's rows."""
    target = settings.targets[target_name]
    files = merging.current_files(conn, settings, target_name)
    frames = []
    for f in files:
        cur = conn.execute(f'SELECT k, v, n, _source, _source_file, _row_number, _load_id FROM staged."{f.source}" WHERE _partition = %s', (f.partition_key,))
        frames.append(pd.DataFrame(cur.fetchall(), columns=["k", "v", "n", "_source", "_source_file", "_row_number", "_load_id"]).assign(rank=f.file_id))
    if not frames:
        return [], []
    rows = pd.concat(frames, ignore_index=True)
    priority = {s: i for i, s in enumerate(target.source_priority)}

    def preference(row) -> tuple:
        later = (-row["rank"], -row["_row_number"])
        if target.survivorship == "most_complete":
            return (-sum(row[c] is not None and not pd.isna(row[c]) for c in ("k", "v", "n")), *later)
        if target.survivorship == "source_priority":
            return (priority.get(row["_source"], len(priority)), *later)
        return later

    survivors, duplicates = [], []
    for group, (k, members) in enumerate(sorted(rows.groupby("k"), key=lambda item: item[0].encode()), start=1):
        ordered = sorted(members.to_dict("records"), key=preference)
        first = ordered[0]
        lineage = (first["_source"], first["_source_file"], first["_row_number"], first["_load_id"])
        survivors.append((k, _text(first["v"]), _int(first["n"]), *lineage, len(ordered) - 1))
        if len(ordered) > 1:
            duplicates += [(len({d[0] for d in duplicates}) + 1, k, _text(r["v"]), _int(r["n"]), r["_source"], r["_source_file"], r["_row_number"], i == 0) for i, r in enumerate(ordered)]
    return survivors, duplicates


def _text(value):
    return None if value is None or pd.isna(value) else value


def _int(value):
    return None if value is None or pd.isna(value) else int(value)


values = st.one_of(st.none(), st.sampled_from(["x", "y", "z"]))
numbers = st.one_of(st.none(), st.integers(0, 3))
file_rows = st.lists(st.tuples(st.sampled_from(KEYS), values, numbers), max_size=6)
events = st.lists(
    st.tuples(
        st.sampled_from(["land", "land", "land", "block", "remove", "merge"]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["jan.csv", "feb.csv", "mar.csv"]),
        file_rows,
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.parametrize(("survivorship", "snapshot_b"), [("latest_file", False), ("most_complete", True), ("source_priority", False), ("latest_file", True)])
@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=events)
def test_incremental_merge_equals_a_full_rebuild_and_the_plain_rules(database_url, survivorship, snapshot_b, sequence):
    settings, a, b, target = make_settings(survivorship, snapshot_b, history=True, match=True)
    sources = {"a": a, "b": b}
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        landed: dict[tuple[str, str], list[str]] = {}
        for action, which, name, rows in sequence:
            source = sources[which]
            if action == "merge":
                files.merge()
            elif action == "remove":
                for partition in landed.pop((source, name), []):
                    files.remove(source, partition)
            else:
                landed.setdefault((source, name), []).append(files.land(source, name, rows, blocked=action == "block"))
        files.merge()
        incremental = state(conn, target, [a, b])
        incremental_candidates = conn.execute(f'SELECT * FROM harmonized."{target}_match_candidates" ORDER BY 1, 2, 5').fetchall()
        survivors, duplicates = reference(conn, settings, target)
        assert incremental["target"] == survivors
        assert incremental["duplicates"] == duplicates
        files.merge(rebuild=True)
        assert state(conn, target, [a, b]) == incremental
        assert conn.execute(f'SELECT * FROM harmonized."{target}_match_candidates" ORDER BY 1, 2, 5').fetchall() == incremental_candidates
        # The history's current versions are the target's values.
        current = conn.execute(f'SELECT k, v, n FROM harmonized."{target}_history" WHERE is_current ORDER BY k').fetchall()
        assert current == [row[:3] for row in incremental["target"]]
