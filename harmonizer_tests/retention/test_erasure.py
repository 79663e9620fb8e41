"""Erasure on a real pipeline: files loaded through the sensor and load jobs and harmonized, then
a file and a data subject erased from every layer; the pipeline run again brings back nothing a
new file does not bring. `harmonizer erase` refuses what it does not know in one line."""

import csv
import json

import dagster as dg
import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.resources import PostgresResource, build_resources
from harmonizer_pipeline.retention.erasure import erase_file, erase_subject
from harmonizer_pipeline.settings import CONFIG_ENV, load_settings
from harmonizer_tests.harmonize.test_harmonize_pipeline import SCHEMA, harmonize, land, make_settings, table


def rows(psql, names) -> dict[str, list]:
    a, b = names["a"], names["b"]
    return {
        "raw": psql(f'SELECT _source_file, _row_number FROM raw."{a}" UNION ALL SELECT _source_file, _row_number FROM raw."{b}" ORDER BY 1, 2'),
        "validated": psql(
            f'SELECT _source_file, _row_number FROM validated."{a}" UNION ALL SELECT _source_file, _row_number FROM validated."{b}" ORDER BY 1, 2'
        ),
        "staged": psql(f'SELECT customer, _source_file FROM staged."{a}" UNION ALL SELECT customer, _source_file FROM staged."{b}" ORDER BY 1, 2'),
        "rejected": psql("SELECT source, _row_number, check_name FROM quality.rejected_rows WHERE source IN (%s, %s) ORDER BY 1, 2", (a, b)),
        "duplicates": psql(f'SELECT customer, _source FROM harmonized."{names["target"]}_duplicate_rows" ORDER BY 1, 2'),
    }


def test_a_file_and_a_subject_leave_every_layer_and_do_not_come_back(tmp_path, names, psql):
    settings = make_settings(tmp_path, names)
    defs = build_definitions(settings, build_resources())
    a, b, target = names["a"], names["b"], names["target"]
    with dg.instance_for_test() as instance:
        (tmp_path / "b" / "feb.csv").write_text("kunde,vorname,nachname,mail\nC2,Bob,ROE,bob@roe.de\nC3,cy,,cy@x.de\n")
        assert [r.success for r in land(defs, instance, b)] == [True]
        assert harmonize(defs, instance, target).success
        (tmp_path / "a" / "jan.csv").write_text("id,full_name,mail\nC1,ann lee,ANN@X.ORG\nC2,bob roe,bob@x\n")
        assert [r.success for r in land(defs, instance, a)] == [True]
        assert harmonize(defs, instance, target).success
        assert table(psql, target) == [
            ("C1", "Ann Lee", "ann@x.org", a, "jan.csv"),
            ("C2", "Bob Roe", None, a, "jan.csv"),  # jan.csv landed later; bob@x is no email
            ("C3", "Cy", "cy@x.de", b, "feb.csv"),
        ]

        [page] = (tmp_path / "exports" / "pages" / b).glob("feb.csv@*.html")  # it quotes the file's values
        with PostgresResource().connect() as conn:
            erased = erase_file(conn, settings, b, "feb.csv", "dpo@example.org", "erase-file-1")
        assert erased.pages == [str(page)] and not page.exists()
        assert erased.lines()[-2] == f"  page {page}: deleted"
        assert erased.tables == {
            f"raw.{b}": 2, f"validated.{b}": 2, f"staged.{b}": 2, "quality.gate_results": 1, "quality.column_profiles": 4,
            "quality.column_statistics": 4, "quality.missing_patterns": 1, "quality.column_associations": 3,
            "keys.key_summary": 1, "keys.unique_keys": erased.tables["keys.unique_keys"], f"harmonized.{target} (deleted)": 1,
            f"harmonized.{target} (updated)": 1,
        }  # fmt: skip
        assert erased.tables["keys.unique_keys"] >= 1
        assert table(psql, target) == [("C1", "Ann Lee", "ann@x.org", a, "jan.csv"), ("C2", "Bob Roe", None, a, "jan.csv")]
        assert rows(psql, names) == {
            "raw": [("jan.csv", 2), ("jan.csv", 3)],
            "validated": [("jan.csv", 2), ("jan.csv", 3)],
            "staged": [("C1", "jan.csv"), ("C2", "jan.csv")],
            "rejected": [(a, 3, "harmonize:email")],
            "duplicates": [],
        }
        assert psql("SELECT object_key, status FROM ops.file_registry WHERE source = %s", (b,)) == [("feb.csv", "erased")]
        # Once more: nothing left to erase, and it says so.
        with PostgresResource().connect() as conn:
            again = erase_file(conn, settings, b, "feb.csv", "dpo@example.org", "erase-file-2")
        assert (again.tables, again.lines()) == ({}, [f"nothing to erase: file feb.csv of {b} (already erased, or never there)"])

        # The subject whose email is ann@x.org (as the target holds it; the file said ANN@X.ORG).
        with PostgresResource().connect() as conn:
            subject = erase_subject(conn, settings, target, [("email", "ann@x.org")], "dpo@example.org", "erase-subject-1")
        assert subject.tables == {f"staged.{a}": 1, f"raw.{a}": 1, f"validated.{a}": 1, f"harmonized.{target} (deleted)": 1}
        assert table(psql, target) == [("C2", "Bob Roe", None, a, "jan.csv")]
        assert rows(psql, names) == {
            "raw": [("jan.csv", 3)], "validated": [("jan.csv", 3)], "staged": [("C2", "jan.csv")], "rejected": [(a, 3, "harmonize:email")], "duplicates": [],
        }  # fmt: skip
        with PostgresResource().connect() as conn:
            assert erase_subject(conn, settings, target, [("email", "ann@x.org")], "dpo@example.org", "erase-subject-2").tables == {}

        audit = psql("SELECT run_id, action, status, launched_by, asset, file, rows_in, detail FROM ops.audit_log WHERE run_id LIKE 'erase-%%' ORDER BY id")
        assert [row[:7] for row in audit] == [
            ("erase-file-1", "erase", "done", "dpo@example.org", f"raw/{b}", "feb.csv", 22 + erased.tables["keys.unique_keys"]),
            ("erase-file-2", "erase", "nothing", "dpo@example.org", f"raw/{b}", "feb.csv", 0),
            ("erase-subject-1", "erase", "done", "dpo@example.org", f"harmonized/{target}", None, 4),
            ("erase-subject-2", "erase", "nothing", "dpo@example.org", f"harmonized/{target}", None, 0),
        ]
        # What was erased is named; the value never is.
        assert json.loads(audit[2][7])["tables"] == subject.tables and "ann@x.org" not in audit[2][7]

        # The pipeline again: the sensor loads nothing, the merge finds nothing to do, and the
        # export's change file records the erasures' deletes.
        assert land(defs, instance, a) == [] and land(defs, instance, b) == []
        assert harmonize(defs, instance, target).success
        assert table(psql, target) == [("C2", "Bob Roe", None, a, "jan.csv")]
        changes = sorted((tmp_path / "exports" / target).rglob(f"{target}_changes_*.csv"))
        recorded = [row[:2] for path in changes[-2:] for row in list(csv.reader(path.open(encoding="utf-8")))[1:]]
        assert sorted(recorded) == [["delete", "C1"], ["delete", "C3"], ["update", "C2"]]

        # A new file brings the subject back.
        (tmp_path / "a" / "apr.csv").write_text("id,full_name,mail\nC1,ann lee,ann@x.org\n")
        assert [r.success for r in land(defs, instance, a)] == [True]
        assert harmonize(defs, instance, target).success
        assert table(psql, target) == [("C1", "Ann Lee", "ann@x.org", a, "apr.csv"), ("C2", "Bob Roe", None, a, "jan.csv")]


@pytest.fixture
def erase_config(tmp_path, names, monkeypatch):
    """HARMONIZER_CONFIG names a harmonizer.yaml with the test's sources and target."""
    settings = make_settings(tmp_path, names)
    (tmp_path / "a.yaml").write_text(SCHEMA)
    path = tmp_path / "harmonizer.yaml"
    path.write_text(json.dumps(settings.model_dump(mode="json", by_alias=True, exclude_none=True)))
    monkeypatch.setenv(CONFIG_ENV, str(path))
    load_settings.cache_clear()
    yield names
    load_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--source", "nope", "--file", "x.csv"], "no source 'nope' in harmonizer.yaml (sources: {a}, {b})"),
        (["--source", "{a}", "--file", "x.csv"], "{a} has no file 'x.csv' in ops.file_registry"),
        (["--target", "nope", "--where", "email=x"], "no target 'nope' in harmonizer.yaml (targets: {target})"),
        (["--target", "{target}", "--where", "mail=x"], "--where mail=...: {target} has no column 'mail' (columns: customer, name, email)"),
        (["--target", "{target}", "--where", "email"], "--where 'email': give COLUMN=VALUE"),
        (["--source", "{a}"], "give --source and --file, or --target and --where COLUMN=VALUE"),
        (
            ["--source", "{a}", "--file", "x.csv", "--target", "{target}", "--where", "email=x"],
            "give --source and --file, or --target and --where COLUMN=VALUE",
        ),
    ],
)
def test_erase_refuses_what_it_does_not_know_in_one_line_exit_2(erase_config, args, line):
    result = CliRunner().invoke(main, ["erase", *(arg.format(**erase_config) for arg in args)])
    assert (result.exit_code, result.output) == (2, f"harmonizer erase: {line.format(**erase_config)}\n")


def test_erase_of_a_subject_nobody_holds_says_so_and_audits_who_asked(erase_config, psql):
    result = CliRunner().invoke(main, ["erase", "--target", erase_config["target"], "--where", "email=a'); DROP TABLE ops.audit_log; --", "--by", "dpo"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"nothing to erase: the rows of {erase_config['target']} where email match (already erased, or never there)"
    erasure_id = lines[1].removeprefix("recorded in ops.audit_log as ")
    assert psql("SELECT action, status, launched_by, rows_in FROM ops.audit_log WHERE run_id = %s", (erasure_id,)) == [("erase", "nothing", "dpo", 0)]
