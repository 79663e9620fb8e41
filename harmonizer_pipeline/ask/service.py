"""A question in plain language answered from the harmonized tables (no dagster): what `harmonizer
ask` and the job `ask` run.

The model is told the tables the asker's role may read (ask.catalog) and, in a session, the
earlier turns; its reply's SQL is checked (ask.guard), then run read-only as that role
(ask.runner). Every question, its SQL and its outcome (answered, refused, failed) go to
ops.questions, which also keeps the sessions, and to ops.audit_log. The rows people see have
their PII masked unless asked otherwise; the rows --explain sends to the model always do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from harmonizer_pipeline.ask.catalog import catalog, masked_rows
from harmonizer_pipeline.ask.guard import QueryRefused, check_query
from harmonizer_pipeline.ask.providers import LlmError, LlmSettings, ask_model, sql_from_reply
from harmonizer_pipeline.ask.runner import QueryFailed, run_query
from harmonizer_pipeline.bookkeeping import audit, profiles
from harmonizer_pipeline.harmonize import store
from harmonizer_pipeline.privacy.policy import target_columns
from harmonizer_pipeline.settings import Settings

SESSION_TURNS = 10  # earlier turns of a session the model is shown
EXPLAIN_ROWS = 50  # rows --explain shows the model
SYSTEM_PROMPT = """You answer questions about data held in PostgreSQL by writing one SQL query.
Rules:
- Write exactly one PostgreSQL SELECT statement (WITH is allowed) and nothing else.
- Read only the tables listed below, always schema-qualified.
- Use ordinary SQL functions only (aggregates, window functions, string, number and date functions).
- Answer with the query alone in a ```sql fenced block.
The tables:
{tables}"""
EXPLAIN_PROMPT = "Answer the user's question in one plain sentence from the query result given. Say only what the rows show."


class AskNotPossible(RuntimeError):
    """Nothing can be asked here (no target, no table): one line."""


@dataclass(frozen=True)
class Answer:
    question: str
    sql: str
    columns: list[str]
    rows: list[tuple]  # as shown: PII masked unless show_pii
    truncated: bool
    explanation: str | None = None

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def as_json(self) -> dict:
        return {
            "question": self.question, "sql": self.sql, "columns": self.columns, "rows": [list(r) for r in self.rows],
            "row_count": self.row_count, "truncated": self.truncated, **({"explanation": self.explanation} if self.explanation is not None else {}),
        }  # fmt: skip


@dataclass(frozen=True)
class Asking:
    """Who asks, how: the role whose rights the query runs with, the target it is about (all when
    None), the session it continues, whether to explain, whether the rows show PII in clear."""

    role: str
    asked_by: str  # who: a login name, or what launched the job's run
    run_id: str  # the job's run, or an id of the command's own for the audit log
    target: str | None = None
    session: str | None = None
    explain: bool = False
    show_pii: bool = False


def ask(settings: Settings, connect: Callable[[], AbstractContextManager], llm: LlmSettings, question: str, how: Asking) -> Answer:
    """The answer to `question`; raises QueryRefused (the SQL was not let through), QueryFailed
    (it ran and failed) or LlmError (the model did not give an answer), each recorded."""
    if how.target is not None and how.target not in settings.targets:
        raise AskNotPossible(f"no target {how.target!r} in harmonizer.yaml (targets: {', '.join(settings.targets) or 'none'})")
    with connect() as conn:
        tables = catalog(conn, settings, how.role, how.target, settings.ask.sample_values)
        turns = _turns(conn, how.session) if how.session else []
        pii = _pii_columns(conn, settings)
    if not tables.tables:
        raise AskNotPossible("there is no harmonized table to ask about yet: harmonize a target first")
    query = None
    try:
        query = sql_from_reply(ask_model(llm, SYSTEM_PROMPT.format(tables=tables.prompt()), [*_history(turns), ("user", question)]))
        checked = check_query(query, tables.allowed, store.SCHEMA)
        query = checked.sql
        found = run_query(connect, query, how.role, settings.ask.statement_timeout_seconds, settings.ask.row_limit, store.SCHEMA)
        explanation = _explain(llm, question, found.columns, masked_rows(found.columns, found.rows[:EXPLAIN_ROWS], pii)) if how.explain else None
    except QueryRefused as exc:
        _record(connect, how, question, query, "refused", str(exc), None, None)
        raise
    except (QueryFailed, LlmError) as exc:
        _record(connect, how, question, query, "failed", str(exc), None, None)
        raise
    rows = found.rows if how.show_pii else masked_rows(found.columns, found.rows, pii)
    _record(connect, how, question, query, "answered", None, len(rows), found.truncated)
    return Answer(question, query, found.columns, rows, found.truncated, explanation)


def _pii_columns(conn, settings: Settings) -> dict[str, str]:
    """Column -> PII kind over every target (an answer's columns are matched by name)."""
    detected = profiles.flagged_pii(conn, list(settings.sources)) if settings.privacy.detect else {}
    found: dict[str, str] = {}
    for target in settings.targets:
        found |= target_columns(settings, target, detected)
    return found


def _turns(conn, session: str) -> list[tuple[str, str, int]]:
    """The session's latest answered turns, oldest first: (question, sql, rows)."""
    rows = conn.execute(
        "SELECT question, sql, row_count FROM ops.questions WHERE session = %s AND outcome = 'answered' ORDER BY id DESC LIMIT %s",
        (session, SESSION_TURNS),
    ).fetchall()
    return [(q, s, n) for q, s, n in reversed(rows)]


def _history(turns: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """Earlier turns as the conversation the model continues: each question and the query it got."""
    messages = []
    for question, query, rows in turns:
        messages += [("user", question), ("assistant", f"```sql\n{query}\n```\n(it returned {rows} row{'s' if rows != 1 else ''})")]
    return messages


def _explain(llm: LlmSettings, question: str, columns: list[str], rows: list[tuple]) -> str:
    result = json.dumps({"columns": columns, "rows": [list(r) for r in rows]}, default=str, ensure_ascii=False)
    return ask_model(llm, EXPLAIN_PROMPT, [("user", f"Question: {question}\nQuery result: {result}")]).strip()


def _record(connect, how: Asking, question: str, query: str | None, outcome: str, reason: str | None, rows: int | None, truncated: bool | None) -> None:
    with connect() as conn:
        conn.execute(
            "INSERT INTO ops.questions (asked_by, session, role, question, sql, outcome, reason, row_count, truncated) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (how.asked_by, how.session, how.role, question, query, outcome, reason, rows, truncated),
        )
        detail = f"{question!r}: {outcome}" + (f" ({reason})" if reason else f", {rows} row(s)")
        audit.record(
            conn, audit.AuditEntry("ask", outcome, how.run_id, how.asked_by, "ask", rows_out=rows, detail=detail + (f"; SQL: {query}" if query else ""))
        )
