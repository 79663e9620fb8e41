"""The README stays a front page and the documentation stays true: README.md under 15,000 bytes
with the two quick-start commands, every relative link of README.md and docs/*.md pointing at a
file that exists (and a #fragment at a heading of it), the asset graph drawn in README's mermaid
block equal to the one the code builds, the how-tos naming what their examples add to the code
location, and every field of the settings model named in docs/configuration.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest
from pydantic import BaseModel

from harmonizer_pipeline.definitions import build_definitions, defs
from harmonizer_pipeline.harmonize.rules import RULES
from harmonizer_pipeline.harmonize.settings import Rule
from harmonizer_pipeline.settings import PROJECT_ROOT, Settings, parse_settings
from harmonizer_pipeline.yaml_loader import load_yaml
from harmonizer_tests.code_location.test_yaml_examples import SHIPPED, merged

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
MERMAID = re.compile(r"^```mermaid\n(.*?)^```", re.M | re.S)
NODE = re.compile(r'^(\w+)\["([^"]+)"\]$')
LANDING = re.compile(r'^(\w+)\[\("([^"]+)"\)\]$')
EDGE = re.compile(r"^(\w+) --> (\w+)$")
SENSOR_EDGE = re.compile(r"^(\w+) -\. sensor (\w+) \.-> (\w+)$")
DRAWN_SOURCE = "clinic_a"
SAMPLE_SOURCES = ["clinic_a", "clinic_b", "clinic_c", "partner_feed"]


def test_the_readme_is_under_15000_bytes():
    assert len(README.read_bytes()) < 15_000


def _section(title: str) -> str:
    """README's `## <title>` section, without its heading."""
    return README.read_text(encoding="utf-8").split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_quick_start_is_exactly_the_two_commands():
    [block] = re.findall(r"^```\n(.*?)^```", _section("Quick start"), re.M | re.S)
    assert block == "make demo\nmake test\n"


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def _relative_links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("doc", [README, *DOCS], ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_points_at_a_file_that_exists(doc):
    for link in _relative_links(doc):
        target, _, fragment = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name}: {link}"
        if fragment:
            assert fragment in _anchors(path), f"{doc.name}: {link}"


def test_the_readme_links_the_index_each_page_and_deploy_readme():
    # Also guards the link check, which passes on a page without links.
    assert sorted(set(_relative_links(README))) == [
        "deploy/README.md",
        *(f"docs/{page}.md" for page in (
            "README", "access", "ask", "benchmarks", "configuration", "dagster-apis", "deploying", "harmonization-and-export", "incremental-harmonization",
            "ingestion", "io-manager", "keys", "operations", "privacy", "quality", "relations", "retention-and-erasure",
        )),
    ]  # fmt: skip
    assert "incremental-harmonization.md" in _relative_links(PROJECT_ROOT / "docs" / "harmonization-and-export.md")
    assert "../deploy/README.md" in _relative_links(PROJECT_ROOT / "docs" / "deploying.md")


def _drawing() -> tuple[dict[str, str], set[tuple[str, str]], list[tuple[str, str, str]]]:
    """README's mermaid block: (asset node id -> asset key, asset edges, (landing node, sensor, asset) edges)."""
    [block] = MERMAID.findall(README.read_text(encoding="utf-8"))
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert lines[0] == "flowchart LR"
    nodes, landings, edges, sensor_edges = {}, {}, set(), []
    for line in lines[1:]:
        if m := NODE.match(line):
            nodes[m.group(1)] = m.group(2)
        elif m := LANDING.match(line):
            landings[m.group(1)] = m.group(2)
        elif m := EDGE.match(line):
            edges.add((m.group(1), m.group(2)))
        elif m := SENSOR_EDGE.match(line):
            sensor_edges.append(m.groups())
        else:
            raise AssertionError(f"a line of the mermaid block the test does not read: {line!r}")
    assert {a for edge in edges for a in edge} <= set(nodes)
    assert [(landings.get(land), nodes.get(asset)) for land, _, asset in sensor_edges] == [(f"landing zone of {DRAWN_SOURCE}", f"raw/{DRAWN_SOURCE}")]
    return nodes, {(nodes[a], nodes[b]) for a, b in edges}, [(landings[land], sensor, nodes[asset]) for land, sensor, asset in sensor_edges]


def _graph_edges() -> set[tuple[str, str]]:
    graph = defs.resolve_asset_graph()
    return {(parent.to_user_string(), key.to_user_string()) for key in graph.get_all_asset_keys() for parent in graph.get(key).parent_keys}


def test_the_drawn_edges_are_the_asset_graph_s_among_the_assets_drawn():
    nodes, drawn, _ = _drawing()
    assert sorted(nodes.values()) == sorted(
        [
            "raw/clinic_a", "validated/clinic_a", "quality/profile_clinic_a", "keys/clinic_a", "keys/comparison_clinic_a",
            "staged/clinic_a", "ops/trends_clinic_a", "harmonized/patients", "export/patients",
        ]
    )  # fmt: skip
    shown = set(nodes.values())
    assert drawn == {(a, b) for a, b in _graph_edges() if a in shown and b in shown}


def test_every_other_source_is_drawn_like_the_one_drawn():
    # The README says so: the whole graph is the drawing with clinic_a's assets repeated per source.
    _, drawn, sensor_edges = _drawing()
    assert [sensor for _, sensor, _ in sensor_edges] == [f"{DRAWN_SOURCE}_landing"]
    assert f"{DRAWN_SOURCE}_landing" in {sensor.name for sensor in defs.sensors}
    per_source = {edge for edge in drawn if any(DRAWN_SOURCE in asset for asset in edge)}
    whole = drawn | {tuple(a.replace(DRAWN_SOURCE, source) for a in edge) for source in SAMPLE_SOURCES for edge in per_source}
    assert _graph_edges() == whole
    graph = defs.resolve_asset_graph()
    # ops/retention, keys/file_comparisons and keys/relations stand apart, as the README says: no edges.
    apart = {"ops/retention", "keys/file_comparisons", "keys/relations"}
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {a for edge in whole for a in edge} | apart
    assert sorted(k.to_user_string() for k in graph.get_all_asset_keys() if not graph.get(k).parent_keys) == [
        "keys/file_comparisons",
        "keys/relations",
        "ops/retention",
        *(f"raw/{source}" for source in SAMPLE_SOURCES),
    ]


def _field_names(model: type[BaseModel]) -> set[str]:
    """Every field name (YAML spelling) of the model and of the models it holds."""
    names = set()
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        names.add(field.alias or name)
        for inner in _models_in(field.annotation):
            if inner is not Rule:  # written as `email` or `{phone: {region: DE}}`, not by its fields
                names |= _field_names(inner)
    return names


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _models_in(arg)]


def test_every_settings_field_is_in_the_configuration_page():
    text = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    # A field is named in backticks (`chunk_rows`, `local: {path, glob}`) or in such a {...} list.
    named = set(re.findall(r"`([a-z_][a-z0-9_]*)", text)) | set(re.findall(r"[{,] ?([a-z_][a-z0-9_]*)", text))
    fields = _field_names(Settings)
    assert len(fields) == 116  # distinct names; a new field must be documented here
    assert sorted(fields - named) == []


def _names(defs_: dg.Definitions) -> set[str]:
    graph = defs_.resolve_asset_graph()
    return (
        {k.to_user_string() for k in graph.get_all_asset_keys()}
        | {job.name for job in defs_.resolve_all_job_defs()}
        | {sensor.name for sensor in defs_.sensors}
        | {schedule.name for schedule in defs_.schedules}
    )


def _ui_sentence(section: str, who: str) -> set[str]:
    """The backticked names of the how-to's `In the UI the <who> brings ...` sentence."""
    sentence = re.split(r"\.\s", _section(section).split(f"In the UI the {who} brings ", 1)[1], maxsplit=1)[0]
    return set(re.findall(r"`([^`]+)`", sentence)) - {"target"}


def test_the_how_tos_name_what_their_examples_add():
    # The README's two examples put into the shipped harmonizer.yaml, as the how-tos say.
    [source_example] = re.findall(r"^```yaml\n(.*?)^```", _section("Adding a source"), re.M | re.S)
    [target_example] = re.findall(r"^```yaml\n(.*?)^```", _section("Adding a target"), re.M | re.S)
    settings = load_yaml(SHIPPED.read_text(encoding="utf-8"))
    for example in (source_example, target_example):
        settings = merged(settings, load_yaml(example))
    built = build_definitions(parse_settings(json.dumps(settings), base_dir=PROJECT_ROOT))
    added = _names(built) - _names(defs)
    # Those of the sources the examples add (clinic_d, clinic_a_visits) hold their names.
    assert {n for n in added if "clinic_d" in n} == _ui_sentence("Adding a source", "source")
    assert {n for n in added if "clinic_" not in n} == _ui_sentence("Adding a target", "target")
    graph = built.resolve_asset_graph()
    assert dg.AssetKey(["staged", "clinic_d"]) in graph.get(dg.AssetKey(["harmonized", "patients"])).parent_keys


def test_the_rules_listed_for_a_target_are_the_standardizers():
    listed = _section("Adding a target").split("standardizers applied in order (", 1)[1].split(")", 1)[0]
    assert re.findall(r"`(\w+)`", listed) == list(RULES)
