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
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from harmonizer_pipeline.bookkeeping import merges
from harmonizer_pipeline.bookkeeping import rejected as rejected_rows
from harmonizer_pipeline.harmonize import candidates, store
from harmonizer_pipeline.harmonize import merge as merging
from harmonizer_pipeline.settings import parse_settings

KEYS = ["k1", "k2", "k3", "k4", "k5", "k6"]


def make_settings(survivorship: str = "latest_file", snapshot_b: bool = False, history: bool = False, match: bool = False, block_on: tuple[str, ...] = ("n",)):
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
                **({"match": {"columns": ["v"], "block_on": list(block_on), "threshold": 80}} if match else {}),
            }
        },
    }
    return parse_settings(json.dumps(config), base_dir=Path.cwd()), a, b, target


class Files:
    """Files landed, superseded, blocked and removed, as ingest and staged/<source> record them."""

    def __init__(self, conn, settings, target: str):
        self.conn, self.settings, self.target = conn, settings, target
        for source in settings.sources_of(target):
            store.ensure_staged_table(conn, source, settings.targets[target], "_partition")
        conn.commit()
        self.versions = 0

    def land(self, source: str, name: str, rows: list[tuple], blocked: bool = False) -> str:
        self.versions += 1
        partition, load_id = f"{name}@v{self.versions}", f"run-{uuid.uuid4().hex[:8]}"
        self.conn.execute(
            "INSERT INTO ops.file_registry (source, object_key, object_version, content_id, status, partition_key, rows) VALUES (%s, %s, %s, %s, %s, %s, %s)",
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
            rejected_rows.copy_rejected(self.conn, source, partition, load_id, rejected)
            counts = {"rows_in": len(rows), "rows_staged": len(rows), "rows_left_out": 0, "rejected_values": len(rejected)}
            merges.record_staged(self.conn, source, partition, self.target, load_id, load_id, counts)
        self.conn.commit()
        return partition

    def remove(self, source: str, partition: str) -> None:
        store.drop_staged(self.conn, source, partition)
        self.conn.commit()

    def merge(self, rebuild: bool = False) -> merging.MergeResult:
        result = merging.merge(self.conn, self.settings, self.target, f"run-{uuid.uuid4().hex[:8]}", rebuild=rebuild)
        target = self.settings.targets[self.target]
        if target.match and result.merge_id:
            candidates.refresh(self.conn, self.target, target, result.merge_id, rebuild or result.only_new_rows)  # as harmonized/<target> does
        self.conn.commit()
        # Sizes known to the planner, so later merges of few keys take the key-lookup path too.
        for table in (self.target, store.duplicate_rows_table(self.target), *([store.history_table(self.target)] if target.history else [])):
            self.conn.execute(f'ANALYZE harmonized."{table}"')
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
    for _group, (k, members) in enumerate(sorted(rows.groupby("k"), key=lambda item: item[0].encode()), start=1):
        ordered = sorted(members.to_dict("records"), key=preference)
        first = ordered[0]
        lineage = (first["_source"], first["_source_file"], first["_row_number"], first["_load_id"])
        survivors.append((k, _text(first["v"]), _int(first["n"]), *lineage, len(ordered) - 1))
        if len(ordered) > 1:
            duplicates += [
                (len({d[0] for d in duplicates}) + 1, k, _text(r["v"]), _int(r["n"]), r["_source"], r["_source_file"], r["_row_number"], i == 0)
                for i, r in enumerate(ordered)
            ]
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
                merged = files.merge()
                # The totals kept from merge to merge are the tables'.
                assert (merged.rows, merged.duplicate_keys, merged.merged_rows) == conn.execute(
                    f'SELECT (SELECT count(*) FROM harmonized."{target}"), count(*) FILTER (WHERE _position = 0), count(*) FILTER (WHERE _position > 0)'
                    f' FROM harmonized."{target}_duplicate_rows"'
                ).fetchone()
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


def test_history_keeps_a_version_per_change_and_closes_deleted_keys(database_url):
    settings, a, _, target = make_settings(history=True)
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        jan = files.land(a, "jan.csv", [("k1", "x", 1), ("k2", "y", 2)])
        files.merge()
        files.land(a, "feb.csv", [("k1", "z", 1)])  # a value of k1 changes
        files.merge()
        files.land(a, "mar.csv", [("k1", "z", 1)])  # the same values from a later file: no new version
        assert files.merge().history_versions == 0
        files.remove(a, jan)  # k2 only jan.csv held
        result = files.merge()
        history = conn.execute(
            f'SELECT k, v, is_current, valid_to IS NOT NULL, _source_file FROM harmonized."{target}_history" ORDER BY k, valid_from'
        ).fetchall()
    assert history == [
        ("k1", "x", False, True, "jan.csv"),
        ("k1", "z", True, False, "feb.csv"),
        ("k2", "y", False, True, "jan.csv"),
    ]
    assert (result.deleted, result.history_versions) == (1, 0)


def test_a_snapshot_file_replaces_the_sources_previous_file(database_url):
    settings, a, b, target = make_settings(snapshot_b=True)
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "a.csv", [("k1", "a", 1)])
        files.land(b, "day1.csv", [("k1", "b", 1), ("k2", "b", 2), ("k3", "b", 3)])
        files.merge()
        files.land(b, "day2.csv", [("k2", "b2", 2)])  # k1 and k3 are gone from b
        result = files.merge()
        rows = conn.execute(f'SELECT k, v, _source, _duplicates FROM harmonized."{target}" ORDER BY k').fetchall()
    # k1 keeps a's row, k3 leaves the target: no other source holds it.
    assert rows == [("k1", "a", a, 0), ("k2", "b2", b, 0)]
    assert (result.files_added, result.files_removed, result.inserted, result.updated, result.deleted) == (1, 1, 0, 2, 1)


def test_two_merges_of_one_target_never_interleave(database_url, tmp_path):
    """A second process's merge waits for the advisory lock the first holds, then sees its work."""
    settings, a, _, target = make_settings()
    config = tmp_path / "harmonizer.yaml"
    config.write_text(json.dumps(json.loads(settings.model_dump_json(by_alias=True, exclude={"base_dir"}, exclude_unset=True))))
    script = (
        "import sys, psycopg; from pathlib import Path; from harmonizer_pipeline.settings import parse_settings;"
        " from harmonizer_pipeline.harmonize.merge import merge;"
        f" s = parse_settings(Path({str(config)!r}).read_text(), base_dir=Path.cwd());"
        f" c = psycopg.connect({database_url!r}); r = merge(c, s, {target!r}, 'second'); c.commit();"
        " print(r.inserted, r.rows)"
    )
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [("k1", "x", 1)])
        first = merging.merge(conn, settings, target, "first")  # holds the lock until commit
        second = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with psycopg.connect(database_url) as probe:
                waiting = probe.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND pid <> pg_backend_pid()").fetchone()[0]
            if waiting:
                break
            time.sleep(0.1)
        assert waiting == 1 and second.poll() is None  # the second merge waits
        conn.commit()
    out, _ = second.communicate(timeout=60)
    assert (first.inserted, out.split()) == (1, ["0", "1"])  # it saw the first's merge: nothing left to do


def test_fuzzy_candidates_without_block_on_compare_the_whole_target_as_one_block(database_url, psql):
    settings, a, b, target = make_settings(match=True, block_on=())
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [("k1", "Jonas Becker", 1), ("k2", "Anna Meyer", 2)])
        files.merge()
        files.land(b, "feb.csv", [("k3", "Jonas Bäcker", 3)])
        files.merge()
    found = psql(f'SELECT left_k, right_k, left_text, right_text, block FROM harmonized."{target}_match_candidates" ORDER BY 1, 2')
    assert found == [("k1", "k3", "jonas becker", "jonas bäcker", "")]  # compared as normalized text


def test_a_merge_that_fails_leaves_every_table_as_it_was(database_url, psql):
    settings, a, _, target = make_settings(history=True, match=True)
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [("k1", "x", 1), ("k2", "xy", 1)])
        files.merge()
        before = {
            t: psql(f'SELECT * FROM harmonized."{t}" ORDER BY 1, 2')
            for t in (target, f"{target}_duplicate_rows", f"{target}_history", f"{target}_match_candidates")
        }
        books = psql("SELECT * FROM ops.merged_files WHERE target = %s", (target,)), psql("SELECT count(*) FROM ops.merges WHERE target = %s", (target,))
        # The last statement of the merge fails: a trigger refuses history rows.
        conn.execute(
            f"CREATE FUNCTION refuse_{target}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;"
            f' CREATE TRIGGER refuse BEFORE INSERT ON harmonized."{target}_history" FOR EACH ROW EXECUTE FUNCTION refuse_{target}()'
        )
        conn.commit()
        files.land(a, "feb.csv", [("k1", "changed", 1), ("k3", "new", 2)])
        with pytest.raises(psycopg.errors.RaiseException, match="refused"):
            files.merge()
        conn.rollback()
    assert {t: psql(f'SELECT * FROM harmonized."{t}" ORDER BY 1, 2') for t in before} == before
    assert (psql("SELECT * FROM ops.merged_files WHERE target = %s", (target,)), psql("SELECT count(*) FROM ops.merges WHERE target = %s", (target,))) == books


def _indexes(psql, target: str) -> list:
    return psql(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'harmonized' AND tablename = ANY(%s) ORDER BY 1, 2",
        ([target, f"{target}_duplicate_rows"],),
    ) + psql("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%s) ORDER BY 1", (f'harmonized."{target}"',))


def test_a_first_merge_builds_the_indexes_after_its_rows_and_a_failed_one_keeps_them(database_url, psql):
    settings, a, _, target = make_settings(history=True)
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        store.ensure_target_tables(conn, target, settings.targets[target])
        conn.commit()
        made = _indexes(psql, target)
        assert [row for row in made if len(row) == 2] == [(f"{target}_k_not_null", "NOT NULL k"), (f"{target}_pkey", "PRIMARY KEY (k)")]
        assert len(made) == 6  # and the key and lineage indexes of the target and of its duplicate rows
        conn.execute(
            f"CREATE FUNCTION refuse_{target}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$;"
            f' CREATE TRIGGER refuse BEFORE INSERT ON harmonized."{target}_history" FOR EACH ROW EXECUTE FUNCTION refuse_{target}()'
        )
        conn.commit()
        files.land(a, "jan.csv", [("k1", "x", 1), ("k2", "y", 2), ("k1", "z", 3)])
        with pytest.raises(psycopg.errors.RaiseException, match="refused"):
            files.merge()
        conn.rollback()
        assert _indexes(psql, target) == made
        conn.execute(f'DROP TRIGGER refuse ON harmonized."{target}_history"')
        conn.commit()
        result = files.merge()
    assert (result.inserted, result.rows, result.duplicate_keys, result.merged_rows) == (2, 2, 1, 1)
    assert _indexes(psql, target) == made
    assert psql(f'SELECT k, v, _duplicates FROM harmonized."{target}" ORDER BY k') == [("k1", "z", 1), ("k2", "y", 0)]
    assert psql(f'SELECT k, v, _kept FROM harmonized."{target}_duplicate_rows" ORDER BY _position') == [("k1", "z", True), ("k1", "x", False)]
    with pytest.raises(psycopg.errors.UniqueViolation):  # the primary key holds again
        psql(f"INSERT INTO harmonized.\"{target}\" (k) VALUES ('k1')")


def test_a_target_whose_columns_change_is_rebuilt_in_its_new_layout(database_url):
    settings, a, _, target = make_settings()
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [("k1", "x", 1), ("k2", "y", 2)])
        files.merge()
        config = json.loads(settings.model_dump_json(by_alias=True, exclude={"base_dir"}, exclude_unset=True))
        config["targets"][target]["columns"]["w"] = {"type": "date"}
        files.settings = parse_settings(json.dumps(config), base_dir=Path.cwd())
        result = files.merge()
        columns = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'harmonized' AND table_name = %s ORDER BY ordinal_position",
            (target,),
        ).fetchall()
        rows = conn.execute(f'SELECT k, v, w FROM harmonized."{target}" ORDER BY k').fetchall()
    assert [c for c, _ in columns][:4] == ["k", "v", "n", "w"] and dict(columns)["w"] == "date"
    # Every key came back from the staged rows; files staged before the change hold no w yet.
    assert (result.inserted, rows) == (2, [("k1", "x", None), ("k2", "y", None)])


def _scans_in_merge(conn, files, tables: list[str]) -> dict[str, tuple[int, int]]:
    """(sequential scans, index scans) of each table by the merge, from the backend's own statistics
    (which also hold its earlier transactions' that were not flushed yet: hence the difference)."""

    def scans() -> dict[str, tuple[int, int]]:
        rows = conn.execute(
            "SELECT relname, seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE schemaname = 'harmonized' AND relname = ANY(%s)", (tables,)
        ).fetchall()
        return {name: (seq, idx) for name, seq, idx in rows}

    before = scans()
    merging.merge(conn, files.settings, files.target, f"run-{uuid.uuid4().hex[:8]}")
    after = scans()
    conn.commit()
    return {t: (after[t][0] - before.get(t, (0, 0))[0], after[t][1] - before.get(t, (0, 0))[1]) for t in after}


def test_a_merge_of_few_keys_looks_them_up_and_reads_no_whole_table(database_url):
    settings, a, b, target = make_settings(history=True)
    tables = [target, store.duplicate_rows_table(target), store.history_table(target)]
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [(f"p{i:05d}", "x", i % 4) for i in range(3000)])
        files.land(b, "jan.csv", [(f"p{i:05d}", "y", 1) for i in range(0, 3000, 10)])  # 300 keys with two rows
        # The first merge meets empty tables: hashing the keys is the cheaper way.
        assert _scans_in_merge(conn, files, tables)[target][0] >= 1
        files.merge()  # the helper's ANALYZE: the planner knows the sizes
        files.land(a, "feb.csv", [("p00001", "changed", 1), ("p00010", "z", 1), ("p99999", "new", 2)])
        scans = _scans_in_merge(conn, files, tables)
        rows = conn.execute(
            f'SELECT k, v, _duplicates FROM harmonized."{target}" WHERE k IN (%s, %s, %s) ORDER BY k', ("p00001", "p00010", "p99999")
        ).fetchall()
        history = conn.execute(f'SELECT count(*), count(*) FILTER (WHERE is_current) FROM harmonized."{target}_history"').fetchone()
    # Three keys: each looked up in the target's, the duplicate rows' and the history's key index; no table read whole.
    assert {t: seq for t, (seq, _) in scans.items()} == dict.fromkeys(tables, 0)
    assert all(idx >= 1 for _, idx in scans.values())
    assert rows == [("p00001", "changed", 1), ("p00010", "z", 2), ("p99999", "new", 0)]
    assert history == (3003, 3001)


def test_an_exported_delta_is_dropped_and_the_last_one_truncated(database_url):
    settings, a, _, target = make_settings()
    changes = f'harmonized."{store.changes_table(target)}"'
    with psycopg.connect(database_url) as conn:
        files = Files(conn, settings, target)
        files.land(a, "jan.csv", [("k1", "x", 1), ("k2", "y", 2)])
        first = files.merge().merge_id
        files.land(a, "feb.csv", [("k3", "z", 3)])
        second = files.merge().merge_id
        filenode = conn.execute(f"SELECT pg_relation_filenode('{changes}')").fetchone()[0]
        # Another merge's delta waits for its export: only this one's rows go.
        store.drop_exported_changes(conn, target, first)
        conn.commit()
        assert conn.execute(f"SELECT _merge_id, k FROM {changes}").fetchall() == [(second, "k3")]
        assert conn.execute(f"SELECT pg_relation_filenode('{changes}')").fetchone()[0] == filenode
        # The last one: the table is truncated (a new file for its storage, no dead rows left behind).
        store.drop_exported_changes(conn, target, second)
        conn.commit()
        assert conn.execute(f"SELECT count(*) FROM {changes}").fetchone()[0] == 0
        assert conn.execute(f"SELECT pg_relation_filenode('{changes}')").fetchone()[0] != filenode
