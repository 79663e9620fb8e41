"""Export writers' fast paths against the simple, obviously right ones (hypothesis)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow as pa
import pytest
import python_calamine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from isal import isal_zlib

from harmonizer_pipeline.export import writers
from harmonizer_pipeline.export.writers import Sheet, _cut, _escaped, _inline_text, write_workbook

XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# Characters the cell text treats apart: escaped, dropped, white space, Excel's _xHHHH_ escapes.
TEXT = st.text(st.sampled_from(list("ab _x0041F&<>\r\n\t\x01\x0b\x1f\ufffeü\u00a0")), max_size=12)


def parsed_text(inner: str) -> tuple[str, bool]:
    """What an XML reader gets from `<t` + inner + `</t>`, and whether it keeps white space at the ends."""
    element = ET.fromstring(f'<t xmlns:xml="http://www.w3.org/XML/1998/namespace"{inner}</t>')
    return element.text or "", element.get(XML_SPACE) == "preserve"


@given(st.lists(st.none() | TEXT, max_size=20), st.lists(TEXT, max_size=3))
def test_inline_text_reads_back_as_the_always_escaped_and_preserved_text(values: list[str | None], before: list[str]) -> None:
    text = pa.array([*before, *values], pa.string())[len(before) :]  # a slice, as a chunk's part is
    pieces = _inline_text(text)
    inner = pieces[0] if len(pieces) == 1 else pa.array([None if v is None else pieces[0] + v for v in pieces[1].to_pylist()], pa.string())
    simple = _escaped(_cut(text))
    for fast, reference in zip(inner.to_pylist(), simple.to_pylist(), strict=True):
        if reference is None:
            assert fast is None
            continue
        content, preserved = parsed_text(fast)
        assert content == reference.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        # a reader that trims unpreserved text (calamine) must find nothing to trim
        assert preserved or content == content.strip(" \t\n\r")


@st.composite
def frames(draw) -> pd.DataFrame:
    rows = draw(st.integers(0, 12))
    column = lambda values: st.lists(values, min_size=rows, max_size=rows)  # noqa: E731
    return pd.DataFrame(
        {
            "text": pd.Series(draw(column(st.none() | TEXT)), dtype="str"),
            "count": pd.Series(draw(column(st.none() | st.integers(-(10**16), 10**16))), dtype="Int64"),
            "amount": pd.Series(draw(column(st.none() | st.floats(allow_infinity=False))), dtype="Float64"),
            "day": pd.Series(draw(column(st.none() | st.dates(dt.date(1850, 1, 1), dt.date(2100, 1, 1)))), dtype=object),
            "flag": pd.Series(draw(column(st.none() | st.booleans())), dtype="boolean"),
            "last": pd.Series(draw(column(st.none() | TEXT)), dtype="str"),
        }
    )


def read_back(path: Path) -> tuple[list[tuple], list[list]]:
    with_openpyxl = [row for sheet in openpyxl.load_workbook(path) for row in sheet.iter_rows(values_only=True)]
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    with_calamine = [row for name in book.sheet_names for row in book.get_sheet_by_name(name).to_python()]
    return with_openpyxl, with_calamine


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames(), chunk=st.integers(1, 5))
def test_workbook_typed_columns_read_back_as_their_values_cell_by_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame, chunk: int
) -> None:
    """Typed columns (vectorized; a cell names its position only after a gap) give the cells that the
    same values as Python objects give, value by value (_cell), every cell naming its position."""
    typed, objects = tmp_path / "typed.xlsx", tmp_path / "objects.xlsx"
    chunks = [frame.iloc[i : i + chunk] for i in range(0, len(frame), chunk)] or [frame]
    write_workbook(typed, [Sheet("data", chunks)], max_rows=7)
    with monkeypatch.context() as patch:
        patch.setattr(writers, "_holds_only_dates", lambda series: False)  # dates too value by value
        pieces = writers._column_pieces
        patch.setattr(writers, "_column_pieces", lambda parts, refs: (pieces(parts, refs)[0], True))
        write_workbook(objects, [Sheet("data", [frame.astype(object).where(frame.notna(), None)])], max_rows=7)
    assert read_back(typed) == read_back(objects)


@pytest.mark.parametrize("library", [isal_zlib, zlib])
@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(st.binary(max_size=300) | st.sampled_from([b"a" * 200, b"abc,def\n" * 40]), max_size=25), block=st.integers(1, 150))
def test_parallel_deflate_is_one_stream_of_the_data(library, pieces: list[bytes], block: int) -> None:
    """Blocks deflated apart (each primed with the window before it) inflate to the data, in order."""
    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=3) as pool:
        patch.setattr(writers, "deflate", library)
        patch.setattr(writers, "_DEFLATE_BLOCK", block)
        patch.setattr(writers, "_DEFLATE_WINDOW", 64)
        compressor = writers._ParallelDeflate(pool, 3)
        stream = b"".join(compressor.compress(piece) for piece in pieces) + compressor.flush()
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    assert inflater.decompress(stream) == b"".join(pieces) and inflater.eof and not inflater.unused_data


def widths(path: Path) -> list[dict[str, float]]:
    return [{key: dimension.width for key, dimension in sheet.column_dimensions.items()} for sheet in openpyxl.load_workbook(path)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames(), chunk=st.integers(1, 5), xml_rows=st.integers(1, 4))
def test_workbook_built_in_slices_is_the_workbook_built_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frame: pd.DataFrame, chunk: int, xml_rows: int
) -> None:
    """Rows built into XML a few at a time give the same cells and column widths (sampled from
    each chunk's first rows, as continuation sheets show) as each chunk built at once."""
    sliced, whole = tmp_path / "sliced.xlsx", tmp_path / "whole.xlsx"
    chunks = [frame.iloc[i : i + chunk] for i in range(0, len(frame), chunk)] or [frame]
    with monkeypatch.context() as patch:
        patch.setattr(writers, "_XML_ROWS", xml_rows)
        patch.setattr(writers, "_WIDTH_SAMPLE_ROWS", 2)
        write_workbook(sliced, [Sheet("data", chunks)], max_rows=7)
    with monkeypatch.context() as patch:
        patch.setattr(writers, "_WIDTH_SAMPLE_ROWS", 2)
        write_workbook(whole, [Sheet("data", chunks)], max_rows=7)
    assert read_back(sliced) == read_back(whole)
    assert widths(sliced) == widths(whole)
