"""`harmonizer compare FILE_A FILE_B` and `harmonizer keys FILE --violations` through the real
command: counts, per-column counts, schema differences, the difference files, PII masked unless
--show-pii, the key's default, and bad input as one line with exit 2."""

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.settings import CONFIG_ENV, load_settings

BEFORE = "id,name,email,amount\n1,Ann,ann@example.org,10\n2,Bob,bob@example.org,20\n3,Cy,cy@example.org,30\n4,Di,,40\n"
AFTER = "id,name,email,amount,zip\n1,Ann,ann@example.org,10,1\n2,Bobby,bob@example.org,20.5,2\n3,Cy,cy@example.net,30,3\n5,Ed,ed@example.org,50,5\n"


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    (tmp_path / "jan.csv").write_text(BEFORE)
    (tmp_path / "feb.csv").write_text(AFTER)
    return tmp_path / "jan.csv", tmp_path / "feb.csv"


@pytest.fixture(autouse=True)
def fresh_settings():
    load_settings.cache_clear()
    yield
    load_settings.cache_clear()


def compare(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, ["compare", *args], env=env)


def test_compare_prints_counts_per_column_counts_and_schema_differences(files):
    done = compare(*map(str, files))
    assert (done.exit_code, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "jan.csv (4 rows) -> feb.csv (4 rows)",
        "key: id (suggested for FILE_B: smallest exact key without NULLs, identifier-like names)",
        "added 1, removed 1, changed 2, unchanged 1",
        "changed rows per column:",
        "  name    1",
        "  email   1",
        "  amount  1",
        "columns added: zip",
        "columns removed: (none)",
        "columns retyped: amount (integer -> decimal)",
    ]


def test_compare_json_has_integer_counts_and_writes_the_difference_files_masked(files, tmp_path):
    out = tmp_path / "diff"
    done = compare(*map(str, files), "--json", "-o", str(out))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert {k: report[k] for k in ("added", "removed", "changed", "unchanged", "changed_columns")} == {
        "added": 1, "removed": 1, "changed": 2, "unchanged": 1, "changed_columns": {"name": 1, "email": 1, "amount": 1},
    }  # fmt: skip
    assert all(type(report[k]) is int for k in ("added", "removed", "changed", "unchanged"))
    assert (report["added_columns"], report["removed_columns"]) == (["zip"], [])
    assert report["retyped_columns"] == [{"column": "amount", "type_a": "integer", "type_b": "decimal"}]
    assert report["files"] == {str(out / "added.csv"): 1, str(out / "removed.csv"): 1, str(out / "changed.csv"): 3}

    def rows(name: str) -> list[list[str]]:
        with open(out / name, newline="", encoding="utf-8") as handle:
            return list(csv.reader(handle))

    # e-mail is PII (the profile's detector): masked in every file, before and after alike.
    assert rows("added.csv") == [["id", "name", "email", "amount", "zip"], ["5", "Ed", "e***@example.org", "50", "5"]]
    assert rows("removed.csv") == [["id", "name", "email", "amount"], ["4", "Di", "", "40"]]
    assert rows("changed.csv") == [
        ["id", "column", "before", "after"],
        ["2", "name", "Bob", "Bobby"],
        ["3", "email", "c***@example.org", "c***@example.net"],
        ["2", "amount", "20", "20.5"],
    ]


def test_show_pii_writes_and_prints_values_in_clear_and_says_so(files, tmp_path):
    out = tmp_path / "clear"
    done = compare(*map(str, files), "-o", str(out), "--show-pii")
    assert done.stderr == "showing the values of PII columns in clear (--show-pii)\n"
    assert done.stdout.splitlines()[-3:] == [
        f"wrote {out / 'added.csv'} (1 rows)",
        f"wrote {out / 'removed.csv'} (1 rows)",
        f"wrote {out / 'changed.csv'} (3 rows)",
    ]
    assert (out / "changed.csv").read_text().splitlines()[2] == '"3","email","cy@example.org","cy@example.net"'


def test_the_key_defaults_to_the_key_declared_for_the_files_source(files, tmp_path):
    config = tmp_path / "harmonizer.yaml"
    config.write_text(json.dumps({"sources": {"clinic": {"landing": {"local": {"path": str(tmp_path), "glob": "*.csv"}}, "key": ["name"]}}}))
    done = compare(*map(str, files), "--json", env={CONFIG_ENV: str(config)})
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert (report["key"], report["key_reason"]) == (["name"], "declared for source clinic in harmonizer.yaml")
    assert {k: report[k] for k in ("added", "removed", "changed", "unchanged")} == {"added": 2, "removed": 2, "changed": 1, "unchanged": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--key", "nope"], "harmonizer compare: jan.csv: no key column 'nope' (its columns: id, name, email, amount)"),
        (["--key", "id,,name"], "harmonizer compare: --key 'id,,name': give column names separated by commas"),
        (["--key", "zip"], "harmonizer compare: jan.csv: no key column 'zip' (its columns: id, name, email, amount)"),
    ],
)
def test_a_key_that_does_not_fit_exits_2_with_one_line(files, args, message):
    done = compare(*map(str, files), *args)
    assert (done.exit_code, done.stdout, done.stderr) == (2, "", message + "\n")


def test_a_repeating_key_names_the_key_and_a_masked_example(tmp_path):
    (tmp_path / "a.csv").write_text("email,v\nann@example.org,1\nbob@example.org,2\n")
    (tmp_path / "b.csv").write_text("email,v\nann@example.org,1\nann@example.org,2\nbob@example.org,3\n")
    done = compare(str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--key", "email")
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr == (
        "harmonizer compare: b.csv: key (email) is not unique: 2 rows have email='a***@example.org' (1 key value(s) repeat, in 2 rows);"
        " choose another key with --key\n"
    )
    shown = compare(str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--key", "email", "--show-pii")
    assert "2 rows have email='ann@example.org'" in shown.stderr


@pytest.mark.parametrize(
    ("name_a", "content_a", "message"),
    [
        ("missing.csv", None, "missing.csv: cannot open: No such file or directory"),
        ("ragged.csv", "a,b\n1,2\n3,4,5\n", "ragged.csv: line 3 has 3 fields, the header has 2"),
    ],
)
def test_an_unreadable_file_exits_2_with_the_readers_line(files, tmp_path, name_a, content_a, message):
    if content_a is not None:
        (tmp_path / name_a).write_text(content_a)
    done = compare(str(tmp_path / name_a), str(files[1]))
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr.startswith(message) and len(done.stderr.splitlines()) == 1


def test_an_output_folder_that_cannot_be_made_exits_2_naming_it(files, tmp_path):
    (tmp_path / "taken").write_text("")
    done = compare(*map(str, files), "-o", str(tmp_path / "taken" / "diff"))
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr == f"harmonizer compare: [Errno 20] Not a directory: '{tmp_path / 'taken' / 'diff'}'\n"
    on_a_file = compare(*map(str, files), "-o", str(tmp_path / "taken"))
    assert on_a_file.exit_code == 2 and on_a_file.stderr.endswith(f"Error: Invalid value for '-o' / '--output': Directory '{tmp_path / 'taken'}' is a file.\n")


def test_keys_violations_lists_the_rows_breaking_each_near_key_masked(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text(
        "id,name,email,city\n1,Ann,ann@example.org,B\n2,Bob,bob@example.org,K\n3,Ann,cy@example.org,B\n4,Di,ann@example.org,K\n5,Ed,ed@example.org,B\n"
    )
    done = CliRunner().invoke(main, ["keys", str(path), "--violations"])
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[4:9] == [
        "  near-key  email: 80.00% unique, 1 repeated rows",
        "    group 1: email='a***@example.org'  rows 2, 5",
        "  near-key  name: 80.00% unique, 1 repeated rows",
        "    group 1: name='Ann'  rows 2, 4",
        "suggested key: id (smallest exact key without NULLs, identifier-like names)",
    ]
    shown = CliRunner().invoke(main, ["keys", str(path), "--violations", "--json", "--show-pii"])
    near = json.loads(shown.stdout)["near_keys"]
    assert [(k["columns"], k["violations"]) for k in near] == [
        (["email"], [{"group": 1, "values": {"email": "ann@example.org"}, "rows": [2, 5]}]),
        (["name"], [{"group": 1, "values": {"name": "Ann"}, "rows": [2, 4]}]),
    ]
    plain = CliRunner().invoke(main, ["keys", str(path), "--json"])
    assert "violations" not in json.loads(plain.stdout)["near_keys"][0]


def test_keys_violations_with_nulls_distinct_leaves_rows_with_null_out(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps([{"id": 1, "code": None}, {"id": 2, "code": None}, {"id": 3, "code": "a"}, {"id": 4, "code": "a"}, {"id": 5, "code": "b"}]))
    done = CliRunner().invoke(main, ["keys", str(path), "--violations", "--nulls-distinct", "--json"])
    near = {tuple(k["columns"]): k["violations"] for k in json.loads(done.stdout)["near_keys"]}
    assert near[("code",)] == [{"group": 1, "values": {"code": "a"}, "rows": [3, 4]}]


def test_keys_violations_of_an_unreadable_file_exits_2_with_one_line(tmp_path):
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    done = CliRunner().invoke(main, ["keys", str(tmp_path / "ragged.csv"), "--violations"])
    assert (done.exit_code, done.stdout) == (2, "")
    assert done.stderr.startswith("ragged.csv: line 3 has 3 fields, the header has 2") and len(done.stderr.splitlines()) == 1
