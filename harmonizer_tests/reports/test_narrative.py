"""summaries.llm: the model's wording of a summary is taken only when it keeps every number and
name; the deterministic text otherwise, and whenever no model answers."""

from __future__ import annotations

import pytest

from harmonizer_pipeline.reports.narrative import facts, rephrased
from harmonizer_tests.ask.model_server import ModelServer, Status

TEXT = (
    "jan.csv arrived in clinic_a: 100 bytes, 5 rows, read as CSV in UTF-8. The schema gate let it through with 1 of 5 rows (20%)"
    " set aside in quality.rejected_rows."
)
FAITHFUL = "clinic_a got jan.csv (100 bytes, 5 rows, CSV in UTF-8); 1 of 5 rows (20%) went to quality.rejected_rows."


@pytest.fixture
def server():
    with ModelServer() as running:
        yield running


def env(server: ModelServer) -> dict[str, str]:
    return {"HARMONIZER_LLM_BASE_URL": server.base_url, "HARMONIZER_LLM_MODEL": "loopback-1", "HARMONIZER_LLM_MAX_RETRIES": "0"}


def test_a_wording_that_keeps_every_fact_is_taken(server):
    server.script = [FAITHFUL]
    assert rephrased(TEXT, env(server)) == FAITHFUL
    assert server.requests[0].body["messages"][1] == {"role": "user", "content": TEXT}


@pytest.mark.parametrize(
    "reply",
    [
        FAITHFUL.replace("1 of 5", "one of five"),  # a number lost
        FAITHFUL.replace("jan.csv", "the January file"),  # a file name lost
        FAITHFUL.replace("20%", "21%"),  # a figure changed
        "",
    ],
)
def test_a_wording_that_loses_a_fact_is_not(server, reply):
    server.script = [reply] if reply else [Status(200)]
    assert rephrased(TEXT, env(server)) == TEXT


def test_no_model_or_a_failing_one_leaves_the_text(server):
    assert rephrased(TEXT, {}) == TEXT
    server.script = [Status(500)]
    assert rephrased(TEXT, env(server)) == TEXT


def test_the_facts_of_a_text():
    # UTF-8's 8 is a number like any other: a wording must keep it.
    assert facts(TEXT) == {"jan.csv", "clinic_a", "100", "5", "1", "20%", "quality.rejected_rows", "8"}
