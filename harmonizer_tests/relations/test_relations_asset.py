"""keys/relations on a real pipeline: two sources whose latest files relate (orders naming
customers) and the target the customers merge into, loaded through the landing sensors and the
load jobs, merged, then the asset materialized: candidates named by source and target, their
figures, keys.foreign_keys replaced each run, missing values of a PII column masked."""

import json
from pathlib import Path

import dagster as dg
import pytest

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.relations.assets import relations_asset
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import Settings, parse_settings
from harmonizer_tests.harmonize.test_harmonize_pipeline import harmonize, land


@pytest.fixture
def names(schema) -> dict[str, str]:
    suffix = schema.removeprefix("t_")
    return {"customers": f"rc_{suffix}", "orders": f"ro_{suffix}", "target": f"rt_{suffix}"}


def make_settings(tmp_path: Path, names: dict[str, str]) -> Settings:
    for folder in ("customers", "orders"):
        (tmp_path / folder).mkdir()
    config = {
        "sources": {
            names["customers"]: {
                "landing": {"local": {"path": "customers", "glob": "*.csv"}},
                "target": names["target"],
                "mapping": {"customer": "id", "city": "town"},
            },
            names["orders"]: {"landing": {"local": {"path": "orders", "glob": "*.csv"}}},
        },
        "targets": {names["target"]: {"columns": {"customer": {"type": "text", "required": True}, "city": {}}, "key": ["customer"]}},
        "export": {"directory": str(tmp_path / "exports")},
    }
    return parse_settings(json.dumps(config), base_dir=tmp_path)


def test_candidates_between_the_latest_files_and_the_target(tmp_path, names, psql):
    settings = make_settings(tmp_path, names)
    defs = build_definitions(settings, build_resources())
    customers, orders, target = names["customers"], names["orders"], names["target"]
    with dg.instance_for_test() as instance:
        (tmp_path / "customers" / "jan.csv").write_text("id,town,email\nC1,Berlin,ann@x.org\nC2,Bonn,bob@x.org\nC3,Köln,cy@x.org\n")
        (tmp_path / "orders" / "jan.csv").write_text("order_id,customer,email\nO1,C1,ann@x.org\nO2,C2,bob@x.org\nO3,C1,ann@x.org\nO4,C9,zed@x.org\n")
        assert [r.success for r in land(defs, instance, customers)] == [True]
        assert [r.success for r in land(defs, instance, orders)] == [True]
        assert harmonize(defs, instance, target).success
        result = dg.materialize([relations_asset(settings)], instance=instance, resources=build_resources())
        again = dg.materialize([relations_asset(settings)], instance=instance, resources=build_resources())
    assert result.success and again.success
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    rows = psql(
        "SELECT from_table, from_columns, to_table, to_columns, distinct_missing, rows_violating, coverage, score, sample_missing"
        " FROM keys.foreign_keys WHERE run_id = %s ORDER BY rank",
        (again.run_id,),
    )
    # The orders' customers: in the target (ranked first, its key declared) and in the customers' file, but for C9.
    assert rows == [
        (orders, ["customer"], target, ["customer"], 1, 1, 0.666667, 0.8, ["C9"]),
        (orders, ["email"], customers, ["email"], 1, 1, 0.666667, 0.8, ["z***@x.org"]),  # PII: masked
        (customers, ["id"], target, ["customer"], 0, 0, 1.0, 0.75, []),
        (customers, ["town"], target, ["city"], 0, 0, 1.0, 0.75, []),
        (target, ["city"], customers, ["town"], 0, 0, 1.0, 0.75, []),
        (target, ["customer"], customers, ["id"], 0, 0, 1.0, 0.75, []),
        (orders, ["customer"], customers, ["id"], 1, 1, 0.666667, 0.55, ["C9"]),
    ]
    # Each run replaces the candidates.
    assert psql("SELECT DISTINCT run_id FROM keys.foreign_keys") == [(again.run_id,)]
    assert (metadata["candidates"].value, metadata["exact"].value) == (7, 4)
    table = metadata["foreign_keys"].value.splitlines()
    assert table[2] == (
        f"| {orders} | customer | {target} | customer | 66.67% | 1 | 1 | 0.800 | `- {{from: {orders}.customer, to: {target}.customer, max_violations: 1}}"
        "  # near: 1 distinct missing (C9), 1 rows violate; coverage 66.67%, score 0.800` |"
    )
    assert "zed@x.org" not in metadata["foreign_keys"].value
    assert psql("SELECT action, asset, rows_out FROM ops.audit_log WHERE run_id = %s", (again.run_id,)) == [("relations", "keys/relations", 7)]


def test_without_two_tables_nothing_is_related(tmp_path, names, psql):
    settings = make_settings(tmp_path, names)
    defs = build_definitions(settings, build_resources())
    with dg.instance_for_test() as instance:
        (tmp_path / "orders" / "jan.csv").write_text("order_id,customer\nO1,C1\n")
        assert [r.success for r in land(defs, instance, names["orders"])] == [True]
        result = defs.resolve_job_def("find_relations").execute_in_process(instance=instance)
    [event] = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["candidates"].value == 0
    assert metadata["left_out"].value == (f"{names['customers']}: no loaded file; target {names['target']}: not merged yet; fewer than two tables to relate")
