"""The summaries of files and merges on a real pipeline run (sensor, load job, harmonize job,
export, all through Dagster's own APIs): read back from PostgreSQL, in the UI metadata, printed by
`harmonizer summary`, carried by the alerts and written into the export zip as summary.md."""

from __future__ import annotations

import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner

from harmonizer_pipeline.cli import main
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.reports import summary
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import CONFIG_ENV, Settings, load_settings, parse_settings
from harmonizer_tests.browser import CHROMIUM, NO_CHROMIUM, chromium
from harmonizer_tests.harmonize.test_harmonize_pipeline import SCHEMA


@dataclass
class Ran:
    settings: Settings
    config: Path
    a: str
    b: str
    target: str
    runs: dict[str, dg.ExecuteInProcessResult]  # the load runs, by file
    merge: dg.ExecuteInProcessResult
    tmp: Path


def land(defs: dg.Definitions, instance, source: str) -> list[dg.ExecuteInProcessResult]:
    sensor = next(s for s in defs.sensors if s.name == f"{source}_landing")
    return launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))


@pytest.fixture(scope="module")
def ran(tmp_path_factory, database_url) -> Ran:
    """Source a (a pandera schema, max_reject_rate 0.5): jan.csv with one row of five rejected,
    feb.csv a month later (a row added, one removed, one changed, a column new), mar.csv blocked
    (every id malformed). Source b (no schema, declared key `mail`): feb.csv whose key repeats.
    Both map into one target with fuzzy matching on names; it is merged and exported once."""
    suffix = uuid.uuid4().hex[:10]
    a, b, target = f"sa_{suffix}", f"sb_{suffix}", f"st_{suffix}"
    tmp = tmp_path_factory.mktemp("summaries")
    for folder in ("a", "b"):
        (tmp / folder).mkdir()
    (tmp / "a.yaml").write_text(SCHEMA)
    config = {
        "sources": {
            a: {
                "landing": {"local": {"path": "a", "glob": "*.csv"}}, "schema": "a.yaml", "max_reject_rate": 0.5, "target": target,
                "mapping": {"customer": "id", "name": "full_name", "email": "mail"},
            },
            b: {
                "landing": {"local": {"path": "b", "glob": "*.csv"}}, "key": ["mail"], "target": target,
                "mapping": {"customer": "kunde", "name": "name", "email": "mail"},
            },
        },
        "targets": {
            target: {
                "columns": {"customer": {"type": "text", "required": True}, "name": {"rules": ["person_name"]}, "email": {"rules": ["email"]}},
                "key": ["customer"],
                "match": {"columns": ["name"], "block_on": ["email"], "threshold": 80},
            }
        },
        "export": {"directory": str(tmp / "exports")},
    }  # fmt: skip
    path = tmp / "harmonizer.yaml"
    path.write_text(json.dumps(config))
    settings = parse_settings(json.dumps(config), base_dir=tmp)
    defs = build_definitions(settings, build_resources())
    runs: dict[str, dg.ExecuteInProcessResult] = {}
    with dg.instance_for_test() as instance:
        (tmp / "a" / "jan.csv").write_text("id,full_name,mail\nC1,ann lee,ann@x.org\nC2,bob roe,bob@x\nC3,cy,cy@x.de\nX4,dee,dee@x.de\nC5,ed,ed@x.de\n")
        runs |= {r.dagster_run.tags["harmonizer/file"]: r for r in land(defs, instance, a)}
        (tmp / "a" / "feb.csv").write_text("id,full_name,mail,phone\nC1,ann lee,ann@x.org,1\nC2,bob roe,bob@roe.de,2\nC3,cy,cy@x.de,3\nC6,fay,fay@x.de,4\n")
        runs |= {r.dagster_run.tags["harmonizer/file"]: r for r in land(defs, instance, a)}
        (tmp / "a" / "mar.csv").write_text("id,full_name,mail\nX7,gus,gus@x.de\nX8,hal,hal@x.de\n")
        runs |= {r.dagster_run.tags["harmonizer/file"]: r for r in land(defs, instance, a)}
        (tmp / "b" / "feb.csv").write_text("kunde,name,mail\nC9,Ann Lee,ann@x.org\nC10,Anne Lee,ann@x.org\nC11, Zed ,zed@x.de\nC12,Uma,uma@x.de\n")
        runs |= {f"b/{r.dagster_run.tags['harmonizer/file']}": r for r in land(defs, instance, b)}
        merge = defs.resolve_job_def(f"harmonize_{target}").execute_in_process(instance=instance, raise_on_error=False)
    return Ran(settings, path, a, b, target, runs, merge, tmp)


def partition(ran: Ran, file: str) -> str:
    return ran.runs[file].dagster_run.tags["dagster/partition"]


def file_texts(ran: Ran) -> dict[str, str]:
    """The summary of each file, as the facts of this run make it."""
    a, b = ran.a, ran.b
    return {
        "jan.csv": (
            f"jan.csv arrived in {a}: 100 bytes, 5 rows, read as CSV in UTF-8. The schema gate let it through with 1 of 5 rows (20%) set aside in"
            " quality.rejected_rows, within the 50% allowed. Main reasons: id failed str_matches('^C\\d+$') once. The profile found no quality"
            f" issues. id is a unique key: it tells all 4 rows that passed the gate apart. It is the first file of {a}: there is nothing to"
            " compare it with."
        ),
        "feb.csv": (
            f"feb.csv arrived in {a}: 105 bytes, 4 rows, read as CSV in UTF-8. Every row passed the schema gate. The profile found no quality"
            " issues. id is a unique key: it tells all 4 rows apart. Against the previous file, jan.csv, on id: 1 row added, 1 removed, 1"
            " changed and 2 unchanged. Column phone is new. The profile also noticed that full_name has new values, id has new values and"
            " mail changed from categorical to email."
        ),
        "mar.csv": (
            f"mar.csv arrived in {a}: 50 bytes, 2 rows, read as CSV in UTF-8. The schema gate quarantined the file: 2 of 2 rows (100%) failed"
            " the schema, more than the 50% allowed. Main reasons: id failed str_matches('^C\\d+$') twice. The profile found no quality issues."
            " Its rows go no further than validated until a corrected file lands."
        ),
        # The example of the repeating key is an e-mail address: masked.
        "b/feb.csv": (
            f"feb.csv arrived in {b}: 96 bytes, 4 rows, read as CSV in UTF-8. Every row passed the schema gate. The profile found 1 value with"
            " surrounding spaces in name. The declared key mail does not hold: 1 row breaks it (for example mail = a***@x.org). It is the"
            f" first file of {b}: there is nothing to compare it with."
        ),
    }


def merge_text(ran: Ran) -> str:
    t = ran.target
    return (
        f"The merge of {t} took in 3 new files and recomputed 9 keys: 9 rows inserted. {t} now holds 9 rows from 3 files. 3 rows were merged"
        " into another row with the same key (3 keys had more than one row). 1 value could not be standardized and was rejected. Fuzzy"
        " matching found 3 candidate pairs to review."
    )


def test_the_summaries_read_back_every_fact_of_each_file_and_the_merge(ran, database_url):
    assert {file: r.success for file, r in ran.runs.items()} == {"jan.csv": True, "feb.csv": True, "mar.csv": False, "b/feb.csv": True}
    sources = {"jan.csv": ran.a, "feb.csv": ran.a, "mar.csv": ran.a, "b/feb.csv": ran.b}
    with psycopg.connect(database_url) as conn:
        assert {f: summary.file_text(conn, ran.settings, s, partition(ran, f)) for f, s in sources.items()} == file_texts(ran)
        assert summary.merge_text(conn, ran.settings, ran.target) == merge_text(ran)
        # The facts behind the texts, as read.
        facts = summary.file_facts(conn, ran.settings, ran.a, partition(ran, "feb.csv"))
        assert (facts.format, facts.encoding, facts.size, facts.rows, facts.previous_file) == ("csv", "utf-8", 105, 4, "jan.csv")
        assert facts.comparison == summary.ComparisonFacts(("id",), added=1, removed=1, changed=1, unchanged=2, added_columns=("phone",))
        assert summary.merge_facts(conn, ran.settings, ran.target) == summary.MergeFacts(
            ran.target, True, files=3, rows=9, files_added=3, keys_affected=9, inserted=9, duplicate_keys=3, merged_rows=3,
            rejected_values=1, candidates=3,
        )  # fmt: skip
        # A merge that found nothing to do says so, with the target as the last merge left it.
        unchanged = summary.merge_summary(summary.merge_facts(conn, ran.settings, ran.target, changed=False))
        assert unchanged == f"Nothing changed since the last merge: {ran.target} holds 9 rows from 3 files."


def materialized(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return event.materialization.metadata


def test_the_ui_shows_each_file_summary_on_its_comparison_and_the_merge_summary_on_the_target(ran):
    texts = file_texts(ran)
    for file, source in (("jan.csv", ran.a), ("feb.csv", ran.a), ("b/feb.csv", ran.b)):
        assert materialized(ran.runs[file], f"keys/comparison_{source}")["summary"] == dg.MetadataValue.md(texts[file])
    # The blocked file's run stops at its gate: no comparison, no summary in the UI (the alert and the CLI carry it).
    assert sorted(e.asset_key.to_user_string() for e in ran.runs["mar.csv"].get_asset_materialization_events()) == [
        f"quality/profile_{ran.a}",
        f"raw/{ran.a}",
        f"validated/{ran.a}",
    ]
    assert materialized(ran.merge, f"harmonized/{ran.target}")["summary"] == dg.MetadataValue.md(merge_text(ran))


def test_the_export_zip_carries_summary_md(ran):
    [archive] = (ran.tmp / "exports" / ran.target).rglob("*.zip")
    with zipfile.ZipFile(archive) as opened:
        assert opened.namelist()[-1] == "summary.md"
        document = opened.read("summary.md").decode()
    texts = file_texts(ran)
    assert document == "\n".join([
        f"# {ran.target}", "", "## The latest merge", "", merge_text(ran), "", "## The files merged", "",
        f"### {ran.a}: jan.csv", "", texts["jan.csv"], "", f"### {ran.a}: feb.csv", "", texts["feb.csv"], "",
        f"### {ran.b}: feb.csv", "", texts["b/feb.csv"], "",
    ])  # fmt: skip


def test_an_alert_about_a_merge_carries_its_summary(ran, database_url):
    with psycopg.connect(database_url) as conn:
        assert summary.alert_narrative(conn, ran.settings, f"harmonize_{ran.target}", None) == merge_text(ran)
        assert summary.alert_narrative(conn, ran.settings, f"rebuild_{ran.target}", None) == merge_text(ran)
        assert summary.alert_narrative(conn, ran.settings, f"load_{ran.a}", partition(ran, "mar.csv")) == file_texts(ran)["mar.csv"]
        # Jobs about no file or merge, and a partition nothing was recorded for, carry none.
        assert summary.alert_narrative(conn, ran.settings, "retention", None) is None
        assert summary.alert_narrative(conn, ran.settings, f"load_{ran.a}", "nothing@000000000000") is None


@pytest.fixture
def config(ran, monkeypatch) -> Iterator[Path]:
    monkeypatch.setenv(CONFIG_ENV, str(ran.config))
    load_settings.cache_clear()
    yield ran.config
    load_settings.cache_clear()


def test_harmonizer_summary_prints_what_the_options_name(ran, config):
    texts, merge = file_texts(ran), merge_text(ran)
    a, b, t = ran.a, ran.b, ran.target
    cases = {
        (): f"{a}: mar.csv\n{texts['mar.csv']}\n\n{b}: feb.csv\n{texts['b/feb.csv']}\n\ntarget {t}\n{merge}\n",
        ("--source", a): f"{a}: mar.csv\n{texts['mar.csv']}\n",
        ("--source", a, "--file", "feb.csv"): f"{a}: feb.csv\n{texts['feb.csv']}\n",
        ("--file", "feb.csv"): f"{a}: feb.csv\n{texts['feb.csv']}\n\n{b}: feb.csv\n{texts['b/feb.csv']}\n",
        ("--target", t): f"target {t}\n{merge}\n",
    }
    for args, expected in cases.items():
        result = CliRunner().invoke(main, ["summary", *args])
        assert (result.exit_code, result.stdout, result.stderr) == (0, expected, ""), args


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope"], "harmonizer summary: no source 'nope' in harmonizer.yaml (sources: {a}, {b})"),
        (["--target", "nope"], "harmonizer summary: no target 'nope' in harmonizer.yaml (targets: {t})"),
        (["--file", "apr.csv"], "harmonizer summary: no file 'apr.csv' in any source"),
        (["--source", "{b}", "--file", "jan.csv"], "harmonizer summary: no file 'jan.csv' in source {b}"),
    ],
)
def test_an_unknown_source_file_or_target_is_one_line_and_exit_1(ran, config, args, message):
    names = {"a": ran.a, "b": ran.b, "t": ran.target}
    result = CliRunner().invoke(main, ["summary", *(arg.format(**names) for arg in args)])
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", message.format(**names) + "\n")


def page_of(ran: Ran, file: str) -> Path:
    return ran.tmp / "exports" / "pages" / (ran.b if file.startswith("b/") else ran.a) / f"{partition(ran, file)}.html"


def shown(path: Path) -> dict:
    """What Chromium shows of a page: title, overview, summary, gate, suggested key, column cards,
    the labels of the first chart of each card."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.goto(path.as_uri())
        cards = page.locator("article.column")
        return {
            "title": page.title(),
            "overview": [row.split("\t") for row in page.locator("#overview tr").all_inner_texts()],
            "summary": page.locator("p#summary").all_inner_texts(),
            "gate": page.locator("#gate p").all_inner_texts(),
            "key": page.locator("#keys p").all_inner_texts()[:1],
            "cards": cards.locator("h3").all_inner_texts(),
            "labels": [
                cards.nth(i).locator("svg").first.evaluate("chart => Array.from(chart.querySelectorAll('text')).map(t => t.firstChild.textContent)")
                for i in range(cards.count())
            ],
        }


def test_every_loaded_file_has_its_page_linked_from_its_steps(ran):
    """The profile, the gate and (for a file the gate let through) the comparison each link it."""
    for file, source in (("jan.csv", ran.a), ("feb.csv", ran.a), ("mar.csv", ran.a), ("b/feb.csv", ran.b)):
        assets = ["quality/profile", "validated", *(["keys/comparison"] if file != "mar.csv" else [])]
        for asset in assets:
            name = f"{asset}_{source}" if asset != "validated" else f"validated/{source}"
            assert materialized(ran.runs[file], name)["report"] == dg.MetadataValue.path(str(page_of(ran, file))), (file, name)
        assert page_of(ran, file).is_file()


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_a_file_page_shows_its_summary_gate_key_and_columns_with_pii_masked(ran):
    texts = file_texts(ran)
    jan, b_feb, mar = (shown(page_of(ran, f)) for f in ("jan.csv", "b/feb.csv", "mar.csv"))
    assert jan["title"] == f"{ran.a}: jan.csv · harmonizer report"
    assert jan["overview"] == [
        ["rows", "5"], ["columns", "3"], ["source", ran.a], ["file", "jan.csv"], ["format", "csv"], ["encoding", "utf-8"],
        ["file size", "100 bytes"], ["quality score", "100.0 / 100"],
    ]  # fmt: skip
    assert jan["summary"] == [texts["jan.csv"]]
    assert jan["gate"] == ["Passed: 1 of 5 rows rejected (20.00%) and quarantined in quality.rejected_rows, within max_reject_rate 50.00%"]
    assert jan["key"] == ["Suggested key: id (smallest exact key without NULLs, identifier-like names)"]
    assert jan["cards"] == ["id", "full_name", "mail"]
    # The e-mail addresses are masked (privacy.reports: masked by default), each with its count.
    assert jan["labels"][2] == [text for address in ("a***@x.org", "b***@x", "c***@x.de", "d***@x.de", "e***@x.de") for text in (address, "1")]
    assert b_feb["summary"] == [texts["b/feb.csv"]] and b_feb["key"] == ["Suggested key: mail (declared in harmonizer.yaml)"]
    assert "ann@x.org" not in page_of(ran, "b/feb.csv").read_text()
    # The blocked file's page tells why, from its profile and gate.
    assert mar["summary"] == [texts["mar.csv"]]
    assert mar["gate"][0].startswith("Failed: 2 of 2 rows rejected (100.00%)")


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_target_page_is_one_of_the_export_files(ran):
    [export_run_page] = (ran.tmp / "exports" / ran.target).rglob(f"{ran.target}_report.html")
    assert materialized(ran.merge, f"export/{ran.target}")["report"] == dg.MetadataValue.path(str(export_run_page))
    [archive] = (ran.tmp / "exports" / ran.target).rglob("*.zip")
    with zipfile.ZipFile(archive) as opened:
        assert export_run_page.name in opened.namelist()
    target = shown(export_run_page)
    assert target["title"] == f"{ran.target} (harmonized.{ran.target}) · harmonizer report"
    assert target["overview"] == [
        ["rows", "9"], ["columns", "3"], ["target key", "customer"], ["sources", f"{ran.a}, {ran.b}"], ["files merged", "3"],
        ["quality score", "100.0 / 100"],
    ]  # fmt: skip
    assert target["summary"] == [merge_text(ran)]
    assert target["cards"] == ["customer", "name", "email"]
    assert "ann@x.org" not in export_run_page.read_text() and "a***@x.org" in export_run_page.read_text()
