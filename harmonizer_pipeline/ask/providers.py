"""The chat model behind `harmonizer ask`: its settings, read from the environment, and one call,
`ask_model`, to an OpenAI-compatible endpoint (OpenAI, Azure OpenAI's v1 API, vLLM, Ollama,
llama.cpp's server) through the `openai` SDK or to Anthropic through the `anthropic` SDK (no dagster).

The SDKs retry by themselves (checked in openai 3.63 and anthropic 2.17): a refused connection, a
timeout, HTTP 408, 409, 429 and 5xx, up to max_retries times, waiting 0.5 s doubled at each retry
up to 8 s less a random quarter, or what the answer's Retry-After asks when above 0 (openai gives
up at once on one above 120 s). Every failure reaches the caller as one `LlmError` of one line that
names the endpoint's host and never holds the key.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import anthropic
import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

PROVIDERS = ("openai", "anthropic")
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_MAX_RETRIES = 3
# Anthropic's API requires a cap on the reply; a query and a sentence about it need far less.
MAX_REPLY_TOKENS = 4096
# What the openai SDK sends to an endpoint that needs no key (Ollama, a local vLLM): it requires one.
NO_KEY = "no-key"
EXCERPT_CHARS = 200

NOT_CONFIGURED = (
    "no language model configured: set HARMONIZER_LLM_BASE_URL and HARMONIZER_LLM_MODEL (and HARMONIZER_LLM_API_KEY if the endpoint "
    "needs one), or HARMONIZER_LLM_PROVIDER=anthropic with HARMONIZER_LLM_MODEL and HARMONIZER_LLM_API_KEY"
)


class LlmNotConfigured(Exception):
    """The environment names no usable model: one line naming the variables to set or fix."""


class LlmError(Exception):
    """The model could not be asked, or its reply is not what was asked for: one line, without the key."""


@dataclass(frozen=True)
class LlmSettings:
    """Which model to ask, where, and how patiently; the key stays out of the repr."""

    provider: str  # one of PROVIDERS
    model: str
    base_url: str | None  # None: the SDK's own (Anthropic only)
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS  # seconds for each try
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LlmSettings:
        """From HARMONIZER_LLM_PROVIDER, _BASE_URL, _MODEL, _API_KEY, _TIMEOUT and _MAX_RETRIES (blank is unset)."""
        env = os.environ if env is None else env

        def value(name: str) -> str | None:
            return env.get(f"HARMONIZER_LLM_{name}", "").strip() or None

        provider = (value("PROVIDER") or "openai").lower()
        if provider not in PROVIDERS:
            raise LlmNotConfigured(f"HARMONIZER_LLM_PROVIDER must be openai or anthropic, not {provider!r}")
        base_url, model, api_key = value("BASE_URL"), value("MODEL"), value("API_KEY")
        required = {"BASE_URL": base_url, "MODEL": model} if provider == "openai" else {"MODEL": model, "API_KEY": api_key}
        missing = [f"HARMONIZER_LLM_{name}" for name, given in required.items() if given is None]
        if provider == "openai" and len(missing) == 2:
            raise LlmNotConfigured(NOT_CONFIGURED)
        if missing:
            raise LlmNotConfigured(f"no language model configured: set {' and '.join(missing)} (HARMONIZER_LLM_PROVIDER is {provider})")
        assert model is not None  # required of both providers
        if base_url is not None and not _is_http_url(base_url):
            raise LlmNotConfigured("HARMONIZER_LLM_BASE_URL must be an http(s) URL with a host")
        return cls(
            provider=provider,
            model=model,
            base_url=base_url,
            api_key=api_key,
            timeout=_timeout(value("TIMEOUT")),
            max_retries=_max_retries(value("MAX_RETRIES")),
        )


def _is_http_url(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0  # .port raises on a bad one
    except ValueError:
        return False


def _timeout(text: str | None) -> float:
    if text is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise LlmNotConfigured(f"HARMONIZER_LLM_TIMEOUT must be a number of seconds above 0, not {text!r}")
    return seconds


def _max_retries(text: str | None) -> int:
    if text is None:
        return DEFAULT_MAX_RETRIES
    if not (text.isascii() and text.isdigit()):
        raise LlmNotConfigured(f"HARMONIZER_LLM_MAX_RETRIES must be a whole number, 0 or more, not {text!r}")
    return int(text)


def ask_model(settings: LlmSettings, system: str, messages: list[tuple[str, str]]) -> str:
    """The model's reply to the conversation `messages` ((role, content), role "user" or
    "assistant", oldest first) under the `system` prompt."""
    if settings.provider == "anthropic":
        client = anthropic.Anthropic(base_url=settings.base_url, api_key=settings.api_key, timeout=settings.timeout, max_retries=settings.max_retries)
    else:
        client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key or NO_KEY, timeout=settings.timeout, max_retries=settings.max_retries)
    host = client.base_url.netloc.decode()  # host and port, without a user or password the URL may hold
    turns = [{"role": role, "content": content} for role, content in messages]  # the API refuses a role of another name
    with client:
        try:
            if isinstance(client, anthropic.Anthropic):
                raw = client.messages.with_raw_response.create(
                    model=settings.model,
                    system=system,
                    messages=cast("list[MessageParam]", turns),
                    max_tokens=MAX_REPLY_TOKENS,
                )
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model=settings.model,
                    messages=cast("list[ChatCompletionMessageParam]", [{"role": "system", "content": system}, *turns]),
                )
            body = raw.http_response.text
            try:
                text = _reply_text(raw.parse())
            except (ValueError, AttributeError, TypeError):  # not JSON, or JSON of another shape: the SDKs parse without validating
                text = None
        except (openai.APITimeoutError, anthropic.APITimeoutError):
            raise LlmError(f"the language model did not answer within {settings.timeout:g} s (HARMONIZER_LLM_TIMEOUT)") from None
        except (openai.APIConnectionError, anthropic.APIConnectionError) as error:
            reason = _masked(str(error.__cause__ or error), settings)
            raise LlmError(f"cannot reach the language model at {host}: {_excerpt(reason)}") from None
        except (openai.APIStatusError, anthropic.APIStatusError) as error:
            detail = _masked(_error_message(error.body), settings)
            raise LlmError(f"the language model at {host} answered HTTP {error.status_code}" + (f": {_excerpt(detail)}" if detail else "")) from None
    if not text:
        raise LlmError(f"the language model's reply has no text: {_excerpt(_masked(body, settings))}")
    return text


def _reply_text(reply: object) -> str | None:
    """The text of an OpenAI chat completion's first choice, or of an Anthropic message's text blocks."""
    if isinstance(reply, ChatCompletion):
        return reply.choices[0].message.content if reply.choices else None
    if isinstance(reply, anthropic.types.Message):
        return "".join(block.text for block in reply.content if block.type == "text")
    return None


def _masked(text: str, settings: LlmSettings) -> str:
    """`text` without the key: a server may quote the key it refused."""
    return text.replace(settings.api_key, "***") if settings.api_key else text


def _error_message(body: object) -> str:
    """The server's own message in an error answer ({"error": {"message": ...}} in both APIs; the
    openai SDK hands over what is inside "error"), else the body as it came."""
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else error
    return str(message) if message else ""


def _excerpt(text: str) -> str:
    """`text` on one line, at most EXCERPT_CHARS long."""
    return " ".join(text.split())[:EXCERPT_CHARS]


# The first fenced block: its opening fence, an optional info string ending the line (```sql), its text.
_FENCED = re.compile(r"```(?:[\w+-]*[ \t]*\r?\n)?(.*?)```", re.DOTALL)
# How a plain reply that is SQL starts: a query, or any other statement (which the guard then
# refuses, saying why, rather than it passing for a reply without SQL).
_QUERY_START = re.compile(
    r"(?:select|with|values|table|insert|update|delete|merge|drop|create|alter|truncate|grant|revoke|copy|set|reset|do|call"
    r"|explain|vacuum|analyze|lock|listen|notify|prepare|execute|load|begin|commit|rollback)\b",
    re.IGNORECASE,
)


def sql_from_reply(text: str) -> str:
    """The query in a model's reply: the first fenced block's text, else the whole reply if it
    starts as SQL does (a statement's first word), stripped; a trailing `;` stays. A reply that is
    neither (a refusal, an explanation) raises LlmError."""
    fenced = _FENCED.search(text)
    sql = fenced.group(1).strip() if fenced else text.strip()
    if not sql or (not fenced and not _QUERY_START.match(sql)):
        raise LlmError(f"the language model's reply holds no SQL: {_excerpt(text)}")
    return sql
