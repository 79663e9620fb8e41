"""Typed model of harmonizer.yaml: the sources a user lands files from, the schemas that gate them,
the targets they harmonize into (canonical columns, rules, business key) and the exports.

Loaded once per process. Every invalid field is reported on a line of its own with the file and
its path in the YAML (`harmonizer.yaml: sources.clinic_a.landing.local.path: Field required`),
never as a traceback. The YAML is read by yaml_loader (keys are strings, `on:` included).
"""

from __future__ import annotations

import codecs
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from harmonizer_pipeline.yaml_loader import load_yaml

CONFIG_ENV = "HARMONIZER_CONFIG"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Source names become asset keys and PostgreSQL table names.
SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class SettingsError(ValueError):
    """harmonizer.yaml is missing, unreadable or invalid: one line per problem,
    `<file>: <YAML path>: <reason>` (a line and column instead of the path when the YAML itself is broken)."""

    def __init__(self, *lines: str):
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class FieldProblems(ValueError):
    """What a validator of several fields found: (path below the validated object, reason) each,
    so that every field gets its own line."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in problems))
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone_glob(value: str) -> str:
    from harmonizer_pipeline.ingest.landing import split_glob

    split_glob(value)  # the landing zones' own rule, so a glob that passes here also works there
    return value


ZoneGlob = Annotated[str, AfterValidator(_zone_glob)]


class LocalLanding(_Model):
    path: Path = Field(description="Folder files land in; relative paths are relative to harmonizer.yaml.")
    glob: ZoneGlob = Field(default="*", description="Which files of the folder belong to this source.")


class B2Landing(_Model):
    bucket: str = Field(min_length=1)
    prefix: str = ""
    glob: ZoneGlob = Field(default="*", description="Which objects under the prefix belong to this source.")


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
    sensor_interval_seconds: int = Field(
        default=30, ge=1, le=86_400, description="Seconds between two ticks of a landing sensor (at least; the daemon decides when)."
    )
    max_load_attempts: int = Field(
        default=3, ge=1, le=100,
        description="Runs a file's load gets in all when its run dies or the database fails it (never for a file that cannot be read).",
    )
    retry_backoff_seconds: float = Field(
        default=60.0, ge=0, le=3600, description="Wait before the second attempt; it doubles for each further one (at most an hour)."
    )
    load_heartbeat_timeout_seconds: float = Field(
        default=300.0, ge=1, le=86_400,
        description="A load whose run shows no sign of life for this long is taken for dead (its worker or the database died).",
    )


class KeySettings(_Model):
    max_size: int | None = Field(default=None, gt=0, description="Report keys of at most this many columns (the search stays exact).")
    null_equals_null: bool = Field(default=True, description="Whether two NULLs count as the same value in a key.")


ColumnName = Annotated[str, StringConstraints(min_length=1)]
Scalar = str | int | float | bool


class SplitSpec(_Model):
    column: ColumnName
    separator: str = Field(default=" ", min_length=1)
    parts: int = Field(default=2, ge=2, description="Split into at most this many parts (the last keeps the rest).")
    part: int = Field(ge=0, description="Which part, from 0.")

    @model_validator(mode="after")
    def _part_exists(self) -> SplitSpec:
        if self.part >= self.parts:
            raise ValueError(f"part {self.part} of {self.parts} parts does not exist (parts count from 0)")
        return self


class UnitSpec(_Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_unit: str = Field(alias="from", min_length=1)
    to_unit: str = Field(alias="to", min_length=1)


class ColumnMapping(_Model):
    """Where one target column's values come from in a source, and how to read them there.
    Exactly one of column (rename), constant, combine, split; a plain string is a rename."""

    column: ColumnName | None = None
    constant: Scalar | None = None
    combine: list[ColumnName] | None = Field(default=None, min_length=2)
    separator: str = Field(default=" ", description="combine: put between the parts (NULL parts are left out).")
    split: SplitSpec | None = None
    nulls: list[str] = Field(default_factory=list, description="Values that mean missing in this source (e.g. N/A).")
    formats: list[str] | None = Field(default=None, min_length=1, description="Date/datetime formats tried in order.")
    dayfirst: bool = False
    decimal_comma: bool = False
    values: dict[str, list[Scalar]] | None = Field(default=None, description="Value map: canonical value -> source values.")
    unit: UnitSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _rename_shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _exactly_one_origin(self) -> ColumnMapping:
        given = [n for n in ("column", "constant", "combine", "split") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, constant, combine, split (given: {', '.join(given) or 'none'})")
        return self

    def source_columns(self) -> list[str]:
        if self.column is not None:
            return [self.column]
        if self.combine is not None:
            return list(self.combine)
        return [self.split.column] if self.split is not None else []


class Rule(_Model):
    """A standardizer of harmonize.rules: `email`, or `{phone: {region: DE}}` in YAML."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and len(value) == 1 and "name" not in value:
            [(name, options)] = value.items()
            return {"name": name, "options": options or {}}
        return value


ColumnType = Literal["text", "integer", "float", "boolean", "date", "datetime"]


class TargetColumn(_Model):
    type: ColumnType = "text"
    required: bool = Field(default=False, description="Rows without a value here are rejected (business key columns always are).")
    rules: list[Rule] = Field(default_factory=list, description="Standardizers applied in order.")
    description: str = ""


class MatchSettings(_Model):
    columns: list[ColumnName] = Field(min_length=1, description="Target columns compared (joined by spaces) with rapidfuzz.")
    block_on: list[ColumnName] = Field(default_factory=list, description="Only rows equal on these are compared.")
    threshold: float = Field(default=90.0, ge=0, le=100, description="Lowest score (0-100) reported.")
    max_block_rows: int = Field(default=5_000, gt=1, description="Larger blocks are skipped and reported (comparisons grow with its square).")


class Target(_Model):
    description: str = ""
    columns: dict[SourceName, TargetColumn] = Field(min_length=1)
    key: list[ColumnName] = Field(min_length=1, description="The business key: one harmonized row per value.")
    survivorship: Literal["latest_file", "most_complete", "source_priority"] = Field(
        default="latest_file", description="Which row of a key's duplicates survives."
    )
    source_priority: list[str] = Field(default_factory=list, description="source_priority: sources, most trusted first.")
    match: MatchSettings | None = Field(default=None, description="Report likely fuzzy duplicates for review.")
    schedule: Cron | None = Field(default=None, description="This target's own harmonize schedule (cron), instead of schedules.harmonize.")
    history: bool = Field(
        default=False,
        description="Keep harmonized.<target>_history, a type-2 slowly changing dimension (valid_from, valid_to, is_current) of every version of each key.",
    )

    @model_validator(mode="after")
    def _columns_exist(self) -> Target:
        problems = []
        for label, names in (("key", self.key), *((f"match.{f}", getattr(self.match, f)) for f in ("columns", "block_on") if self.match)):
            unknown = [n for n in names if n not in self.columns]
            if unknown:
                problems.append((label, f"{unknown} not among the target's columns {list(self.columns)}"))
        if self.survivorship == "source_priority" and not self.source_priority:
            problems.append(("source_priority", "give the sources in order when survivorship is source_priority"))
        if problems:
            raise FieldProblems(problems)
        return self


def _cron(value: str) -> str:
    from croniter import croniter

    if len(value.split()) != 5 or not croniter.is_valid(value):
        raise ValueError(f"{value!r} is not a cron string of five fields (minute hour day month weekday)")
    return value


def _time_zone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)") from None
    return value


Cron = Annotated[str, AfterValidator(_cron)]


class Schedules(_Model):
    timezone: Annotated[str, AfterValidator(_time_zone)] = Field(default="UTC", description="The schedules' time zone (IANA name).")
    harmonize: Cron | None = Field(default="0 6 * * *", description="Every target harmonized and exported again; null: no schedule.")
    full_profile: Cron | None = Field(default="0 3 * * 0", description="Each source's latest file profiled again (weekly); null: none.")
    running: bool = Field(default=False, description="Whether the schedules start running, or wait to be switched on in the UI.")


# Names of environment variables: secrets (webhook URLs, SMTP passwords) never sit in harmonizer.yaml.
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
AlertEvent = Literal["run_failure", "check_failure", "check_warning"]


class WebhookChannel(_Model):
    url_env: EnvVarName = Field(description="Environment variable holding the URL each alert is POSTed to as JSON.")


class SlackChannel(_Model):
    webhook_url_env: EnvVarName = Field(description="Environment variable holding the Slack incoming-webhook URL.")


class EmailChannel(_Model):
    host: str = Field(description="SMTP server: a host name or address, not a URL.")
    port: int = Field(default=587, ge=1, le=65535, description="587 (STARTTLS) by default, 465 with ssl.")
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS (certificate verified) before logging in.")
    ssl: bool = Field(default=False, description="TLS from the first byte (implicit TLS, SMTPS), certificate verified.")
    username_env: EnvVarName | None = Field(default=None, description="Environment variable holding the SMTP user name.")
    password_env: EnvVarName | None = Field(default=None, description="Environment variable holding the SMTP password.")
    sender: str
    recipients: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _ssl_defaults(cls, value: Any) -> Any:
        # `ssl: true` alone means implicit TLS on 465, not STARTTLS on 587 as well.
        if isinstance(value, dict) and value.get("ssl") is True:
            return {"starttls": False, "port": 465, **value}
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value or any(c.isspace() or c in "/@" for c in value):
            raise ValueError(f"{value!r} is not a host name or address (smtp.example.org)")
        return value

    @field_validator("sender", "recipients")
    @classmethod
    def _addresses(cls, value: str | list[str]) -> str | list[str]:
        for address in [value] if isinstance(value, str) else value:
            # One address each (no name, no list): it goes to the SMTP envelope as it is.
            parts = address.split("@")
            if len(parts) != 2 or not all(part and not any(c.isspace() or c in ',;<>"' for c in part) for part in parts):
                raise ValueError(f"{address!r} is not an e-mail address (name@domain)")
        return value

    @model_validator(mode="after")
    def _tls_and_credentials(self) -> EmailChannel:
        if self.starttls and self.ssl:
            raise ValueError("give starttls (a plain connection upgraded, port 587) or ssl (TLS from the start, port 465), not both")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        if self.username_env and not (self.starttls or self.ssl):
            raise ValueError("username_env and password_env need starttls: true or ssl: true, else the password goes in clear")
        return self


class Alerts(_Model):
    ui_url: str = Field(
        default="http://localhost:3000", pattern=r"^https?://", description="The Dagster UI's address, for the run links in alerts."
    )
    on: list[AlertEvent] = Field(
        default_factory=lambda: ["run_failure", "check_failure", "check_warning"], description="Which events alert."
    )
    timeout_seconds: float = Field(default=10.0, gt=0, description="How long one channel may take to accept an alert.")
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    email: EmailChannel | None = None

    def channels(self) -> list[WebhookChannel | SlackChannel | EmailChannel]:
        return [c for c in (self.webhook, self.slack, self.email) if c is not None]


class Trends(_Model):
    min_history: int = Field(default=5, ge=5, description="Earlier files a metric needs before the latest is judged against them (at least 5: a median and MAD of fewer say little).")
    window: int = Field(default=30, ge=3, description="How many earlier files the comparison looks back over.")
    z_threshold: float = Field(default=3.5, gt=0, description="Robust z-score (median/MAD) beyond which a metric is an anomaly.")
    shown_runs: int = Field(default=10, ge=1, description="Files listed in the markdown table of the last runs.")

    @model_validator(mode="after")
    def _window_holds_the_history(self) -> Trends:
        # A window narrower than min_history would silently never judge a file.
        if self.window < self.min_history:
            raise ValueError(f"window {self.window} is smaller than min_history {self.min_history}: no file would ever be judged")
        return self


class B2Export(_Model):
    bucket: str = Field(min_length=1)
    prefix: str = ""


class ExportSettings(_Model):
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


class Settings(_Model):
    sources: dict[SourceName, Source] = Field(default_factory=dict)
    targets: dict[SourceName, Target] = Field(default_factory=dict)
    ingest: Ingest = Ingest()
    keys: KeySettings = KeySettings()
    export: ExportSettings = ExportSettings()
    schedules: Schedules = Schedules()
    alerts: Alerts = Alerts()
    trends: Trends = Trends()
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
                    problems.append((f"sources.{name}.schema", str(err)))
        problems += self._target_problems()
        if problems:
            raise FieldProblems(problems)
        return self

    def _target_problems(self) -> list[tuple[str, str]]:
        """Mappings that name a target or column that does not exist, rules that cannot run."""
        from harmonizer_pipeline.harmonize.rules import RuleError, validate_options

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
                problems += [(f"{path}.{field}", reason) for field, reason in _mapping_option_problems(mapping)]
        return problems

    def schema_for(self, source: str):
        """The source's pandera DataFrameSchema, or None when it names none."""
        from harmonizer_pipeline.quality.validation import load_schema

        spec = self.sources[source].pandera_schema
        return None if spec is None else load_schema(spec, self.base_dir)

    def sources_of(self, target: str) -> list[str]:
        return [name for name, source in self.sources.items() if source.target == target]

    def export_directory(self) -> Path:
        from harmonizer_pipeline.storage.postgres import harmonizer_home

        directory = self.export.directory
        if directory is None:
            return harmonizer_home() / "exports"
        return directory if directory.is_absolute() else (self.base_dir / directory).resolve()

    def landing_path(self, source: str) -> Path:
        local = self.sources[source].landing.local
        if local is None:
            raise SettingsError(f"source {source!r} lands in B2, not in a local folder")
        return local.path if local.path.is_absolute() else (self.base_dir / local.path).resolve()


def _mapping_option_problems(mapping: ColumnMapping) -> list[tuple[str, str]]:
    from harmonizer_pipeline.harmonize.rules import RuleError, validate_options

    checks = []
    if mapping.formats is not None:
        checks.append(("formats", "date", {"formats": mapping.formats}))
    if mapping.unit is not None:
        checks.append(("unit", "convert_unit", {"from_unit": mapping.unit.from_unit, "to_unit": mapping.unit.to_unit}))
    if mapping.values is not None:
        checks.append(("values", "value_map", {"mapping": mapping.values}))
    problems = []
    for field, rule, options in checks:
        try:
            validate_options(rule, options)
        except RuleError as err:
            problems.append((field, str(err)))
    return problems


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
