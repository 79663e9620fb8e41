"""Settings of a harmonized target and of how a source maps into it: canonical columns, their
types and standardizing rules, the business key, survivorship, fuzzy matching, history; per
source column mappings (rename, constant, combine, split, value maps, units, date formats)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    model_validator,
)

from harmonizer_pipeline.harmonize.rules import RuleError, validate_options
from harmonizer_pipeline.settings_model import ColumnName, Cron, FieldProblems, Scalar, SettingsModel, SourceName


class SplitSpec(SettingsModel):
    column: ColumnName
    separator: str = Field(default=" ", min_length=1)
    parts: int = Field(default=2, ge=2, description="Split into at most this many parts (the last keeps the rest).")
    part: int = Field(ge=0, description="Which part, from 0.")

    @model_validator(mode="after")
    def _part_exists(self) -> SplitSpec:
        if self.part >= self.parts:
            raise ValueError(f"part {self.part} of {self.parts} parts does not exist (parts count from 0)")
        return self


class UnitSpec(SettingsModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_unit: str = Field(alias="from", min_length=1)
    to_unit: str = Field(alias="to", min_length=1)


class ColumnMapping(SettingsModel):
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


class Rule(SettingsModel):
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


class TargetColumn(SettingsModel):
    type: ColumnType = "text"
    required: bool = Field(default=False, description="Rows without a value here are rejected (business key columns always are).")
    rules: list[Rule] = Field(default_factory=list, description="Standardizers applied in order.")
    description: str = ""


class MatchSettings(SettingsModel):
    columns: list[ColumnName] = Field(min_length=1, description="Target columns compared (joined by spaces) with rapidfuzz.")
    block_on: list[ColumnName] = Field(default_factory=list, description="Only rows equal on these are compared.")
    threshold: float = Field(default=90.0, ge=0, le=100, description="Lowest score (0-100) reported.")
    max_block_rows: int = Field(default=5_000, gt=1, description="Larger blocks are skipped and reported (comparisons grow with its square).")


class Target(SettingsModel):
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


def mapping_option_problems(mapping: ColumnMapping) -> list[tuple[str, str]]:
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
