"""What every part of the settings model shares (no dagster): the base model (unknown fields are
errors, values frozen), the per-field problems a validator of several fields reports, and the
constrained types several stages use (names, cron strings, time zones, environment variable names)."""

from __future__ import annotations

import zoneinfo
from typing import Annotated

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    StringConstraints,
)


class FieldProblems(ValueError):
    """What a validator of several fields found: (path below the validated object, reason) each,
    so that every field gets its own line."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))
        self.problems = problems


class SettingsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Source names become asset keys and PostgreSQL table names.
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


ColumnName = Annotated[str, StringConstraints(min_length=1)]


Scalar = str | int | float | bool


def _cron(value: str) -> str:
    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron string of five fields (minute hour day month weekday)")
    return value


def _time_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
    return value


Cron = Annotated[str, AfterValidator(_cron)]
TimeZone = Annotated[str, AfterValidator(_time_zone)]


# Names of environment variables: secrets (webhook URLs, SMTP passwords) never sit in harmonizer.yaml.
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
