"""The differences comparisons keep (keys.comparison_rows, keys.file_comparisons) hold values of
both files compared: they leave with either file's validated layer (retention) and with either
file's erasure."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.resources import PostgresResource, build_resources
from harmonizer_pipeline.retention.erasure import erase_file
from harmonizer_pipeline.retention.expiry import apply_retention
from harmonizer_pipeline.settings import Settings, parse_settings
from harmonizer_tests.keys.test_keys_pipeline import compare_files, land


class Run:
    """The run of these tests' retention calls (its own id: other tests read their audit rows by theirs)."""

    run_id, tags, parent_run_id = "comparison-rows-retention-test", {"harmonizer/launched_by": "test"}, None


def make_settings(landing: Path, source: str, **retention) -> Settings:
    text = json.dumps({"sources": {source: {"landing": {"local": {"path": str(landing), "glob": "*.csv"}}, "key": ["id"]}}, "retention": retention})
    return parse_settings(text, base_dir=landing)


def differences(psql, source: str) -> dict[str, list]:
    return {
        "rows": psql(
            "SELECT r.kind, r.key_values FROM keys.comparison_rows r WHERE r.source = %s ORDER BY r.comparison_id, r.kind, r.key_values::text", (source,)
        ),
        "file_comparisons": psql("SELECT count(*) FROM keys.file_comparisons WHERE source = %s", (source,)),
    }


def load_three_and_compare(tmp_path: Path, settings: Settings, source: str) -> None:
    """jan, feb, mar: each against the one before it (the comparison asset), and jan against mar (the job)."""
    defs = build_definitions(settings, build_resources())
    with dg.instance_for_test() as instance:
        for name, rows in (("jan.csv", "1,a\n2,b\n"), ("feb.csv", "1,a\n3,c\n"), ("mar.csv", "1,x\n3,c\n")):
            (tmp_path / name).write_text("id,v\n" + rows)
            assert land(defs, instance).success
        assert compare_files(defs, instance, source=source, file_a="jan.csv", file_b="mar.csv").success


LOADED = [
    ("added", {"id": "3"}), ("removed", {"id": "2"}),  # feb against jan
    ("changed", {"id": "1"}),  # mar against feb
    ("added", {"id": "3"}), ("changed", {"id": "1"}), ("removed", {"id": "2"}),  # the job: jan against mar
]  # fmt: skip


def test_erasing_a_file_removes_the_differences_it_is_either_side_of(tmp_path, schema, psql):
    source = schema.replace("t_", "cr_")
    settings = make_settings(tmp_path, source)
    load_three_and_compare(tmp_path, settings, source)
    assert differences(psql, source) == {"rows": LOADED, "file_comparisons": [(1,)]}
    with PostgresResource().connect() as conn:
        erased = erase_file(conn, settings, source, "jan.csv", "dpo@example.org", "compared-file-erasure-1")
    # jan was A of feb's comparison and of the job's: both go, mar's comparison with feb stays.
    assert {t: n for t, n in erased.tables.items() if t.startswith("keys.") and "compar" in t} == {
        "keys.comparisons": 1, "keys.file_comparisons": 1, "keys.comparison_rows": 5,
    }  # fmt: skip
    assert differences(psql, source) == {"rows": [("changed", {"id": "1"})], "file_comparisons": [(0,)]}


def test_retention_of_the_validated_layer_takes_the_differences_of_the_file_along(tmp_path, schema, psql):
    source = schema.replace("t_", "cv_")
    settings = make_settings(tmp_path, source, validated=10)
    load_three_and_compare(tmp_path, settings, source)
    later = apply_retention(settings, PostgresResource().connect, Run(), dt.datetime.now(dt.UTC) + dt.timedelta(days=11))
    assert sorted(r.file for r in later.removals) == ["feb.csv", "jan.csv", "mar.csv"]
    # The counts of each comparison stay (no values); the rows holding values are gone.
    assert differences(psql, source) == {"rows": [], "file_comparisons": [(1,)]}
