"""The chat model settings, `ask_model` through the real openai and anthropic SDKs against a
scripted model server on loopback, and taking the SQL out of a reply."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harmonizer_pipeline.ask.providers import LlmError, LlmNotConfigured, LlmSettings, ask_model, sql_from_reply
from harmonizer_tests.ask.model_server import Garbage, Hang, ModelServer, Request, Status
from harmonizer_tests.loopback import free_port

KEY = "sk-test-SECRET"
MODEL = "loopback-model"
SYSTEM = "You write one PostgreSQL query."
CONVERSATION = [("user", "How many patients?"), ("assistant", "SELECT count(*) FROM patients"), ("user", "And per clinic?")]
REPLY = "```sql\nSELECT clinic, count(*) FROM patients GROUP BY clinic\n```"
TURNS = [{"role": role, "content": content} for role, content in CONVERSATION]
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def server():
    with ModelServer() as running:
        yield running


def settings_for(server: ModelServer, provider: str, **changes) -> LlmSettings:
    """Settings for `provider` pointed at the server; `changes` as LlmSettings' fields."""
    base_url = server.base_url if provider == "openai" else server.root_url
    return LlmSettings(**{"provider": provider, "model": MODEL, "base_url": base_url, "api_key": KEY, **changes})


def host(server: ModelServer) -> str:
    return server.root_url.removeprefix("http://")


def key_sent(request: Request) -> str | None:
    """The key as the SDK sent it: in Authorization (openai, anthropic 2.17) or x-api-key (anthropic 0.40)."""
    authorization = request.headers.get("authorization")
    return authorization.removeprefix("Bearer ") if authorization else request.headers.get("x-api-key")


def test_openai_gets_the_system_prompt_first_then_the_messages_in_order(server):
    server.script = [REPLY]
    assert ask_model(settings_for(server, "openai"), SYSTEM, CONVERSATION) == REPLY
    [request] = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == MODEL
    assert request.body["messages"] == [{"role": "system", "content": SYSTEM}, *TURNS]
    assert key_sent(request) == KEY


def test_anthropic_gets_the_system_prompt_apart_and_a_reply_cap(server):
    server.script = [REPLY]
    assert ask_model(settings_for(server, "anthropic"), SYSTEM, CONVERSATION) == REPLY
    [request] = server.requests
    assert request.path == "/v1/messages"
    assert (request.body["model"], request.body["system"], request.body["max_tokens"]) == (MODEL, SYSTEM, 4096)
    assert request.body["messages"] == TURNS
    assert key_sent(request) == KEY


def test_an_endpoint_without_a_key_gets_a_placeholder(server):
    """Ollama and a local vLLM take any key; the openai SDK refuses to send none."""
    server.script = ["SELECT 1"]
    assert ask_model(settings_for(server, "openai", api_key=None), SYSTEM, CONVERSATION) == "SELECT 1"
    assert key_sent(server.requests[0]) == "no-key"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limited_once_answers_on_the_retry(server, provider):
    server.script = [Status(429, retry_after="0"), "SELECT 1"]
    assert ask_model(settings_for(server, provider), SYSTEM, CONVERSATION) == "SELECT 1"
    assert len(server.requests) == 2
    assert server.requests[0].body == server.requests[1].body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_two_server_errors_then_an_answer_within_three_retries(server, provider):
    server.script = [Status(500), Status(500), "SELECT 2"]
    assert ask_model(settings_for(server, provider, max_retries=3), SYSTEM, CONVERSATION) == "SELECT 2"
    assert len(server.requests) == 3


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_errors_past_the_retries_name_the_status_and_host(server, provider):
    server.script = [Status(503), Status(503), "never reached"]
    with pytest.raises(LlmError) as raised:
        ask_model(settings_for(server, provider, max_retries=1), SYSTEM, CONVERSATION)
    assert str(raised.value) == f"the language model at {host(server)} answered HTTP 503: loopback answered 503"
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_key_is_not_retried_and_not_quoted(server, provider):
    """Servers quote the key they refuse; the error must not pass it on."""
    server.script = [Status(401, message=f"Incorrect API key provided: {KEY}."), "never reached"]
    with pytest.raises(LlmError) as raised:
        ask_model(settings_for(server, provider), SYSTEM, CONVERSATION)
    assert str(raised.value) == f"the language model at {host(server)} answered HTTP 401: Incorrect API key provided: ***."
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_model_that_hangs_times_out_with_one_line(server, provider):
    server.script = [Hang(30)]
    started = time.monotonic()
    with pytest.raises(LlmError) as raised:
        ask_model(settings_for(server, provider, timeout=1, max_retries=0), SYSTEM, CONVERSATION)
    assert str(raised.value) == "the language model did not answer within 1 s (HARMONIZER_LLM_TIMEOUT)"
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_refused_connection_names_the_host(provider):
    port = free_port()  # nothing listens there
    base_url = f"http://127.0.0.1:{port}" + ("/v1" if provider == "openai" else "")
    settings = LlmSettings(provider=provider, model=MODEL, base_url=base_url, api_key=KEY, max_retries=0)
    with pytest.raises(LlmError) as raised:
        ask_model(settings, SYSTEM, CONVERSATION)
    assert str(raised.value) == f"cannot reach the language model at 127.0.0.1:{port}: [Errno 111] Connection refused"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "garbage, excerpt",
    [
        (Garbage(b'{"id": "x", "object": "chat.completion"}'), '{"id": "x", "object": "chat.completion"}'),
        (Garbage(b'{"choices": [], "content": []}'), '{"choices": [], "content": []}'),
        (Garbage(b"upstream\nbroke " + b"x" * 300), "upstream broke " + "x" * 185),
        (Garbage(b"<html>502 Bad Gateway</html>", "text/html"), "<html>502 Bad Gateway</html>"),
        (Garbage(f'{{"echo": "{KEY}"}}'.encode()), '{"echo": "***"}'),
    ],
    ids=["json-without-reply", "empty-choices-and-content", "not-json", "html", "quotes-the-key"],
)
def test_a_reply_without_text_is_refused_with_a_one_line_excerpt(server, provider, garbage, excerpt):
    server.script = [garbage]
    with pytest.raises(LlmError) as raised:
        ask_model(settings_for(server, provider), SYSTEM, CONVERSATION)
    assert str(raised.value) == f"the language model's reply has no text: {excerpt}"


EMPTY_ENV_MESSAGE = (
    "no language model configured: set HARMONIZER_LLM_BASE_URL and HARMONIZER_LLM_MODEL (and HARMONIZER_LLM_API_KEY if the endpoint needs one), "
    "or HARMONIZER_LLM_PROVIDER=anthropic with HARMONIZER_LLM_MODEL and HARMONIZER_LLM_API_KEY"
)
OPENAI_ENV = {"HARMONIZER_LLM_BASE_URL": "http://127.0.0.1:11434/v1", "HARMONIZER_LLM_MODEL": "llama3.2", "HARMONIZER_LLM_API_KEY": KEY}


def test_an_empty_environment_says_what_to_set():
    with pytest.raises(LlmNotConfigured) as raised:
        LlmSettings.from_env({"HARMONIZER_LLM_BASE_URL": "  "})  # blank is unset
    assert str(raised.value) == EMPTY_ENV_MESSAGE


def test_settings_from_the_process_environment_with_defaults(monkeypatch):
    for name, value in OPENAI_ENV.items():
        monkeypatch.setenv(name, value)
    assert LlmSettings.from_env() == LlmSettings("openai", "llama3.2", "http://127.0.0.1:11434/v1", KEY, timeout=60.0, max_retries=3)


def test_anthropic_needs_no_base_url():
    env = {"HARMONIZER_LLM_PROVIDER": "Anthropic", "HARMONIZER_LLM_MODEL": "claude-x", "HARMONIZER_LLM_API_KEY": KEY, "HARMONIZER_LLM_TIMEOUT": "2.5",
           "HARMONIZER_LLM_MAX_RETRIES": "0"}  # fmt: skip
    assert LlmSettings.from_env(env) == LlmSettings("anthropic", "claude-x", None, KEY, timeout=2.5, max_retries=0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"HARMONIZER_LLM_PROVIDER": "gemini"}, "HARMONIZER_LLM_PROVIDER must be openai or anthropic, not 'gemini'"),
        ({"HARMONIZER_LLM_MODEL": ""}, "no language model configured: set HARMONIZER_LLM_MODEL (HARMONIZER_LLM_PROVIDER is openai)"),
        ({"HARMONIZER_LLM_BASE_URL": ""}, "no language model configured: set HARMONIZER_LLM_BASE_URL (HARMONIZER_LLM_PROVIDER is openai)"),
        ({"HARMONIZER_LLM_PROVIDER": "anthropic", "HARMONIZER_LLM_API_KEY": ""},
         "no language model configured: set HARMONIZER_LLM_API_KEY (HARMONIZER_LLM_PROVIDER is anthropic)"),
        ({"HARMONIZER_LLM_BASE_URL": "ftp://127.0.0.1/v1"}, "HARMONIZER_LLM_BASE_URL must be an http(s) URL with a host"),
        ({"HARMONIZER_LLM_BASE_URL": f"http:///{KEY}"}, "HARMONIZER_LLM_BASE_URL must be an http(s) URL with a host"),
        ({"HARMONIZER_LLM_BASE_URL": "http://127.0.0.1:99999/v1"}, "HARMONIZER_LLM_BASE_URL must be an http(s) URL with a host"),
        ({"HARMONIZER_LLM_TIMEOUT": "soon"}, "HARMONIZER_LLM_TIMEOUT must be a number of seconds above 0, not 'soon'"),
        ({"HARMONIZER_LLM_TIMEOUT": "0"}, "HARMONIZER_LLM_TIMEOUT must be a number of seconds above 0, not '0'"),
        ({"HARMONIZER_LLM_TIMEOUT": "nan"}, "HARMONIZER_LLM_TIMEOUT must be a number of seconds above 0, not 'nan'"),
        ({"HARMONIZER_LLM_MAX_RETRIES": "-1"}, "HARMONIZER_LLM_MAX_RETRIES must be a whole number, 0 or more, not '-1'"),
        ({"HARMONIZER_LLM_MAX_RETRIES": "1.5"}, "HARMONIZER_LLM_MAX_RETRIES must be a whole number, 0 or more, not '1.5'"),
    ],
)  # fmt: skip
def test_each_bad_variable_is_named_without_the_key(changes, message):
    with pytest.raises(LlmNotConfigured) as raised:
        LlmSettings.from_env(OPENAI_ENV | changes)
    assert str(raised.value) == message
    assert KEY not in str(raised.value)


def test_the_key_stays_out_of_the_repr():
    settings = LlmSettings.from_env(OPENAI_ENV)
    assert settings.api_key == KEY
    assert KEY not in repr(settings)
    assert KEY not in str(settings)


@pytest.mark.parametrize(
    "reply, sql",
    [
        ("Here it is:\n```sql\nSELECT 1\n```\nIt counts.", "SELECT 1"),
        ("```\nselect a\nfrom t;\n```", "select a\nfrom t;"),
        ("```SELECT 1```", "SELECT 1"),
        ("  SELECT a FROM t\n", "SELECT a FROM t"),
        ("WITH x AS (SELECT 1) SELECT * FROM x;", "WITH x AS (SELECT 1) SELECT * FROM x;"),
        ("```sql\nSELECT 1\n```\nor\n```sql\nSELECT 2\n```", "SELECT 1"),
    ],
    ids=["fenced-sql", "fenced-untagged", "fenced-one-line", "plain", "plain-semicolon", "two-fenced"],
)
def test_the_query_is_taken_out_of_the_reply(reply, sql):
    assert sql_from_reply(reply) == sql


@pytest.mark.parametrize(
    "reply, excerpt",
    [
        ("I cannot help with that.", "I cannot help with that."),
        ("Selecting the rows\nneeds a table.", "Selecting the rows needs a table."),
        ("```sql\n\n```", "```sql ```"),
        ("No. " * 100, ("No. " * 50)[:200]),
    ],
    ids=["refusal", "select-as-a-word", "empty-fence", "long"],
)
def test_a_reply_without_a_query_is_refused(reply, excerpt):
    with pytest.raises(LlmError) as raised:
        sql_from_reply(reply)
    assert str(raised.value) == f"the language model's reply holds no SQL: {excerpt}"


@given(st.text(st.characters(blacklist_characters="`"), max_size=60))
def test_a_query_comes_back_stripped_fenced_or_plain(rest):
    sql = "SELECT " + rest
    assert sql_from_reply(f"```sql\n{sql}\n```") == sql.strip()
    assert sql_from_reply(sql) == sql.strip()


def test_a_plain_statement_that_is_no_query_is_taken_for_the_guard_to_refuse():
    assert sql_from_reply("DROP TABLE harmonized.patients") == "DROP TABLE harmonized.patients"
    assert sql_from_reply("  delete from x;") == "delete from x;"
