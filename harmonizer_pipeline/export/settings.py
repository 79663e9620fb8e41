"""Settings of the exports (`export:`): where the files go, their formats, zip, B2 upload, when the
full snapshot is written."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
)

from harmonizer_pipeline.settings_model import SettingsModel


class B2Export(SettingsModel):
    bucket: str = Field(min_length=1)
    prefix: str = ""


class ExportSettings(SettingsModel):
    directory: Path | None = Field(
        default=None,
        description="Files go to <directory>/<target>/<run date>/; relative to harmonizer.yaml. Unset: exports/ in the harmonizer home (HARMONIZER_HOME, else .harmonizer).",
    )
    formats: list[Literal["csv", "parquet", "xlsx"]] = Field(default_factory=lambda: ["csv", "parquet", "xlsx"], min_length=1)
    csv_bom: bool = Field(default=False, description="Write CSV as UTF-8 with BOM, which Excel needs to detect UTF-8.")
    zip: bool = Field(default=True, description="Also a zip of every file of the export.")
    b2: B2Export | None = Field(default=None, description="Also upload the files to this bucket and prefix.")
    full: Literal["every_run", "schedule"] = Field(
        default="every_run",
        description=(
            "When the full snapshot files are written: after every merge, or only by the harmonize schedule and runs launched by hand"
            " (change files are written after every merge either way)."
        ),
    )
