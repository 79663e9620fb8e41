"""`make demo`: materialize every asset on the bundled sample data into the harmonizer instance."""

from __future__ import annotations

from collections.abc import Callable

from harmonizer_pipeline.dagster_home import prepare_dagster_environment
from harmonizer_pipeline.resources.postgres import redact, resolve_database_url


def run_demo(echo: Callable[[str], None] = print) -> bool:
    """Run the `harmonize_all` job, print rows per table; True when the run succeeded."""
    prepare_dagster_environment()
    import dagster as dg

    from harmonizer_pipeline.definitions import defs

    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("harmonize_all").execute_in_process(
            instance=instance,
            tags={"harmonizer/launched_by": "make demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    echo(f"run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        rows = metadata.get("dagster/row_count") or metadata.get("dagster/partition_row_count")
        table = metadata.get("dagster/table_name")
        echo(f"  {event.asset_key.to_user_string():<24} {rows.value if rows else '?':>8} rows  -> {table.value if table else '?'}")
    echo(f"database: {redact(resolve_database_url())}  (open it with `.venv/bin/harmonizer db psql`)")
    echo("see the runs in the Dagster UI: `make dev`, then http://127.0.0.1:3000/runs")
    return result.success
