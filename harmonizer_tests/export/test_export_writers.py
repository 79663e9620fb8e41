"""Export writers: each file is opened again with pandas / pyarrow / openpyxl and compared with the frames written."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
from b2sdk.v2 import B2Api, B2HttpApiConfig, InMemoryAccountInfo, RawSimulator

from harmonizer_pipeline.export.writers import (
    EXCEL_MAX_ROWS,
    ExportError,
    Sheet,
    export_directory,
    upload_to_b2,
    write_all,
    write_csv,
    write_parquet,
    write_workbook,
    write_zip,
)

BERLIN = "Europe/Berlin"


class OneShot:
    """Chunks that may be iterated once only: a writer that went over them twice would fail."""

    def __init__(self, *frames: pd.DataFrame) -> None:
        self.frames = frames
        self.iterated = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        assert not self.iterated, "chunks iterated twice"
        self.iterated = True
        return iter(self.frames)


def typed_frame() -> pd.DataFrame:
    """Two rows per type worth exporting, with NULLs; a DST change inside the datetimes."""
    return pd.DataFrame(
        {
            "id": pd.array([1, None, 9_007_199_254_740_993], dtype="Int64"),
            "price": [1.0, None, 2.5],
            "ok": pd.array([True, None, False], dtype="boolean"),
            "name": pd.Series(["a,b", "", None], dtype="str"),
            "day": [dt.date(2024, 1, 2), None, dt.date(2024, 12, 31)],
            "at": pd.Series(pd.to_datetime(["2024-01-02 03:04:05", None, "2024-07-01 00:00:00.5"], format="ISO8601").tz_localize(BERLIN)),
            "naive": pd.to_datetime(["2024-01-02 03:04:05", None, "2024-07-01 00:00:00"]),
        }
    )


def chunks_of(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    return (frame.iloc[i : i + size].reset_index(drop=True) for i in range(0, len(frame), size))


# CSV

CSV_TEXT = (
    '"id","price","ok","name","day","at","naive"\n'
    '1,1,true,"a,b",2024-01-02,"2024-01-02T03:04:05+01:00","2024-01-02T03:04:05"\n'
    ",,,,,,\n"
    '9007199254740993,2.5,false,,2024-12-31,"2024-07-01T00:00:00.500000+02:00","2024-07-01T00:00:00"\n'
)


@pytest.mark.parametrize("bom", [False, True])
def test_csv_bytes_and_pandas_round_trip(tmp_path: Path, bom: bool) -> None:
    frame = typed_frame()
    path = tmp_path / "out.csv"

    assert write_csv(OneShot(*chunks_of(frame, 2)), path, bom=bom) == 3

    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") is bom
    assert data.removeprefix(b"\xef\xbb\xbf").decode("utf-8") == CSV_TEXT
    back = pd.read_csv(path, encoding="utf-8-sig", dtype={"id": "Int64", "ok": "boolean", "name": "str"}, keep_default_na=True)
    assert list(back.columns) == list(frame.columns)
    assert back["id"].tolist() == frame["id"].tolist()
    assert back["price"].tolist()[::2] == [1.0, 2.5] and pd.isna(back["price"][1])
    assert back["ok"].tolist() == frame["ok"].tolist()
    # '' and NULL are both an empty field.
    assert back["name"].tolist()[0] == "a,b" and back["name"][1:].isna().all()
    assert back["day"].tolist()[::2] == ["2024-01-02", "2024-12-31"]
    at = pd.to_datetime(back["at"], format="ISO8601", utc=True).dt.tz_convert(BERLIN).astype(frame["at"].dtype)
    pd.testing.assert_series_equal(at, frame["at"])
    pd.testing.assert_series_equal(pd.to_datetime(back["naive"], format="ISO8601").astype(frame["naive"].dtype), frame["naive"])


def test_csv_zero_rows_writes_the_header_only(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    assert write_csv(OneShot(typed_frame().iloc[:0]), path, delimiter=";") == 0
    assert path.read_text(encoding="utf-8") == '"id";"price";"ok";"name";"day";"at";"naive"\n'


def test_csv_delimiter_nested_and_mixed_objects(tmp_path: Path) -> None:
    first = pd.DataFrame({"k": [1, 2], "v": pd.Series([[1, "x"], {"a": None}], dtype=object)})
    second = pd.DataFrame({"k": [3, 4], "v": pd.Series([7, 'text;with "quotes"'], dtype=object)})
    path = tmp_path / "nested.csv"

    assert write_csv(OneShot(first, second), path, delimiter=";") == 4

    assert path.read_text(encoding="utf-8") == ('"k";"v"\n1;"[1, ""x""]"\n2;"{""a"": null}"\n3;"7"\n4;"text;with ""quotes"""\n')


def test_csv_chunk_with_other_columns_fails_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    with pytest.raises(ExportError, match=r"bad\.csv.*columns \['b'\]"):
        write_csv(OneShot(pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [2]})), path)
    assert list(tmp_path.iterdir()) == []


# Parquet


def test_parquet_round_trip_exact(tmp_path: Path) -> None:
    frame = typed_frame()
    path = tmp_path / "out.parquet"

    assert write_parquet(OneShot(*chunks_of(frame, 2)), path) == 3

    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_parquet_all_null_object_chunk_is_cast_to_the_first_schema(tmp_path: Path) -> None:
    first = pd.DataFrame({"k": [1, 2], "s": pd.Series(["x", ""], dtype="str")})
    second = pd.DataFrame({"k": [3], "s": pd.Series([None], dtype=object)})
    path = tmp_path / "nulls.parquet"

    assert write_parquet(OneShot(first, second), path) == 3

    expected = pd.DataFrame({"k": [1, 2, 3], "s": pd.Series(["x", "", None], dtype="str")})
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected)
    assert str(pq.read_schema(path).field("s").type) == "large_string"


def test_parquet_chunk_that_does_not_fit_names_file_and_column(tmp_path: Path) -> None:
    first = pd.DataFrame({"k": [1]})
    second = pd.DataFrame({"k": ["not a number"]})
    with pytest.raises(ExportError, match=r"bad\.parquet: column 'k': large_string does not fit the first chunk's int64"):
        write_parquet(OneShot(first, second), tmp_path / "bad.parquet")
    assert list(tmp_path.iterdir()) == []


def test_parquet_zero_rows_keeps_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    frame = typed_frame().iloc[:0]
    assert write_parquet(OneShot(frame), path) == 0
    back = pd.read_parquet(path)
    assert len(back) == 0 and back.dtypes.to_dict() == frame.dtypes.to_dict()


# Excel


def rows_of(worksheet) -> list[tuple]:
    return list(worksheet.iter_rows(values_only=True))


def as_excel_reads(text: str) -> str:
    """Excel's _xHHHH_ escapes (XlsxWriter writes them for \r and literal "_x...", openpyxl leaves them)."""
    return re.sub(r"_x([0-9A-F]{4})_", lambda match: chr(int(match[1], 16)), text)


def test_workbook_typed_cells_header_and_widths(tmp_path: Path) -> None:
    frame = typed_frame()
    frame["nested"] = pd.Series([[1, 2], {"a": "ü"}, None], dtype=object)
    frame["early"] = [dt.date(1850, 1, 1), None, dt.date(1900, 1, 1)]
    path = tmp_path / "out.xlsx"

    written = write_workbook(path, [Sheet("data", OneShot(*chunks_of(frame, 2))), Sheet("empty", OneShot(frame.iloc[:0]))])

    assert written == {"data": 3, "empty": 0}
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["data", "empty"]
    sheet = book["data"]
    assert rows_of(sheet) == [
        ("id", "price", "ok", "name", "day", "at", "naive", "nested", "early"),
        (1, 1, True, "a,b", dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, 2, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5), "[1, 2]", "1850-01-01"),
        (None, None, None, "", None, None, None, '{"a": "ü"}', None),
        # beyond Excel's 15 digits: text, not a rounded number; tz-aware: UTC
        (
            "9007199254740993",
            2.5,
            False,
            None,
            dt.datetime(2024, 12, 31),
            dt.datetime(2024, 6, 30, 22, 0, 0, 500000),
            dt.datetime(2024, 7, 1),
            None,
            dt.datetime(1900, 1, 1),
        ),
    ]
    assert type(sheet["A2"].value) is int and type(sheet["C2"].value) is bool
    assert sheet["E2"].number_format == "yyyy-mm-dd" and sheet["F2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:I4"
    assert all(cell.font.b for cell in sheet[1]) and not sheet["A2"].font.b
    # width = longest of header (+ filter button) and values, + 1, clamped to 8..60
    assert sheet.column_dimensions["F"].width == pytest.approx(20 + 0.71, abs=0.01)  # "yyyy-mm-dd hh:mm:ss" + 1
    assert sheet.column_dimensions["H"].width == pytest.approx(11 + 0.71, abs=0.01)  # '{"a": "ü"}' + 1
    empty = book["empty"]
    assert rows_of(empty) == [("id", "price", "ok", "name", "day", "at", "naive", "nested", "early")]
    assert empty.freeze_panes == "A2" and empty["A1"].font.b


def test_workbook_splits_at_max_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(12), "s": [f"row {i}" for i in range(12)]})
    path = tmp_path / "split.xlsx"

    written = write_workbook(path, [Sheet("data", OneShot(*chunks_of(frame, 5))), Sheet("other", OneShot(frame.iloc[:4]))], max_rows=5)

    assert written == {"data": 4, "data (2)": 4, "data (3)": 4, "other": 4}
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["data", "data (2)", "data (3)", "other"]
    for index, name in enumerate(["data", "data (2)", "data (3)"]):
        sheet = book[name]
        assert rows_of(sheet) == [("n", "s"), *((i, f"row {i}") for i in range(index * 4, index * 4 + 4))]
        assert sheet.freeze_panes == "A2" and sheet["A1"].font.b and sheet.auto_filter.ref == "A1:B5"


def test_workbook_split_exactly_full_opens_no_empty_sheet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(8)})
    assert write_workbook(tmp_path / "full.xlsx", [Sheet("data", OneShot(frame))], max_rows=5) == {"data": 4, "data (2)": 4}


def test_workbook_strings_excel_cannot_hold(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": pd.Series(["a\x00b\x07c\td\ne\rf\x1f", "x" * 40_000, "=1+1"], dtype="str"),
            "objects": pd.Series(["\x0bv\ud800", 3.5, "_x0041_"], dtype=object),
        }
    )
    path = tmp_path / "strings.xlsx"

    write_workbook(path, [Sheet("data", OneShot(frame))])

    sheet = openpyxl.load_workbook(path)["data"]
    values = rows_of(sheet)
    assert tuple(map(as_excel_reads, values[1])) == ("abc\td\ne\rf", "v")
    assert values[2] == ("x" * 32_767, 3.5)
    assert (values[3][0], sheet["A4"].data_type) == ("=1+1", "s")  # a string, never a formula
    assert as_excel_reads(values[3][1]) == "_x0041_"


def test_workbook_sheet_names_sanitized_and_unique(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": [1]})
    names = ["a/b:c*d?e[f]g\\h", "'quoted'", "A_B_C_D_E_F_G_H", "x" * 40, "X" * 40, "", "da:ta"]
    path = tmp_path / "names.xlsx"

    written = write_workbook(path, [Sheet(name, OneShot(frame)) for name in names])

    expected = ["a_b_c_d_e_f_g_h", "quoted", "A_B_C_D_E_F_G_H (2)", "x" * 31, "X" * 27 + " (2)", "Sheet", "da_ta"]
    assert list(written) == expected
    assert openpyxl.load_workbook(path).sheetnames == expected


def test_workbook_long_name_continues_within_31_characters(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(3)})
    written = write_workbook(tmp_path / "long.xlsx", [Sheet("y" * 31, OneShot(frame))], max_rows=2)
    assert written == {"y" * 31: 1, "y" * 27 + " (2)": 1, "y" * 27 + " (3)": 1}


def test_workbook_rejects_impossible_max_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_rows"):
        write_workbook(tmp_path / "x.xlsx", [], max_rows=EXCEL_MAX_ROWS + 1)


def test_workbook_failing_sheet_names_file_and_sheet(tmp_path: Path) -> None:
    def broken() -> Iterator[pd.DataFrame]:
        yield pd.DataFrame({"n": [1]})
        raise ValueError("the database went away")

    path = tmp_path / "broken.xlsx"
    with pytest.raises(ExportError, match=r"broken\.xlsx, sheet 'second': the database went away"):
        write_workbook(path, [Sheet("first", OneShot(pd.DataFrame({"n": [1]}))), Sheet("second", broken())])
    assert list(tmp_path.iterdir()) == []


# ZIP, directory, B2


def test_zip_holds_exactly_the_files(tmp_path: Path) -> None:
    first = export_directory(tmp_path, "patients", dt.date(2026, 11, 3))
    assert first == tmp_path / "patients" / "2026-11-03" and first.is_dir()
    a, b, c = first / "a.csv", tmp_path / "b.bin", tmp_path / "c.parquet"
    a.write_text("x,y\n1,2\n")
    b.write_bytes(bytes(range(256)) * 100)
    c.write_bytes(b"PAR1" * 10)
    zip_path = first / "export.zip"

    assert write_zip([a, b, c], zip_path) == zip_path

    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == ["a.csv", "b.bin", "c.parquet"]
        # Parquet (and xlsx) are compressed already: stored as they are.
        assert [info.compress_type for info in archive.infolist()] == [zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]
        assert [archive.read(name) for name in ("a.csv", "b.bin", "c.parquet")] == [a.read_bytes(), b.read_bytes(), c.read_bytes()]


def test_zip_refuses_two_files_of_one_name(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    for path in (tmp_path / "a.csv", tmp_path / "x" / "a.csv"):
        path.write_text("1")
    with pytest.raises(ExportError, match="more than one file named a.csv"):
        write_zip([tmp_path / "a.csv", tmp_path / "x" / "a.csv"], tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


@pytest.fixture
def b2():
    api = B2Api(InMemoryAccountInfo(), api_config=B2HttpApiConfig(_raw_api_class=RawSimulator))
    key_id, key = api.session.raw_api.create_account()
    api.authorize_account("production", key_id, key)
    return api, api.create_bucket("exports", "allPrivate"), (key_id, key)


def downloaded(bucket, name: str) -> bytes:
    out = io.BytesIO()
    bucket.download_file_by_name(name).save(out)
    return out.getvalue()


@pytest.mark.parametrize(("prefix", "folder"), [("exports/patients/", "exports/patients/"), ("", "")])
def test_upload_to_b2(tmp_path: Path, b2, prefix: str, folder: str) -> None:
    _, bucket, _ = b2
    files = [tmp_path / "a.csv", tmp_path / "b.parquet"]
    files[0].write_text("a\n1\n")
    files[1].write_bytes(b"PAR1\x00\x01")

    assert upload_to_b2(bucket, prefix, files) == [f"{folder}a.csv", f"{folder}b.parquet"]

    assert sorted(version.file_name for version, _ in bucket.ls(recursive=True)) == [f"{folder}a.csv", f"{folder}b.parquet"]
    assert [downloaded(bucket, f"{folder}{f.name}") for f in files] == [f.read_bytes() for f in files]


def test_upload_errors_name_file_and_bucket_not_credentials(tmp_path: Path, b2) -> None:
    api, bucket, credentials = b2
    with pytest.raises(ExportError, match=r"missing\.csv to b2://exports/out/missing\.csv failed") as missing:
        upload_to_b2(bucket, "out", [tmp_path / "missing.csv"])
    present = tmp_path / "present.csv"
    present.write_text("1")
    api.delete_bucket(bucket)
    with pytest.raises(ExportError, match=r"present\.csv to b2://exports/out/present\.csv failed") as deleted:
        upload_to_b2(bucket, "out", [present])
    for error in (missing.value, deleted.value):
        assert not any(secret in str(error) for secret in credentials)


# One read, several files


def test_write_all_gives_every_writer_the_same_chunks_read_once(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(10), "s": [f"r{i}" for i in range(10)]})
    csv, parquet, xlsx = tmp_path / "a.csv", tmp_path / "a.parquet", tmp_path / "a.xlsx"
    results = write_all(
        OneShot(*chunks_of(frame, 3)),
        [lambda chunks: write_csv(chunks, csv), lambda chunks: write_parquet(chunks, parquet), lambda chunks: write_workbook(xlsx, [Sheet("data", chunks)])],
    )
    assert results == [10, 10, {"data": 10}]
    assert pd.read_csv(csv).equals(frame) and pd.read_parquet(parquet).astype({"s": object}).equals(frame.astype({"s": object}))


def test_write_all_raises_a_failing_writer_error_after_the_others_finish(tmp_path: Path) -> None:
    frame = pd.DataFrame({"n": range(10)})

    def fails(chunks):
        next(iter(chunks))
        raise ExportError("disk full")

    csv = tmp_path / "ok.csv"
    with pytest.raises(ExportError, match="disk full"):
        write_all(OneShot(*chunks_of(frame, 1)), [fails, lambda chunks: write_csv(chunks, csv)])
    assert pd.read_csv(csv)["n"].tolist() == list(range(10))


def test_write_all_ends_the_writers_when_reading_fails(tmp_path: Path) -> None:
    def broken():
        yield pd.DataFrame({"n": [1]})
        raise OSError("the database went away")

    with pytest.raises(OSError, match="the database went away"):
        write_all(broken(), [lambda chunks: write_csv(chunks, tmp_path / "a.csv")])
    assert not (tmp_path / "a.csv").exists()
