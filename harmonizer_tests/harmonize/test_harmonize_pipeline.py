"""harmonized/<target> and export/<target> through Dagster's own APIs: files landed by the
sensor, the load job, then the harmonize job; B2 through b2sdk's RawSimulator."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.settings import Settings, parse_settings
from harmonizer_tests.automation_ticks import AutomationTicks
from harmonizer_tests.ingest.test_ingest_pipeline import simulated_b2

SCHEMA = """\
schema_type: dataframe
version: 0.22.0
columns:
  id: {dtype: str, nullable: false, checks: {str_matches: '^C\\d+$'}}
coerce: true
strict: false
"""


@pytest.fixture
def names(schema) -> dict[str, str]:
    suffix = schema.removeprefix("t_")
    return {"a": f"ha_{suffix}", "b": f"hb_{suffix}", "target": f"hp_{suffix}"}


def make_settings(tmp_path: Path, names: dict[str, str], *, survivorship: str = "latest_file", export: dict | None = None, **sections) -> Settings:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)
    (tmp_path / "a.yaml").write_text(SCHEMA)
    config = {
        "sources": {
            names["a"]: {
                "landing": {"local": {"path": "a", "glob": "*.csv"}},
                "schema": "a.yaml",
                "target": names["target"],
                "mapping": {"customer": "id", "name": "full_name", "email": "mail"},
            },
            names["b"]: {
                "landing": {"local": {"path": "b", "glob": "*.csv"}},
                "target": names["target"],
                "mapping": {"customer": "kunde", "name": {"combine": ["vorname", "nachname"]}, "email": "mail"},
            },
        },
        "targets": {
            names["target"]: {
                "columns": {"customer": {"type": "text", "required": True}, "name": {"rules": ["person_name"]}, "email": {"rules": ["email"]}},
                "key": ["customer"],
                "survivorship": survivorship,
                **({"source_priority": [names["b"], names["a"]]} if survivorship == "source_priority" else {}),
            }
        },
        "export": {"directory": str(tmp_path / "exports"), **(export or {})},
        **sections,
    }
    return parse_settings(json.dumps(config), base_dir=tmp_path)


def make_defs(tmp_path: Path, names: dict[str, str], resources: dict, **options) -> dg.Definitions:
    return build_definitions(make_settings(tmp_path, names, **options), resources)


def land(defs: dg.Definitions, instance, source: str) -> list[dg.ExecuteInProcessResult]:
    sensor = next(s for s in defs.sensors if s.name == f"{source}_landing")
    return launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))


def harmonize(defs: dg.Definitions, instance, target: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(f"harmonize_{target}").execute_in_process(instance=instance, raise_on_error=False)


def table(psql, target: str) -> list[tuple]:
    return psql(f'SELECT customer, name, email, _source, _source_file FROM harmonized."{target}" ORDER BY customer')


def test_the_latest_file_wins_and_failed_or_superseded_files_stay_out(tmp_path, names, psql):
    from harmonizer_pipeline.resources import build_resources

    defs = make_defs(tmp_path, names, build_resources())
    a, b, target = names["a"], names["b"], names["target"]
    with dg.instance_for_test() as instance:
        (tmp_path / "a" / "jan.csv").write_text("id,full_name,mail\nC1,ann lee,ANN@X.ORG\nC2,bob roe,bob@x\n")
        (tmp_path / "b" / "feb.csv").write_text("kunde,vorname,nachname,mail\nC2,Bob,ROE,bob@roe.de\nC3,cy,,cy@x.de\n")
        assert [r.success for r in land(defs, instance, a) + land(defs, instance, b)] == [True, True]
        first = harmonize(defs, instance, target)
        assert first.success
        assert table(psql, target) == [
            ("C1", "Ann Lee", "ann@x.org", a, "jan.csv"),
            ("C2", "Bob Roe", "bob@roe.de", b, "feb.csv"),  # feb.csv landed later
            ("C3", "Cy", "cy@x.de", b, "feb.csv"),  # combine leaves a missing part out
        ]
        assert psql(
            "SELECT source, _row_number, column_name, check_name, failure_case FROM quality.rejected_rows WHERE source = %s AND check_name LIKE 'harmonize:%%'",
            (a,),
        ) == [(a, 3, "email", "harmonize:email", "bob@x")]
        # A later file of source a fails its gate (every id is malformed): its rows stay out.
        (tmp_path / "a" / "mar.csv").write_text("id,full_name,mail\nX9,eve,eve@x.de\n")
        [failed_load] = land(defs, instance, a)
        assert not failed_load.success
        again = harmonize(defs, instance, target)
        assert again.success
        assert table(psql, target) == [
            ("C1", "Ann Lee", "ann@x.org", a, "jan.csv"),
            ("C2", "Bob Roe", "bob@roe.de", b, "feb.csv"),
            ("C3", "Cy", "cy@x.de", b, "feb.csv"),
        ]
        metadata = [e for e in again.get_asset_materialization_events() if e.asset_key.path[0] == "harmonized"][0].materialization.metadata
        # The blocked file was never staged: nothing changed, nothing was recomputed.
        assert [(r.data["source"], r.data["files"], r.data["files_added"]) for r in metadata["sources"].value.records] == [(a, 1, 0), (b, 1, 0)]
        assert (metadata["keys_affected"].value, metadata["rows_inserted"].value) == (0, 0)
        # jan.csv lands again with new content: only its new version counts.
        (tmp_path / "a" / "jan.csv").write_text("id,full_name,mail\nC1,ann lee-smith,ann@x.org\n")
        assert [r.success for r in land(defs, instance, a)] == [True]
        third = harmonize(defs, instance, target)
        assert table(psql, target) == [
            ("C1", "Ann Lee-Smith", "ann@x.org", a, "jan.csv"),
            ("C2", "Bob Roe", "bob@roe.de", b, "feb.csv"),
            ("C3", "Cy", "cy@x.de", b, "feb.csv"),
        ]
        metadata = [e for e in third.get_asset_materialization_events() if e.asset_key.path[0] == "harmonized"][0].materialization.metadata
        # Only jan.csv's keys were recomputed: its old version's (C1, C2) and its new version's (C1);
        # C1 has new values and C2 lost a duplicate (_duplicates 1 -> 0): two rows updated.
        assert [(r.data["source"], r.data["rows_in"], r.data["files_added"], r.data["files_removed"]) for r in metadata["sources"].value.records] == [
            (a, 1, 1, 1),
            (b, 2, 0, 0),
        ]
        assert [metadata[m].value for m in ("keys_affected", "rows_inserted", "rows_updated", "rows_deleted")] == [2, 0, 2, 0]
        # A rebuild recomputes every key, finds the target as it was, and has no change to export.
        change_files = sorted((tmp_path / "exports" / target).rglob(f"{target}_changes_*"))
        rebuild = defs.resolve_job_def(f"rebuild_{target}").execute_in_process(instance=instance)
        metadata = [e for e in rebuild.get_asset_materialization_events() if e.asset_key.path[0] == "harmonized"][0].materialization.metadata
        assert [metadata[m].value for m in ("rebuild", "keys_affected", "rows_inserted", "rows_updated", "rows_deleted")] == [True, 3, 0, 0, 0]
        assert sorted((tmp_path / "exports" / target).rglob(f"{target}_changes_*")) == change_files
        assert len(change_files) == 4  # the two merges that changed rows (the second found nothing to do), a CSV and a Parquet file each


def test_source_priority_decides_across_sources(tmp_path, names, psql):
    from harmonizer_pipeline.resources import build_resources

    defs = make_defs(tmp_path, names, build_resources(), survivorship="source_priority")
    with dg.instance_for_test() as instance:
        (tmp_path / "b" / "old.csv").write_text("kunde,vorname,nachname,mail\nC1,Ann,Old,ann@old.de\n")
        (tmp_path / "a" / "new.csv").write_text("id,full_name,mail\nC1,Ann New,ann@new.de\n")
        land(defs, instance, names["b"])
        land(defs, instance, names["a"])
        assert harmonize(defs, instance, names["target"]).success
    # Source b is trusted first although a's file landed later.
    assert table(psql, names["target"]) == [("C1", "Ann Old", "ann@old.de", names["b"], "old.csv")]
    assert psql(f'SELECT _group, _kept, _source FROM harmonized."{names["target"]}_duplicates" ORDER BY NOT _kept') == [
        (1, True, names["b"]),
        (1, False, names["a"]),
    ]


def test_a_mapping_naming_a_column_the_file_lacks_fails_its_own_partition_with_the_file_and_column(tmp_path, names, psql):
    from harmonizer_pipeline.resources import build_resources

    defs = make_defs(tmp_path, names, build_resources())
    b, target = names["b"], names["target"]
    with dg.instance_for_test() as instance:
        (tmp_path / "b" / "good.csv").write_text("kunde,vorname,nachname,mail\nC1,Ann,Lee,ann@x.de\n")
        assert [r.success for r in land(defs, instance, b)] == [True]
        assert harmonize(defs, instance, target).success
        (tmp_path / "b" / "odd.csv").write_text("kunde,vorname,mail\nC2,Bob,bob@x.de\n")  # no nachname
        [run] = land(defs, instance, b)
        assert not run.success
        [failure] = [e for e in run.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        assert failure.step_key == f"staged__{b}"
        assert failure.event_specific_data.error.message.startswith(
            f"dagster._core.definitions.events.Failure: odd.csv: {b}: mapping of 'name' names column(s) ['nachname'] the data does not have"
        )
        # The target stays as it was: the failed file was never staged.
        assert harmonize(defs, instance, target).success
    assert table(psql, target) == [("C1", "Ann Lee", "ann@x.de", b, "good.csv")]
    assert psql("SELECT action, status, file FROM ops.audit_log WHERE asset = %s ORDER BY at", (f"staged/{b}",)) == [
        ("stage", "done", "good.csv"),
        ("stage", "failed", "odd.csv"),
    ]


def test_exports_are_uploaded_to_the_b2_prefix(tmp_path, names):
    resources, _ = simulated_b2()
    api = resources["landing"].b2_api()
    bucket = api.create_bucket("exports", "allPrivate")
    defs = make_defs(tmp_path, names, resources, export={"formats": ["csv"], "csv_bom": True, "b2": {"bucket": "exports", "prefix": "out/"}})
    with dg.instance_for_test() as instance:
        (tmp_path / "b" / "one.csv").write_text("kunde,vorname,nachname,mail\nC1,Ann,Lee,ann@lee.de\n")
        land(defs, instance, names["b"])
        run = harmonize(defs, instance, names["target"])
    assert run.success
    day = dt.datetime.now(dt.UTC).date().isoformat()
    target = names["target"]
    files = (f"{target}.csv", f"{target}_duplicate_records.csv", f"{target}_unique_records.csv", f"{target}_report.html", f"{target}_{day}.zip")
    # Beside them, the page of the file (written by its profile, gate and comparison, uploaded each time: one name, three versions).
    [page] = (tmp_path / "exports" / "pages" / names["b"]).glob("one.csv@*.html")
    expected = [*(f"out/{target}/{day}/{name}" for name in files), f"out/pages/{names['b']}/{page.name}"]
    uploaded = sorted(version.file_name for version, _ in bucket.ls(recursive=True))
    changes = [name for name in uploaded if "_changes_" in name]
    assert sorted(set(uploaded) - set(changes)) == sorted(expected)
    assert len([v for v, _ in bucket.ls(f"out/pages/{names['b']}/", latest_only=False)]) == 3
    assert [name.rsplit(".", 1)[1] for name in changes] == ["csv", "parquet"]  # the merge's change files, uploaded too
    local = tmp_path / "exports" / target / day / f"{target}.csv"
    assert local.read_bytes().startswith(b"\xef\xbb\xbf")
    assert local.read_text(encoding="utf-8-sig").splitlines()[1].startswith('"C1","Ann Lee","ann@lee.de"')


def test_automation_takes_a_gated_load_to_harmonized_and_export(tmp_path, names):
    from harmonizer_pipeline.resources import build_resources

    defs = make_defs(tmp_path, names, build_resources())
    target = names["target"]
    harmonized, export = dg.AssetKey(["harmonized", target]), dg.AssetKey(["export", target])
    only_harmonized = dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job("h", selection=[harmonized])])).resolve_job_def("h")
    with dg.instance_for_test() as instance:
        requested = AutomationTicks(defs, instance, harmonized, export)
        assert requested() == (0, 0)
        (tmp_path / "b" / "one.csv").write_text("kunde,vorname,nachname,mail\nC1,Ann,Lee,ann@lee.de\n")
        assert [r.success for r in land(defs, instance, names["b"])] == [True]
        # The file passed its gate: the target is rebuilt and exported, in one run, in that order.
        assert requested() == (1, 1)
        assert harmonize(defs, instance, target).success
        assert requested() == (0, 0)
        # Harmonized alone (e.g. by hand): the export follows.
        assert only_harmonized.execute_in_process(instance=instance).success
        assert requested() == (0, 1)
        (tmp_path / "a" / "bad.csv").write_text("id,full_name,mail\nX1,eve,eve@x.de\n")
        [blocked] = land(defs, instance, names["a"])
        assert not blocked.success
        assert requested() == (0, 0)  # the gate blocked the file: nothing downstream runs


def test_automation_merges_once_after_files_are_staged(tmp_path, names):
    """The merge follows staged/<source>, which runs only for a file whose gate passed: one
    request per batch of staged files, none while nothing new was staged."""
    from harmonizer_pipeline.resources import build_resources

    defs = make_defs(tmp_path, names, build_resources())
    staged, harmonized = dg.AssetKey(["staged", names["a"]]), dg.AssetKey(["harmonized", names["target"]])
    partitions = defs.resolve_assets_def(staged).partitions_def
    with dg.instance_for_test() as instance:
        ticks = AutomationTicks(defs, instance, harmonized)

        def requested() -> int:
            [count] = ticks()
            return count

        instance.add_dynamic_partitions(partitions.name, ["one", "two"])
        assert requested() == 0
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=staged, partition="one"))
        assert [requested(), requested()] == [1, 0]
        for partition in ("one", "two"):
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=staged, partition=partition))
        assert [requested(), requested()] == [1, 0]


def test_a_name_reverted_to_earlier_content_loads_again_and_serves_the_target(tmp_path, names, psql):
    from harmonizer_pipeline.bookkeeping import registry
    from harmonizer_pipeline.resources import PostgresResource, build_resources

    defs = make_defs(tmp_path, names, build_resources())
    a, target = names["a"], names["target"]
    v1, v2 = "id,full_name,mail\nC1,ann lee,ann@x.org\n", "id,full_name,mail\nC1,ann roe,ann@roe.org\n"
    path = tmp_path / "a" / "jan.csv"
    with dg.instance_for_test() as instance:
        for content in (v1, v2, v1):
            path.write_text(content)
            # Each write is a new version: mtime and size identify it (sizes of v1 and v2 differ).
            assert [r.success for r in land(defs, instance, a)] == [True]
            assert harmonize(defs, instance, target).success
            assert table(psql, target) == [("C1", "Ann Lee" if content == v1 else "Ann Roe", content.split(",")[-1].strip(), a, "jan.csv")]
        # The same content written again is no new version of the name: nothing to load.
        path.write_text(v1)
        assert land(defs, instance, a) == []
        # A file whose gate blocks it says so in the registry, with the gate's reason.
        (tmp_path / "a" / "bad.csv").write_text("id,full_name,mail\nX9,eve,eve@x.de\n")
        assert [r.success for r in land(defs, instance, a)] == [False]
    with PostgresResource().connect() as conn:
        rows = [(e.object_key, e.status, e.error) for e in registry.entries(conn, a)]
    assert rows[:3] == [("jan.csv", "loaded", None)] * 3
    assert rows[3] == ("jan.csv", "duplicate", "same content as jan.csv (loaded)")
    assert rows[4][:2] == ("bad.csv", "blocked")
    assert rows[4][2].startswith("blocked by its schema gate: 1 of 1 rows rejected (100.00%), over max_reject_rate")
