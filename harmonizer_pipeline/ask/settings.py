"""Settings of `harmonizer ask` (`ask:`) and of the summaries (`summaries:`); the language model
itself is configured by environment variables only (ask.providers)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harmonizer_pipeline.settings_model import SettingsModel


class AskSettings(SettingsModel):
    statement_timeout_seconds: float = Field(default=10.0, gt=0, le=600, description="A question's query is cancelled after this long.")
    row_limit: int = Field(default=1_000, gt=0, le=100_000, description="Rows of an answer at most; more are cut and the answer says so.")
    sample_values: int = Field(default=3, ge=0, le=20, description="Distinct values per column shown to the model (PII columns masked).")
    role: Literal["reader", "steward"] = Field(
        default="reader",
        description="Whose rights a question runs with: reader (the harmonized tables) or steward (also the quality and keys tables).",
    )


class SummarySettings(SettingsModel):
    llm: bool = Field(
        default=False,
        description="Have the language model rephrase the plain-English summaries; the deterministic text stays the fallback.",
    )
