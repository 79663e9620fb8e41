"""The storage package (writes, partitions, reads) against a real PostgreSQL: exact round trips, identifiers, schema changes, streaming."""

from __future__ import annotations

import datetime as dt
import string

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from psycopg import sql

from harmonizer_pipeline.storage import reads, writes
from harmonizer_pipeline.storage.catalog import drop_table, ensure_schema, lock_table
from harmonizer_pipeline.storage.frame_codec import TableStoreError, storage_name, storage_names
from harmonizer_pipeline.storage.partitions import replace_partition
from harmonizer_pipeline.storage.reads import partition_filter, read_chunks, read_frame
from harmonizer_pipeline.storage.streams import read_ahead
from harmonizer_pipeline.storage.writes import WriteResult, write_frames


def replace_table(conn, schema: str, table: str, frames) -> WriteResult:
    """What the IO manager does for an unpartitioned asset, committed."""
    lock_table(conn, schema, table)
    ensure_schema(conn, schema)
    drop_table(conn, schema, table)
    result = write_frames(conn, schema, table, frames)
    conn.commit()
    return result


def round_trip(conn, schema: str, frame: pd.DataFrame, table: str = "t") -> pd.DataFrame:
    replace_table(conn, schema, table, [frame])
    return read_frame(conn, schema, table)


# --- exact round trips ----------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
) | st.sampled_from(["", " ", '"', "'", ",", "\n", "a,b", 'say "hi"\r\n', "NULL", "\\N", "N/A", "0042", "ü€😀"])
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
INSTANTS = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))


@st.composite
def mixed_frames(draw) -> pd.DataFrame:
    n = draw(st.integers(0, 12))

    def column(values_strategy, nullable=True):
        item = st.none() | values_strategy if nullable else values_strategy
        return draw(st.lists(item, min_size=n, max_size=n))

    zone = draw(st.sampled_from(ZONES))
    frame = pd.DataFrame(
        {
            "int64": pd.array(column(st.integers(-(2**63), 2**63 - 1), nullable=False), dtype="int64"),
            "Int64": pd.array(column(st.integers(-(2**63), 2**63 - 1)), dtype="Int64"),
            "Int32": pd.array(column(st.integers(-(2**31), 2**31 - 1)), dtype="Int32"),
            "float64": pd.array(column(st.floats(allow_nan=False, width=64)), dtype="float64"),
            "Float64": pd.array(column(st.floats(allow_nan=False, allow_infinity=False)), dtype="Float64"),
            "boolean": pd.array(column(st.booleans()), dtype="boolean"),
            "bool": pd.array(column(st.booleans(), nullable=False), dtype="bool"),
            "str": pd.array(column(TEXT), dtype="str"),
            "string": pd.array(column(TEXT), dtype="string"),
            "object_text": pd.Series(column(TEXT), dtype=object),
            "when": pd.Series(
                pd.to_datetime([None if v is None else v.replace(tzinfo=dt.UTC) for v in column(INSTANTS)], utc=True).tz_convert(zone),
                dtype=f"datetime64[us, {zone}]",
            ),
            "naive": pd.Series(pd.to_datetime(column(INSTANTS)), dtype="datetime64[us]"),
            "day": pd.Series(column(st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31))), dtype=object),
            "category": pd.Categorical(column(st.sampled_from(["a", "b", "c"])), categories=["c", "a", "b"]),
        }
    )
    keep = draw(st.lists(st.sampled_from(list(frame.columns)), min_size=1, unique=True))
    return frame[keep]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=mixed_frames())
def test_mixed_frames_round_trip_exactly(conn, schema, frame):
    assert_frame_equal(round_trip(conn, schema, frame), frame, check_exact=True)


def test_null_and_empty_string_stay_distinct(conn, schema, psql):
    frame = pd.DataFrame({"s": ["", None, "x", "NULL", "\\N"]})
    assert_frame_equal(round_trip(conn, schema, frame), frame)
    counts = psql(sql.SQL("SELECT count(*) FILTER (WHERE s IS NULL), count(*) FILTER (WHERE s = ''), count(*) FROM {}.t").format(sql.Identifier(schema)))
    assert counts == [(1, 1, 5)]


def test_tz_aware_timestamps_keep_instant_and_zone(conn, schema, psql):
    instants = pd.to_datetime(["2024-03-31T01:59:59.999999+01:00", "2024-03-31T03:00:00.000000+02:00", None], utc=True, format="ISO8601")
    frame = pd.DataFrame({"at": instants.tz_convert("Europe/Berlin")})
    back = round_trip(conn, schema, frame)
    assert str(back["at"].dtype) == str(frame["at"].dtype)
    assert back["at"].tolist()[:2] == frame["at"].tolist()[:2]
    assert back["at"].isna().tolist() == [False, False, True]
    stored = psql(sql.SQL("SELECT at::text FROM {}.t ORDER BY at NULLS LAST").format(sql.Identifier(schema)))
    # The session runs in UTC: PostgreSQL keeps the instant, not the zone name.
    assert stored[0] == ("2024-03-31 00:59:59.999999+00",)


def test_nanoseconds_are_truncated_to_postgres_microseconds(conn, schema):
    frame = pd.DataFrame({"at": pd.to_datetime(["2024-01-01T00:00:00.123456789Z"], utc=True).astype("datetime64[ns, UTC]")})
    back = round_trip(conn, schema, frame)
    assert back["at"].dtype == frame["at"].dtype
    assert back["at"][0] == pd.Timestamp("2024-01-01T00:00:00.123456Z")


def test_large_integers_never_pass_through_float(conn, schema):
    frame = pd.DataFrame({"big": pd.array([2**53 + 1, None, -(2**63)], dtype="Int64")})
    back = round_trip(conn, schema, frame)
    assert back["big"].tolist() == [2**53 + 1, pd.NA, -(2**63)]


def test_empty_frame_with_columns_round_trips(conn, schema, psql):
    frame = pd.DataFrame(
        {
            "a": pd.Series([], dtype="Int64"),
            "b": pd.Series([], dtype="str"),
            "c": pd.Series([], dtype="datetime64[us, UTC]"),
            "d": pd.Series([], dtype=object),
        }
    )
    back = round_trip(conn, schema, frame)
    assert_frame_equal(back, frame)
    types = psql(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s ORDER BY ordinal_position",
        (schema,),
    )
    assert types == [("a", "bigint"), ("b", "text"), ("c", "timestamp with time zone"), ("d", "text")]


def test_nested_values_are_stored_as_json_text(conn, schema, psql):
    frame = pd.DataFrame({"payload": pd.Series([{"a": [1, 2]}, None, [1, "x"]], dtype=object)})
    back = round_trip(conn, schema, frame)
    assert back["payload"].tolist() == [{"a": [1, 2]}, None, [1, "x"]]
    assert psql(sql.SQL("SELECT payload FROM {}.t WHERE payload IS NOT NULL").format(sql.Identifier(schema)))[0] == ('{"a": [1, 2]}',)


def test_meaningful_index_is_kept_as_columns(conn, schema):
    frame = pd.DataFrame({"n": [3, 4]}, index=pd.Index(["x", "y"], name="key"))
    back = round_trip(conn, schema, frame)
    assert back.columns.tolist() == ["key", "n"]
    assert back["key"].tolist() == ["x", "y"]


def test_table_made_outside_harmonizer_reads_with_nullable_dtypes(conn, schema, psql):
    psql(
        sql.SQL(
            "CREATE SCHEMA {s}; CREATE TABLE {s}.ext (n bigint, b boolean, s text); INSERT INTO {s}.ext VALUES (1, true, ''), (NULL, NULL, NULL) RETURNING 1"
        ).format(s=sql.Identifier(schema))
    )
    back = read_frame(conn, schema, "ext")
    assert back["n"].dtype == "Int64" and back["b"].dtype == "boolean"
    assert back["n"].tolist() == [1, pd.NA]
    assert back["s"].tolist()[0] == "" and pd.isna(back["s"][1])


# --- identifiers ----------------------------------------------------------------------------


def test_long_names_are_shortened_deterministically_and_restored(conn, schema, psql):
    common = "measurement_of_the_patient_systolic_blood_pressure_at_admission_"
    first, second = common + "left_arm", common + "right_arm"
    umlauts = "ü" * 40  # 80 bytes: the cut must fall on a character boundary
    frame = pd.DataFrame({first: [1], second: [2], umlauts: ["x"]})
    result = replace_table(conn, schema, "t", [frame])
    stored = result.renamed
    assert set(stored) == {first, second, umlauts}
    assert stored[first] != stored[second]
    assert all(len(name.encode()) <= 63 for name in stored.values())
    assert stored[umlauts] == storage_name(umlauts) and stored[umlauts].startswith("ü" * 27)
    assert storage_name(first) == stored[first]  # deterministic
    back = read_frame(conn, schema, "t")
    assert back.columns.tolist() == [first, second, umlauts]
    names = psql("SELECT column_name FROM information_schema.columns WHERE table_schema = %s ORDER BY ordinal_position", (schema,))
    assert [n for (n,) in names] == [stored[first], stored[second], stored[umlauts]]


def test_names_colliding_after_shortening_are_refused():
    long_name = "x" * 80
    with pytest.raises(TableStoreError, match=r"would both be stored as"):
        storage_names([long_name, storage_name(long_name)])


def test_duplicate_column_names_are_refused(conn, schema):
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(TableStoreError, match="duplicate column name 'a'"):
        replace_table(conn, schema, "t", [frame])


def test_hostile_identifiers_are_stored_verbatim_and_harmless(conn, psql):
    hostile = 'a"; DROP TABLE victim; --'
    psql("CREATE TABLE IF NOT EXISTS public.victim (id int)")
    frame = pd.DataFrame({hostile: ["'); DROP TABLE victim; --"], "Robert'); --": [1]})
    hostile_schema = 's"; DROP TABLE victim; --'
    back = round_trip(conn, hostile_schema, frame, table=hostile)
    assert_frame_equal(back, frame)
    assert psql("SELECT to_regclass('public.victim') IS NOT NULL") == [(True,)]
    names = psql(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position", (hostile_schema, hostile)
    )
    assert names == [(hostile,), ("Robert'); --",)]


# --- bad input ------------------------------------------------------------------------------


def test_mixed_python_types_name_the_column(conn, schema):
    frame = pd.DataFrame({"ok": [1, 2], "mixed": pd.Series([1, "two"], dtype=object)})
    with pytest.raises(TableStoreError, match=r"column 'mixed' cannot be stored: its values mix Python types \(int, str\)"):
        replace_table(conn, schema, "t", [frame])


def test_nul_character_names_column_and_row(conn, schema):
    frame = pd.DataFrame({"s": ["fine", "bad\x00byte"]})
    with pytest.raises(TableStoreError, match=r"column 's', row 1: text contains a NUL character"):
        replace_table(conn, schema, "t", [frame])


def test_reading_a_missing_table_says_so(conn, schema):
    with pytest.raises(TableStoreError, match=rf"table {schema}.nothing does not exist yet"):
        read_frame(conn, schema, "nothing")


def test_selecting_an_unknown_column_lists_the_known_ones(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"a": [1]})])
    with pytest.raises(TableStoreError, match=r"has no column\(s\) \['b'\]; it has \['a'\]"):
        read_frame(conn, schema, "t", columns=["b"])


# --- appending: schema evolution and transactions -------------------------------------------


def test_append_adds_new_columns_and_fills_missing_with_null(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"a": [1], "b": ["x"]})])
    write_frames(conn, schema, "t", [pd.DataFrame({"a": [2], "c": pd.array([True], dtype="boolean")})])
    conn.commit()
    back = read_frame(conn, schema, "t")
    assert back.columns.tolist() == ["a", "b", "c"]
    assert back["a"].tolist() == [1, 2]
    assert back["b"].tolist()[0] == "x" and pd.isna(back["b"][1])
    assert back["c"].tolist() == [pd.NA, True]


def test_append_with_a_conflicting_type_is_refused(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"a": [1]})])
    with pytest.raises(TableStoreError, match=r"column 'a' is bigint in the table but the new rows hold text"):
        write_frames(conn, schema, "t", [pd.DataFrame({"a": ["one"]})])


def test_a_failing_stream_leaves_the_previous_table_intact(database_url, schema):
    from harmonizer_pipeline.storage.postgres import adbc_connection

    with adbc_connection(database_url) as conn:
        replace_table(conn, schema, "t", [pd.DataFrame({"a": [1, 2, 3]})])

    def chunks():
        yield pd.DataFrame({"a": [10]})
        yield pd.DataFrame({"b": [11]})  # a later chunk with other columns fails the whole write

    with adbc_connection(database_url) as conn:
        with pytest.raises(TableStoreError, match=r"a later chunk has columns \['b'\], the first had \['a'\]"):
            replace_table(conn, schema, "t", chunks())
        conn.rollback()
        assert read_frame(conn, schema, "t")["a"].tolist() == [1, 2, 3]


@pytest.mark.slow
def test_one_million_rows_stream_in_and_out_in_chunks(conn, schema):
    chunk = 100_000

    def chunks():
        for i in range(10):
            start = i * chunk
            yield pd.DataFrame(
                {
                    "n": np.arange(start, start + chunk, dtype="int64"),
                    "label": pd.array([string.ascii_letters[j % 52] for j in range(chunk)], dtype="str"),
                }
            )

    result = replace_table(conn, schema, "big", chunks())
    assert result.rows == 1_000_000
    sizes, total, labels = [], 0, 0
    for frame in read_chunks(conn, schema, "big", chunk_rows=300_000):
        sizes.append(len(frame))
        total += int(frame["n"].sum())
        labels += int((frame["label"] == "a").sum())
        assert frame["n"].dtype == "int64" and frame["label"].dtype == "str"
    assert sizes == [300_000, 300_000, 300_000, 100_000]
    assert total == sum(range(1_000_000))
    assert labels == 10 * len(range(0, chunk, 52))


def test_reading_an_empty_table_in_chunks_yields_one_empty_frame_with_columns(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"a": pd.Series([], dtype="Int64")})])
    frames = list(read_chunks(conn, schema, "t"))
    assert len(frames) == 1 and frames[0].columns.tolist() == ["a"] and len(frames[0]) == 0
    assert frames[0]["a"].dtype == "Int64"


def test_a_reader_stopped_after_its_first_chunk_leaves_the_connection_usable(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"n": np.arange(300_000, dtype="int64")})])
    chunks = read_chunks(conn, schema, "t", chunk_rows=1_000)
    first = next(chunks)
    chunks.close()  # the read-ahead thread is stopped and joined here, with batches still unread
    assert first["n"].tolist() == list(range(1_000))
    assert read_frame(conn, schema, "t")["n"].sum() == sum(range(300_000))


def test_a_failure_while_reading_ahead_reaches_the_caller_after_the_batches_before_it():
    schema = pa.schema([("n", pa.int64())])

    def batches():
        for i in range(3):
            yield pa.record_batch([pa.array([i])], schema=schema)
        raise OSError("connection lost")

    seen = []
    with pytest.raises(OSError, match="connection lost"):
        for batch in read_ahead(pa.RecordBatchReader.from_batches(schema, batches()), depth=1):
            seen.append(batch.column(0)[0].as_py())
    assert seen == [0, 1, 2]


def test_partition_filter_quotes_columns_and_values():
    where = partition_filter([("part'x", ["a'b", "c"]), ("day", (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)))])
    assert where.as_string(None) == (
        "\"part'x\" IN ('a''b', 'c') AND (\"day\" >= '2024-01-01 00:00:00'::timestamp AND \"day\" < '2024-01-02 00:00:00'::timestamp)"
    )


def test_a_partition_whose_column_is_all_null_fits_any_column_type(conn, schema):
    replace_table(conn, schema, "t", [pd.DataFrame({"part": ["a"], "n": [1]})])
    write_frames(conn, schema, "t", [pd.DataFrame({"part": ["b"], "n": pd.Series([None], dtype=object)})])
    conn.commit()
    assert read_frame(conn, schema, "t")["n"].tolist() == [1, pd.NA]


def test_a_later_chunk_cannot_change_a_column_type_silently(conn, schema):
    def chunks():
        yield pd.DataFrame({"n": pd.Series([None], dtype=object)})  # only NULLs: the column becomes text
        yield pd.DataFrame({"n": [5]})

    with pytest.raises(TableStoreError, match=r"column 'n' is text in the table but the new rows hold bigint"):
        replace_table(conn, schema, "t", chunks())


def test_rows_without_their_partition_column_are_refused_when_it_cannot_be_filled(conn, schema):
    with pytest.raises(TableStoreError, match=r"lack partition column\(s\) \['day'\]"):
        write_frames(conn, schema, "t", [pd.DataFrame({"n": [1]})], required_columns=["day"])


@pytest.mark.slow
def test_a_large_table_read_by_several_connections_equals_the_single_read(database_url, conn, schema, monkeypatch):
    from harmonizer_pipeline.storage.postgres import adbc_connection

    frame = pd.DataFrame({"n": np.arange(300_000, dtype="int64"), "text": pd.array([f"row {i} " * 4 for i in range(300_000)], dtype="str")})
    replace_table(conn, schema, "t", [frame])
    monkeypatch.setattr(reads, "PARALLEL_MIN_BYTES", 1 << 20)
    opened = []

    def connect():
        opened.append(1)
        return adbc_connection(database_url)

    parallel = read_frame(conn, schema, "t", connect=connect, workers=3)
    assert len(opened) == 3
    assert_frame_equal(parallel, frame)
    some = read_frame(conn, schema, "t", where=sql.SQL("n % 1000 = 0"), connect=connect, workers=3)
    assert some["n"].tolist() == list(range(0, 300_000, 1000))


def _staging_tables(psql, schema):
    return psql("SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE '\\_harmonizer\\_load\\_%%'", (schema,))


def _parallel_replace(conn, database_url, schema, chunks, workers=3):
    from harmonizer_pipeline.storage.postgres import adbc_connection

    ensure_schema(conn, schema)
    conn.commit()
    lock_table(conn, schema, "t")
    drop_table(conn, schema, "t")
    result = writes.replace_table(conn, schema, "t", chunks, connect=lambda: adbc_connection(database_url), workers=workers, parallel_min_rows=1)
    conn.commit()
    return result


@pytest.mark.slow
def test_parallel_replace_writes_every_row_once_and_leaves_no_staging_table(conn, database_url, schema, psql):
    frame = pd.DataFrame({"n": np.arange(250_000, dtype="int64"), "s": pd.array([str(i) for i in range(250_000)], dtype="str")})
    result = _parallel_replace(conn, database_url, schema, [frame])
    assert result.rows == 250_000
    back = read_frame(conn, schema, "t").sort_values("n", ignore_index=True)
    assert_frame_equal(back, frame)
    assert _staging_tables(psql, schema) == []


def test_a_failing_parallel_write_keeps_the_old_table_and_drops_its_staging(conn, database_url, schema, psql):
    replace_table(conn, schema, "t", [pd.DataFrame({"n": [1, 2]})])
    leftover = "_harmonizer_load_" + __import__("hashlib").sha256(b"t").hexdigest()[:8] + "_dead"
    psql(sql.SQL("CREATE TABLE {}.{} (n bigint)").format(sql.Identifier(schema), sql.Identifier(leftover)))

    def chunks():
        yield pd.DataFrame({"n": np.arange(100_000, dtype="int64")})
        raise RuntimeError("upstream file vanished")

    with pytest.raises(RuntimeError, match="upstream file vanished"):
        _parallel_replace(conn, database_url, schema, chunks())
    conn.rollback()
    assert read_frame(conn, schema, "t")["n"].tolist() == [1, 2]
    assert _staging_tables(psql, schema) == []  # the crashed write's leftover went too


def _swap(conn, database_url, schema, key, chunks):
    from harmonizer_pipeline.storage.postgres import adbc_connection

    ensure_schema(conn, schema)
    conn.commit()
    lock_table(conn, schema, "files")
    result = replace_partition(conn, schema, "files", "_partition", key, chunks, connect=lambda: adbc_connection(database_url), workers=2)
    conn.commit()
    return result


def test_one_key_of_a_list_partitioned_table_is_swapped_in_whole(conn, database_url, schema, psql):
    _swap(conn, database_url, schema, "a.csv", [pd.DataFrame({"n": [1, 2]})])
    _swap(conn, database_url, schema, "b'.csv", [pd.DataFrame({"n": [10]})])
    # Rows of a key written by a several-key run land in the DEFAULT child ...
    write_frames(conn, schema, "files", [pd.DataFrame({"n": [7], "_partition": ["a.csv"]})])
    conn.commit()
    # ... and the key's next swap replaces them together with its old child.
    _swap(conn, database_url, schema, "a.csv", [pd.DataFrame({"n": [3, 4, 5]})])
    back = read_frame(conn, schema, "files").sort_values("n", ignore_index=True)
    assert back.to_dict("list") == {"n": [3, 4, 5, 10], "_partition": ["a.csv"] * 3 + ["b'.csv"]}
    children = psql("SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)", (f'"{schema}".files',))
    assert children == [(3,)]  # a.csv, b'.csv and DEFAULT
    assert _staging_tables(psql, schema) == []
    # A file's child is written once: autovacuum leaves its inserts alone (its other triggers stay).
    options = psql(
        "SELECT c.relname, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s) ORDER BY 1",
        (f'"{schema}".files',),
    )
    assert [o for _, o in options] == [None, ["autovacuum_vacuum_insert_threshold=-1"], ["autovacuum_vacuum_insert_threshold=-1"]]


def test_a_failing_swap_keeps_the_keys_old_rows(conn, database_url, schema, psql):
    _swap(conn, database_url, schema, "a.csv", [pd.DataFrame({"n": [1, 2]})])

    def chunks():
        yield pd.DataFrame({"n": [9]})
        raise RuntimeError("file truncated")

    with pytest.raises(RuntimeError, match="file truncated"):
        _swap(conn, database_url, schema, "a.csv", chunks())
    conn.rollback()
    assert read_frame(conn, schema, "files")["n"].tolist() == [1, 2]
    assert _staging_tables(psql, schema) == []
