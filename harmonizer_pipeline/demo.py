"""`make demo`: run every source's sensor once on the bundled sample files, load what it finds
into the harmonizer instance, harmonize and export every target, find the foreign-key candidates
between them once (the job find_relations), and say where the results are."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from harmonizer_pipeline import naming
from harmonizer_pipeline.dagster_home import prepare_dagster_environment
from harmonizer_pipeline.naming import StageAsset
from harmonizer_pipeline.storage.postgres import redact, resolve_database_url

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def evaluate_sensor(defs: dg.Definitions, sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """One tick of the sensor with a real context on this instance."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources, definitions=defs)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)  # what harmonizer's sensors return
    return result


def launch_requests(
    defs: dg.Definitions,
    sensor: dg.SensorDefinition,
    instance: dg.DagsterInstance,
    result: dg.SensorResult,
    tags: dict[str, str] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """What the daemon does with a tick's result, in this process: add the requested partitions
    and run each request."""
    # SensorResult keeps an empty list for requests not given; its fields are typed Optional.
    for request in result.dynamic_partitions_requests or ():
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    assert sensor.job_name is not None  # a landing sensor runs its source's load job
    job = defs.resolve_job_def(sensor.job_name)
    return [
        job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags={**request.tags, **(tags or {})},
            run_config=QUIET,
            raise_on_error=False,
        )
        for request in result.run_requests or ()
    ]


def defs_targets(defs: dg.Definitions) -> list[str]:
    return [job.name.removeprefix("harmonize_") for job in defs.resolve_all_job_defs() if job.name.startswith("harmonize_")]


def _materialization_metadata(run: dg.ExecuteInProcessResult, asset: StageAsset) -> dict:
    found = [m for m in run.get_asset_materialization_events() if m.asset_key == dg.AssetKey(asset.path)]
    return dict(found[-1].materialization.metadata) if found else {}


def run_demo(echo: Callable[[str], None] = print) -> bool:
    """One sensor tick per source, one run per new file; True when every run succeeded."""
    prepare_dagster_environment()
    from harmonizer_pipeline.bookkeeping import gates, keys, profiles, registry
    from harmonizer_pipeline.definitions import defs, settings
    from harmonizer_pipeline.reports.pages import PAGES_DIRECTORY
    from harmonizer_pipeline.resources import PostgresResource

    all_ok = True
    exported, harmonized = {}, {}
    with dg.DagsterInstance.get() as instance:
        for sensor in (defs.resolve_sensor_def(f"{source}_landing") for source in settings.sources):
            result = evaluate_sensor(defs, sensor, instance)
            runs = launch_requests(defs, sensor, instance, result, tags={"harmonizer/launched_by": "make demo"})
            for run in runs:
                all_ok &= run.success
                tags = run.dagster_run.tags
                echo(f"run {run.run_id} {tags['harmonizer/source']} {tags['harmonizer/file']}: {'loaded' if run.success else 'FAILED'}")
        for target in defs_targets(defs):
            run = defs.resolve_job_def(f"harmonize_{target}").execute_in_process(
                instance=instance, tags={"harmonizer/launched_by": "make demo"}, run_config=QUIET, raise_on_error=False
            )
            all_ok &= run.success
            echo(f"run {run.run_id} harmonize {target}: {'done' if run.success else 'FAILED'}")
            exported[target] = _materialization_metadata(run, naming.export(target))
            harmonized[target] = _materialization_metadata(run, naming.harmonized(target))
        run = defs.resolve_job_def("ops_trends").execute_in_process(
            instance=instance, tags={"harmonizer/launched_by": "make demo"}, run_config=QUIET, raise_on_error=False
        )
        all_ok &= run.success
        echo(f"run {run.run_id} trends: {'done' if run.success else 'FAILED'} (ops.run_metrics; ops/trends_<source> in the UI)")
        run = defs.resolve_job_def("find_relations").execute_in_process(
            instance=instance, tags={"harmonizer/launched_by": "make demo"}, run_config=QUIET, raise_on_error=False
        )
        all_ok &= run.success
        found = _materialization_metadata(run, naming.StageAsset("keys", "relations"))
        candidates = found["candidates"].value if found else "no"
        echo(
            f"run {run.run_id} relations: {'done' if run.success else 'FAILED'}, {candidates} foreign-key candidate(s) between the sources' latest"
            " files and the targets (keys.foreign_keys; keys/relations in the UI, its lines paste into harmonizer.yaml's relations:)"
        )
    with PostgresResource().connect() as conn:
        entries = registry.entries(conn)
        decisions = gates.latest_gate_results(conn)
        scores = profiles.latest_profile_scores(conn)
        summaries = keys.key_summaries(conn)
    echo("file registry (ops.file_registry):")
    for e in entries:
        detail = f"{e.rows} rows -> {naming.raw(e.source).qualified}" if e.status == "loaded" else (e.error or "")
        echo(f"  {e.source} {e.object_key} {e.status} {detail}")
    echo("schema gate (quality.gate_results; failing rows in quality.rejected_rows):")
    for source, partition, severity, description in decisions:
        echo(f"  {source} {partition} {severity}: {description} -> {naming.validated(source).qualified}")
    echo("profiles (quality.column_profiles, quality.recommendations):")
    for source, partition, score, columns, recommendations in scores:
        echo(f"  {source} {partition}: quality score {score}, {columns} columns, {recommendations} recommendation(s)")
    echo("keys (keys.key_summary, keys.unique_keys, keys.near_keys, keys.duplicate_groups):")
    for source, partition, key, reason, count, repeated in summaries:
        echo(f"  {source} {partition}: key {', '.join(key or ['(none)'])} ({reason}); {count} minimal keys, {repeated} repeated rows")
    for target, metadata in harmonized.items():
        if metadata:
            echo(
                f"{naming.harmonized(target).qualified}: {metadata['dagster/row_count'].value} rows on key {metadata['business_key'].value}"
                f" from {metadata['rows_mapped'].value} mapped rows ({metadata['keys_affected'].value} keys merged:"
                f" {metadata['rows_inserted'].value} inserted, {metadata['rows_updated'].value} updated, {metadata['rows_deleted'].value} deleted);"
                f" {metadata['merged_rows'].value} duplicate rows merged"
                f" ({metadata['duplicate_keys'].value} keys), {metadata['rejected_values'].value} values rejected,"
                f" {metadata['match_candidates'].value if 'match_candidates' in metadata else 0} fuzzy match candidate(s)"
            )
    for target, metadata in exported.items():
        if metadata:
            echo(f"{naming.export(target)}: {metadata['directory'].value}")
            for record in [*metadata["files"].value.records, *metadata["change_files"].value.records]:
                echo(f"  {record.data['file']}")
    echo(f"HTML pages of the files: {settings.export_directory() / PAGES_DIRECTORY}/<source>/ (each target's: <target>_report.html above)")
    echo("audit log (ops.audit_log): `.venv/bin/harmonizer audit [--since DATE] [--file NAME]`")
    echo(f"database: {redact(resolve_database_url())}  (open it with `.venv/bin/harmonizer db psql`)")
    echo("see the runs in the Dagster UI: `make dev`, then http://127.0.0.1:3000/runs")
    return all_ok


def run_rebuild(target: str, restage: bool, echo: Callable[[str], None] = print) -> bool:
    """Run `rebuild_<target>` on the harmonizer instance; with `restage`, first map every current
    file of the target's sources into staged/<source> again (after a change of mapping or rules)."""
    prepare_dagster_environment()
    from harmonizer_pipeline.definitions import defs, settings
    from harmonizer_pipeline.harmonize.merge import current_files
    from harmonizer_pipeline.resources import PostgresResource

    tags = {"harmonizer/launched_by": "harmonizer rebuild"}
    with dg.DagsterInstance.get() as instance:
        if restage:
            with PostgresResource().connect() as conn:
                files = current_files(conn, settings, target)
            for file in files:
                job = defs.resolve_implicit_global_asset_job_def()
                run = job.execute_in_process(
                    instance=instance, partition_key=file.partition_key, asset_selection=[dg.AssetKey(naming.staged(file.source).path)],
                    tags=tags, run_config=QUIET, raise_on_error=False,
                )  # fmt: skip
                echo(f"run {run.run_id} {naming.staged(file.source)} {file.partition_key}: {'staged' if run.success else 'FAILED'}")
                if not run.success:
                    return False
        run = defs.resolve_job_def(f"rebuild_{target}").execute_in_process(instance=instance, tags=tags, run_config=QUIET, raise_on_error=False)
    metadata = _materialization_metadata(run, naming.harmonized(target))
    if metadata:
        echo(f"{naming.harmonized(target).qualified}: {metadata['dagster/row_count'].value} rows; {metadata['keys_affected'].value} keys recomputed:"
             f" {metadata['rows_inserted'].value} inserted, {metadata['rows_updated'].value} updated, {metadata['rows_deleted'].value} deleted")  # fmt: skip
    echo(f"run {run.run_id} rebuild {target}: {'done' if run.success else 'FAILED'}")
    return run.success
