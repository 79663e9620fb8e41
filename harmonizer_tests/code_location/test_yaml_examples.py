"""YAML that means what it says: every YAML example of the documentation (```yaml blocks of
README.md, deploy/README.md and docs/) and every example commented out in the shipped
harmonizer.yaml loads as written. Examples of harmonizer.yaml are read by the project's loader
and validated as settings in the shipped file; the others, read by other tools, keep string keys
even under YAML 1.1."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from harmonizer_pipeline.settings import PROJECT_ROOT, Settings, parse_settings
from harmonizer_pipeline.yaml_loader import load_yaml

SHIPPED = PROJECT_ROOT / "harmonizer.yaml"
DOCS = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "deploy" / "README.md", *sorted((PROJECT_ROOT / "docs").glob("**/*.md"))]
FENCE = re.compile(r"^ *```yaml\n(.*?)^ *```", re.M | re.S)
SECTIONS = set(Settings.model_fields) - {"base_dir"}
ALERT_EVENTS = ["run_failure", "check_failure", "check_warning"]


def doc_examples() -> list[tuple[str, str]]:
    """(file:line, text) of every ```yaml block of the docs."""
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            found.append((f"{doc.relative_to(PROJECT_ROOT)}:{text.count(chr(10), 0, match.start()) + 1}", match.group(1)))
    return found


def commented_examples() -> list[tuple[str, str]]:
    """(harmonizer.yaml:line, text) of the examples commented out in the shipped file: a comment
    `# <section>:` naming a settings section and the indented comment lines below it."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines):
        section = re.match(r"# ([a-z_]+):", line)
        if section and section.group(1) in SECTIONS:
            block = [line]
            for following in lines[number + 1 :]:
                if not following.startswith("#  "):
                    break
                block.append(following)
            found.append((f"harmonizer.yaml:{number + 1}", "".join(f"{b[2:]}\n" for b in block)))
    return found


def settings_examples() -> list[tuple[str, str]]:
    return [(where, text) for where, text in doc_examples() + commented_examples() if set(load_yaml(text)) <= SECTIONS]


def keys(node: Any) -> Iterator[Any]:
    """Every mapping key in a loaded document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys(item)


def merged(base: Any, fragment: Any) -> Any:
    """`fragment` over `base`: mappings merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(fragment, dict):
        return {**base, **{k: merged(base[k], v) if k in base else v for k, v in fragment.items()}}
    return fragment


def in_the_shipped_settings(text: str) -> Settings:
    """The example put into the shipped harmonizer.yaml, loaded as settings."""
    shipped = load_yaml(SHIPPED.read_text(encoding="utf-8"))
    return parse_settings(json.dumps(merged(shipped, load_yaml(text))), base_dir=PROJECT_ROOT)


def test_the_examples_are_found():
    # Guards the extraction: the README's add-a-source and add-a-target examples, the
    # quality-gate example of docs/quality.md and the alerts example of docs/operations.md, the
    # shipped file's B2 source, ingest, alerts and trends examples, deploy/README's compose file.
    places = [where.split(":")[0] for where, _ in settings_examples()]
    assert (places.count("README.md"), places.count("docs/quality.md"), places.count("docs/operations.md")) == (2, 1, 1)
    assert places.count("harmonizer.yaml") >= 4
    assert "deploy/README.md" in {where.split(":")[0] for where, _ in doc_examples()}


@pytest.mark.parametrize(("where", "text"), settings_examples(), ids=[where for where, _ in settings_examples()])
def test_each_settings_example_loads_as_settings(where, text):
    fragment = load_yaml(text)
    assert all(isinstance(key, str) for key in keys(fragment))
    settings = in_the_shipped_settings(text)
    for section, value in fragment.items():
        loaded = getattr(settings, section)
        if section == "relations":
            assert [item.model_dump(by_alias=True, exclude_unset=True) for item in loaded] == [_sides_spelled_out(item) for item in value]
        elif section not in ("sources", "targets"):
            assert loaded.model_dump(by_alias=True, exclude_unset=True) == value


def _sides_spelled_out(relation: dict) -> dict:
    """A relation of an example as it loads: a `table.column` side as {table, columns: [column]}."""

    def side(value):
        return {"table": value.split(".", 1)[0], "columns": [value.split(".", 1)[1]]} if isinstance(value, str) else value

    return {key: side(value) if key in ("from", "to") else value for key, value in relation.items()}


@pytest.mark.parametrize(
    ("where", "text"),
    [(where, text) for where, text in doc_examples() if not set(load_yaml(text)) <= SECTIONS],
    ids=[where for where, text in doc_examples() if not set(load_yaml(text)) <= SECTIONS],
)
def test_other_examples_keep_string_keys_under_yaml_1_1(where, text):
    # Read by Docker Compose, Helm or Dagster: no key a YAML 1.1 reader would turn into a boolean.
    assert all(isinstance(key, str) for key in keys(yaml.safe_load(text)))


@pytest.mark.parametrize("where", ["docs/operations.md", "harmonizer.yaml"])
def test_the_documented_alerts_on_list_loads_as_written(where):
    [text] = [text for w, text in settings_examples() if w.startswith(where) and "alerts" in load_yaml(text)]
    assert "\n  on: [run_failure, check_failure, check_warning]\n" in text
    assert load_yaml(text)["alerts"]["on"] == ALERT_EVENTS
    settings = in_the_shipped_settings(text)
    assert settings.alerts.on == ALERT_EVENTS
    assert [type(channel).__name__ for channel in settings.alerts.channels()] == ["WebhookChannel", "SlackChannel", "EmailChannel"]


def test_the_shipped_settings_have_string_keys():
    assert all(isinstance(key, str) for key in keys(load_yaml(SHIPPED.read_text(encoding="utf-8"))))
