"""keys/relations: foreign-key candidates between the latest file of every source and every
harmonized target, run by the job find_relations (no automation; no edges in the asset graph, as
it reads whatever is latest when run, like ops/retention): Dagster wiring over relations.service."""

from typing import Any

import dagster as dg

from harmonizer_pipeline import wiring
from harmonizer_pipeline.relations.foreign_keys import ForeignKey, relation_line
from harmonizer_pipeline.relations.service import ASSET, RelationsFound, find_relations
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import OWNERS, failing_as_dagster

JOB = "find_relations"


def relations_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=wiring.key(ASSET),
        group_name="keys",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            "Foreign-key candidates between the latest loaded file of every source (raw rows) and every harmonized target, tables named "
            "by source or target: column combinations of up to 3 columns contained, wholly or for at least half their distinct values, in "
            "a key of another table, ranked by score; in keys.foreign_keys, replaced each run. The metadata's last column is the line to "
            "copy into harmonizer.yaml's `relations:`. Run by the job find_relations."
        ),
    )
    def relations(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        with failing_as_dagster():
            found = find_relations(postgres.tables(), postgres.connect, context.run, settings)
        for reason in found.left_out:
            context.log.info(f"left out: {reason}")
        context.log.info(f"{len(found.candidates)} foreign-key candidates between {len(found.tables)} tables in {found.seconds} s")
        return dg.MaterializeResult(metadata=_metadata(found))

    return relations


def relations_job(asset: dg.AssetsDefinition):
    return dg.define_asset_job(
        JOB,
        selection=[asset.key],
        description="Find foreign-key candidates between the latest file of every source and every harmonized target: keys/relations.",
    )


def _metadata(found: RelationsFound) -> dict[str, Any]:
    return {
        "candidates": len(found.candidates),
        "exact": sum(1 for c in found.candidates if c.exact),
        "tables": dg.MetadataValue.md("\n".join(f"- {name}: {where}, {rows:,} rows" for name, (where, rows) in found.tables.items()) or "none"),
        **({"left_out": "; ".join(found.left_out)} if found.left_out else {}),
        "seconds": found.seconds,
        "foreign_keys": dg.MetadataValue.md(candidates_markdown(found.candidates)),
    }


def candidates_markdown(candidates: list[ForeignKey]) -> str:
    """The candidates as a table whose last column is the `relations:` line (missing values as the service masked them)."""
    if not candidates:
        return "no foreign-key candidates"
    lines = [
        "| from | columns | to | columns | coverage | distinct missing | rows violating | score | relations: line |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in candidates:
        line = relation_line(c).strip().replace("|", "\\|").replace("`", "'")
        lines.append(
            f"| {c.from_table} | {', '.join(c.from_columns)} | {c.to_table} | {', '.join(c.to_columns)} | {c.coverage:.2%} | {c.distinct_missing:,} "
            f"| {c.rows_violating:,} | {c.score:.3f} | `{line}` |"
        )
    return "\n".join(lines) + "\n\nEvery candidate: keys.foreign_keys (sample_missing, relation_line)."
