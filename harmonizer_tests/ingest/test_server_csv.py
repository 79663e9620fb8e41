"""Delimited text parsed by PostgreSQL's COPY: it must give exactly the exact reader's rows, or stand aside."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal

from harmonizer_pipeline.ingest.readers import ReadError, ReadHints, open_table
from harmonizer_pipeline.ingest.readers.server_csv import ServerCsv
from harmonizer_pipeline.storage.catalog import drop_table, ensure_schema, lock_table
from harmonizer_pipeline.storage.partitions import replace_partition
from harmonizer_pipeline.storage.postgres import adbc_connection, libpq_url
from harmonizer_pipeline.storage.reads import partition_filter, read_frame
from harmonizer_pipeline.storage.writes import DataFrameChunks, TextCopy

LINEAGE = {"_source_file": "landing/f.csv", "_load_id": "run-1", "_ingested_at": pd.Timestamp("2026-11-23 10:00", tz="UTC")}


def server_text(path: Path, **hints) -> ServerCsv:
    text = open_table(path, ReadHints(**hints)).server_csv()
    assert text is not None
    return text


def sent(text: ServerCsv, segments: int = 1) -> tuple[list[bytes], list[str | None], list[int]]:
    """Each segment's bytes, refusal and line count."""
    parts = text.segments(segments)
    data = [b"".join(bytes(block) for block in part.blocks()) for part in parts]
    return data, [part.refusal for part in parts], [part.lines for part in parts]


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        (b'id,size\n1,5" screen\n', 'a " opens a quoted section inside a field'),
        (b'id,name\n1,"Ann"e\n', 'a closing " is followed by more of its field'),
        (b'id,name\n1,x""\n', 'a " opens a quoted section inside a field'),
        (b'id,name\n1,"never closed\n', 'an odd number of " characters: a quoted value is never closed'),
        (b"id,name\r1,Ann\r", "a line ends in a lone \\r"),
        (b"id,name\r\n1,Ann\r2,Bob\r\n", "a line ends in a lone \\r"),
    ],
)
def test_text_postgresql_would_parse_differently_is_refused(tmp_path, content, refusal):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    _, refusals, _ = sent(server_text(path, delimiter=",", header=True))
    assert refusals == [refusal]


def test_an_undefined_cp1252_byte_is_refused(tmp_path):
    path = tmp_path / "f.csv"
    # Past the head the reader decodes up front (1 MiB), so only the scan meets it.
    path.write_bytes("id,name\n".encode("cp1252") + "1,Zoë\n".encode("cp1252") * 200_000 + b"2,\x81\n")
    _, refusals, _ = sent(server_text(path, encoding="cp1252"))
    assert refusals[0].startswith("a byte cp1252 lacks")


def test_lines_go_out_led_by_their_physical_line_number_and_blank_lines_stay_out(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b'\r\nid,name\r\n1,"Smith, ""Jr"""\r\n\r\n2,""\r\n\r\n\r\n')
    data, refusals, lines = sent(server_text(path))
    assert (data, refusals, lines) == ([b'2,id,name\r\n3,1,"Smith, ""Jr"""\r\n5,2,""\r\n'], [None], [3])


def test_a_utf8_bom_is_dropped_and_cp1252_is_sent_as_utf8(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,name\n1,Zo\xc3\xab")
    assert sent(server_text(bom)) == ([b"1,id,name\n2,1,Zo\xc3\xab\n"], [None], [2])  # the last line lacked its \n
    cp1252 = tmp_path / "cp.csv"
    cp1252.write_bytes("id;name\n1;Zoë €\n".encode("cp1252"))
    assert sent(server_text(cp1252, encoding="cp1252"))[0] == ["1;id;name\n2;1;Zoë €\n".encode()]


def test_segments_start_after_a_line_feed_and_number_on_from_the_lines_before(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(b"%d,row %d\r\n" % (n, n) for n in range(1, 10_001)))
    text = server_text(path, header=False)
    text.min_segment_bytes = 1
    data, refusals, lines = sent(text, 3)
    assert refusals == [None] * 3 and sum(lines) == 10_000 and all(lines)
    # Every line is led by its own number (zero-padded to the block's widest), whichever segment it went out in.
    numbered = b"".join(data).split(b"\r\n")[:-1]
    assert [(int(line.split(b",")[0]), int(line.split(b",")[1])) for line in numbered] == [(n, n) for n in range(1, 10_001)]


@pytest.mark.parametrize(
    ("content", "hints"),
    [
        (b"a,b\n1,2\n", {"delimiter": "1"}),  # the line number's digits would read as delimiters
        ("a,b\n1,2\n".encode("utf-16"), {}),
        (b"a;b\n1;2\n", {"quotechar": ";"}),
    ],
)
def test_dialects_copy_cannot_parse_alike_get_no_server_text(tmp_path, content, hints):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert open_table(path, ReadHints(**hints)).server_csv() is None


# --- through PostgreSQL: the server's rows are the exact reader's -------------------------


def load(conn, database_url: str, schema: str, key: str, path: Path, hints: ReadHints, segments: int | None):
    """Load the file as partition `key`: through the server's parse in up to `segments` COPY streams (two
    per worker) when `segments`, else the exact reader's."""
    table = open_table(path, hints)
    text_copy = None
    if segments:
        text = table.server_csv()
        if text is not None:
            if segments > 1:
                text.min_segment_bytes = 1  # small files split too
            text_copy = TextCopy(text, table.empty_frame().assign(**LINEAGE), LINEAGE, "_row_number")
    chunks = DataFrameChunks(chunk.assign(**LINEAGE) for chunk in table.chunks())
    lock_table(conn, schema, "raw")
    result = replace_partition(
        conn, schema, "raw", "_partition", key, chunks,
        connect=lambda: adbc_connection(database_url), workers=max(1, (segments or 1) // 2),
        connect_text=lambda: psycopg.connect(libpq_url(database_url)), text_copy=text_copy,
    )  # fmt: skip
    conn.commit()
    return result


def stored(conn, schema: str, key: str) -> pd.DataFrame:
    frame = read_frame(conn, schema, "raw", where=partition_filter([("_partition", [key])]))
    return frame.drop(columns="_partition").sort_values("_row_number", ignore_index=True)


def outcome(conn, database_url, schema, key, path, hints, segments):
    try:
        return load(conn, database_url, schema, key, path, hints, segments), None
    except ReadError as err:
        return None, str(err)


def test_postgresql_parses_a_clean_file_into_the_exact_readers_rows(conn, database_url, schema, tmp_path):
    path = tmp_path / "patients.csv"
    path.write_bytes('code;name;amount;note\r\n007;Zoë;1.234,50;\r\n008;"Smith; ""Jr""";N/A;""\r\n009; padded ;;x\r\n\r\n'.encode("utf-8-sig"))
    ensure_schema(conn, schema)
    conn.commit()
    server = load(conn, database_url, schema, "server", path, ReadHints(), segments=4)
    exact = load(conn, database_url, schema, "exact", path, ReadHints(), segments=None)
    assert server.loaded_by == "PostgreSQL's CSV parser (4 parallel COPY streams)"
    assert exact.loaded_by == "binary COPY from Arrow"
    assert server.rows == exact.rows == 3
    assert [c.pg_type for c in server.columns] == [c.pg_type for c in exact.columns]
    assert_frame_equal(stored(conn, schema, "server"), stored(conn, schema, "exact"))
    assert stored(conn, schema, "server").to_dict("list") == {
        "code": ["007", "008", "009"],
        "name": ["Zoë", 'Smith; "Jr"', " padded "],
        "amount": ["1.234,50", "N/A", ""],
        "note": ["", "", "x"],
        "_row_number": [2, 3, 4],
        **{name: [value] * 3 for name, value in LINEAGE.items()},
    }


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'id,note\n1,"two\nlines"\n2,x\n', "COPY read 2 records from 3 lines of data"),
        (b"id,note\r\n1,a\r2,b\r\n", "a line ends in a lone \\r"),
        (b'id,size\n1,5" screen\n', 'a " opens a quoted section inside a field'),
    ],
)
def test_when_postgresql_may_differ_the_exact_reader_loads_the_file(conn, database_url, schema, tmp_path, content, reason):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    ensure_schema(conn, schema)
    conn.commit()
    result = load(conn, database_url, schema, "k", path, ReadHints(), segments=1)
    assert result.loaded_by.startswith("binary COPY from Arrow (PostgreSQL's CSV parse not used: ")
    assert reason in result.loaded_by
    exact = load(conn, database_url, schema, "e", path, ReadHints(), segments=None)
    assert_frame_equal(stored(conn, schema, "k"), stored(conn, schema, "e"))
    assert result.rows == exact.rows


def test_a_ragged_file_fails_with_the_exact_readers_line_and_leaves_nothing(conn, database_url, schema, tmp_path, psql):
    path = tmp_path / "f.csv"
    path.write_bytes(b"id,name\n1,Ann\n2,Bob,extra\n")
    ensure_schema(conn, schema)
    conn.commit()
    with pytest.raises(ReadError, match=r"^f\.csv: line 3 has 3 fields, the header has 2$"):
        load(conn, database_url, schema, "k", path, ReadHints(), segments=2)
    conn.rollback()
    assert psql("SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename LIKE '_harmonizer_load%%'", (schema,)) == [(0,)]


_FIELD = st.text(alphabet=st.sampled_from(list('ab ,"\n\r;é0')), max_size=6)


@st.composite
def csv_files(draw) -> tuple[bytes, int]:
    width = draw(st.integers(2, 4))
    rows = draw(st.lists(st.lists(_FIELD, min_size=width, max_size=width), min_size=0, max_size=8))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    style = draw(st.sampled_from(["minimal", "all", "raw"]))
    out = io.StringIO()
    if style == "raw":  # no quoting at all: often ragged or quoted by accident
        out.write("".join(",".join(row) + terminator for row in rows))
    else:
        quoting = csv.QUOTE_MINIMAL if style == "minimal" else csv.QUOTE_ALL
        csv.writer(out, lineterminator=terminator, quoting=quoting).writerows(rows)
    body = ",".join(f"c{n}" for n in range(width)) + terminator + out.getvalue()
    body = body.replace(terminator, terminator * 2, draw(st.integers(0, 2)))  # blank lines after the first lines
    body += draw(st.sampled_from(["", terminator, terminator * 2]))
    return body.encode(), draw(st.integers(1, 4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_files())
def test_any_file_loads_the_same_through_postgresql_or_the_exact_reader(conn, database_url, tmp_path, case):
    content, segments = case
    schema = f"t_prop_{abs(hash(content)) % 10**9}_{segments}"
    path = tmp_path / f"{schema}.csv"
    path.write_bytes(content)
    ensure_schema(conn, schema)
    conn.commit()
    hints = ReadHints(delimiter=",", quotechar='"', header=True, encoding="utf-8")
    server, server_error = outcome(conn, database_url, schema, "server", path, hints, segments)
    exact, exact_error = outcome(conn, database_url, schema, "exact", path, hints, None)
    assert server_error == exact_error
    if exact is not None:
        assert server.rows == exact.rows
        assert_frame_equal(stored(conn, schema, "server"), stored(conn, schema, "exact"))
    drop_table(conn, schema, "raw")
    conn.commit()


def test_a_header_past_postgresqls_name_limit_is_copied_into_its_shortened_column(conn, database_url, schema, tmp_path):
    long_name = "patient_" + "very_" * 14 + "long_identifier"  # 93 bytes: stored under a shortened name
    path = tmp_path / "f.csv"
    path.write_text(f"id,{long_name}\n1,a\n2,b\n")
    ensure_schema(conn, schema)
    conn.commit()
    result = load(conn, database_url, schema, "k", path, ReadHints(), segments=1)
    assert result.loaded_by == "PostgreSQL's CSV parser (one COPY stream)"
    assert len(result.renamed[long_name].encode()) <= 63
    assert stored(conn, schema, "k")[[long_name, "_row_number"]].to_dict("list") == {long_name: ["a", "b"], "_row_number": [2, 3]}
