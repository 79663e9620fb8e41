"""Settings of the unique-key discovery (`keys:`)."""

from __future__ import annotations

from pydantic import (
    Field,
)

from harmonizer_pipeline.settings_model import SettingsModel


class KeySettings(SettingsModel):
    max_size: int | None = Field(
        default=None, gt=0, description="Report keys of at most this many columns (exact: every such key is found), which also bounds the search."
    )
    null_equals_null: bool = Field(default=True, description="Whether two NULLs count as the same value in a key.")
