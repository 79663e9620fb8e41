"""Functional dependencies: planted ones found with their exact errors and violating rows, and the
engine against plain pandas (every reported one holds or has its stated g3, is minimal, and none
is missed) on small random frames."""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harmonizer_pipeline.relations.dependencies import (
    MAX_ERROR,
    Dependency,
    dependency_json,
    dependency_lines,
    file_dependencies,
    find_dependencies,
    violations,
)


def g3_removed(frame: pd.DataFrame, lhs: tuple[str, ...], rhs: str) -> int:
    """The rows to remove for lhs -> rhs to hold, by pandas: each LHS group keeps its most frequent RHS value (NULL a value)."""
    counts = frame.groupby(list(lhs), dropna=False)[rhs].value_counts(dropna=False)
    return len(frame) - int(counts.groupby(level=list(range(len(lhs))), dropna=False).max().sum())


def key_excess(frame: pd.DataFrame, columns: tuple[str, ...]) -> int:
    return int(frame.duplicated(list(columns)).sum())


def planted(rows: int = 3_000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zips = rng.integers(0, 60, rows)
    first, last = rng.integers(0, 30, rows), rng.integers(0, 40, rows)
    return pd.DataFrame(
        {
            "customer_id": np.arange(rows) + 10_000,
            "zip": zips.astype(str),
            "city": np.array([f"city {z % 25}" for z in range(60)])[zips],
            "first": first,
            "last": last,
            "email": [f"{f}.{la}@example.org" for f, la in zip(first, last)],
            "amount": rng.integers(0, 1_000, rows),
            "country": "NL",
        }
    )


def test_planted_exact_dependencies():
    frame = planted()
    found = find_dependencies(frame)
    exact = {(d.lhs, d.rhs) for d in found if d.exact}
    assert (("zip",), "city") in exact
    assert (("first", "last"), "email") in exact
    assert (("email",), "first") in exact and (("email",), "last") in exact
    # The key, the constant, and what the key determines are left out.
    assert all("customer_id" not in d.lhs and d.rhs not in ("customer_id", "country") for d in found)
    assert [d.exact for d in found] == sorted((d.exact for d in found), reverse=True)


def test_typos_make_an_approximate_dependency_with_its_exact_error_and_rows():
    frame = planted()
    typos = [17, 450, 2_222]
    frame.loc[typos, "city"] = ["Amsterdm", "city 3 ", None]
    frame["_row_number"] = np.arange(len(frame)) + 1
    found = find_dependencies(frame.drop(columns="_row_number"))
    zip_city = next(d for d in found if d.lhs == ("zip",) and d.rhs == "city")
    assert zip_city == Dependency(("zip",), "city", 3 / len(frame), 3, False)
    broken = violations(frame, zip_city)
    assert sorted(broken["_row_number"]) == [t + 1 for t in typos]
    assert list(broken.columns) == ["zip", "city", "majority", "_row_number"]
    for _, row in broken.iterrows():
        assert row["majority"] == planted().loc[row["_row_number"] - 1, "city"]
    # Without _row_number, the index says which rows.
    assert sorted(violations(frame.drop(columns="_row_number"), zip_city)["_row_number"]) == typos
    assert len(violations(frame, zip_city, limit=2)) == 2
    assert dependency_json([zip_city]) == [{"lhs": ["zip"], "rhs": "city", "exact": False, "error": round(3 / len(frame), 6), "violating_rows": 3}]
    assert dependency_lines([zip_city]) == ["zip -> city  (approximate: 0.10% of rows, 3 rows break it)"]


def test_a_large_file_is_searched_on_a_sample_and_measured_on_all_rows():
    # The pipeline's bound, scaled down: 3,000 rows searched on 1,000, every figure from all 3,000.
    frame = planted()
    typos = [17, 450, 2_222, 2_500]
    frame.loc[typos, "city"] = ["Amsterdm", "city 3 ", None, "x"]
    on_all = find_dependencies(frame)
    sampled = file_dependencies(frame, sample_rows=1_000)
    assert [d for d in sampled if d.exact] == [d for d in on_all if d.exact]
    for d in sampled:
        assert d.violating_rows == g3_removed(frame, d.lhs, d.rhs) and d.error == d.violating_rows / len(frame) <= MAX_ERROR
    assert Dependency(("zip",), "city", 4 / len(frame), 4, False) in sampled
    # At or under the bound, the search is find_dependencies itself.
    assert file_dependencies(frame, sample_rows=len(frame)) == on_all


def test_nulls_are_values_on_both_sides():
    frame = pd.DataFrame(
        {
            "zip": ["1000", "1000", None, None, "2000", "2000", None, "3000"],
            "city": ["Bonn", "Bonn", None, None, "Köln", "Köln", None, "Köln"],
            "street": ["a", "b", "c", "d", "e", "f", "g", "h"],
        }
    )
    # NULL zip always with NULL city: zip -> city holds exactly, NULL equal to NULL.
    assert Dependency(("zip",), "city", 0.0, 0, True) in find_dependencies(frame, max_error=0)
    # A NULL city beside "Bonn" breaks it like another city would.
    frame.loc[1, "city"] = None
    found = find_dependencies(frame, max_error=0.2)
    assert Dependency(("zip",), "city", 1 / 8, 1, False) in found
    assert list(violations(frame, found[found.index(Dependency(("zip",), "city", 1 / 8, 1, False))])["_row_number"]) == [1]


def test_columns_entirely_null_and_tiny_frames():
    frame = pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "x", "y", "y"], "empty": [None] * 4})
    assert {(d.lhs, d.rhs) for d in find_dependencies(frame)} == {(("a",), "b"), (("b",), "a")}
    assert find_dependencies(frame.iloc[:1]) == []
    assert find_dependencies(frame.iloc[:0]) == []


@st.composite
def frames(draw):
    rows = draw(st.integers(2, 40))
    columns = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["small", "nullable", "text", "derived"]))
        if kind == "derived" and columns:  # a function of an earlier column, sometimes with a typo
            source = pd.Series(columns[draw(st.sampled_from(sorted(columns)))])
            values = source.map(lambda v: hash(v) % 3).tolist()
            if draw(st.booleans()):
                values[draw(st.integers(0, rows - 1))] = 9
        elif kind == "nullable":
            values = draw(st.lists(st.one_of(st.none(), st.integers(0, 2)), min_size=rows, max_size=rows))
        elif kind == "text":
            values = draw(st.lists(st.sampled_from(["a", "b", "B", ""]), min_size=rows, max_size=rows))
        else:
            values = draw(st.lists(st.integers(0, 3), min_size=rows, max_size=rows))
        columns[f"c{i}"] = values
    return pd.DataFrame({name: pd.Series(values, dtype="object") for name, values in columns.items()})


def brute_force(frame: pd.DataFrame, max_lhs: int, max_error: float) -> set[tuple[tuple[str, ...], str, int]]:
    """Every dependency find_dependencies() should report, by trying every LHS with pandas."""
    rows, budget = len(frame), int(max_error * len(frame))
    varying = [c for c in frame.columns if frame[c].nunique(dropna=False) > 1]
    removed = {
        (lhs, a): g3_removed(frame, lhs, a) for size in range(1, max_lhs + 1) for lhs in itertools.combinations(varying, size) for a in varying if a not in lhs
    }
    found = set()
    near_keys = {lhs for lhs, _ in removed if key_excess(frame, lhs) <= budget}
    for (lhs, a), count in removed.items():
        if any(sub in near_keys for size in range(1, len(lhs) + 1) for sub in itertools.combinations(lhs, size)):
            continue  # a key or near-key LHS, or a superset of one
        subsets = [sub for size in range(1, len(lhs)) for sub in itertools.combinations(lhs, size)]
        if count == 0 and not any(removed[sub, a] == 0 for sub in subsets):
            found.add((lhs, a, 0))
        near_constant = rows - int(frame[a].value_counts(dropna=False).max()) <= budget
        if 0 < count <= budget and not near_constant and not any(removed[sub, a] <= budget for sub in subsets):
            found.add((lhs, a, count))
    return found


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.sampled_from([0.0, 0.05, 0.2]), st.integers(1, 3))
def test_the_engine_equals_pandas(frame, max_error, max_lhs):
    found = find_dependencies(frame, max_lhs=max_lhs, max_error=max_error, limit=None)
    for dependency in found:
        removed = g3_removed(frame, dependency.lhs, dependency.rhs)
        assert dependency.violating_rows == removed and dependency.error == removed / len(frame)
        assert dependency.exact == (removed == 0)
        if dependency.exact:  # holds, and no proper subset of its LHS does
            assert frame.groupby(list(dependency.lhs), dropna=False)[dependency.rhs].nunique(dropna=False).max() <= 1
            for size in range(1, len(dependency.lhs)):
                for sub in itertools.combinations(dependency.lhs, size):
                    assert frame.groupby(list(sub), dropna=False)[dependency.rhs].nunique(dropna=False).max() > 1
        else:
            assert int(violations(frame, dependency, limit=None)["_row_number"].nunique()) == removed
    assert {(d.lhs, d.rhs, d.violating_rows) for d in found} == brute_force(frame, max_lhs, max_error)


CUSTOMERS = "id,zip,city,email\n" + "".join(
    f"{n},{zip_code},{'Berln' if n == 3 else city},{city.lower()}@example.org\n"
    for n, (zip_code, city) in enumerate(
        [(z, c) for z, c in (("10115", "Berlin"), ("20095", "Hamburg"), ("50667", "Köln"), ("80331", "München")) for _ in range(5)], 1
    )
)


def relations(*args: str):
    from click.testing import CliRunner

    from harmonizer_pipeline.cli import main

    return CliRunner().invoke(main, ["relations", *args])


@pytest.fixture
def customers(tmp_path) -> Path:
    """20 customers: zip -> city but for one typo (row 3, line 4: Berln), email names the city."""
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS, encoding="utf-8")
    return path


def test_cli_fds_lines_and_masked_violations(customers):
    done = relations("--fds", "--violations", str(customers))
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines() == [
        "customers: 6 functional dependencies",
        "  city -> email  (exact)",
        "  city -> zip  (exact)",
        "  email -> zip  (exact)",
        "  zip -> email  (exact)",
        "  email -> city  (approximate: 5.00% of rows, 1 row breaks it)",
        "    row 4: email='b***@example.org': city='Berln' where most rows hold 'Berlin'",
        "  zip -> city  (approximate: 5.00% of rows, 1 row breaks it)",
        "    row 4: zip='10115': city='Berln' where most rows hold 'Berlin'",
    ]
    clear = relations("--fds", "--violations", "--show-pii", str(customers))
    assert "row 4: email='berlin@example.org'" in clear.stdout
    assert clear.stderr == "showing the values of PII columns in clear (--show-pii)\n"


def test_cli_fds_json_per_file_stem(customers, tmp_path):
    other = tmp_path / "cities.csv"
    other.write_text("city,country\nBerlin,DE\nParis,FR\nLyon,FR\n", encoding="utf-8")
    done = relations("--fds", "--json", str(customers), str(other))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert list(report) == ["dependencies"] and list(report["dependencies"]) == ["customers", "cities"]
    assert report["dependencies"]["customers"][-1] == {"lhs": ["zip"], "rhs": "city", "exact": False, "error": 0.05, "violating_rows": 1}
    assert report["dependencies"]["cities"] == []  # city is a key, country alone determines nothing exactly within 5% of 3 rows
    broken = json.loads(relations("--fds", "--json", "--violations", str(customers)).stdout)["dependencies"]["customers"][-1]
    assert broken["violations"] == [{"row": 4, "lhs": {"zip": "10115"}, "value": "Berln", "majority": "Berlin"}]


def test_cli_fds_refusals(customers):
    assert (relations("--fds").exit_code, relations("--fds").stderr) == (2, "harmonizer relations: give at least one file\n")
    alone = relations("--violations", str(customers), str(customers))
    assert (alone.exit_code, alone.stderr) == (2, "harmonizer relations: --violations goes with --fds\n")
