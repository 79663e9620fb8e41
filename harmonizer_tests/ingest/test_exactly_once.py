"""Exactly-once loading when runs die: the landing sensor records a dead load `failed` with its
reason and requests it again under a fresh run key until it loads or its attempts are spent;
a file that cannot be read is not retried; a transient database failure of the load itself is.
Runs here are real Dagster runs on a test instance; the dead ones are failed, canceled or left
STARTED the way a killed worker leaves them (the real kills are in test_crash_recovery)."""

import threading
import time

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from harmonizer_pipeline.bookkeeping import audit, registry, schema
from harmonizer_pipeline.ingest.discovery import ATTEMPT_TAG, FILE_ID_TAG
from harmonizer_pipeline.ingest.heartbeat import Heartbeat
from harmonizer_pipeline.ingest.retries import RetryPolicy, is_transient
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.storage.writes import _staging_prefix
from harmonizer_tests.ingest.test_ingest_pipeline import load, make_defs, tick

pytestmark = pytest.mark.usefixtures("database_url")


def entries(source: str) -> list[registry.RegistryEntry]:
    with PostgresResource().connect() as conn:
        return registry.entries(conn, source)


def load_audit(source: str) -> list[tuple]:
    with PostgresResource().connect() as conn:
        log = audit.read(conn)
    log = log[log["asset"] == f"raw/{source}"]
    return list(zip(log["status"], log["detail"], strict=True))


def run_of(defs, instance, request: dg.RunRequest, status: dg.DagsterRunStatus | None = None) -> dg.DagsterRun:
    """A run of the request as the daemon would create it (its tags, its partition), never executed."""
    job = defs.resolve_job_def(f"load_{request.tags['harmonizer/source']}")
    return instance.create_run_for_job(
        job_def=job, status=status, tags={**request.tags, "dagster/partition": request.partition_key, "dagster/run_key": request.run_key}
    )


def test_a_run_that_died_is_recorded_failed_and_its_file_loaded_once_by_a_fresh_attempt(landing, source, psql):
    (landing / "a.csv").write_text("id\n1\n2\n3\n")
    defs = make_defs(landing, source, retry_backoff_seconds=0)
    with dg.instance_for_test() as instance:
        first = tick(defs, instance)
        [request] = first.run_requests
        assert request.tags[ATTEMPT_TAG] == "1"
        run = run_of(defs, instance, request)
        # The worker was killed before it wrote a row: the code server reports the run failed.
        instance.report_run_failed(run, "Run execution process for the run unexpectedly exited with exit code -9.")
        second = tick(defs, instance, first.cursor)
        [retry] = second.run_requests
        assert retry.run_key == f"{request.run_key}:attempt-2"
        assert (retry.partition_key, retry.tags[ATTEMPT_TAG], retry.tags[FILE_ID_TAG]) == (request.partition_key, "2", request.tags[FILE_ID_TAG])
        [entry] = entries(source)
        # Pending again, the row still says why the first attempt failed.
        assert (entry.status, entry.attempts) == ("pending", 2)
        assert (
            entry.error
            == f"run {run.run_id} failed: Run execution process for the run unexpectedly exited with exit code -9. (attempt 1 of 3; tried again in 0 s)"
        )
        [loaded] = load(defs, instance, second)
        assert loaded.success
        assert tick(defs, instance, second.cursor).run_requests == []
    [entry] = entries(source)
    assert (entry.status, entry.rows, entry.attempts, entry.retry_at) == ("loaded", 3, 2, None)
    assert psql(sql.SQL("SELECT count(*), count(DISTINCT _row_number) FROM raw.{}").format(sql.Identifier(source))) == [(3, 3)]
    assert load_audit(source) == [
        ("failed", f"run {run.run_id} failed: Run execution process for the run unexpectedly exited with exit code -9. (attempt 1 of 3; tried again in 0 s)"),
        ("loaded", "attempt 2"),
    ]


def test_attempts_are_bounded_and_spaced_by_the_backoff(landing, source):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source, max_load_attempts=2, retry_backoff_seconds=1)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        instance.report_run_canceled(run_of(defs, instance, result.run_requests[0]))
        assert tick(defs, instance, result.cursor).run_requests == []  # the backoff has not passed
        [entry] = entries(source)
        assert (entry.status, entry.retry_due) == ("failed", False)
        assert entry.error.endswith("was canceled (attempt 1 of 2; tried again in 1 s)")
        time.sleep(1.1)
        again = tick(defs, instance, result.cursor)
        [request] = again.run_requests
        assert request.tags[ATTEMPT_TAG] == "2"
        instance.report_run_failed(run_of(defs, instance, request))
        assert tick(defs, instance, again.cursor).run_requests == []
        time.sleep(1.1)
        assert tick(defs, instance, again.cursor).run_requests == []  # no attempt left
    [entry] = entries(source)
    assert (entry.status, entry.attempts, entry.retry_at) == ("failed", 2, None)
    assert entry.error.endswith("failed: This run has been marked as failed from outside the execution context. (attempt 2 of 2; no attempt left)")
    assert [status for status, _ in load_audit(source)] == ["failed", "failed"]


def test_a_started_run_without_a_sign_of_life_is_taken_for_lost_and_marked_failed(landing, source):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source, load_heartbeat_timeout_seconds=1, retry_backoff_seconds=0)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        run = run_of(defs, instance, result.run_requests[0], status=dg.DagsterRunStatus.STARTED)
        assert tick(defs, instance, result.cursor).run_requests == []  # alive: started a moment ago
        time.sleep(1.5)
        [retry] = tick(defs, instance, result.cursor).run_requests
        assert retry.tags[ATTEMPT_TAG] == "2"
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    [(status, detail)] = load_audit(source)
    assert status == "failed"
    assert detail.startswith(f"run {run.run_id} lost: no sign of life for ")
    assert detail.endswith(" s (its run worker or the database died) (attempt 1 of 3; tried again in 0 s)")


def test_a_heartbeat_keeps_a_slow_load_alive(landing, source):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source, load_heartbeat_timeout_seconds=1)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        run_of(defs, instance, result.run_requests[0], status=dg.DagsterRunStatus.STARTED)
        [entry] = entries(source)
        heartbeat = Heartbeat(PostgresResource().connect, entry.id, 0.2).start()
        try:
            time.sleep(1.5)
            assert tick(defs, instance, result.cursor).run_requests == []
        finally:
            heartbeat.stop()
    [entry] = entries(source)
    assert (entry.status, entry.attempts) == ("pending", 1)
    assert entry.heartbeat_at is not None


def test_a_file_that_cannot_be_read_is_not_retried(landing, source):
    (landing / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    defs = make_defs(landing, source, retry_backoff_seconds=0)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        [run] = load(defs, instance, result)
        assert not run.success
        assert tick(defs, instance, result.cursor).run_requests == []
    [entry] = entries(source)
    assert (entry.status, entry.attempts, entry.retry_at) == ("failed", 1, None)
    assert entry.error == "ragged.csv: line 3 has 3 fields, the header has 2"


def test_a_load_whose_database_session_is_killed_is_retried(landing, source, psql, database_url):
    (landing / "a.csv").write_text("id\n1\n2\n")
    defs = make_defs(landing, source, retry_backoff_seconds=0)
    killed = []

    def kill_the_waiting_load() -> None:
        # The load waits for the table's lock, held below; its session is then terminated as a
        # server shutdown or an administrator would (SQLSTATE 57P01).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            rows = psql("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", ("%pg_advisory_xact_lock%",))
            for (pid,) in rows:
                killed.append(psql("SELECT pg_terminate_backend(%s)", (pid,)))
            time.sleep(0.05)

    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        with psycopg.connect(database_url) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"table:raw.{source}",))
            killer = threading.Thread(target=kill_the_waiting_load)
            killer.start()
            [run] = load(defs, instance, result)
            killer.join()
        assert killed and not run.success
        [entry] = entries(source)
        assert entry.status == "failed" and entry.error.endswith("(attempt 1 of 3; tried again in 0 s)")
        [retry] = tick(defs, instance, result.cursor).run_requests
        [second] = load(defs, instance, dg.SensorResult(run_requests=[retry]))
        assert second.success
    [entry] = entries(source)
    assert (entry.status, entry.rows, entry.attempts) == ("loaded", 2, 2)
    assert psql(sql.SQL("SELECT count(*) FROM raw.{}").format(sql.Identifier(source))) == [(2,)]
    assert [status for status, _ in load_audit(source)] == ["failed", "loaded"]


def test_a_dead_load_leaves_no_staging_table_behind(landing, source, psql, database_url):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        load(defs, instance, tick(defs, instance))  # raw.<source> exists
        (landing / "b.csv").write_text("id\n2\n")
        result = tick(defs, instance)
        # What a parallel COPY killed mid-write leaves: a committed staging table of the table.
        leftover = _staging_prefix(source) + "dead0001"
        psql(sql.SQL("CREATE TABLE raw.{} (id text)").format(sql.Identifier(leftover)))
        instance.report_run_failed(run_of(defs, instance, result.run_requests[0]))
        tick(defs, instance, result.cursor)
    assert psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename = %s", (leftover,)) == [(0,)]


def test_the_backoff_doubles_up_to_an_hour_and_stops_at_the_last_attempt():
    policy = RetryPolicy(max_attempts=14, backoff_seconds=1)
    assert [policy.delay(n) for n in (1, 2, 3, 12, 13, 14)] == [1, 2, 4, 2048, 3600, None]
    assert RetryPolicy(1, 60).describe(1) == "attempt 1 of 1; no attempt left"


def test_infrastructure_failures_are_transient_and_the_file_s_are_not():
    def raised_from(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise RuntimeError("while writing raw.x") from inner
        except RuntimeError as outer:
            return outer

    for sqlstate in ("57P01", "08006", "53100", "40P01", "55P03"):
        assert is_transient(raised_from(psycopg.errors.lookup(sqlstate)())), sqlstate
    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_transient(ConnectionResetError())
    for error in (ValueError("line 3 has 3 fields"), psycopg.errors.lookup("22P02")(), psycopg.errors.lookup("42P01")()):
        assert not is_transient(raised_from(error))


def test_the_landing_sensor_ticks_as_often_as_the_settings_say(landing, source):
    assert make_defs(landing, source).sensors[0].minimum_interval_seconds == 30
    assert make_defs(landing, source, sensor_interval_seconds=5).sensors[0].minimum_interval_seconds == 5


def test_a_registry_of_an_earlier_release_is_brought_up_to_date(server_url):
    from harmonizer_pipeline.storage import postgres

    name = f"harmonizer_upgrade_{int(time.time() * 1000) % 10**9}"
    postgres.ensure_database(server_url, name)
    try:
        url = postgres.with_database(server_url, name)
        with psycopg.connect(url) as conn:
            # The table as the previous release made it, with a loaded file and a duplicate of it.
            conn.execute("CREATE SCHEMA ops")
            conn.execute(
                """CREATE TABLE ops.file_registry (
                    source text NOT NULL, object_key text NOT NULL, object_version text NOT NULL, size bigint,
                    content_id text NOT NULL, sha256 text,
                    status text NOT NULL CHECK (status IN ('pending', 'loaded', 'failed', 'duplicate')),
                    error text, rows bigint, partition_key text NOT NULL, run_id text,
                    first_seen timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (source, object_key, object_version))"""
            )
            conn.execute(
                "INSERT INTO ops.file_registry (source, object_key, object_version, content_id, status, error, partition_key) VALUES "
                "('s', 'a.csv', 'v1', 'sha256:aa', 'loaded', NULL, 'a.csv@aa'), ('s', 'b.csv', 'v1', 'sha256:aa', 'duplicate', 'same content as a.csv (loaded)', 'b.csv@aa')"
            )
            conn.commit()
            schema.upgrade(url)
            schema.upgrade(url)  # once is enough: the second finds it current
            loaded, duplicate = registry.entries(conn, "s")
            assert [(e.id, e.object_key, e.status, e.attempts) for e in (loaded, duplicate)] == [(1, "a.csv", "loaded", 1), (2, "b.csv", "duplicate", 0)]
            registry.record_gate(conn, loaded.id, False, "blocked by its schema gate: 1 of 1 rows rejected")
            assert registry.entry(conn, loaded.id).status == "blocked"
    finally:
        postgres.drop_database(server_url, name)


def test_a_run_dagster_retries_is_left_to_its_retry_and_a_superseded_attempt_loads_nothing(landing, source, psql):
    (landing / "a.csv").write_text("id\n1\n2\n")
    defs = make_defs(landing, source, retry_backoff_seconds=0)
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 1}}) as instance:
        first = tick(defs, instance)
        [request] = first.run_requests
        dead = run_of(defs, instance, request)
        instance.report_run_failed(dead)  # a worker's death: Dagster's run retries take it on
        assert instance.get_run_by_id(dead.run_id).tags["dagster/will_retry"] == "true"
        assert tick(defs, instance, first.cursor).run_requests == []
        [entry] = entries(source)
        assert (entry.status, entry.attempts) == ("pending", 1)
    # Without run retries the sensor takes over; a late run of the first attempt then writes nothing.
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(f"{source}_files", [request.partition_key])
        instance.report_run_failed(run_of(defs, instance, request))
        second = tick(defs, instance, first.cursor)
        [retry] = second.run_requests
        [late] = load(defs, instance, dg.SensorResult(run_requests=[request]))
        assert late.success and late.get_asset_materialization_events() == []
        assert [e.status for e in entries(source)] == ["pending"]
        [loaded] = load(defs, instance, second)
        assert loaded.success
    [entry] = entries(source)
    assert (entry.status, entry.rows, entry.attempts) == ("loaded", 2, 2)
    assert [status for status, _ in load_audit(source)] == ["failed", "loaded"]


def test_a_second_run_of_a_loaded_file_from_the_sensor_loads_nothing(landing, source):
    (landing / "a.csv").write_text("id\n1\n")
    defs = make_defs(landing, source)
    with dg.instance_for_test() as instance:
        result = tick(defs, instance)
        [first] = load(defs, instance, result)
        [again] = load(defs, instance, result)  # the same request run twice (two retries racing)
        assert first.success and again.success
        assert [e.asset_key.path[0] for e in again.get_asset_materialization_events()] == []
    [entry] = entries(source)
    assert (entry.status, entry.run_id) == ("loaded", first.run_id)
    assert [status for status, _ in load_audit(source)] == ["loaded"]
