"""Enforced relationships (`relations:` in harmonizer.yaml) as asset checks, through Dagster's own
APIs on a real PostgreSQL: files landed by the sensor, the load job, the harmonize job. One
scenario runs once for the module (small files: airlines, weather, airports harmonized into ports,
flights harmonized into trips) and each test reads what it needs of it; and a line printed by
`harmonizer relations` pasted into harmonizer.yaml."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from click.testing import CliRunner

from harmonizer_pipeline import naming
from harmonizer_pipeline.cli import main
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.relations.enforcement import check_relation, enforced_relations
from harmonizer_pipeline.relations.settings import Relation
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import PROJECT_ROOT, parse_settings
from harmonizer_tests.harmonize.test_harmonize_pipeline import harmonize, land

FLIGHTS_SCHEMA = """\
schema_type: dataframe
columns:
  id: {dtype: str, nullable: false}
  day: {dtype: Int64, nullable: true}
coerce: true
strict: false
"""

WEATHER_SCHEMA = """\
schema_type: dataframe
columns:
  origin: {dtype: str, nullable: false}
  day: {dtype: int64, nullable: false}
coerce: true
strict: true
"""


@dataclass
class Scenario:
    names: dict[str, str]
    runs: dict[str, dg.ExecuteInProcessResult | list[dg.ExecuteInProcessResult]] = field(default_factory=dict)

    def checks(self, run: str, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
        """The check evaluations of a run on the asset (`validated/fl`, `harmonized/tr`), by check name."""
        found = self.runs[run]
        results = found if isinstance(found, list) else [found]
        return {e.check_name: e for r in results for e in r.get_asset_check_evaluations() if e.asset_key.to_user_string() == self.key(asset)}

    def key(self, asset: str) -> str:
        layer, table = asset.split("/")
        return f"{layer}/{self.names[table]}"


def _settings_text(tmp: Path, n: dict[str, str]) -> str:
    for folder in ("al", "wx", "ap", "fl", "gh"):
        (tmp / folder).mkdir()
    (tmp / "flights.yaml").write_text(FLIGHTS_SCHEMA)
    (tmp / "weather.yaml").write_text(WEATHER_SCHEMA)
    landing = {name: {"landing": {"local": {"path": name, "glob": "*.csv"}}} for name in ("al", "wx", "ap", "fl", "gh")}
    config = {
        "sources": {
            n["al"]: landing["al"],
            n["wx"]: {**landing["wx"], "schema": "weather.yaml"},
            n["ap"]: {**landing["ap"], "target": n["pt"]},
            n["fl"]: {**landing["fl"], "schema": "flights.yaml", "target": n["tr"]},
            n["gh"]: landing["gh"],
        },
        "targets": {
            n["pt"]: {"columns": {"code": {"type": "text", "required": True}, "name": {}}, "key": ["code"]},
            n["tr"]: {"columns": {"id": {"type": "text", "required": True}, "carrier": {}}, "key": ["id"]},
        },
        "privacy": {"targets": {n["tr"]: {"carrier": "other"}}},
        "export": {"directory": str(tmp / "exports")},
    }
    relations = f"""
relations:
  - {{from: {n["fl"]}.carrier, to: {n["al"]}.carrier, max_violations: 0}}
  - {{from: {{table: {n["fl"]}, columns: [origin, day]}}, to: {{table: {n["wx"]}, columns: [origin, day]}}, max_violations: 1}}
  - {{from: {n["fl"]}.origin, to: {n["pt"]}.code, blocking: true, description: Flights leave from known airports.}}
  - {{from: {n["tr"]}.carrier, to: {n["al"]}.carrier}}
  - {{from: {n["al"]}.name, to: {n["gh"]}.name}}
  - {{from: {n["fl"]}.gate, to: {n["al"]}.carrier}}
"""
    return yaml.safe_dump(config) + relations


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    suffix = uuid.uuid4().hex[:10]
    names = {short: f"{short}_{suffix}" for short in ("al", "wx", "ap", "pt", "fl", "tr", "gh")}
    tmp = tmp_path_factory.mktemp("relations")
    settings = parse_settings(_settings_text(tmp, names), base_dir=tmp)
    defs = build_definitions(settings, build_resources())
    found = Scenario(names)
    with dg.instance_for_test() as instance:
        (tmp / "al" / "airlines.csv").write_text("carrier,name\nAA,American\nUA,United\nDL,Delta\n")
        (tmp / "wx" / "weather.csv").write_text("origin,day\nJFK,1\nJFK,2\nLGA,1\n")
        (tmp / "ap" / "airports.csv").write_text("code,name\nJFK,Kennedy\nLGA,LaGuardia\n")
        found.runs["airlines"] = land(defs, instance, names["al"])
        found.runs["weather"] = land(defs, instance, names["wx"])
        found.runs["airports"] = land(defs, instance, names["ap"])
        found.runs["ports"] = harmonize(defs, instance, names["pt"])
        # Empty fields and spaces (NULL once read) are not checked; (LGA, 2) is the one
        # composite violation max_violations allows.
        (tmp / "fl" / "ok.csv").write_text('id,carrier,origin,day\n1,AA,JFK,1\n2,UA,JFK,2\n3,,LGA,\n4,"  ",LGA,1\n5,DL,,2\n6,AA,LGA,2\n')
        found.runs["ok"] = land(defs, instance, names["fl"])
        found.runs["trips"] = harmonize(defs, instance, names["tr"])
        # ZZ is no airline (line 2), (JFK, 3) and (BOS, 1) no weather, BOS no port (blocking).
        (tmp / "fl" / "bad.csv").write_text("id,carrier,origin,day\n7,ZZ,JFK,1\n8,AA,JFK,3\n9,UA,BOS,1\n")
        found.runs["bad"] = land(defs, instance, names["fl"])
        # QQ is no airline, but the check is not blocking: the row reaches trips, whose check fails.
        (tmp / "fl" / "late.csv").write_text("id,carrier,origin,day\n10,QQ,JFK,1\n")
        found.runs["late"] = land(defs, instance, names["fl"])
        found.runs["trips_late"] = harmonize(defs, instance, names["tr"])
    return found


def _records(evaluation: dg.AssetCheckEvaluation) -> list[dict]:
    table = evaluation.metadata["violating_rows"]
    assert isinstance(table, dg.TableMetadataValue)
    return [dict(record.data) for record in table.value.records]


def _figures(evaluation: dg.AssetCheckEvaluation) -> tuple:
    return evaluation.passed, evaluation.metadata["rows_violating"].value, evaluation.metadata["distinct_missing"].value


def test_exact_relations_pass_and_null_or_blank_values_never_violate(scenario, psql):
    stored = psql(f'SELECT _row_number, carrier, origin, day FROM validated."{scenario.names["fl"]}" WHERE _source_file = %s ORDER BY 1', ("ok.csv",))
    # The CSV reader reads an empty field, or one of spaces, as NULL (blank values: test_blank_values_...).
    assert stored[2:5] == [(4, None, "LGA", None), (5, None, "LGA", 1), (6, "DL", None, 2)]
    checks = scenario.checks("ok", "validated/fl")
    carrier = checks[f"relation_carrier_to_{scenario.names['al']}_carrier"]
    assert _figures(carrier) == (True, 0, 0) and _records(carrier) == []
    assert carrier.metadata["referenced_table"].value == f"validated.{scenario.names['al']}"
    assert _figures(checks[f"relation_origin_to_{scenario.names['pt']}_code"]) == (True, 0, 0)  # source -> target
    assert _figures(scenario.checks("trips", "harmonized/tr")[f"relation_carrier_to_{scenario.names['al']}_carrier"]) == (True, 0, 0)


def test_a_planted_violating_row_fails_its_check_with_exactly_that_row(scenario):
    carrier = scenario.checks("bad", "validated/fl")[f"relation_carrier_to_{scenario.names['al']}_carrier"]
    assert _figures(carrier) == (False, 1, 1)
    assert _records(carrier) == [{"_row_number": 2, "carrier": "ZZ"}]
    assert carrier.partition is not None and carrier.partition.startswith("bad.csv@")
    assert carrier.description == f"1 row(s), 1 distinct value(s) of {scenario.names['fl']}.carrier not in {scenario.names['al']}.carrier"


def test_a_composite_relation_allows_max_violations_rows(scenario):
    name = f"relation_origin_day_to_{scenario.names['wx']}_origin_day"
    allowed = scenario.checks("ok", "validated/fl")[name]
    assert _figures(allowed) == (True, 1, 1) and _records(allowed) == [{"_row_number": 7, "origin": "LGA", "day": "2"}]
    assert allowed.metadata["max_violations"].value == 1
    exceeded = scenario.checks("bad", "validated/fl")[name]
    assert _figures(exceeded) == (False, 2, 2)
    assert _records(exceeded) == [{"_row_number": 3, "origin": "JFK", "day": "3"}, {"_row_number": 4, "origin": "BOS", "day": "1"}]


def test_a_blocking_relation_stops_what_is_downstream_of_the_file(scenario, psql):
    [bad] = scenario.runs["bad"]
    blocking = scenario.checks("bad", "validated/fl")[f"relation_origin_to_{scenario.names['pt']}_code"]
    assert (blocking.passed, blocking.blocking) == (False, True)
    assert _records(blocking) == [{"_row_number": 4, "origin": "BOS"}]
    materialized = {e.asset_key.to_user_string() for e in bad.get_asset_materialization_events()}
    assert scenario.key("validated/fl") in materialized and f"staged/{scenario.names['fl']}" not in materialized
    # Its registry row says why, as for a file its schema gate blocks: it is no current file.
    [(status, error)] = psql("SELECT status, error FROM ops.file_registry WHERE source = %s AND object_key = 'bad.csv'", (scenario.names["fl"],))
    assert status == "blocked" and error.startswith(
        f"blocked by a relation of harmonizer.yaml: {scenario.names['fl']}.origin -> {scenario.names['pt']}.code: 1 row(s)"
    )
    # The file never reached trips; the non-blocking failure of late.csv let its row through.
    [late] = scenario.runs["late"]
    assert f"staged/{scenario.names['fl']}" in {e.asset_key.to_user_string() for e in late.get_asset_materialization_events()}


def test_a_target_s_relation_lists_its_violating_rows_masked_where_pii(scenario):
    carrier = scenario.checks("trips_late", "harmonized/tr")[f"relation_carrier_to_{scenario.names['al']}_carrier"]
    assert _figures(carrier) == (False, 1, 1)
    [row] = _records(carrier)
    assert (row["_source_file"], row["_row_number"]) == ("late.csv", 2)
    assert row["carrier"] != "QQ" and "*" in row["carrier"]  # privacy.targets declares trips.carrier PII


def test_a_missing_table_or_column_fails_the_check_with_one_line(scenario):
    ghost = scenario.checks("airlines", "validated/al")[f"relation_name_to_{scenario.names['gh']}_name"]
    assert not ghost.passed
    assert ghost.description == (
        f"the referenced table validated.{scenario.names['gh']} does not exist yet: no file of it was loaded (materialize validated/{scenario.names['gh']} first)"
    )
    gate = scenario.checks("ok", "validated/fl")[f"relation_gate_to_{scenario.names['al']}_carrier"]
    assert not gate.passed and "\n" not in gate.description
    assert gate.description.startswith("file ok.csv@") and f"of {scenario.names['fl']} has no column 'gate'" in gate.description


def test_the_lines_harmonizer_relations_prints_paste_into_harmonizer_yaml_as_the_same_relations(tmp_path):
    (tmp_path / "flights.csv").write_text("carrier,origin,time_hour\nAA,JFK,2013-01-01 05\nUA,LGA,2013-01-01 06\nAA,JFK,2013-01-01 07\nZZ,JFK,2013-01-01 05\n")
    (tmp_path / "airlines.csv").write_text("carrier,name\nAA,American\nUA,United\nDL,Delta\n")
    (tmp_path / "weather.csv").write_text("origin,time_hour\nJFK,2013-01-01 05\nJFK,2013-01-01 06\nLGA,2013-01-01 06\nJFK,2013-01-01 07\n")
    paths = [str(tmp_path / f"{name}.csv") for name in ("flights", "airlines", "weather")]
    printed = CliRunner().invoke(main, ["relations", *paths])
    as_json = CliRunner().invoke(main, ["relations", "--json", *paths])
    assert printed.exit_code == as_json.exit_code == 0
    candidates = json.loads(as_json.output)["foreign_keys"]
    kinds = {(c["from_table"], len(c["from_columns"]), c["rows_violating"] > 0) for c in candidates}
    assert {("flights", 1, True), ("flights", 2, False)} <= kinds  # a near one and a composite one among them
    sources = "".join(f"  {name}: {{landing: {{local: {{path: x}}}}}}\n" for name in ("flights", "airlines", "weather"))
    settings = parse_settings(f"sources:\n{sources}{printed.output}", base_dir=PROJECT_ROOT)  # the command's whole output, pasted
    assert settings.relations == [
        Relation.model_validate(
            {
                "from": {"table": c["from_table"], "columns": c["from_columns"]},
                "to": {"table": c["to_table"], "columns": c["to_columns"]},
                "max_violations": c["rows_violating"],
            }
        )
        for c in candidates
    ]


def test_blank_values_and_a_null_in_any_column_are_never_checked(psql, database_url):
    """Straight on two tables (as harmonized targets): '', spaces, a tab and NULL in any column of a
    composite are not checked (MATCH SIMPLE); values compare as text."""
    suffix = uuid.uuid4().hex[:10]
    names = {"from": f"rf_{suffix}", "to": f"rt_{suffix}"}
    psql(f'CREATE SCHEMA IF NOT EXISTS harmonized; CREATE TABLE harmonized."{names["to"]}" (a text, b bigint)')
    psql(f"INSERT INTO harmonized.\"{names['to']}\" VALUES ('x', 1), ('y', 2)")
    psql(f'CREATE TABLE harmonized."{names["from"]}" (_source_file text, _row_number bigint, a text, b text)')
    rows = [("x", "1"), ("", "9"), ("  ", "9"), ("\t", "9"), (None, "9"), ("z", None), ("z", " "), ("y", "2"), ("y", "01"), ("x", "2")]
    for number, (a, b) in enumerate(rows, start=2):
        psql(f'INSERT INTO harmonized."{names["from"]}" VALUES (%s, %s, %s, %s)', ("f.csv", number, a, b))
    columns = {"columns": {"a": {}, "b": {}}, "key": ["a"]}
    text = yaml.safe_dump(
        {
            "targets": {names["from"]: columns, names["to"]: columns},
            "relations": [{"from": {"table": names["from"], "columns": ["a", "b"]}, "to": {"table": names["to"], "columns": ["a", "b"]}}],
        }
    )
    settings = parse_settings(text, base_dir=PROJECT_ROOT)
    [enforced] = enforced_relations(settings, naming.harmonized(names["from"]))
    with psycopg.connect(database_url) as conn:
        outcome = check_relation(conn, settings, enforced)
    # '01' is not '1' as text; ('x', '2') is in neither row of the referenced table.
    assert (outcome.rows_violating, outcome.distinct_missing, outcome.passed) == (2, 2, False)
    assert outcome.rows == [{"_source_file": "f.csv", "_row_number": 10, "a": "y", "b": "01"}, {"_source_file": "f.csv", "_row_number": 11, "a": "x", "b": "2"}]
