"""Settings of automation (`schedules:`): the time zone and cron strings of the harmonize and
full-profile schedules, and whether they start running."""

from __future__ import annotations

from pydantic import Field

from harmonizer_pipeline.settings_model import Cron, SettingsModel, TimeZone


class Schedules(SettingsModel):
    timezone: TimeZone = Field(default="UTC", description="The schedules' time zone (IANA name).")
    harmonize: Cron | None = Field(default="0 6 * * *", description="Every target harmonized and exported again; null: no schedule.")
    full_profile: Cron | None = Field(default="0 3 * * 0", description="Each source's latest file profiled again (weekly); null: none.")
    running: bool = Field(default=False, description="Whether the schedules start running, or wait to be switched on in the UI.")
