"""Typed model of harmonizer.yaml: the sources a user lands files from, the schemas that gate them,
the targets they harmonize into (canonical columns, rules, business key) and the exports.

Loaded once per process. Every invalid field is reported on a line of its own with the file and
its path in the YAML (`harmonizer.yaml: sources.clinic_a.landing.local.path: Field required`),
never as a traceback. The YAML is read by yaml_loader (keys are strings, `on:` included).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from harmonizer_pipeline.ask.settings import AskSettings, SummarySettings
from harmonizer_pipeline.automation.settings import Schedules
from harmonizer_pipeline.export.settings import ExportSettings
from harmonizer_pipeline.harmonize.rules import RuleError, validate_options
from harmonizer_pipeline.harmonize.settings import ColumnMapping, Target, mapping_option_problems
from harmonizer_pipeline.ingest.settings import FormatHints, Ingest, Landing
from harmonizer_pipeline.keys.settings import KeySettings
from harmonizer_pipeline.monitoring.settings import Alerts, Trends
from harmonizer_pipeline.privacy.settings import PrivacySettings, privacy_problems
from harmonizer_pipeline.quality.validation import SchemaLoadError, load_schema
from harmonizer_pipeline.relations.settings import Relation, relation_problems
from harmonizer_pipeline.retention.settings import Retention
from harmonizer_pipeline.settings_model import FieldProblems, SettingsModel, SourceName
from harmonizer_pipeline.storage.postgres import harmonizer_home
from harmonizer_pipeline.yaml_loader import load_yaml

CONFIG_ENV = "HARMONIZER_CONFIG"


PROJECT_ROOT = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """harmonizer.yaml is missing, unreadable or invalid: one line per problem,
    `<file>: <YAML path>: <reason>` (a line and column instead of the path when the YAML itself is broken)."""

    def __init__(self, *lines: str):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class Source(SettingsModel):
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
    target: SourceName | None = Field(default=None, description="The target the source harmonizes into.")
    mode: Literal["append", "snapshot"] = Field(
        default="append",
        description=(
            "append: every file adds to the target. snapshot: each file is the source's whole content, so its latest file replaces the"
            " earlier ones, and keys only they held lose this source's row."
        ),
    )
    mapping: dict[SourceName, ColumnMapping] = Field(
        default_factory=dict, description="Target column -> where it comes from; unmapped target columns of the same name map as they are."
    )


class Settings(SettingsModel):
    sources: dict[SourceName, Source] = Field(default_factory=dict)
    targets: dict[SourceName, Target] = Field(default_factory=dict)
    ingest: Ingest = Ingest()
    keys: KeySettings = KeySettings()
    export: ExportSettings = ExportSettings()
    schedules: Schedules = Schedules()
    alerts: Alerts = Alerts()
    trends: Trends = Trends()
    privacy: PrivacySettings = PrivacySettings()
    retention: Retention = Retention()
    ask: AskSettings = AskSettings()
    summaries: SummarySettings = SummarySettings()
    relations: list[Relation] = Field(
        default_factory=list,
        description="Enforced relationships: each an asset check on the referencing source's or target's asset (docs/relations.md).",
    )
    base_dir: Path = Field(default=PROJECT_ROOT, exclude=True)

    @model_validator(mode="after")
    def _schemas_load(self) -> Settings:
        # A schema that cannot be loaded is a configuration error, reported with its YAML path
        # when the settings load rather than when the first file arrives.
        problems = []
        for name, source in self.sources.items():
            if source.pandera_schema is not None:
                try:
                    load_schema(source.pandera_schema, self.base_dir)
                except SchemaLoadError as err:
                    problems.append((f"sources.{name}.schema", str(err)))
        problems += self._target_problems()
        listed, target_columns = self._listed_columns(), self._target_columns()
        problems += [(f"privacy.{path}", reason) for path, reason in privacy_problems(self.privacy, listed, target_columns)]
        problems += [
            (f"relations{path}", reason)
            for path, reason in relation_problems(self.relations, list(self.sources), list(self.targets), {**listed, **target_columns})
        ]
        if problems:
            raise FieldProblems(problems)
        return self

    def _target_problems(self) -> list[tuple[str, str]]:
        """Mappings that name a target or column that does not exist, rules that cannot run."""
        problems = []
        for name, target in self.targets.items():
            for column_name, column in target.columns.items():
                for index, rule in enumerate(column.rules):
                    try:
                        validate_options(rule.name, rule.options)
                    except RuleError as err:
                        problems.append((f"targets.{name}.columns.{column_name}.rules[{index}]", str(err)))
            mapped = {s for s, source in self.sources.items() if source.target == name}
            stray = [s for s in target.source_priority if s not in mapped]
            if stray:
                problems.append((f"targets.{name}.source_priority", f"{stray} do not map into {name!r} (sources that do: {sorted(mapped)})"))
        for name, source in self.sources.items():
            if source.target is None:
                if source.mapping:
                    problems.append((f"sources.{name}.mapping", f"give the target it maps into (sources.{name}.target)"))
                continue
            target = self.targets.get(source.target)
            if target is None:
                problems.append((f"sources.{name}.target", f"no target {source.target!r} (targets: {sorted(self.targets)})"))
                continue
            # Only a strict schema lists every column a file of the source can have.
            schema = self.schema_for(name) if source.pandera_schema else None
            schema = schema if schema is not None and schema.strict in (True, "filter") else None
            for column_name, mapping in source.mapping.items():
                path = f"sources.{name}.mapping.{column_name}"
                if column_name not in target.columns:
                    problems.append((path, f"{source.target!r} has no column {column_name!r} (columns: {list(target.columns)})"))
                    continue
                if schema is not None:
                    missing = [c for c in mapping.source_columns() if c not in schema.columns]
                    if missing:
                        problems.append((path, f"source {name!r} has no column(s) {missing} (its schema has {list(schema.columns)})"))
                problems += [(f"{path}.{field}", reason) for field, reason in mapping_option_problems(mapping)]
        return problems

    def _listed_columns(self) -> dict[str, list[str] | None]:
        """Each source's columns where a strict schema lists all a file can have, else None."""
        listed: dict[str, list[str] | None] = {}
        for name, source in self.sources.items():
            try:
                schema = self.schema_for(name) if source.pandera_schema else None
            except SchemaLoadError:  # reported at sources.<name>.schema
                schema = None
            listed[name] = list(schema.columns) if schema is not None and schema.strict in (True, "filter") else None
        return listed

    def _target_columns(self) -> dict[str, list[str]]:
        return {name: list(target.columns) for name, target in self.targets.items()}

    def schema_for(self, source: str):
        """The source's pandera DataFrameSchema, or None when it names none."""
        spec = self.sources[source].pandera_schema
        return None if spec is None else load_schema(spec, self.base_dir)

    def sources_of(self, target: str) -> list[str]:
        return [name for name, source in self.sources.items() if source.target == target]

    def export_directory(self) -> Path:
        directory = self.export.directory
        if directory is None:
            return harmonizer_home() / "exports"
        return directory if directory.is_absolute() else (self.base_dir / directory).resolve()

    def landing_path(self, source: str) -> Path:
        local = self.sources[source].landing.local
        if local is None:
            raise SettingsError(f"source {source!r} lands in B2, not in a local folder")
        return local.path if local.path.is_absolute() else (self.base_dir / local.path).resolve()


def _yaml_path(loc: tuple[int | str, ...]) -> str:
    """`sources.a.key[0]` from pydantic's location (list items as [i], validator names left out)."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith("function-after"):
            path += f".{part}" if path else part
    return path


def _field_problems(error: ValidationError) -> list[tuple[str, str]]:
    """(YAML path, reason) of each invalid field."""
    problems = []
    for item in error.errors():
        path, cause = _yaml_path(item["loc"]), item.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblems):
            problems += [(f"{path}.{below}" if path else below, reason) for below, reason in cause.problems]
        elif isinstance(cause, ValueError):  # our own message, without pydantic's "Value error, "
            problems.append((path, str(cause)))
        else:
            problems.append((path, item["msg"]))
    return problems


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line for a YAML syntax error: where (line, column) and what."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return " ".join(str(error).split())
    mark, context = error.problem_mark, error.context_mark
    after = f" ({error.context} at line {context.line + 1}, column {context.column + 1})" if error.context and context else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {error.problem}{after}"


def parse_settings(text: str, base_dir: Path, origin: str = "harmonizer.yaml") -> Settings:
    try:
        raw = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{origin}: {_yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{origin}: must be a mapping with a 'sources' key, not {type(raw).__name__}")
    try:
        return Settings.model_validate({**raw, "base_dir": base_dir})
    except ValidationError as exc:
        raise SettingsError(*(f"{origin}: {path or '(top level)'}: {reason}" for path, reason in _field_problems(exc))) from None


def config_path() -> Path:
    configured = os.environ.get(CONFIG_ENV)
    return Path(configured).expanduser().resolve() if configured else PROJECT_ROOT / "harmonizer.yaml"


def load_settings_file(path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_settings(text, base_dir=path.parent, origin=str(path))


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The settings of this process (HARMONIZER_CONFIG, else the project's harmonizer.yaml)."""
    return load_settings_file(config_path())
