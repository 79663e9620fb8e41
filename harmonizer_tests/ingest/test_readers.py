"""Readers: every value arrives as the text the file holds, with the line/row it came from; bad input is a ReadError."""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import pickle
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.ingest.readers import Detection, ReadError, ReadHints, open_table

UTF8 = "text that is neither JSON nor XML → delimited"
DEFAULT_QUOTE = 'quote character " (the default)'
HEADER = "header: the first record holds no numbers or dates"


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def read(path: Path, hints: ReadHints = ReadHints(), chunk_rows: int = 100_000) -> tuple[Detection, list[pd.DataFrame]]:
    """Detection and every chunk, checking the dtypes the contract promises."""
    table = open_table(path, hints, chunk_rows)
    frames = list(table.chunks())
    for frame in frames:
        assert frame["_row_number"].dtype == "int64"
        assert all(frame[c].dtype == "str" for c in frame.columns if c != "_row_number")
        assert len(frame) <= chunk_rows
    return table.detection, frames


def values(frame: pd.DataFrame) -> dict[str, list]:
    """Columns as lists with None for NULL (NaN never compares equal)."""
    return frame.astype(object).where(frame.notna(), None).to_dict("list")


def read_values(path: Path, hints: ReadHints = ReadHints()) -> tuple[Detection, dict[str, list]]:
    detection, frames = read(path, hints)
    assert len(frames) == 1
    return detection, values(frames[0])


def read_error(path: Path, hints: ReadHints = ReadHints(), chunk_rows: int = 100_000) -> ReadError:
    """The ReadError raised by open_table or while streaming the chunks."""
    with pytest.raises(ReadError) as caught:
        for _ in open_table(path, hints, chunk_rows).chunks():
            pass
    assert "\n" not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------- delimited text: good input


def test_semicolon_file_keeps_every_value_as_written(tmp_path):
    path = write(tmp_path, "in.csv", 'id;amount;note\n007;1.234,50;N/A\n008;;"a;b"\n')
    detection, frame = read_values(path)
    assert frame == {
        "id": ["007", "008"],
        "amount": ["1.234,50", ""],
        "note": ["N/A", "a;b"],
        "_row_number": [2, 3],
    }
    assert detection == Detection(
        format="csv",
        encoding="utf-8",
        delimiter=";",
        quotechar='"',
        header=True,
        sheets=[],
        record_path=None,
        columns=["id", "amount", "note"],
        renamed_columns={},
        evidence=[
            UTF8,
            "the first 43 bytes decode as utf-8",
            "';' splits 3 of 3 sample records into 3 fields; ',' gives one field; '\\t' gives one field; '|' gives one field",
            DEFAULT_QUOTE,
            HEADER,
        ],
    )


def test_cp1252_semicolon_file_with_umlauts_and_decimal_commas(tmp_path):
    path = write(tmp_path, "de.csv", "Name;Betrag;Ort\nMüller;1.234,50;Köln\nGrüße;0,5;\n", "cp1252")
    detection, frame = read_values(path)
    assert frame == {
        "Name": ["Müller", "Grüße"],
        "Betrag": ["1.234,50", "0,5"],
        "Ort": ["Köln", ""],
        "_row_number": [2, 3],
    }
    assert (detection.format, detection.encoding, detection.delimiter) == ("csv", "cp1252", ";")
    assert detection.evidence[1:3] == [
        "not utf-8 (byte 0xfc at offset 17); chardet: cp1252 (German), score 0.020",
        "';' splits 3 of 3 sample records into 3 fields; ',' gives one field; '\\t' gives one field; '|' gives one field",
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_quoted_multiline_field_then_more_rows_keeps_physical_line_numbers(tmp_path, newline):
    text = f'id,text{newline}1,"line one{newline}line two"{newline}2,x{newline}{newline}3,""{newline},{newline}4,end'
    detection, frame = read_values(write(tmp_path, "notes.csv", text))
    assert frame == {
        "id": ["1", "2", "3", "", "4"],
        "text": [f"line one{newline}line two", "x", "", "", "end"],
        "_row_number": [2, 4, 6, 7, 8],  # line 5 is blank: not a record; line 7 (',') is a record of ''
    }
    assert detection.columns == ["id", "text"]


@pytest.mark.parametrize(
    ("bom", "codec", "evidence"),
    [
        (b"\xff\xfe", "utf-16-le", "BOM FF FE → utf-16"),
        (b"\xfe\xff", "utf-16-be", "BOM FE FF → utf-16"),
    ],
)
def test_utf16_with_bom_tab_separated(tmp_path, bom, codec, evidence):
    path = write(tmp_path, "export.txt", bom + "Straße\tPLZ\nHauptstraße 1\t01067\n".encode(codec))
    detection, frame = read_values(path)
    assert frame == {"Straße": ["Hauptstraße 1"], "PLZ": ["01067"], "_row_number": [2]}
    assert (detection.format, detection.encoding, detection.delimiter) == ("tsv", "utf-16", "\t")
    assert detection.evidence[:3] == [
        UTF8,
        evidence,
        "'\\t' splits 2 of 2 sample records into 2 fields; ',' gives one field; ';' gives one field; '|' gives one field",
    ]


def test_utf8_bom_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbfid,name\n1,Ann\n")
    detection, frame = read_values(path)
    assert frame == {"id": ["1"], "name": ["Ann"], "_row_number": [2]}
    assert (detection.encoding, detection.evidence[1]) == ("utf-8-sig", "BOM EF BB BF → utf-8-sig")


def test_pipe_delimited(tmp_path):
    detection, frame = read_values(write(tmp_path, "pipe.dat", "a|b|c\n1|2|3\n4||6\n"))
    assert frame == {"a": ["1", "4"], "b": ["2", ""], "c": ["3", "6"], "_row_number": [2, 3]}
    assert (detection.format, detection.delimiter) == ("csv", "|")


def test_file_without_header_gets_positional_names_and_starts_at_line_1(tmp_path):
    detection, frame = read_values(write(tmp_path, "raw.csv", "007,1.5\n008,2\n"))
    assert frame == {"column_1": ["007", "008"], "column_2": ["1.5", "2"], "_row_number": [1, 2]}
    assert detection.header is False
    assert detection.renamed_columns == {}
    assert "no header: the first record holds '007', which looks like data" in detection.evidence


def test_hints_override_detection(tmp_path):
    path = write(tmp_path, "hinted.csv", "x;'a;b'\ny;'c'\n")
    hints = ReadHints(format="csv", delimiter=";", quotechar="'", header=False, encoding="utf-8")
    detection, frame = read_values(path, hints)
    assert frame == {"column_1": ["x", "y"], "column_2": ["a;b", "c"], "_row_number": [1, 2]}
    assert (detection.delimiter, detection.quotechar, detection.header) == (";", "'", False)
    assert detection.evidence == [
        "format csv from hints",
        "encoding utf-8 from hints",
        "delimiter from hints",
        "quote character from hints",
        "header=False from hints",
    ]


def test_single_quoted_values_are_detected(tmp_path):
    detection, frame = read_values(write(tmp_path, "sq.csv", "name,city\n'Doe, Jane',Berlin\n"))
    assert frame == {"name": ["Doe, Jane"], "city": ["Berlin"], "_row_number": [2]}
    assert detection.quotechar == "'"


def test_single_column_file_skips_blank_lines_but_keeps_quoted_empty_values(tmp_path):
    detection, frame = read_values(write(tmp_path, "names.csv", 'name\nAnn\n\nBob\n""\n'))
    assert frame == {"name": ["Ann", "Bob", ""], "_row_number": [2, 4, 5]}
    assert detection.evidence[2] == "no candidate delimiter (, ; tab |) splits the first record: one column"


def test_header_only_file_yields_one_empty_frame_with_the_columns(tmp_path):
    detection, frames = read(write(tmp_path, "empty_rows.csv", "id,name\n"))
    assert [values(frame) for frame in frames] == [{"id": [], "name": [], "_row_number": []}]


def test_300k_rows_stream_in_chunks_of_the_requested_size(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("id,code\n" + "".join(f"{n},0{n}\n" for n in range(300_000)))
    _, frames = read(path, chunk_rows=100_000)
    assert [len(frame) for frame in frames] == [100_000, 100_000, 100_000]
    assert [(f["_row_number"].iloc[0], f["_row_number"].iloc[-1]) for f in frames] == [(2, 100_001), (100_002, 200_001), (200_002, 300_001)]
    assert [(f["id"].iloc[0], f["code"].iloc[-1]) for f in frames] == [("0", "099999"), ("100000", "0199999"), ("200000", "0299999")]


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
def test_line_numbers_stay_exact_across_pyarrow_blocks(tmp_path, encoding):
    """Multi-line values, CRLF inside values, blank lines and all-empty records spread over several MiB."""
    rng = random.Random(7)
    lines, expected, line = ["id,text,empty\r\n"], [], 2
    for n in range(60_000):
        kind = rng.random()
        if kind < 0.05:
            lines.append("\r\n")
            line += 1
            continue
        if kind < 0.1:
            lines.append(",,\r\n")
            expected.append(("", "", "", line))
            line += 1
            continue
        text = "x" + "\n".join(["é"] * rng.randint(0, 3)) + ("\r\n" if kind < 0.2 else "")
        lines.append(f'{n},"{text}",\r\n')
        expected.append((str(n), text, "", line))
        line += 1 + text.count("\n")
    path = write(tmp_path, "mixed.csv", "".join(lines), encoding)
    # the only letter besides x is é: too little text to tell cp1252 from other code pages (test_encodings)
    detection, frames = read(path, ReadHints(encoding="cp1252") if encoding == "cp1252" else ReadHints(), chunk_rows=7_777)
    got = [row for f in frames for row in zip(f["id"], f["text"], f["empty"], f["_row_number"].tolist())]
    assert detection.encoding == encoding
    assert got == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(*[st.text(alphabet=st.sampled_from("ab ,;\"'\r\n\täé0"), max_size=6)] * 3),
        max_size=30,
    ),
    # with QUOTE_MINIMAL the csv module quotes only the line terminator's characters: a bare \r would be a line end
    st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]),
)
def test_any_csv_module_output_reads_back_exactly(tmp_path_factory, rows, dialect):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=dialect[0], quoting=dialect[1])
    writer.writerow(["a", "b", "c"])
    line, expected = 2, []
    for row in rows:
        start = len(buffer.getvalue())
        writer.writerow(row)
        written = buffer.getvalue()[start:]
        if written.strip("\r\n"):  # csv writes ('', '', '') as ',,' so never a blank line
            expected.append((*row, line))
        line += written.count("\n") + written.count("\r") - written.count("\r\n")
    path = write(tmp_path_factory.mktemp("hypothesis"), "h.csv", buffer.getvalue())
    # The csv module always quotes with '"'; detection alone may take ",,''" for values quoted with "'".
    _, frames = read(path, ReadHints(delimiter=",", quotechar='"', header=True))
    got = [row for f in frames for row in zip(f["a"], f["b"], f["c"], f["_row_number"].tolist())]
    assert got == expected


def test_csv_named_xlsx_reads_as_csv_and_says_so(tmp_path):
    detection, frame = read_values(write(tmp_path, "report.xlsx", "a,b\n1,2\n"))
    assert frame == {"a": ["1"], "b": ["2"], "_row_number": [2]}
    assert detection.format == "csv"
    assert detection.evidence[:2] == [UTF8, "extension .xlsx suggests excel, but the content is csv: content wins"]


def test_json_named_csv_reads_as_json(tmp_path):
    detection, frame = read_values(write(tmp_path, "data.csv", '[{"a": 1}]'))
    assert frame == {"a": ["1"], "_row_number": [1]}
    assert detection.evidence[:2] == [
        "text starting with '[' → json",
        "extension .csv suggests csv, but the content is json: content wins",
    ]


def test_duplicate_empty_and_colliding_headers_are_renamed(tmp_path):
    path = write(tmp_path, "dup.csv", " id ,id,,_row_number, ,id,id__2\n1,2,3,4,5,6,7\n")
    detection, frame = read_values(path)
    assert detection.columns == ["id", "id__3", "column_3", "_row_number__2", "column_5", "id__4", "id__2"]
    assert detection.renamed_columns == {
        " id ": "id",
        "id": "id__3",
        "": "column_3",
        "_row_number": "_row_number__2",
        " ": "column_5",
        "id (column 6)": "id__4",
    }
    assert detection.evidence[-6:] == [
        "column 1: ' id ' → 'id' (surrounding whitespace)",
        "column 2: 'id' → 'id__3' (duplicate)",
        "column 3: '' → 'column_3' (empty header)",
        "column 4: '_row_number' → '_row_number__2' (lineage column name)",
        "column 5: ' ' → 'column_5' (empty header)",
        "column 6: 'id' → 'id__4' (duplicate)",
    ]
    assert frame == {
        "id": ["1"],
        "id__3": ["2"],
        "column_3": ["3"],
        "_row_number__2": ["4"],
        "column_5": ["5"],
        "id__4": ["6"],
        "id__2": ["7"],
        "_row_number": [2],
    }


# ---------------------------------------------------------------- delimited text: bad input


@pytest.mark.parametrize("name", ["e.csv", "e.tsv", "e.xlsx", "e.json", "e.ndjson", "e.xml", "e.parquet"])
def test_empty_file_of_any_format_fails(tmp_path, name):
    error = read_error(write(tmp_path, name, b""))
    assert (str(error), error.line) == (f"{name}: empty file (0 bytes)", None)
    assert error.path == tmp_path / name


def test_blank_lines_only_fail(tmp_path):
    assert str(read_error(write(tmp_path, "blank.csv", "\n\r\n\n"))) == "blank.csv: no data: the file holds only blank lines"


def test_ragged_row_with_extra_field_names_its_line(tmp_path):
    error = read_error(write(tmp_path, "orders.csv", "a,b\n1,2\n3,4,5\n"))
    assert (str(error), error.line) == ("orders.csv: line 3 has 3 fields, the header has 2", 3)


def test_short_row_in_headerless_file_names_its_line_and_the_first(tmp_path):
    error = read_error(write(tmp_path, "short.csv", "1,2\n3\n"))
    assert (str(error), error.line) == ("short.csv: line 2 has 1 field, line 1 has 2", 2)


def test_ragged_row_after_a_multiline_value_names_its_physical_line(tmp_path):
    error = read_error(write(tmp_path, "ml.csv", 'a,b\n"x\ny",1\n2,3,4\n'))
    assert (str(error), error.line) == ("ml.csv: line 4 has 3 fields, the header has 2", 4)


def test_ragged_row_deep_in_the_file_fails_while_streaming(tmp_path):
    path = tmp_path / "late.csv"
    path.write_text("a,b\n" + f"{'x' * 37},2\n" * 500_000 + "3\n" + "4,5\n" * 10)  # 20 MB: many pyarrow blocks
    table = open_table(path, chunk_rows=100_000)
    sizes = []
    with pytest.raises(ReadError) as caught:
        for frame in table.chunks():
            sizes.append(len(frame))
    assert (str(caught.value), caught.value.line) == ("late.csv: line 500002 has 1 field, the header has 2", 500002)
    assert sizes == [100_000] * 4


def test_unclosed_quote_at_the_end_names_the_line_where_its_record_starts(tmp_path):
    error = read_error(write(tmp_path, "open.csv", 'a,b\n1,2\n3,"x\n4,5\n'))
    assert (str(error), error.line) == ("open.csv: line 3: a quoted field opened in this record is never closed", 3)


def test_unclosed_quote_swallowing_more_than_a_block_names_its_line(tmp_path):
    path = write(tmp_path, "huge_open.csv", "a,b\n" + "1,2\n" * 10 + '3,"x\n' + "y,z\n" * 400_000)
    error = read_error(path)
    assert (str(error), error.line) == ("huge_open.csv: line 12: a quoted field opened in this record is never closed", 12)


def test_records_of_many_mib_are_read_by_a_second_pass_with_larger_blocks(tmp_path):
    rows = "".join(f"{n},x\n" for n in range(300_000))  # > 1 MiB of rows before and after the large record
    path = write(tmp_path, "blob.csv", "a,b\n" + rows + '1,"' + "y\n" * (3 << 20) + '"\n' + rows)
    _, frames = read(path, chunk_rows=250_000)
    frame = pd.concat(frames, ignore_index=True)
    assert [len(f) for f in frames] == [250_000, 250_000, 100_001]
    assert frame["a"].tolist() == [str(n) for n in range(300_000)] + ["1"] + [str(n) for n in range(300_000)]
    assert frame["b"].str.len().tolist()[299_999:300_002] == [1, 6 << 20, 1]
    assert frame["_row_number"].tolist()[299_999:300_002] == [300_001, 300_002, 300_002 + (3 << 20) + 1]


def test_invalid_utf8_in_a_file_declared_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "latin.csv", "name\nJosé\n".encode("latin-1"))
    with pytest.raises(ReadError) as caught:
        open_table(path, ReadHints(encoding="utf-8"))
    assert (str(caught.value), caught.value.line) == ("latin.csv: line 2: byte 0xe9 is not valid utf-8", 2)


def test_invalid_utf8_after_the_detection_sample_fails_while_streaming(tmp_path):
    path = write(tmp_path, "late_latin.csv", b"id,name\n" + b"1,Ann\n" * 200_000 + b"2,Jos\xe9\n")
    table = open_table(path)
    assert table.detection.encoding == "utf-8"
    error = read_error(path)
    assert (str(error), error.line) == ("late_latin.csv: line 200002: byte 0xe9 is not valid utf-8", 200002)


def test_byte_undefined_in_cp1252_names_the_line(tmp_path):
    path = write(tmp_path, "win.csv", b"a,b\n1,2\n3,\x81\n")
    error = read_error(path, ReadHints(encoding="cp1252"))
    assert (str(error), error.line) == ("win.csv: line 3: byte 0x81 is not valid cp1252", 3)


def test_binary_garbage_named_csv_fails(tmp_path):
    garbage = random.Random(1).randbytes(4096)
    error = read_error(write(tmp_path, "garbage.csv", garbage))
    assert (str(error), error.line) == ("garbage.csv: binary content that is neither Parquet nor Excel", None)


@pytest.mark.parametrize(
    ("hints", "message"),
    [
        (ReadHints(delimiter=";;"), "h.csv: delimiter in hints must be one character, got ';;'"),
        (ReadHints(quotechar=""), None),  # empty means: detect
        (ReadHints(encoding="klingon"), "h.csv: unknown encoding 'klingon' in hints"),
    ],
)
def test_bad_hints_fail_as_read_errors(tmp_path, hints, message):
    path = write(tmp_path, "h.csv", "a,b\n1,2\n")
    if message is None:
        assert read_values(path, hints)[1] == {"a": ["1"], "b": ["2"], "_row_number": [2]}
    else:
        assert str(read_error(path, hints)) == message


def test_missing_file_fails(tmp_path):
    assert str(read_error(tmp_path / "missing.csv")) == "missing.csv: cannot open: No such file or directory"


# ---------------------------------------------------------------- Excel


def _workbook(path: Path) -> Path:
    """Sheet 'Orders' starts at B2 with typed cells, a blank row and awkward headers; 'Empty'; 'More'."""
    book = openpyxl.Workbook()
    orders = book.active
    orders.title = "Orders"
    header = ["id", " amount ", "when", "ok", "id", None, "t"]
    rows = [
        ["007", 1.5, datetime.datetime(2024, 1, 2, 3, 4, 5), True, 3.0, "x", datetime.time(3, 4)],
        None,
        ["x", 2.0, datetime.date(2024, 1, 2), False, 1e20, None, None],
        [None, 0.1, None, None, 12345678901234567890, None, None],
    ]
    for r, row in enumerate([header, *rows], start=2):
        for c, value in enumerate(row or [], start=2):
            orders.cell(r, c, value)
    book.create_sheet("Empty")
    more = book.create_sheet("More")
    more.append(["id", "extra"])
    more.append(["9", "e"])
    book.save(path)
    return path


def test_excel_every_sheet_as_text_with_sheet_and_row_numbers(tmp_path):
    detection, frame = read_values(_workbook(tmp_path / "book.xlsx"))
    assert frame == {
        "id": ["007", "x", None, "9"],
        "amount": ["1.5", "2", "0.1", None],
        "when": ["2024-01-02T03:04:05", "2024-01-02", None, None],
        "ok": ["TRUE", "FALSE", None, None],
        "id__2": ["3", "1e+20", "1.234567890123457e+19", None],
        "column_6": ["x", None, None, None],
        "t": ["03:04:00", None, None, None],
        "extra": [None, None, None, "e"],
        "_sheet": ["Orders", "Orders", "Orders", "More"],
        "_row_number": [3, 5, 6, 2],
    }
    assert detection == Detection(
        format="excel",
        encoding=None,
        delimiter=None,
        quotechar=None,
        header=True,
        sheets=["Orders", "More"],
        record_path=None,
        columns=["id", "amount", "when", "ok", "id__2", "column_6", "t", "extra"],
        renamed_columns={" amount ": "amount", "id": "id__2", "": "column_6"},
        evidence=[
            "zip signature 50 4B 03 04 (xlsx/ods) → excel",
            "sheet 'Orders': header: row 2 holds no numbers or dates",
            "sheet 'Orders': column 2: ' amount ' → 'amount' (surrounding whitespace)",
            "sheet 'Orders': column 5: 'id' → 'id__2' (duplicate)",
            "sheet 'Orders': column 6: '' → 'column_6' (empty header)",
            "sheet 'Empty' is empty: skipped",
            "sheet 'More': header: row 1 holds no numbers or dates",
        ],
    )


def test_excel_named_sheet_only(tmp_path):
    detection, frame = read_values(_workbook(tmp_path / "book.xlsx"), ReadHints(sheet="More"))
    assert frame == {"id": ["9"], "extra": ["e"], "_row_number": [2]}
    assert detection.sheets == ["More"]


def test_excel_sheet_without_header_and_sheet_with_header_only(tmp_path):
    book = openpyxl.Workbook()
    book.active.title = "numbers"
    book.active.append([1, "a"])
    book.active.append([2.5, "b"])
    book.create_sheet("names").append(["first", "last"])
    book.save(tmp_path / "mixed.xlsx")
    numbers = read_values(tmp_path / "mixed.xlsx", ReadHints(sheet="numbers"))
    assert numbers[1] == {"column_1": ["1", "2.5"], "column_2": ["a", "b"], "_row_number": [1, 2]}
    assert numbers[0].header is False
    names = read(tmp_path / "mixed.xlsx", ReadHints(sheet="names"))[1]
    assert [values(frame) for frame in names] == [{"first": [], "last": [], "_row_number": []}]


def _ods(path: Path) -> Path:
    """A minimal OpenDocument spreadsheet: a header, then typed cells (string, float, date, boolean, empty)."""

    def cell(kind: str, value: str) -> str:
        attribute = {"string": "", "float": f' office:value="{value}"', "date": f' office:date-value="{value}"', "boolean": f' office:boolean-value="{value}"'}[
            kind
        ]
        return f'<table:table-cell office:value-type="{kind}"{attribute}><text:p>{value}</text:p></table:table-cell>'

    rows = [
        [cell("string", "id"), cell("string", "amount"), cell("string", "day")],
        [cell("string", "007"), cell("float", "1.5"), cell("date", "2024-01-02")],
        ["<table:table-cell/>", cell("float", "3"), cell("boolean", "true")],
    ]
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content'
        ' xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Sheet1">'
        + "".join(f"<table:table-row>{''.join(row)}</table:table-row>" for row in rows)
        + "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest'
        ' xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>'
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return path


def test_ods_spreadsheet(tmp_path):
    detection, frame = read_values(_ods(tmp_path / "sheet.ods"))
    assert frame == {"id": ["007", None], "amount": ["1.5", "3"], "day": ["2024-01-02", "TRUE"], "_row_number": [2, 3]}
    assert (detection.format, detection.sheets, detection.header) == ("excel", ["Sheet1"], True)


def test_excel_missing_sheet_lists_the_sheets(tmp_path):
    error = read_error(_workbook(tmp_path / "book.xlsx"), ReadHints(sheet="Nope"))
    assert str(error) == "book.xlsx: no sheet 'Nope'; the sheets are 'Orders', 'Empty', 'More'"


def test_excel_without_any_value_fails(tmp_path):
    openpyxl.Workbook().save(tmp_path / "blank.xlsx")
    assert str(read_error(tmp_path / "blank.xlsx")) == "blank.xlsx: every sheet is empty"


def test_truncated_xlsx_fails(tmp_path):
    data = _workbook(tmp_path / "book.xlsx").read_bytes()
    path = write(tmp_path, "half.xlsx", data[: len(data) // 2])
    assert str(read_error(path)) == "half.xlsx: not a readable Excel workbook: invalid Zip archive: Could not find EOCD"


def test_text_forced_to_excel_fails(tmp_path):
    error = read_error(write(tmp_path, "plain.xlsx", "a,b\n"), ReadHints(format="excel"))
    assert str(error) == "plain.xlsx: not a readable Excel workbook: invalid Zip archive: Could not find EOCD"


# ---------------------------------------------------------------- JSON


def test_json_array_flattens_objects_and_keeps_literals(tmp_path):
    records = (
        '[{"id": "007", "amount": 1.50, "big": 12345678901234567890, "exp": 1e5, "ok": true,'
        ' "customer": {"name": "Ann", "address": {"zip": "01067"}}, "tags": [1, 2.0, {"k": null}]},'
        ' {"id": "008", "amount": -0, "ok": false, "gone": null}]'
    )
    detection, frame = read_values(write(tmp_path, "orders.json", records))
    assert frame == {
        "id": ["007", "008"],
        "amount": ["1.50", "-0"],
        "big": ["12345678901234567890", None],
        "exp": ["1e5", None],
        "ok": ["true", "false"],
        "customer__name": ["Ann", None],
        "customer__address__zip": ["01067", None],
        "tags": ['[1,2.0,{"k":null}]', None],
        "gone": [None, None],
        "_row_number": [1, 2],
    }
    assert (detection.format, detection.record_path, detection.evidence[2]) == ("json", None, "a JSON array: its elements are the records")


def test_json_object_with_a_records_list_is_found(tmp_path):
    text = '{"meta": {"count": 2}, "warnings": [], "data": [{"a": 1}, {"a": 2}], "next": null}'
    detection, frame = read_values(write(tmp_path, "api.json", text))
    assert frame == {"a": ["1", "2"], "_row_number": [1, 2]}
    assert (detection.record_path, detection.evidence[-1]) == ("data", "key 'data' holds the records")


def test_json_record_path_reaches_into_nested_objects(tmp_path):
    text = '{"result": {"page": 1, "items": [{"x": "a"}]}, "other": [{"y": 1}]}'
    detection, frame = read_values(write(tmp_path, "nested.json", text), ReadHints(record_path="result.items"))
    assert frame == {"x": ["a"], "_row_number": [1]}
    assert detection.record_path == "result.items"


def test_json_object_whose_only_list_is_empty_has_no_rows(tmp_path):
    detection, frames = read(write(tmp_path, "none.json", '{"data": []}'))
    assert [values(frame) for frame in frames] == [{"_row_number": []}]
    assert detection.record_path == "data"


def test_empty_json_array_yields_one_empty_frame(tmp_path):
    assert [values(frame) for frame in read(write(tmp_path, "e.json", "[]"))[1]] == [{"_row_number": []}]


def test_ndjson_row_numbers_are_lines(tmp_path):
    detection, frame = read_values(write(tmp_path, "events.ndjson", '{"a": 1}\n\n{"a": 2, "b": "x"}\n'))
    assert frame == {"a": ["1", "2"], "b": [None, "x"], "_row_number": [1, 3]}
    assert (detection.format, detection.evidence[2]) == ("ndjson", "one JSON object per line → ndjson")


@pytest.mark.parametrize(
    ("name", "content", "encoding"),
    [
        ("utf16.json", '[{"a": "ä"}]'.encode("utf-16"), "utf-16"),
        ("bom.ndjson", b'\xef\xbb\xbf{"a": "\xc3\xa4"}\n{"a": "b"}\n', "utf-8-sig"),
    ],
)
def test_json_with_a_bom(tmp_path, name, content, encoding):
    detection, frame = read_values(write(tmp_path, name, content))
    assert frame["a"][0] == "ä"
    assert detection.encoding == encoding


def test_json_streams_records_across_blocks(tmp_path):
    records = [{"n": n, "x": f"{n / 7:.12f}", "v": n * 1.25} for n in range(60_000)]
    path = write(tmp_path, "many.json", json.dumps(records, separators=(",", ":")))
    assert path.stat().st_size > 2 * (1 << 20)  # several 1 MiB blocks
    _, frames = read(path, chunk_rows=25_000)
    assert [len(frame) for frame in frames] == [25_000, 25_000, 10_000]
    frame = pd.concat(frames, ignore_index=True)
    assert frame["n"].tolist() == [str(n) for n in range(60_000)]
    assert frame["v"].tolist() == [repr(n * 1.25) for n in range(60_000)]
    assert frame["_row_number"].tolist() == list(range(1, 60_001))


def test_json_keys_colliding_after_stripping_are_renamed(tmp_path):
    detection, frame = read_values(write(tmp_path, "keys.json", '[{" a": 1, "a": 2}]'))
    assert frame == {"a": ["1"], "a__2": ["2"], "_row_number": [1]}
    assert detection.renamed_columns == {" a": "a", "a": "a__2"}


@pytest.mark.parametrize(
    ("name", "text", "hints", "message", "line"),
    [
        ("bad.json", '[{"a": 1},\n{"a": 2}\n{"a": 3}]', ReadHints(), "bad.json: line 3: invalid JSON: expected ',' or ']', found '{'", 3),
        ("cut.json", '[{"a": 1}, {"a": ', ReadHints(), "cut.json: line 1: invalid JSON: Expecting value", 1),
        ("more.json", '[{"a": 1}]\n[]', ReadHints(), "more.json: line 2: invalid JSON: more data after the document", 2),
        ("scalars.json", '[{"a": 1}, 2]', ReadHints(), "scalars.json: record 2 (line 1) is not a JSON object", 1),
        ("two.json", '{"a": [{"x": 1}],\n"b": [{"y": 2}]}', ReadHints(), "two.json: line 2: keys 'a' and 'b' both hold lists of objects; set record_path", 2),
        ("flat.json", '{"a": 1}', ReadHints(), "flat.json: line 1: no top-level key holds a list of objects; set record_path", 1),
        ("lost.json", '{"a": {"b": []}}', ReadHints(record_path="a.c"), "lost.json: line 1: record_path 'a.c' not found", 1),
        ("leaf.json", '{"a": {"b": 1}}', ReadHints(record_path="a.b"), "leaf.json: line 1: record_path 'a.b' does not lead to a list", 1),
        ("arr.json", "[]", ReadHints(record_path="a"), "arr.json: record_path 'a' given, but the document is an array", None),
    ],
)
def test_bad_json_fails_naming_the_line(tmp_path, name, text, hints, message, line):
    error = read_error(write(tmp_path, name, text), hints)
    assert (str(error), error.line) == (message, line)


def test_bad_ndjson_line_is_named(tmp_path):
    error = read_error(write(tmp_path, "events.ndjson", '{"a": 1}\n{"a": 2}\n{"a": 3,}\n'))
    assert (str(error), error.line) == ("events.ndjson: line 3: invalid JSON: Expecting property name enclosed in double quotes (column 9)", 3)


def test_ndjson_line_that_is_not_an_object_is_named(tmp_path):
    error = read_error(write(tmp_path, "events.jsonl", '{"a": 1}\n[1]\n'))
    assert (str(error), error.line) == ("events.jsonl: line 2 is not a JSON object", 2)


# ---------------------------------------------------------------- XML


PATIENTS = """<?xml version="1.0" encoding="UTF-8"?>
<export>
  <meta><created>2024-01-02</created></meta>
  <patients>
    <patient id="p1"><name>Ann</name><address type="home"><zip>01067</zip></address><phone>1</phone><phone>2</phone></patient>
    <patient id="p2"><name/><note>N/A</note></patient>
  </patients>
</export>
"""


def test_xml_records_are_detected_and_flattened(tmp_path):
    detection, frame = read_values(write(tmp_path, "patients.xml", PATIENTS))
    assert frame == {
        "@id": ["p1", "p2"],
        "name": ["Ann", ""],
        "address__@type": ["home", None],
        "address__zip": ["01067", None],
        "phone": ['["1","2"]', None],
        "note": [None, "N/A"],
        "_row_number": [1, 2],
    }
    assert (detection.format, detection.encoding, detection.record_path) == ("xml", "UTF-8", "export/patients/patient")
    assert detection.evidence[-2:] == [
        "the XML declaration says UTF-8",
        "<patient> repeats under export/patients: one record each",
    ]


@pytest.mark.parametrize("record_path", ["patient", "export/patients/patient", "/export/patients/patient"])
def test_xml_record_path_hint_as_tag_or_path(tmp_path, record_path):
    detection, frame = read_values(write(tmp_path, "patients.xml", PATIENTS), ReadHints(record_path=record_path))
    assert frame["_row_number"] == [1, 2]
    assert detection.record_path == record_path.strip("/")


def test_xml_namespaces_are_dropped_and_leaf_records_are_their_text(tmp_path):
    text = '<r xmlns="urn:x" xmlns:p="urn:p"><p:item p:id="1">a</p:item><p:item p:id="2">b</p:item></r>'
    detection, frame = read_values(write(tmp_path, "ns.xml", text))
    assert frame == {"@id": ["1", "2"], "item": ["a", "b"], "_row_number": [1, 2]}
    assert detection.record_path == "r/item"


def test_xml_declared_latin1_is_decoded(tmp_path):
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<rows><row><n>Müller</n></row><row><n>x</n></row></rows>'
    detection, frame = read_values(write(tmp_path, "latin.xml", text, "latin-1"))
    assert frame == {"n": ["Müller", "x"], "_row_number": [1, 2]}
    assert detection.encoding == "ISO-8859-1"


def test_xml_in_utf16_with_bom(tmp_path):
    text = '<?xml version="1.0" encoding="UTF-16"?><r><x>ä</x><x>b</x></r>'
    detection, frame = read_values(write(tmp_path, "u16.xml", text, "utf-16"))
    assert frame == {"x": ["ä", "b"], "_row_number": [1, 2]}
    assert detection.encoding == "utf-16"


def test_xml_without_repetition_is_one_record_and_empty_root_has_none(tmp_path):
    detection, frame = read_values(write(tmp_path, "one.xml", "<r><a>1</a><b><c>2</c></b></r>"))
    assert (frame, detection.record_path) == ({"a": ["1"], "b__c": ["2"], "_row_number": [1]}, "r")
    detection, frames = read(write(tmp_path, "none.xml", "<root/>"))
    assert [values(frame) for frame in frames] == [{"_row_number": []}]
    assert detection.evidence[-1] == "root <root> has no child elements: no records"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
]>
<lolz><row>&lol2;</row></lolz>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE rows [
<!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<rows><row>&xxe;</row></rows>
"""


@pytest.mark.parametrize(
    ("name", "text", "message", "line"),
    [
        ("lol.xml", BILLION_LAUGHS, "lol.xml: line 3: XML entities are forbidden (declares entity 'lol')", 3),
        ("xxe.xml", EXTERNAL_ENTITY, "xxe.xml: line 3: XML entities are forbidden (declares entity 'xxe' with SYSTEM 'file:///etc/passwd')", 3),
        ("tags.xml", "<a>\n<b>1</b>\n<b>2</c>\n</a>", "tags.xml: line 3, column 6: invalid XML: mismatched tag", 3),
        ("cut.xml", "<a><b>1</b><b>2", "cut.xml: line 1, column 15: invalid XML: no element found", 1),
    ],
)
def test_bad_xml_fails_naming_the_line(tmp_path, name, text, message, line):
    error = read_error(write(tmp_path, name, text))
    assert (str(error), error.line) == (message, line)


# ---------------------------------------------------------------- Parquet


def test_parquet_values_become_text_in_chunks_across_row_groups(tmp_path):
    table = pa.table(
        {
            "i": [1, None, -5],
            "f": [1.0, 0.1, 1e20],
            " s ": ["007", "", None],
            "ts": pa.array([datetime.datetime(2024, 1, 2, 3, 4, 5)] * 3, pa.timestamp("s")),
            "d": [datetime.date(2024, 1, 2)] * 3,
            "b": [True, False, None],
            "dec": pa.array([decimal.Decimal("1.50")] * 3, pa.decimal128(5, 2)),
            "lst": [[1, 2], [], None],
            "bin": [b"ab", b"\xff\x00", None],
            "dur": pa.array([datetime.timedelta(seconds=5)] * 3),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    detection, frames = read(tmp_path / "t.parquet", chunk_rows=2)
    assert [values(frame) for frame in frames] == [
        {
            "i": ["1", None],
            "f": ["1", "0.1"],
            "s": ["007", ""],
            "ts": ["2024-01-02T03:04:05.000"] * 2,
            "d": ["2024-01-02"] * 2,
            "b": ["true", "false"],
            "dec": ["1.50"] * 2,
            "lst": ["[1,2]", "[]"],
            "bin": ["\\x6162", "\\xff00"],
            "dur": ["P0DT0H0M5S"] * 2,
            "_row_number": [1, 2],
        },
        {
            "i": ["-5"],
            "f": ["1e+20"],
            "s": [None],
            "ts": ["2024-01-02T03:04:05.000"],
            "d": ["2024-01-02"],
            "b": [None],
            "dec": ["1.50"],
            "lst": [None],
            "bin": [None],
            "dur": ["P0DT0H0M5S"],
            "_row_number": [3],
        },
    ]
    assert detection.renamed_columns == {" s ": "s"}
    assert detection.evidence[:2] == ["magic bytes PAR1 → parquet", "3 rows in 2 row groups"]


def test_parquet_without_rows_yields_one_empty_frame(tmp_path):
    pq.write_table(pa.table({"a": pa.array([], pa.int64())}), tmp_path / "none.parquet")
    assert [values(frame) for frame in read(tmp_path / "none.parquet")[1]] == [{"a": [], "_row_number": []}]


def test_truncated_parquet_fails(tmp_path):
    pq.write_table(pa.table({"a": list(range(1000))}), tmp_path / "whole.parquet")
    data = (tmp_path / "whole.parquet").read_bytes()
    error = read_error(write(tmp_path, "half.parquet", data[: len(data) // 2]))
    assert str(error) == (
        "half.parquet: not a readable Parquet file: Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file."
    )


def test_csv_named_parquet_reads_as_csv(tmp_path):
    detection, frame = read_values(write(tmp_path, "x.parquet", "a\n1\n"))
    assert (frame, detection.format) == ({"a": ["1"], "_row_number": [2]}, "csv")


# ---------------------------------------------------------------- the error type and the module


def test_read_error_is_a_value_error_that_pickles(tmp_path):
    error = ReadError(tmp_path / "f.csv", "line 3 has 3 fields,\nthe header has 2", 3)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ValueError)
    assert (str(copy), copy.path, copy.line) == ("f.csv: line 3 has 3 fields, the header has 2", tmp_path / "f.csv", 3)


def test_readers_do_not_import_dagster():
    code = "import sys, harmonizer_pipeline.ingest.readers; print('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
