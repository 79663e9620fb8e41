"""The delimited-text reader keeps every value as written and names the file on bad input."""

import pytest

from harmonizer_pipeline.ingest.readers import ReadError, read_delimited_text


def test_values_stay_text_exactly_as_written(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id;amount;note\n007;1.234,50;N/A\n008;;"a;b"\n', encoding="utf-8")
    frame = read_delimited_text(path, delimiter=";")
    assert frame.to_dict("list") == {
        "id": ["007", "008"],
        "amount": ["1.234,50", ""],
        "note": ["N/A", "a;b"],
        "_source_file": ["in.csv", "in.csv"],
        "_row_number": [2, 3],
    }


def test_undecodable_bytes_name_the_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    with pytest.raises(ReadError, match=r"^latin.csv: 'utf-8' codec can't decode byte 0xe9"):
        read_delimited_text(path)


def test_empty_file_names_the_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ReadError, match=r"^empty.csv: No columns to parse from file"):
        read_delimited_text(path)


def test_ragged_rows_name_the_file_and_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(ReadError, match=r"^ragged.csv: Error tokenizing data. C error: Expected 2 fields in line 3, saw 3"):
        read_delimited_text(path)
