"""Typed model of harmonizer.yaml: the sources a user lands files from and the schemas that gate them.

Loaded once per process. Every invalid field is reported with its path in the YAML
(`sources.clinic_a.landing.local.path: Field required`), never as a traceback.
"""

from __future__ import annotations

import codecs
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

CONFIG_ENV = "HARMONIZER_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Source names become asset keys and PostgreSQL table names.
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class SettingsError(ValueError):
    """harmonizer.yaml is missing, unreadable or invalid; the message lists every problem."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalLanding(_Model):
    path: Path = Field(description="Folder files land in; relative paths are relative to harmonizer.yaml.")
    glob: str = Field(default="*", description="Which files of the folder belong to this source.")


class B2Landing(_Model):
    bucket: str = Field(min_length=1)
    prefix: str = ""
    glob: str = Field(default="*", description="Which objects under the prefix belong to this source.")


class Landing(_Model):
    local: LocalLanding | None = None
    b2: B2Landing | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Landing:
        if (self.local is None) == (self.b2 is None):
            raise ValueError("give exactly one of 'local' or 'b2'")
        return self


class FormatHints(_Model):
    """What the readers would otherwise detect; leave a field out to detect it."""

    format: Literal["csv", "tsv", "excel", "json", "xml", "parquet"] | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str | None = Field(default=None, min_length=1, max_length=1)
    encoding: str | None = None
    header: bool | None = None
    sheet: str | None = Field(default=None, description="Excel: read only this sheet.")
    record_path: str | None = Field(
        default=None, description="JSON: dotted path to the records list; XML: the record element or its path."
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value


class Ingest(_Model):
    chunk_rows: int = Field(default=100_000, gt=0, description="Rows per chunk while loading a file.")
    max_new_files_per_tick: int = Field(default=200, gt=0, description="Files one sensor tick requests at most.")
    max_listed_per_tick: int = Field(
        default=10_000, gt=0, description="Objects one tick lists at most; the cursor resumes the sweep next tick."
    )


class KeySettings(_Model):
    max_size: int | None = Field(default=None, gt=0, description="Report keys of at most this many columns (the search stays exact).")
    null_equals_null: bool = Field(default=True, description="Whether two NULLs count as the same value in a key.")


class Source(_Model):
    # `schema` is the YAML name; BaseModel already has a `schema` attribute.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    description: str = ""
    landing: Landing
    format: FormatHints = FormatHints()
    pandera_schema: str | None = Field(
        default=None,
        alias="schema",
        min_length=1,
        description=(
            "The pandera schema that gates the source's rows: a YAML file in pandera's from_yaml format "
            "(relative to harmonizer.yaml) or the import path of a DataFrameModel (package.module:Model). "
            "Without one, rows pass as text."
        ),
    )
    max_reject_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of a file's rows its schema may reject before the gate blocks downstream assets.",
    )
    key: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        min_length=1,
        description="The business key: the columns that identify a row. Unset: keys/<source> suggests one.",
    )


class Settings(_Model):
    sources: dict[SourceName, Source] = Field(default_factory=dict)
    ingest: Ingest = Ingest()
    keys: KeySettings = KeySettings()
    base_dir: Path = Field(default=PROJECT_ROOT, exclude=True)

    @model_validator(mode="after")
    def _schemas_load(self) -> Settings:
        # A schema that cannot be loaded is a configuration error, reported with its YAML path
        # when the settings load rather than when the first file arrives.
        from harmonizer_pipeline.quality.validation import SchemaLoadError, load_schema

        problems = []
        for name, source in self.sources.items():
            if source.pandera_schema is not None:
                try:
                    load_schema(source.pandera_schema, self.base_dir)
                except SchemaLoadError as err:
                    problems.append(f"sources.{name}.schema: {err}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def schema_for(self, source: str):
        """The source's pandera DataFrameSchema, or None when it names none."""
        from harmonizer_pipeline.quality.validation import load_schema

        spec = self.sources[source].pandera_schema
        return None if spec is None else load_schema(spec, self.base_dir)

    def landing_path(self, source: str) -> Path:
        local = self.sources[source].landing.local
        if local is None:
            raise SettingsError(f"source {source!r} lands in B2, not in a local folder")
        return local.path if local.path.is_absolute() else (self.base_dir / local.path).resolve()


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-after"))
        lines.append(f"  {location or '(top level)'}: {item['msg']}")
    return "\n".join(lines)


def parse_settings(text: str, base_dir: Path, origin: str = "harmonizer.yaml") -> Settings:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{origin} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{origin} must be a mapping with a 'sources' key, not {type(raw).__name__}")
    try:
        return Settings.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise SettingsError(f"{origin} has {exc.error_count()} invalid field(s):\n{_describe(exc)}") from None


def config_path() -> Path:
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "harmonizer.yaml"


def load_settings_file(path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_settings(text, base_dir=path.parent, origin=str(path))


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The settings of this process (HARMONIZER_CONFIG, else the project's harmonizer.yaml)."""
    return load_settings_file(config_path())
