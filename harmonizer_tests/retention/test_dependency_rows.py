"""A file's functional dependencies (keys.dependencies) and the rows breaking them
(keys.dependency_rows, which hold its values), found by keys/<source> on a real load: shown in
the materialization's metadata and on the file's page, masked; they leave with the file's
erasure, and the rows leave with its validated layer (retention)."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.reports.pages import file_page_path
from harmonizer_pipeline.resources import PostgresResource, build_resources
from harmonizer_pipeline.retention.erasure import erase_file
from harmonizer_pipeline.retention.expiry import apply_retention
from harmonizer_pipeline.settings import Settings, parse_settings
from harmonizer_tests.keys.test_keys_pipeline import land

# 20 customers, four per zip code; row 3 (line 4) misspells Berlin; each city has its office's address.
CUSTOMERS = "id,zip,city,office\n" + "".join(
    f"{n},{zip_code},{'Berln' if n == 3 else city},{city.lower()}@example.org\n"
    for n, (zip_code, city) in enumerate(
        [(z, c) for z, c in (("10115", "Berlin"), ("20095", "Hamburg"), ("50667", "Köln"), ("80331", "München")) for _ in range(5)], 1
    )
)


class Run:
    run_id, tags, parent_run_id = "dependency-rows-retention-test", {"harmonizer/launched_by": "test"}, None


def make_settings(landing: Path, source: str, **retention) -> Settings:
    text = json.dumps({
        "sources": {source: {"landing": {"local": {"path": str(landing), "glob": "*.csv"}}, "key": ["id"]}},
        "export": {"directory": str(landing / "exports")},
        "retention": retention,
    })  # fmt: skip
    return parse_settings(text, base_dir=landing)


def stored(psql, source: str) -> dict[str, list]:
    return {
        "dependencies": psql("SELECT rank, lhs, rhs, exact, error, violating_rows FROM keys.dependencies WHERE source = %s ORDER BY rank", (source,)),
        "rows": psql(
            "SELECT lhs, rhs, position, _row_number, lhs_values, value, majority_value FROM keys.dependency_rows WHERE source = %s ORDER BY position",
            (source,),
        ),
    }


def load(tmp_path: Path, settings: Settings) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings, build_resources())
    with dg.instance_for_test() as instance:
        (tmp_path / "jan.csv").write_text(CUSTOMERS, encoding="utf-8")
        run = land(defs, instance)
    assert run.success
    return run


FOUND = {
    "dependencies": [
        (1, ["city"], "office", True, 0.0, 0),
        (2, ["city"], "zip", True, 0.0, 0),
        (3, ["office"], "zip", True, 0.0, 0),
        (4, ["zip"], "office", True, 0.0, 0),
        (5, ["office"], "city", False, 0.05, 1),
        (6, ["zip"], "city", False, 0.05, 1),
    ],
    "rows": [
        (["office"], "city", 1, 4, {"office": "berlin@example.org"}, "Berln", "Berlin"),
        (["zip"], "city", 2, 4, {"zip": "10115"}, "Berln", "Berlin"),
    ],
}


def test_dependencies_are_found_shown_masked_and_erased_with_the_file(tmp_path, schema, psql):
    source = schema.replace("t_", "fd_")
    settings = make_settings(tmp_path, source)
    run = load(tmp_path, settings)
    assert stored(psql, source) == FOUND
    [keys] = [e for e in run.get_asset_materialization_events() if e.asset_key.to_user_string() == f"keys/{source}"]
    metadata = keys.materialization.metadata
    assert [(r.data["lhs"], r.data["rhs"], r.data["exact"], r.data["violating_rows"]) for r in metadata["functional_dependencies"].value.records] == [
        ("city", "office", True, 0), ("city", "zip", True, 0), ("office", "zip", True, 0), ("zip", "office", True, 0),
        ("office", "city", False, 1), ("zip", "city", False, 1),
    ]  # fmt: skip
    violations = metadata["dependency_violations"].value
    assert "| office -> city | 4 | office='b***@example.org' | 'Berln' | 'Berlin' |" in violations
    assert "| zip -> city | 4 | zip='10115' | 'Berln' | 'Berlin' |" in violations
    assert "berlin@example.org" not in violations
    partition = run.dagster_run.tags["dagster/partition"]
    page = file_page_path(settings, source, partition).read_text(encoding="utf-8")
    assert "<h2>Functional dependencies</h2>" in page and "office -&gt; city" in page
    assert "b***@example.org" in page and "berlin@example.org" not in page

    with PostgresResource().connect() as conn:
        erased = erase_file(conn, settings, source, "jan.csv", "dpo@example.org", "dependency-erasure-1")
    assert (erased.tables["keys.dependencies"], erased.tables["keys.dependency_rows"]) == (6, 2)
    assert stored(psql, source) == {"dependencies": [], "rows": []}


def test_the_rows_breaking_them_leave_with_the_validated_layer(tmp_path, schema, psql):
    source = schema.replace("t_", "fv_")
    settings = make_settings(tmp_path, source, validated=10)
    load(tmp_path, settings)
    assert stored(psql, source) == FOUND
    later = apply_retention(settings, PostgresResource().connect, Run(), dt.datetime.now(dt.UTC) + dt.timedelta(days=11))
    assert [r.file for r in later.removals] == ["jan.csv"]
    # The dependencies stay (no values); the rows holding values are gone.
    assert stored(psql, source) == {"dependencies": FOUND["dependencies"], "rows": []}
