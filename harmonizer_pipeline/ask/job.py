"""The job `ask`: a question in plain language from the Dagster UI (its run config), answered as
`harmonizer ask` answers it (ask.service); the answer, the SQL and the rows are the metadata of
the run's output. Dagster wiring only."""

from enum import Enum

import dagster as dg
from pydantic import Field

from harmonizer_pipeline.ask.guard import QueryRefused
from harmonizer_pipeline.ask.providers import LlmError, LlmNotConfigured
from harmonizer_pipeline.ask.runner import QueryFailed
from harmonizer_pipeline.ask.service import Asking, AskNotPossible, ask
from harmonizer_pipeline.bookkeeping.audit import launched_by
from harmonizer_pipeline.resources import LanguageModelResource, PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import table_metadata

ROWS_SHOWN = 100  # rows of an answer in the run's metadata (the CLI prints up to ask.row_limit)


class Role(Enum):
    reader = "reader"
    steward = "steward"


class Question(dg.Config):
    question: str = Field(min_length=1, description="The question, in plain language.")
    target: str | None = Field(default=None, description="Ask about this target's tables only.")
    session: str | None = Field(default=None, description="Keep the conversation under this name: a follow-up refines the previous query.")
    explain: bool = Field(default=False, description="Also have the model answer in one sentence from the rows.")
    role: Role | None = Field(default=None, description="Whose rights the query runs with (default: ask.role).")


def ask_job(settings: Settings) -> dg.JobDefinition:
    @dg.op(name="answer", description="Has the language model write one SELECT for the question, checks it and runs it read-only.")
    def answer(context: dg.OpExecutionContext, config: Question, postgres: PostgresResource, language_model: LanguageModelResource) -> dg.Output[None]:
        run = context.run
        who = launched_by(run.tags, run.parent_run_id)
        how = Asking(config.role.value if config.role else settings.ask.role, who, run.run_id, config.target, config.session, config.explain)
        try:
            found = ask(settings, postgres.connect, language_model.llm_settings(), config.question, how)
        except QueryRefused as exc:
            raise dg.Failure(description=f"refused: {exc}") from None
        except (LlmNotConfigured, LlmError, QueryFailed, AskNotPossible) as exc:
            raise dg.Failure(description=str(exc)) from None
        records = [dict(zip(found.columns, (None if v is None else str(v) for v in row), strict=True)) for row in found.rows[:ROWS_SHOWN]]
        metadata = {
            "question": found.question,
            "sql": dg.MetadataValue.md(f"```sql\n{found.sql}\n```"),
            "row_count": found.row_count,
            "truncated": found.truncated,
            "rows": table_metadata(records, [(c, "string") for c in found.columns]),
        }
        if found.explanation:
            metadata["answer"] = found.explanation
        return dg.Output(None, metadata=metadata)

    @dg.job(name="ask", description="A question in plain language over the harmonized tables (run config: question, optional target, session, explain, role).")
    def ask_question() -> None:
        answer()

    return ask_question
