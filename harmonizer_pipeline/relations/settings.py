"""Settings of the enforced relationships (`relations:`): each item says the values of some columns
of one table must be found in another's (no dagster). `from` and `to` are `table.column` or
`{table: t, columns: [a, b]}`, the line `harmonizer relations` prints for a candidate. Whether the
tables and columns exist is checked by Settings, which knows the sources and targets."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import ConfigDict, Field, model_validator

from harmonizer_pipeline.settings_model import ColumnName, FieldProblems, SettingsModel, SourceName

MAX_COLUMNS = 3


class RelationSide(SettingsModel):
    """One side of a relation: a source or target and 1 to 3 of its columns."""

    table: SourceName = Field(description="The source or target.")
    columns: list[ColumnName] = Field(min_length=1, max_length=MAX_COLUMNS, description="Its columns, in the order the other side's pair with.")

    @model_validator(mode="before")
    @classmethod
    def _dotted(cls, value: object) -> object:
        """`table.column` as {table, columns: [column]}."""
        if not isinstance(value, str):
            return value
        table, dot, column = value.partition(".")
        if not (dot and table and column):
            raise ValueError(f"{value!r} is not table.column (a composite side is {{table: t, columns: [a, b]}})")
        return {"table": table, "columns": [column]}

    @model_validator(mode="after")
    def _distinct(self) -> RelationSide:
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if repeated:
            raise FieldProblems([("columns", f"{repeated} named more than once")])
        return self

    def __str__(self) -> str:
        return f"{self.table}.{self.columns[0]}" if len(self.columns) == 1 else f"{self.table}({', '.join(self.columns)})"


class Relation(SettingsModel):
    """The values of `from` (all its columns non-NULL and non-blank) must be among those of `to`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: RelationSide = Field(alias="from", description="The referencing columns: `table.column` or `{table: t, columns: [a, b]}`.")
    to: RelationSide = Field(description="The referenced columns, as many as `from` has.")
    max_violations: int = Field(default=0, ge=0, description="Referencing rows whose values `to` lacks that still pass the check.")
    blocking: bool = Field(default=False, description="A failed check blocks downstream assets, as the schema gate does.")
    description: str = Field(default="", description="Shown with the check in the Dagster UI.")

    @model_validator(mode="after")
    def _shape(self) -> Relation:
        problems = []
        if len(self.from_.columns) != len(self.to.columns):
            problems.append(("to.columns", f"{len(self.to.columns)} column(s) where from has {len(self.from_.columns)}: each side needs as many"))
        if self.from_.table == self.to.table:
            problems.append(("to", f"{self.to.table!r} is the table the relation is from: a relation joins two different tables"))
        if problems:
            raise FieldProblems(problems)
        return self

    def __str__(self) -> str:
        return f"{self.from_} -> {self.to}"


def _name_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"


def check_names(relations: Sequence[Relation]) -> list[str]:
    """Each relation's asset check name, `relation_<from columns>_to_<table>_<columns>` in letters,
    digits and `_`; a name two relations of one referencing table would share gets `_2`, `_3`, ...
    on the later ones (checks of different assets may share a name)."""
    names, seen = [], set()
    for relation in relations:
        base = "relation_{}_to_{}_{}".format(
            "_".join(map(_name_part, relation.from_.columns)), relation.to.table, "_".join(map(_name_part, relation.to.columns))
        )
        name, n = base, 1
        while (relation.from_.table, name) in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add((relation.from_.table, name))
        names.append(name)
    return names


def relation_problems(
    relations: Sequence[Relation], sources: Sequence[str], targets: Sequence[str], columns: dict[str, list[str] | None]
) -> list[tuple[str, str]]:
    """(path below `relations`, reason) for tables that are neither a source nor a target, columns
    a table is known not to have (`columns`: a table's columns, None where only its files tell),
    and a relation given twice."""
    problems: list[tuple[str, str]] = []
    seen: dict[tuple, int] = {}
    for index, relation in enumerate(relations):
        for side, end in (("from", relation.from_), ("to", relation.to)):
            path = f"[{index}].{side}"
            if end.table in sources and end.table in targets:
                problems.append((path, f"{end.table!r} names both a source and a target: rename one to relate it"))
            elif end.table not in sources and end.table not in targets:
                problems.append((path, f"no source or target {end.table!r} (sources: {sorted(sources)}, targets: {sorted(targets)})"))
            elif (known := columns.get(end.table)) is not None:
                problems += [(path, f"{end.table!r} has no column {c!r} (columns: {known})") for c in end.columns if c not in known]
        identity = (relation.from_.table, tuple(relation.from_.columns), relation.to.table, tuple(relation.to.columns))
        if identity in seen:
            problems.append((f"[{index}]", f"the same relation as relations[{seen[identity]}]"))
        seen.setdefault(identity, index)
    return problems
