"""The asset keys of every stage and the PostgreSQL tables behind them, spelled once (no dagster).

An asset key `raw/clinic_a` is the table `raw.clinic_a`: the first part is the schema, the second
the table. Stages, sensors, schedules, the CLI and the demo take keys and table names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

PARTITION_COLUMN = "_partition"  # the column of raw, validated and staged tables that holds a file's partition key


@dataclass(frozen=True)
class StageAsset:
    """One asset of a stage: `schema` is its key's prefix (and the PostgreSQL schema of its table,
    where it has one), `table` its name; `by_file` assets have one partition per landed file."""

    schema: str
    table: str
    by_file: bool = False

    @property
    def path(self) -> list[str]:
        """The parts of its Dagster asset key."""
        return [self.schema, self.table]

    @property
    def qualified(self) -> str:
        """schema.table, as psql names the table (for messages; SQL quotes the parts)."""
        return f"{self.schema}.{self.table}"

    def __str__(self) -> str:
        return f"{self.schema}/{self.table}"


def raw(source: str) -> StageAsset:
    return StageAsset("raw", source, by_file=True)


def validated(source: str) -> StageAsset:
    return StageAsset("validated", source, by_file=True)


def profile(source: str) -> StageAsset:
    return StageAsset("quality", f"profile_{source}", by_file=True)


def keys(source: str) -> StageAsset:
    return StageAsset("keys", source, by_file=True)


def comparison(source: str) -> StageAsset:
    return StageAsset("keys", f"comparison_{source}", by_file=True)


def file_comparisons() -> StageAsset:
    """Two chosen files of a source compared, by the job compare_files (not partitioned)."""
    return StageAsset("keys", "file_comparisons")


def staged(source: str) -> StageAsset:
    return StageAsset("staged", source, by_file=True)


def trends(source: str) -> StageAsset:
    return StageAsset("ops", f"trends_{source}")


def harmonized(target: str) -> StageAsset:
    return StageAsset("harmonized", target)


def export(target: str) -> StageAsset:
    return StageAsset("export", target)


def retention() -> StageAsset:
    """The retention policy applied: what left which layer, by the daily schedule."""
    return StageAsset("ops", "retention")


def measured(source: str) -> list[StageAsset]:
    """The assets of a source that record figures in ops.run_metrics, in the order a file passes them."""
    return [raw(source), validated(source), profile(source), keys(source)]


def files_partitions_name(source: str) -> str:
    """The name of the source's dynamic partitions (one per landed file)."""
    return f"{source}_files"
