"""The plain-English summaries rephrased by the language model, where `summaries.llm` asks for it
(no dagster). The deterministic text is the default and the fallback: it is kept whenever no
model is configured, the model fails, or its wording drops or changes any number or name the
text holds (a summary people act on must not gain or lose a figure)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from harmonizer_pipeline.ask.providers import LlmError, LlmNotConfigured, LlmSettings, ask_model

PROMPT = (
    "Rephrase this summary of a data pipeline step for a busy reader, in plain English, in at most as many sentences. "
    "Keep every number, file name, column name and table name exactly as written. Answer with the summary alone."
)
# What must survive the rephrasing as written: numbers (with their separators and signs) and
# names with a dot, underscore or digit in them (files, tables, columns such as customer_id).
_FACTS = re.compile(r"-?\d[\d,.%]*\d%?|\d%?|\b\w*[._]\w[\w.]*\b")


def rephrased(text: str, env: Mapping[str, str] | None = None) -> str:
    """The model's wording of `text` when it keeps every fact of it, else `text`."""
    try:
        told = ask_model(LlmSettings.from_env(env), PROMPT, [("user", text)]).strip()
    except (LlmNotConfigured, LlmError):
        return text
    return told if told and facts(text) <= facts(told) else text


def facts(text: str) -> set[str]:
    """The numbers and names of a text, each once (trailing sentence dots left off)."""
    return {found.rstrip(".") for found in _FACTS.findall(text)}
