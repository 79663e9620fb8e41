"""Dagster wiring every stage's assets share: asset keys from `naming`, owners, the gate-aware
automation condition, per-file checks, table metadata, the metadata of a write, and the failure a
service's StageError becomes. Domain work is in the services (see harmonizer_pipeline.services)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from harmonizer_pipeline.naming import PARTITION_COLUMN, StageAsset
from harmonizer_pipeline.privacy.masking import scrub_text
from harmonizer_pipeline.services import StageError
from harmonizer_pipeline.storage.frame_codec import ColumnSpec
from harmonizer_pipeline.storage.postgres import database_of
from harmonizer_pipeline.storage.reads import partition_filter, select_statement
from harmonizer_pipeline.storage.tables import StageTables
from harmonizer_pipeline.storage.writes import WriteResult

if TYPE_CHECKING:
    from harmonizer_pipeline.relations.enforcement import Enforced, RelationOutcome

OWNERS = ["team:data-engineering"]

# For assets downstream of validated/<source>: run when upstream updates, unless its gate failed.
GATED_EAGER = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def key(asset: StageAsset) -> dg.AssetKey:
    return dg.AssetKey(asset.path)


def keys(assets: Sequence[StageAsset]) -> list[dg.AssetKey]:
    return [key(a) for a in assets]


def file_check_spec(name: str, asset: dg.AssetKey, partitions: dg.PartitionsDefinition, description: str, *, blocking: bool = False) -> dg.AssetCheckSpec:
    """A check partitioned like its asset, so each file has its own result: automation and the UI
    judge a file by its own gate, not by whichever file was checked last. Partitioned checks are
    a preview in Dagster 1.13 (pinned; docs/dagster-apis.md); the automation tests hold them to it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, blocking=blocking, description=description, partitions_def=partitions)


def relation_check_specs(relations: Sequence[Enforced], asset: dg.AssetKey, partitions: dg.PartitionsDefinition | None = None) -> list[dg.AssetCheckSpec]:
    """A check per enforced relationship of harmonizer.yaml on its referencing asset (per file when
    `partitions`), blocking where the relation says so."""
    if partitions is not None:
        return [file_check_spec(e.name, asset, partitions, e.description(), blocking=e.relation.blocking) for e in relations]
    return [dg.AssetCheckSpec(e.name, asset=asset, blocking=e.relation.blocking, description=e.description()) for e in relations]


def relation_check_result(outcome: RelationOutcome) -> dg.AssetCheckResult:
    """A relation's check as its outcome says: passed when at most max_violations rows violate;
    its figures, the referenced table and the violating rows (PII masked) as metadata."""
    enforced = outcome.enforced
    kinds = {"_row_number": "int"}
    return dg.AssetCheckResult(
        check_name=enforced.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary(),
        metadata={
            "rows_violating": outcome.rows_violating,
            "distinct_missing": outcome.distinct_missing,
            "max_violations": enforced.relation.max_violations,
            "referenced_table": enforced.referenced.qualified,
            "referenced_columns": ", ".join(enforced.relation.to.columns),
            "violating_rows": table_metadata(outcome.rows, [(c, kinds.get(c, "string")) for c in enforced.listed_columns]),
            **({"problem": outcome.problem} if outcome.problem else {}),
        },
    )


def earlier_partitions(context: dg.AssetExecutionContext, partitions: dg.DynamicPartitionsDefinition) -> list[str]:
    """The files of the source that landed before this run's file, oldest first."""
    assert partitions.name is not None  # files_partitions names each one
    files = context.instance.get_dynamic_partitions(partitions.name)
    return list(files[: files.index(context.partition_key)]) if context.partition_key in files else []


def table_metadata(records: Sequence[Mapping], columns: list[tuple[str, str]]) -> dg.TableMetadataValue:
    """Records as a table in the Dagster UI; `columns` are (name, type) pairs."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({name: record[name] for name, _ in columns}) for record in records],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns]),
    )


def column_schema(columns: Sequence[ColumnSpec]) -> dg.TableSchema:
    """The columns as the UI shows them: name, the PostgreSQL type the table holds (a date column is
    `date`, not the `object` pandas keeps dates in) and the pandas dtype it is read back as."""
    return dg.TableSchema(columns=[dg.TableColumn(name=c.name, type=c.pg_type, description=f"read as pandas {c.pandas_dtype}") for c in columns])


def write_metadata(result: WriteResult, partition_keys: Sequence[str] | None) -> dict[str, Any]:
    """What the UI shows of a table write: Dagster's row count and column schema, the partition
    written, renamed columns and how the rows went in."""
    count_key = "dagster/partition_row_count" if partition_keys is not None else "dagster/row_count"
    metadata: dict[str, Any] = {count_key: result.rows, "dagster/column_schema": column_schema(result.columns)}
    if partition_keys is not None:
        metadata["partition"] = ", ".join(partition_keys)
    if result.renamed:
        metadata["renamed_columns"] = dg.MetadataValue.json(result.renamed)
    metadata["loaded_by"] = result.loaded_by
    return metadata


def log_write(log: dg.DagsterLogManager, table: str, result: WriteResult) -> None:
    """What a write of `table` did, in the step's log (the IO manager's writes and the stages' alike)."""
    if result.renamed:
        log.warning(f"column names shortened to fit PostgreSQL's 63-byte limit: {result.renamed}")
    log.info(f"{table}: {result.rows} rows, loaded by {result.loaded_by}")


def file_written(context: dg.AssetExecutionContext, tables: StageTables, asset: StageAsset, result: WriteResult) -> dict[str, Any]:
    """Log a write of this run's file into `asset`'s table and return its metadata: write_metadata's,
    the query that shows the rows and the table's name, as Dagster's database IO managers give them."""
    log_write(context.log, asset.qualified, result)
    rows = partition_filter([(PARTITION_COLUMN, [context.partition_key])])
    return {
        **write_metadata(result, [context.partition_key]),
        "Query": select_statement(asset.schema, asset.table, None, rows),
        "dagster/table_name": f"{database_of(tables.url)}.{asset.qualified}",  # Dagster's documented key, as its database IO managers set it
    }


@contextmanager
def failing_as_dagster() -> Iterator[None]:
    """A service's StageError fails the step as a dagster Failure with its message alone (no
    traceback), personal data it quotes masked: the message goes to the run's log and alerts."""
    try:
        yield
    except StageError as error:
        raise dg.Failure(scrub_text(str(error))) from None


def page_metadata(page: Path | None) -> dict[str, dg.MetadataValue]:
    """The link to a file's HTML page (reports.pages), once it has one."""
    return {} if page is None else {"report": dg.MetadataValue.path(str(page))}
