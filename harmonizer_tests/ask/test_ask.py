"""`harmonizer ask` and the job `ask` end to end: a real pipeline run harmonizes a target, a
loopback model answers from a script (fair SQL, fenced SQL, hostile SQL, garbage, 429, a hang),
and every answer, refusal and failure is checked exactly; after all of them no table changed and
no secret or file content was printed."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from harmonizer_pipeline.bookkeeping import roles
from harmonizer_pipeline.cli import main
from harmonizer_pipeline.definitions import build_definitions
from harmonizer_pipeline.demo import evaluate_sensor, launch_requests
from harmonizer_pipeline.resources import build_resources
from harmonizer_pipeline.settings import CONFIG_ENV, load_settings, parse_settings
from harmonizer_tests.ask.model_server import Garbage, Hang, ModelServer, Status

SECRET = "sk-test-SECRET-0f9a"
PEOPLE = [
    ("C1", "Ann Lee", "ann.lee@example.org", "Berlin", "2026-10-03"),
    ("C2", "Bob Roe", "bob.roe@example.org", "Berlin", "2026-11-12"),
    ("C3", "Cy Ode", "cy.ode@example.org", "Hamburg", "2026-11-20"),
    ("C4", "Dee Hu", "dee.hu@example.org", "Munich", "2026-11-28"),
    ("C5", "Ed Wu", "ed.wu@example.org", "Hamburg", "2026-09-01"),
]


@dataclass
class Asked:
    config: Path
    source: str
    target: str
    env: dict[str, str]
    server: ModelServer


@pytest.fixture(scope="module")
def asked(tmp_path_factory, database_url):
    """A source landing people.csv into a target, harmonized; a loopback model; the environment of `harmonizer ask`."""
    suffix = uuid.uuid4().hex[:10]
    source, target = f"qa_{suffix}", f"qp_{suffix}"
    tmp = tmp_path_factory.mktemp("ask")
    (tmp / "landing").mkdir()
    config = {
        "sources": {source: {"landing": {"local": {"path": "landing", "glob": "*.csv"}}, "target": target, "mapping": {"customer": "id"}}},
        "targets": {
            target: {
                "description": "people who registered",
                "columns": {
                    "customer": {"type": "text", "required": True}, "name": {"rules": ["person_name"]}, "email": {"rules": ["email"]},
                    "city": {"description": "where they live"}, "registered": {"type": "date"},
                },
                "key": ["customer"],
            }
        },
        "export": {"directory": str(tmp / "exports"), "formats": ["csv"], "zip": False},
        "ask": {"statement_timeout_seconds": 1, "row_limit": 100},
    }  # fmt: skip
    path = tmp / "harmonizer.yaml"
    path.write_text(json.dumps(config))
    settings = parse_settings(json.dumps(config), base_dir=tmp)
    defs = build_definitions(settings, build_resources())
    (tmp / "landing" / "people.csv").write_text("id,name,email,city,registered\n" + "".join(",".join(p) + "\n" for p in PEOPLE))
    with dg.instance_for_test() as instance:
        sensor = defs.resolve_sensor_def(f"{source}_landing")
        assert [r.success for r in launch_requests(defs, sensor, instance, evaluate_sensor(defs, sensor, instance))] == [True]
        assert defs.resolve_job_def(f"harmonize_{target}").execute_in_process(instance=instance).success
    roles.apply(database_url)  # as `harmonizer db migrate` does: the reader reads the harmonized tables
    with ModelServer() as server:
        env = {CONFIG_ENV: str(path), "HARMONIZER_LLM_BASE_URL": server.base_url, "HARMONIZER_LLM_MODEL": "loopback-1", "HARMONIZER_LLM_API_KEY": SECRET}
        yield Asked(path, source, target, env, server)


def run_ask(asked: Asked, *args: str, env: dict[str, str] | None = None):
    load_settings.cache_clear()  # the process's settings are read once: these are the fixture's
    try:
        return CliRunner().invoke(main, ["ask", *args], env={**asked.env, **(env or {})})
    finally:
        load_settings.cache_clear()


def snapshot(database_url: str) -> dict[str, str]:
    """Every table of the pipeline's schemas but the question log, by a digest of its rows."""
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema IN ('raw', 'validated', 'staged', 'harmonized', 'quality', 'keys', 'ops') ORDER BY 1, 2"
        ).fetchall()
        digests = {}
        for schema, table in tables:
            if (schema, table) in (("ops", "questions"), ("ops", "audit_log")):
                continue
            query = sql.SQL("SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t").format(sql.Identifier(schema, table))
            [(digests[f"{schema}.{table}"],)] = conn.execute(query).fetchall()
        return digests


OUTPUTS: list[str] = []  # everything the commands printed, searched for secrets at the end
BEFORE: dict[str, str] = {}  # each table's digest before the first question


def answered(asked: Asked, reply, *args: str, env: dict[str, str] | None = None):
    asked.server.script = list(reply) if isinstance(reply, list) else [reply]
    result = run_ask(asked, *args, env=env)
    OUTPUTS.append(result.output)
    return result


def test_before_everything_the_tables_are_recorded(asked, database_url):
    BEFORE.update(snapshot(database_url))
    assert BEFORE[f"harmonized.{asked.target}"]


def test_a_fair_question_gets_its_rows_exactly(asked):
    t = asked.target
    result = answered(asked, f"SELECT city, count(*) AS people FROM harmonized.{t} GROUP BY city ORDER BY city", "how many people per city?", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "question": "how many people per city?",
        "sql": f"SELECT city, COUNT(*) AS people FROM harmonized.{t} GROUP BY city ORDER BY city",
        "columns": ["city", "people"],
        "rows": [["Berlin", 2], ["Hamburg", 2], ["Munich", 1]],
        "row_count": 3,
        "truncated": False,
    }
    [request] = asked.server.requests[-1:]
    assert request.body["model"] == "loopback-1" and request.headers["authorization"] == f"Bearer {SECRET}"
    system, question = request.body["messages"]
    assert question == {"role": "user", "content": "how many people per city?"}
    prompt = system["content"].splitlines()
    assert f"harmonized.{t}: the harmonized rows, one per key of target {t} (people who registered) (key: customer)" in prompt
    assert "  - city text: where they live; e.g. 'Berlin', 'Hamburg', 'Munich'" in prompt
    # Sample e-mail addresses are masked: the prompt leaves for the model's provider.
    email = next(line for line in prompt if line.startswith("  - email "))  # the target's, its first table
    assert "@example.org" in email and not any(p[2] in system["content"] for p in PEOPLE)


def test_fenced_sql_in_text_mode_prints_a_table_and_the_sql(asked):
    t = asked.target
    reply = f"Here it is:\n```sql\nSELECT customer, name, email FROM harmonized.{t} WHERE city = 'Berlin' ORDER BY customer;\n```\nHope this helps."
    result = answered(asked, reply, "who lives in Berlin?")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # E-mail addresses are PII: masked unless --show-pii.
    assert lines[:3] == ["customer  name     email", "C1        Ann Lee  a***@example.org", "C2        Bob Roe  b***@example.org"]
    assert lines[3:] == ["(2 rows)", "", "SQL:", f"SELECT customer, name, email FROM harmonized.{t} WHERE city = 'Berlin' ORDER BY customer"]
    clear = answered(asked, reply, "who lives in Berlin?", "--show-pii", "--json")
    assert json.loads(clear.stdout)["rows"][0] == ["C1", "Ann Lee", "ann.lee@example.org"]


NOT_READ = "is not one the question may read (allowed: harmonized.{t}, harmonized.{t}_changes, harmonized.{t}_duplicates)"
# What a model might write, and the one line it is refused with.
HOSTILE = {
    "two statements": ("SELECT 1; DROP TABLE harmonized.{t}", "2 statements: only one query is run"),
    "drop": ("DROP TABLE harmonized.{t}", "DROP is not a query: only SELECT (with WITH) is run"),
    "delete": ("DELETE FROM harmonized.{t}", "DELETE is not a query: only SELECT (with WITH) is run"),
    "update": ("UPDATE harmonized.{t} SET city = 'x'", "UPDATE is not a query: only SELECT (with WITH) is run"),
    "a data-modifying CTE": (
        "WITH gone AS (DELETE FROM harmonized.{t} RETURNING *) SELECT count(*) FROM gone", "DELETE is not a query: only SELECT (with WITH) is run",
    ),
    "the raw layer": ("SELECT * FROM raw.{s}", "table raw.{s} " + NOT_READ),
    "the quarantine": ("SELECT * FROM quality.rejected_rows", "table quality.rejected_rows " + NOT_READ),
    "a server file": ("SELECT pg_read_file('/etc/passwd')", "function pg_read_file is not allowed"),
    "copy to a program": ("COPY (SELECT 1) TO PROGRAM 'id'", "COPY is not a query: only SELECT (with WITH) is run"),
    "sleep": ("SELECT pg_sleep(30)", "function pg_sleep is not allowed"),
    "settings": ("SELECT set_config('statement_timeout', '0', false)", "function set_config is not allowed"),
    "the catalog": ("SELECT rolname, rolpassword FROM pg_authid", "table harmonized.pg_authid " + NOT_READ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_sql_is_refused_in_one_line(asked, case):
    sql_text, reason = (text.format(t=asked.target, s=asked.source) for text in HOSTILE[case])
    result = answered(asked, f"```sql\n{sql_text}\n```", f"please do {case}")
    assert (result.exit_code, result.output) == (1, f"harmonizer ask: refused: {reason}\n")


def test_the_steward_also_reads_the_quality_tables(asked):
    query = f"SELECT severity, rows FROM quality.gate_results WHERE source = '{asked.source}'"
    steward = answered(asked, query, "how did the gate go?", "--role", "steward", "--json")
    assert steward.exit_code == 0 and json.loads(steward.stdout)["rows"] == [["ok", 5]]
    reader = answered(asked, query, "how did the gate go?")
    assert reader.exit_code == 1 and reader.output.startswith("harmonizer ask: refused: table quality.gate_results is not one the question may read")


def test_a_query_running_too_long_is_cancelled(asked):
    forever = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    result = answered(asked, forever, "count forever")
    assert (result.exit_code, result.output) == (1, "harmonizer ask: the query ran longer than 1 s (ask.statement_timeout_seconds) and was cancelled\n")


def test_a_huge_result_is_cut_at_the_row_limit(asked):
    many = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10000000) SELECT n FROM r"
    result = answered(asked, many, "all the numbers", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert (found["row_count"], found["truncated"], found["rows"][:2], found["rows"][-1]) == (100, True, [[1], [2]], [100])


def test_garbage_is_refused_and_429_is_retried(asked):
    garbage = answered(asked, "I'm sorry, I cannot help with that.", "what is the meaning of life?")
    assert (garbage.exit_code, garbage.output) == (1, "harmonizer ask: the language model's reply holds no SQL: I'm sorry, I cannot help with that.\n")
    not_json = answered(asked, Garbage(b"<html>oops</html>", "text/html"), "anything")
    assert not_json.exit_code == 1 and not_json.output.startswith("harmonizer ask: the language model's reply has no text: "), not_json.output
    before = len(asked.server.requests)
    busy = answered(asked, [Status(429, retry_after="0"), f"SELECT count(*) AS people FROM harmonized.{asked.target}"], "how many people?", "--json")
    assert busy.exit_code == 0 and json.loads(busy.stdout)["rows"] == [[5]]
    assert len(asked.server.requests) - before == 2


def test_a_hang_ends_at_the_timeout(asked):
    result = answered(asked, Hang(30), "anything", env={"HARMONIZER_LLM_TIMEOUT": "1", "HARMONIZER_LLM_MAX_RETRIES": "0"})
    assert (result.exit_code, result.output) == (1, "harmonizer ask: the language model did not answer within 1 s (HARMONIZER_LLM_TIMEOUT)\n")


def test_a_session_refines_the_previous_query(asked, database_url):
    t = asked.target
    first = answered(asked, f"SELECT city, count(*) AS people FROM harmonized.{t} GROUP BY city ORDER BY city", "people per city?", "--session", "s1", "--json")
    assert first.exit_code == 0
    second = answered(
        asked, f"SELECT city, count(*) AS people FROM harmonized.{t} WHERE registered >= DATE '2026-11-01' GROUP BY city ORDER BY city",
        "and only those registered since November?", "--session", "s1", "--json",
    )  # fmt: skip
    assert json.loads(second.stdout)["rows"] == [["Berlin", 1], ["Hamburg", 1], ["Munich", 1]]
    # The model saw the first turn: its question, the SQL it got and its row count.
    messages = asked.server.requests[-1].body["messages"][1:]
    assert messages == [
        {"role": "user", "content": "people per city?"},
        {"role": "assistant", "content": f"```sql\nSELECT city, COUNT(*) AS people FROM harmonized.{t} GROUP BY city ORDER BY city\n```\n(it returned 3 rows)"},
        {"role": "user", "content": "and only those registered since November?"},
    ]
    with psycopg.connect(database_url) as conn:
        turns = conn.execute("SELECT question, outcome, row_count FROM ops.questions WHERE session = 's1' ORDER BY id").fetchall()
    assert turns == [("people per city?", "answered", 3), ("and only those registered since November?", "answered", 3)]


def test_explain_answers_in_one_sentence_from_the_rows(asked):
    t = asked.target
    result = answered(asked, [f"SELECT city, count(*) AS people FROM harmonized.{t} GROUP BY city ORDER BY people DESC, city LIMIT 1", "Berlin has the most people: 2."],
                      "which city has the most people?", "--explain")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:5] == ["city    people", "Berlin  2", "(1 row)", "", "Berlin has the most people: 2."]
    sent = asked.server.requests[-1].body["messages"][-1]["content"]
    assert sent == 'Question: which city has the most people?\nQuery result: {"columns": ["city", "people"], "rows": [["Berlin", 2]]}'


def test_anthropic_through_its_sdk(asked):
    env = {"HARMONIZER_LLM_PROVIDER": "anthropic", "HARMONIZER_LLM_BASE_URL": asked.server.root_url}
    result = answered(asked, f"SELECT count(*) AS people FROM harmonized.{asked.target}", "how many?", "--json", env=env)
    assert result.exit_code == 0 and json.loads(result.stdout)["rows"] == [[5]]
    request = asked.server.requests[-1]
    # The SDK sends the key as x-api-key (anthropic < 2) or as a bearer token.
    assert request.path == "/v1/messages" and SECRET in (request.headers.get("x-api-key"), request.headers.get("authorization", "").removeprefix("Bearer "))
    assert f"harmonized.{asked.target}:" in request.body["system"]


def test_without_a_model_ask_exits_2_naming_the_variables(asked):
    result = run_ask(asked, "anything", env={"HARMONIZER_LLM_BASE_URL": "", "HARMONIZER_LLM_MODEL": "", "HARMONIZER_LLM_API_KEY": ""})
    assert (result.exit_code, result.output) == (
        2,
        "harmonizer ask: no language model configured: set HARMONIZER_LLM_BASE_URL and HARMONIZER_LLM_MODEL (and HARMONIZER_LLM_API_KEY if the"
        " endpoint needs one), or HARMONIZER_LLM_PROVIDER=anthropic with HARMONIZER_LLM_MODEL and HARMONIZER_LLM_API_KEY\n",
    )


def test_the_job_ask_puts_the_answer_in_its_run(asked, monkeypatch):
    for name, value in asked.env.items():
        monkeypatch.setenv(name, value)
    load_settings.cache_clear()
    defs = build_definitions(load_settings(), build_resources())
    load_settings.cache_clear()
    asked.server.script = [f"SELECT city, count(*) AS people FROM harmonized.{asked.target} GROUP BY city ORDER BY city"]
    config = {"ops": {"answer": {"config": {"question": "people per city?"}}}}
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("ask").execute_in_process(run_config=config, instance=instance)
        asked.server.script = ["DROP TABLE ops.questions"]  # plain, not fenced: still SQL, for the guard to refuse
        refused = defs.resolve_job_def("ask").execute_in_process(run_config=config, instance=instance, raise_on_error=False)
    [output] = [e.step_output_data for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    metadata = output.metadata
    assert metadata["question"] == dg.MetadataValue.text("people per city?")
    assert metadata["row_count"] == dg.MetadataValue.int(3) and metadata["truncated"] == dg.MetadataValue.bool(False)
    assert [r.data for r in metadata["rows"].value.records] == [
        {"city": "Berlin", "people": "2"},
        {"city": "Hamburg", "people": "2"},
        {"city": "Munich", "people": "1"},
    ]
    # The key reached the run as an EnvVar: no event of either run holds it.
    OUTPUTS.extend(dg.serialize_value(event) for run in (result, refused) for event in run.all_events)
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.event_specific_data.error.message.startswith("dagster._core.definitions.events.Failure: refused: ")


def test_every_question_is_audited_and_nothing_changed_or_leaked(asked, database_url):
    assert snapshot(database_url) == BEFORE
    with psycopg.connect(database_url) as conn:
        outcomes = dict(conn.execute("SELECT outcome, count(*) FROM ops.questions GROUP BY outcome").fetchall())
        [(audited,)] = conn.execute("SELECT count(*) FROM ops.audit_log WHERE action = 'ask'").fetchall()
    assert outcomes["refused"] >= len(HOSTILE) and audited == sum(outcomes.values())
    printed = "\n".join(OUTPUTS)
    assert SECRET not in printed and "root:" not in printed
