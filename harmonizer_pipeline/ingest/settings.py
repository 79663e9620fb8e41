"""Settings of the ingest stage: where a source's files land (a local folder or a B2 bucket), the
format hints the readers take, and how loads are paced and retried (`ingest:`)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from harmonizer_pipeline.ingest.landing import split_glob
from harmonizer_pipeline.settings_model import SettingsModel


def _zone_glob(value: str) -> str:
    split_glob(value)  # the landing zones' own rule, so a glob that passes here also works there
    return value


ZoneGlob = Annotated[str, AfterValidator(_zone_glob)]


class LocalLanding(SettingsModel):
    path: Path = Field(description="Folder files land in; relative paths are relative to harmonizer.yaml.")
    glob: ZoneGlob = Field(default="*", description="Which files of the folder belong to this source.")


class B2Landing(SettingsModel):
    bucket: str = Field(min_length=1)
    prefix: str = ""
    glob: ZoneGlob = Field(default="*", description="Which objects under the prefix belong to this source.")


class Landing(SettingsModel):
    local: LocalLanding | None = None
    b2: B2Landing | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Landing:
        if (self.local is None) == (self.b2 is None):
            raise ValueError("give exactly one of 'local' or 'b2'")
        return self


class FormatHints(SettingsModel):
    """What the readers would otherwise detect; leave a field out to detect it."""

    format: Literal["csv", "tsv", "excel", "json", "xml", "parquet"] | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str | None = None
    header: bool | None = None
    sheet: str | None = Field(default=None, description="Excel: read only this sheet.")
    record_path: str | None = Field(default=None, description="JSON: dotted path to the records list; XML: the record element or its path.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value


class Ingest(SettingsModel):
    chunk_rows: int = Field(default=100_000, gt=0, description="Rows per chunk while loading a file.")
    max_new_files_per_tick: int = Field(default=200, gt=0, description="Files one sensor tick requests at most.")
    max_listed_per_tick: int = Field(default=10_000, gt=0, description="Objects one tick lists at most; the cursor resumes the sweep next tick.")
    sensor_interval_seconds: int = Field(
        default=30, ge=1, le=86_400, description="Seconds between two ticks of a landing sensor (at least; the daemon decides when)."
    )
    max_load_attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Runs a file's load gets in all when its run dies or the database fails it (never for a file that cannot be read).",
    )
    retry_backoff_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="Wait before the second attempt; it doubles for each further one (at most an hour)."
    )
    load_heartbeat_timeout_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="A load whose run shows no sign of life for this long is taken for dead (its worker or the database died).",
    )
