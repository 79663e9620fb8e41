"""Settings of retention (`retention:`): how many days each layer keeps a file, and when the
daily retention run starts. Unset keeps forever (the default)."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from harmonizer_pipeline.settings_model import Cron, SettingsModel

_DAYS = "Days a file's rows stay in {} after the file was loaded; unset keeps them forever."


class Retention(SettingsModel):
    raw: PositiveInt | None = Field(default=None, description=_DAYS.format("raw/<source>"))
    validated: PositiveInt | None = Field(default=None, description=_DAYS.format("validated/<source>"))
    staged: PositiveInt | None = Field(
        default=None,
        description=_DAYS.format("staged/<source> (the mapped layer)") + " The target loses the file's rows with them, through its merge.",
    )
    rejected_rows: PositiveInt | None = Field(default=None, description=_DAYS.format("quality.rejected_rows"))
    exports: PositiveInt | None = Field(
        default=None,
        description="Days an export folder (<directory>/<target>/<run date>/, and its copy in export.b2) is kept after its run date; unset keeps them forever.",
    )
    cron: Cron = Field(default="0 2 * * *", description="When the schedule retention_daily runs (in schedules.timezone).")

    @property
    def layer_days(self) -> dict[str, int]:
        """The file layers that have a limit, and their days."""
        return {layer: days for layer in FILE_LAYERS if (days := getattr(self, layer)) is not None}

    @property
    def limited(self) -> bool:
        """Some layer has a limit: the schedule then starts running."""
        return bool(self.layer_days) or self.exports is not None


# The layers that hold a file's rows, in the order a file passes them.
FILE_LAYERS = ("raw", "validated", "staged", "rejected_rows")
