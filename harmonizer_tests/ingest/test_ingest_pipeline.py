"""Landing folder → sensor → file registry → raw/<source> partitions, through Dagster's own APIs."""

import hashlib
import itertools
import json
import time
from pathlib import Path

import dagster as dg
import pytest
from psycopg import sql

from harmonizer_pipeline.bookkeeping import registry
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.ingest.landing import LocalLanding
from harmonizer_pipeline.resources import LandingResource, PostgresResource, build_resources
from harmonizer_pipeline.settings import parse_settings


def make_defs(landing: Path, source: str, **ingest) -> dg.Definitions:
    text = json.dumps(
        {
            "sources": {source: {"landing": {"local": {"path": str(landing), "glob": "*.csv"}}}},
            "ingest": ingest,
        }
    )
    return build_definitions(parse_settings(text, base_dir=landing), build_resources())


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    return evaluate_sensor(defs, defs.sensors[0], instance, cursor)


def load(defs: dg.Definitions, instance: dg.DagsterInstance, result: dg.SensorResult) -> list[dg.ExecuteInProcessResult]:
    return launch_requests(defs, defs.sensors[0], instance, result)


def raw_materializations(run: dg.ExecuteInProcessResult) -> list:
    """The run's materializations of raw/<source> (its job validates and profiles the file too)."""
    return [e for e in run.get_asset_materialization_events() if e.asset_key.path[0] == "raw"]


def registry_rows(source: str) -> dict[str, tuple]:
    with PostgresResource().connect() as conn:
        return {e.object_key: (e.status, e.rows, e.error) for e in registry.entries(conn, source)}


def test_first_tick_requests_each_new_file_once_and_records_duplicates(landing, source):
    (landing / "a.csv").write_text("id,name\n1,Ann\n2,Bob\n")
    (landing / "b.csv").write_text("id,name\n3,Cy\n")
    (landing / "copy_of_a.csv").write_text("id,name\n1,Ann\n2,Bob\n")
    (landing / "notes.txt").write_text("not a source file")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
    assert sorted(r.tags["harmonizer/file"] for r in result.run_requests) == ["a.csv", "b.csv"]
    assert len({r.run_key for r in result.run_requests}) == 2
    [adds] = result.dynamic_partitions_requests
    assert sorted(adds.partition_keys) == sorted(r.partition_key for r in result.run_requests)
    assert json.loads(result.cursor) == {"start_after": None}
    rows = registry_rows(source)
    assert rows["a.csv"][0] == "pending" and rows["b.csv"][0] == "pending"
    assert rows["copy_of_a.csv"] == ("duplicate", None, "same content as a.csv (pending)")
    assert "notes.txt" not in rows


def test_loaded_files_are_never_requested_again_even_without_a_cursor(landing, source, psql):
    (landing / "a.csv").write_text("id,code\n1,007\n2,\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        [run] = load(defs, instance, first)
        assert run.success
        assert tick(defs, instance, first.cursor).run_requests == []
        assert tick(defs, instance, None).run_requests == []  # cursor lost: the registry remembers
    assert registry_rows(source)["a.csv"][:2] == ("loaded", 2)
    stored = psql(sql.SQL("SELECT id, code, _row_number, _source_file FROM raw.{} ORDER BY _row_number").format(sql.Identifier(source)))
    assert stored == [("1", "007", 2, "a.csv"), ("2", "", 3, "a.csv")]


def test_a_pending_file_whose_run_never_started_is_requested_again_with_the_same_run_key(landing, source):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        again = tick(defs, instance, first.cursor)  # the first tick's run was lost
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]


def test_the_cursor_sweeps_in_slices_and_finds_files_that_landed_behind_it(landing, source):
    for name in ["a.csv", "c.csv", "e.csv"]:
        (landing / name).write_text(f"name\n{name}\n")
    defs = make_defs(landing, source, max_listed_per_tick=2)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        assert [r.tags["harmonizer/file"] for r in first.run_requests] == ["a.csv", "c.csv"]
        assert json.loads(first.cursor) == {"start_after": "c.csv"}
        load(defs, instance, first)
        (landing / "b.csv").write_text("name\nb, landed behind the sweep\n")
        second = tick(defs, instance, first.cursor)
        assert [r.tags["harmonizer/file"] for r in second.run_requests] == ["e.csv"]
        assert json.loads(second.cursor) == {"start_after": None}
        load(defs, instance, second)
        third = tick(defs, instance, second.cursor)
        assert [r.tags["harmonizer/file"] for r in third.run_requests] == ["b.csv"]


def test_a_bad_file_fails_alone_is_recorded_and_stays_in_the_landing_folder(landing, source, psql):
    (landing / "good.csv").write_text('id,amount\n1,"1.234,50"\n')
    (landing / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        runs = load(defs, instance, tick(defs, instance))
        by_file = {r.dagster_run.tags["harmonizer/file"]: r for r in runs}
        assert by_file["good.csv"].success
        assert not by_file["ragged.csv"].success
        [failure] = [e for e in by_file["ragged.csv"].all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert "ragged.csv: line 3 has 3 fields" in str(failure.step_failure_data.error)
    rows = registry_rows(source)
    assert rows["good.csv"][:2] == ("loaded", 1)
    assert rows["ragged.csv"][0] == "failed" and rows["ragged.csv"][2].startswith("ragged.csv: line 3 has 3 fields")
    assert (landing / "ragged.csv").exists()
    assert psql(sql.SQL("SELECT amount FROM raw.{}").format(sql.Identifier(source))) == [("1.234,50",)]


def test_a_clean_csv_is_parsed_by_postgresql_in_place_and_hashed_once(landing, source, psql, tmp_path, monkeypatch):
    monkeypatch.setenv("HARMONIZER_HOME", str(tmp_path / "home"))
    content = b'id,name\n1,"Smith, Ann"\n2,\n'
    (landing / "a.csv").write_bytes(content)
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        [run] = load(defs, instance, tick(defs, instance))
        [event] = raw_materializations(run)
    metadata = event.materialization.metadata
    assert metadata["loaded_by"].value == "PostgreSQL's CSV parser (one COPY stream)"
    assert metadata["sha256"].value == hashlib.sha256(content).hexdigest()
    assert not (tmp_path / "home" / "staging").exists()  # read where it landed, never copied
    with PostgresResource().connect() as conn:
        [entry] = registry.entries(conn, source)
    assert (entry.status, entry.rows, entry.sha256) == ("loaded", 2, hashlib.sha256(content).hexdigest())
    stored = psql(sql.SQL("SELECT id, name, _row_number FROM raw.{} ORDER BY 3").format(sql.Identifier(source)))
    assert stored == [("1", "Smith, Ann", 2), ("2", "", 3)]


def test_a_file_changing_while_hashed_is_skipped_until_its_next_version(landing, source, monkeypatch):
    path = landing / "growing.csv"
    path.write_text("id\n1\n")
    listed = LocalLanding.list_objects

    def list_then_append(zone, start_after=None):
        objects = list(listed(zone, start_after))
        with path.open("a") as file:  # the producer is still writing
            file.write("2\n")
        return iter(objects)

    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        monkeypatch.setattr(LocalLanding, "list_objects", list_then_append)
        assert tick(defs, instance).run_requests == []
        assert registry_rows(source) == {}
        monkeypatch.undo()
        [request] = tick(defs, instance).run_requests
    assert request.tags["harmonizer/file"] == "growing.csv"


def test_a_file_rewritten_while_it_loads_fails_and_commits_no_rows(landing, source, psql, monkeypatch):
    path = landing / "a.csv"
    path.write_text("id\n1\n")
    fetch = LocalLanding.fetch

    def fetch_then_rewrite(zone, obj, staging_dir):
        fetched = fetch(zone, obj, staging_dir)
        path.write_text("id\n1\n2\n")  # the producer rewrites it while the run reads it
        return fetched

    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        requests = tick(defs, instance)
        monkeypatch.setattr(LocalLanding, "fetch", fetch_then_rewrite)
        [run] = load(defs, instance, requests)
    assert not run.success
    status, rows, error = registry_rows(source)["a.csv"]
    assert (status, rows) == ("failed", None)
    assert error.startswith("'a.csv' in local folder") and "changed since it was listed" in error
    # The table's shape is committed before the rows; the rows roll back with the registry update.
    assert psql(sql.SQL("SELECT count(*) FROM raw.{}").format(sql.Identifier(source))) == [(0,)]


def test_a_replaced_file_is_loaded_again_as_a_new_partition(landing, source, psql):
    path = landing / "daily.csv"
    path.write_text("n\n1\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        load(defs, instance, tick(defs, instance))
        time.sleep(0.01)
        path.write_text("n\n1\n2\n")
        [run] = load(defs, instance, tick(defs, instance))
        assert run.success
    stored = psql(sql.SQL("SELECT _partition, count(*) FROM raw.{} GROUP BY 1 ORDER BY 2").format(sql.Identifier(source)))
    assert [count for _, count in stored] == [1, 2]


@pytest.mark.slow
def test_a_tick_over_ten_thousand_files_is_bounded(landing, source):
    for i in range(10_000):
        (landing / f"f{i:05d}.csv").write_text(f"n\n{i}\n")
    defs = make_defs(landing, source, max_new_files_per_tick=500)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        result = tick(defs, instance)
        seconds = time.perf_counter() - started
    assert len(result.run_requests) == 500
    assert json.loads(result.cursor) == {"start_after": None}
    assert seconds < 30, f"tick took {seconds:.1f} s"


class SimulatedB2Landing(LandingResource):
    """The real LandingResource and B2Landing, with b2sdk's RawSimulator in place of B2's HTTP API."""

    def b2_api(self):
        from harmonizer_pipeline.ingest.b2 import b2_api

        return b2_api(self.b2_application_key_id, self.b2_application_key, raw_api_class=lambda _http: SIMULATOR[0])


SIMULATOR: list = []


def simulated_b2() -> tuple[dict, object]:
    """Resources whose landing zone is B2 through b2sdk's RawSimulator, and its bucket `landing`."""
    from b2sdk.v2 import RawSimulator

    SIMULATOR[:] = [RawSimulator()]
    key_id, key = SIMULATOR[0].create_account()
    resources = {**build_resources(), "landing": SimulatedB2Landing(b2_application_key_id=key_id, b2_application_key=key)}
    return resources, resources["landing"].b2_api().create_bucket("landing", "allPrivate")


def b2_settings(source: str, tmp_path: Path, **ingest):
    landing = {"b2": {"bucket": "landing", "prefix": "incoming", "glob": "**/*.csv"}}
    return parse_settings(json.dumps({"sources": {source: {"landing": landing}}, "ingest": ingest}), base_dir=tmp_path)


def test_files_landing_in_b2_are_loaded_once_each(source, tmp_path, psql):
    resources, bucket = simulated_b2()
    bucket.upload_bytes(b"id;city\n1;K\xc3\xb6ln\n", "incoming/a.csv")
    bucket.upload_bytes(b"id;city\n2;Berlin\n3;Hamburg\n", "incoming/sub dir/ü; b.csv")  # odd characters stage safely
    bucket.upload_bytes(b"id;city\n1;K\xc3\xb6ln\n", "incoming/copy.csv")
    bucket.upload_bytes(b"id;city\n9;Elsewhere\n", "other/x.csv")
    defs = build_definitions(b2_settings(source, tmp_path), resources)
    with dg.instance_for_test() as instance:
        runs = load(defs, instance, tick(defs, instance))
        assert [r.success for r in runs] == [True, True]
        assert tick(defs, instance).run_requests == []
    assert registry_rows(source) == {
        "incoming/sub dir/ü; b.csv": ("loaded", 2, None),
        "incoming/a.csv": ("loaded", 1, None),
        "incoming/copy.csv": ("duplicate", None, "same content as incoming/a.csv (pending)"),
    }
    assert psql(sql.SQL("SELECT id, city FROM raw.{} ORDER BY id").format(sql.Identifier(source))) == [
        ("1", "Köln"),
        ("2", "Berlin"),
        ("3", "Hamburg"),
    ]


def test_a_b2_object_without_sha1_is_a_duplicate_once_its_sha256_is_known(source, tmp_path, psql, monkeypatch):
    monkeypatch.setenv("HARMONIZER_HOME", str(tmp_path / "home"))
    from b2sdk.v2 import UploadSourceBytes

    resources, bucket = simulated_b2()
    content = b"id,city\n" + b"".join(b"%d,Town %d\n" % (n, n) for n in range(40))
    bucket.upload_bytes(content, "incoming/a.csv")
    # A large file assembled from parts: B2 lists no SHA-1 for it, so the sensor knows only its version.
    bucket.concatenate([UploadSourceBytes(content[:300]), UploadSourceBytes(content[300:])], "incoming/b_parts.csv")
    defs = build_definitions(b2_settings(source, tmp_path), resources)
    with dg.instance_for_test() as instance:
        requests = tick(defs, instance)
        assert len(requests.run_requests) == 2
        runs = load(defs, instance, requests)
        assert [r.success for r in runs] == [True, True]
        assert [len(raw_materializations(r)) for r in runs] == [1, 0]
        assert runs[1].get_asset_materialization_events() == []  # nothing downstream of the duplicate ran either
    rows = registry_rows(source)
    assert rows == {
        "incoming/a.csv": ("loaded", 40, None),
        "incoming/b_parts.csv": ("duplicate", None, "same content as incoming/a.csv (loaded)"),
    }
    assert psql(sql.SQL("SELECT count(*) FROM raw.{}").format(sql.Identifier(source))) == [(40,)]
    assert list((tmp_path / "home").glob("**/*.csv")) == []


@pytest.mark.slow
def test_a_tick_over_ten_thousand_b2_objects_is_bounded(source, tmp_path):
    resources, bucket = simulated_b2()
    # The simulator numbers at most 4999 uploads per bucket; widen its counters for 10 000.
    simulated = SIMULATOR[0].bucket_name_to_bucket["landing"]
    simulated.upload_timestamp_counter = itertools.count(5000)
    simulated.file_id_counter = itertools.count(10**6, -1)
    for i in range(10_000):
        bucket.upload_bytes(f"n\n{i}\n".encode(), f"incoming/{i:05d}.csv")
    defs = build_definitions(b2_settings(source, tmp_path, max_new_files_per_tick=300), resources)
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        first = tick(defs, instance)
        seconds = time.perf_counter() - started
        second = tick(defs, instance, first.cursor)
    assert len(first.run_requests) == 300 and seconds < 30, f"tick took {seconds:.1f} s"
    # The next tick re-requests the 300 pending files (same run keys) and takes 300 more.
    assert len(second.run_requests) == 600
    assert len({r.run_key for r in first.run_requests + second.run_requests}) == 600
