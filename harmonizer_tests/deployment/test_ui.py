"""The Dagster UI as users see it: headless Debian Chromium (through Playwright, no browser
download) on the deployment's webserver (fixture `deployed`: the sample clinic_a file loaded by
its sensor). The asset graph shows every asset and group, and the asset pages show the row
counts, schemas, the schema gate's result, the profile and the keys. Screenshots go to
harmonizer_tests/artifacts/ (gitignored)."""

import collections
import re
import time
from pathlib import Path

import pytest

from harmonizer_tests.browser import CHROMIUM, NO_CHROMIUM, chromium
from harmonizer_tests.deployment.harness import SAMPLE_FILE

# A mark, not only pytest.skip in a fixture: the session's deployment would start before it.
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)]
ARTIFACTS = Path(__file__).parent / "artifacts"
GROUPS = {"ingest", "quality", "keys", "harmonize", "export", "ops", "retention"}
HEADER = SAMPLE_FILE.read_text().splitlines()[0].split(",")
ROWS, VALID = 25, 24
TIMEOUT_MS = 20_000

# Every <tr> of the page as its cells' text (metadata tables and the tables inside them).
TABLE_ROWS_JS = "() => Array.from(document.querySelectorAll('tr')).map(tr => Array.from(tr.children).map(c => c.innerText.trim()))"


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, deployed):
    # Tall enough that a full asset page fits: the UI scrolls inside its own panes, not the document.
    context = browser.new_context(viewport={"width": 1600, "height": 2200})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def visit(page, deployed, path: str) -> None:
    page.goto(deployed.url + path)
    page.wait_for_load_state("networkidle")
    # A fresh instance greets the first visitor with the community dialog; a person skips it.
    if deployed.graphql("{ shouldShowNux }")["shouldShowNux"]:
        page.get_by_role("button", name="Skip").click()


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # animations="disabled" finishes transitions (a dialog fading in) before the picture is taken.
    page.screenshot(path=str(path), full_page=True, animations="disabled")
    return path


def table_rows(page, until: str) -> list[list[str]]:
    """The page's table rows once one of them starts with the cell `until`."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        rows = page.evaluate(TABLE_ROWS_JS)
        if any(r and r[0] == until for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


def metadata_values(page, until: str) -> dict[str, str]:
    """Metadata shown on an asset page (Key | Timestamp | Value rows) or check (Key | Value)."""
    return {r[0]: r[-1] for r in table_rows(page, until) if len(r) in (2, 3)}


def in_view(page, element) -> bool:
    box, window = element.bounding_box(), page.viewport_size
    return bool(box) and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= window["width"] and box["y"] + box["height"] <= window["height"]


def shown(label: str, name: str) -> bool:
    """Whether a graph label shows `name` (long names are cut in the middle with an ellipsis)."""
    if "…" not in label:
        return label == name
    head, tail = label.split("…", 1)
    return name.startswith(head) and name.endswith(tail)


def test_the_asset_graph_shows_every_asset_in_its_group(page, deployed):
    nodes = deployed.graphql("{ assetNodes { assetKey { path } groupName description kinds owners { ... on TeamAssetOwner { team } } } }")["assetNodes"]
    groups = {n["groupName"] for n in nodes}
    assert groups == GROUPS
    # What the graph and the asset pages say of each asset: what it is, what it runs on, whose it is.
    assert [n["assetKey"]["path"] for n in nodes if not (n["description"] and n["kinds"] and n["owners"] == [{"team": "data-engineering"}])] == []
    assert not [n["description"] for n in nodes if "None" in n["description"]]
    # The whole pipeline as a person would find it after the load: harmonized and exported too.
    assert {r["status"] for r in deployed.automation_runs()} == {"SUCCESS"}
    page.set_viewport_size({"width": 1600, "height": 1300})
    visit(page, deployed, "/asset-groups")
    # Groups start collapsed; the graph's settings expand them all.
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.get_by_text("profile_clinic_a", exact=True).wait_for()
    page.wait_for_timeout(1000)  # the graph pans and zooms to fit once laid out
    labels = [line.strip() for text in page.locator("svg foreignObject > div").all_inner_texts() for line in text.splitlines() if line.strip()]
    screenshot(page, "asset_graph")

    assert groups <= set(labels)
    # Each asset is a node labelled with the last part of its key (raw/, validated/ and keys/clinic_a
    # are three nodes named clinic_a, in their three groups).
    wanted = collections.Counter(n["assetKey"]["path"][-1] for n in nodes)
    # A group's box is labelled too: the asset ops/retention shares its name with its group.
    found = {name: sum(shown(label, name) for label in labels) - (name in groups) for name in wanted}
    assert found == dict(wanted)
    # Laid out to fit: every group box and asset node is inside the window.
    graph = page.locator("svg foreignObject")
    for text in [*groups, "profile_clinic_a", "patients", "clinic_a"]:
        for element in graph.get_by_text(text, exact=True).all():
            assert in_view(page, element), f"{text!r} is outside the window"


def test_the_raw_asset_page_shows_the_file_row_count_and_schema(page, deployed):
    visit(page, deployed, "/assets/raw/clinic_a")
    page.get_by_text("Latest materialization").wait_for()
    values = metadata_values(page, "dagster/partition_row_count")
    screenshot(page, "raw_clinic_a")
    partition = {t["key"]: t["value"] for t in deployed.load_run["tags"]}["dagster/partition"]
    assert {k: values.get(k) for k in ("dagster/partition_row_count", "file", "format", "partition")} == {
        "dagster/partition_row_count": str(ROWS), "file": SAMPLE_FILE.name, "format": "csv", "partition": partition,
    }  # fmt: skip
    # The Columns table: the file's columns as text, then the lineage columns (PostgreSQL types).
    columns = {r[0]: r[1] for r in table_rows(page, "patient_id") if len(r) == 3 and r[0] in HEADER}
    assert columns == {name: "text" for name in HEADER}
    assert page.get_by_text(partition).first.is_visible()


def test_the_validated_asset_page_shows_the_typed_schema_and_the_gate_result(page, deployed):
    visit(page, deployed, "/assets/validated/clinic_a")
    page.get_by_text("Latest check results").wait_for()
    values = metadata_values(page, "dagster/partition_row_count")
    types = {r[0]: r[1] for r in table_rows(page, "birth_date") if len(r) == 3 and r[0] in HEADER}
    screenshot(page, "validated_clinic_a")
    assert values["dagster/partition_row_count"] == str(VALID)
    assert values["pandera_schema"].endswith("harmonizer_pipeline/sample_data/schemas/clinic_a.yaml")
    assert types["birth_date"] == "timestamp without time zone"

    visit(page, deployed, "/assets/validated/clinic_a?view=checks&checkDetail=schema_gate")
    page.get_by_text("Evaluation result").wait_for()
    check = metadata_values(page, "rejected_rows")
    screenshot(page, "validated_clinic_a_checks")
    assert page.get_by_text("This is a blocking asset check.").is_visible()
    assert page.get_by_text("1 of 25 rows rejected (4.00%) and quarantined in quality.rejected_rows, within max_reject_rate 5.00%").is_visible()
    assert page.get_by_text("Passed", exact=True).is_visible()
    assert page.get_by_role("heading", name="schema_gate").or_(page.get_by_text("schema_gate", exact=True)).first.is_visible()
    assert {k: check.get(k) for k in ("rows", "rejected_rows", "reject_rate", "max_reject_rate")} == {
        "rows": str(ROWS), "rejected_rows": "1", "reject_rate": "0.04", "max_reject_rate": "0.05",
    }  # fmt: skip
    failures = table_rows(page, "coerce_dtype('datetime64[ns]')")
    assert ["coerce_dtype('datetime64[ns]')", "birth_date", "1"] in failures
    assert ["26", "birth_date", "coerce_dtype('datetime64[ns]')", "1985-13-40",
            "column 'birth_date' fails coerce_dtype('datetime64[ns]') with '1985-13-40'"] in failures  # fmt: skip


def test_the_profile_page_shows_every_column_and_the_profile(page, deployed):
    [event] = deployed.materializations(["quality", "profile_clinic_a"])
    score = next(e["floatValue"] for e in event["metadataEntries"] if e["label"] == "quality_score")
    visit(page, deployed, "/assets/quality/profile_clinic_a")
    page.get_by_text("Latest materialization").wait_for()
    values = metadata_values(page, "quality_score")
    assert (values["rows"], values["quality_score"], values["recommendation_count"]) == (str(ROWS), str(score), "0")
    profiled = {r[0]: r[1] for r in table_rows(page, "patient_id") if len(r) == 8 and r[0] in HEADER}
    screenshot(page, "profile_clinic_a")
    assert list(profiled) == HEADER
    assert (profiled["birth_date"], profiled["postal_code"]) == ("date", "postal code")
    # The markdown profile opens in a dialog.
    page.locator("tr").filter(has=page.get_by_role("cell", name="profile", exact=True)).get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text(f"{ROWS} rows, quality score {score}").wait_for()
    screenshot(page, "profile_clinic_a_markdown")
    assert re.search(r"patient_id\s+categorical\s+0\s+0\s+25\s+P0001\s+P0025", dialog.inner_text())


def test_the_keys_page_shows_the_suggested_and_minimal_keys(page, deployed):
    visit(page, deployed, "/assets/keys/clinic_a")
    page.get_by_text("Latest materialization").wait_for()
    values = metadata_values(page, "suggested_key")
    rows = table_rows(page, "suggested_key")
    screenshot(page, "keys_clinic_a")
    assert {k: values[k] for k in ("rows", "suggested_key", "duplicate_rows")} == {"rows": str(VALID), "suggested_key": "patient_id", "duplicate_rows": "0"}
    assert ["patient_id", "1", "false"] in rows
    assert int(values["minimal_key_count"]) == sum(1 for r in rows if len(r) == 3 and r[2] in ("true", "false"))


def test_the_harmonized_page_shows_the_target_rows_columns_and_automation(page, deployed):
    assert {r["status"] for r in deployed.automation_runs()} == {"SUCCESS"}
    visit(page, deployed, "/assets/harmonized/patients")
    page.get_by_text("Latest materialization").wait_for()
    values = metadata_values(page, "rows_mapped")
    columns = {r[0] for r in table_rows(page, "first_name") if len(r) == 3}
    screenshot(page, "harmonized_patients")
    assert re.search(rf"Row count\s+{VALID}\s", page.inner_text("body"))
    assert {k: values.get(k) for k in ("rows_mapped", "duplicate_keys", "business_key")} == {
        "rows_mapped": str(VALID), "duplicate_keys": "0", "business_key": "last_name, first_name, birth_date",
    }  # fmt: skip
    assert {"first_name", "last_name", "birth_date", "email", "_source", "_source_file"} <= columns
    # How it runs: the automation condition by its label, the sensor that evaluates it, the schedule.
    for text in ("after a file is staged", "automation_patients", "harmonize_patients"):
        assert page.get_by_text(text, exact=True).first.is_visible(), text
