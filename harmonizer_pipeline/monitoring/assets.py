"""ops/trends_<source>: the source's latest run (the file measured last) against its other files, with a WARN check."""

import dagster as dg

from harmonizer_pipeline.bookkeeping import audit, metrics
from harmonizer_pipeline.monitoring import trends
from harmonizer_pipeline.resources import PostgresResource
from harmonizer_pipeline.settings import Settings
from harmonizer_pipeline.wiring import OWNERS, table_metadata

TRENDS_CHECK = "trend_anomalies"

# After any stage of the source measured a file (ops.run_metrics has new figures).
AFTER_MEASURED = (
    dg.AutomationCondition.any_deps_updated().since_last_handled() & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress()
).with_label("after a file was measured")


def trends_source_asset(settings: Settings, source: str) -> dg.AssetsDefinition:
    key = dg.AssetKey(["ops", f"trends_{source}"])
    options = settings.trends
    measured = [["raw", source], ["validated", source], ["quality", f"profile_{source}"], ["keys", source]]

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(path) for path in measured],
        automation_condition=AFTER_MEASURED,
        check_specs=[
            dg.AssetCheckSpec(
                TRENDS_CHECK,
                asset=key,
                description=(
                    f"Warns when a metric of {source}'s latest run (the file measured last) lies beyond robust z "
                    f"{options.z_threshold} (median/MAD of at least {options.min_history} other files)."
                ),
            )
        ],
        group_name="ops",
        kinds={"pandas", "postgres"},
        owners=OWNERS,
        description=(
            f"Run-to-run comparison of {source}: rows, rejected share, quality score, null rates, key uniqueness and "
            "durations of each file from ops.run_metrics; numeric metadata per materialization plots them over time."
        ),
    )
    def trends_asset(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
        with postgres.connect() as conn:
            history = metrics.history(conn, source)
        report = trends.compare(history, options.min_history, options.window, options.z_threshold, options.shown_runs)
        latest = report.table.iloc[-1] if not report.table.empty else None
        plotted = {m: float(latest[m]) for m in trends.SHOWN_METRICS if latest is not None and m in latest and latest[m] == latest[m]}
        if report.trends:
            check = dg.AssetCheckResult(
                check_name=TRENDS_CHECK,
                passed=not report.anomalies,
                severity=dg.AssetCheckSeverity.WARN,
                description=(
                    f"{len(report.anomalies)} of {len(report.trends)} metrics of {report.latest_partition} are anomalies"
                    if report.anomalies
                    else f"{len(report.trends)} metrics of {report.latest_partition} within their history"
                ),
                metadata={
                    "anomalies": len(report.anomalies),
                    "metrics_compared": len(report.trends),
                    "findings": table_metadata(
                        [
                            {"asset": t.asset, "metric": t.metric, "latest": t.latest, "median": t.median, "robust_z": trends.cell(t.z), "history": t.history}
                            for t in report.anomalies
                        ],
                        [("asset", "string"), ("metric", "string"), ("latest", "float"), ("median", "float"), ("robust_z", "string"), ("history", "int")],
                    ),  # fmt: skip
                },
            )
        else:
            check = dg.AssetCheckResult(
                check_name=TRENDS_CHECK, passed=True, description=f"fewer than {options.min_history} earlier files: nothing to judge yet"
            )
        with postgres.connect() as conn:
            audit.record(conn, audit.entry(context.run, "trends", "done", f"ops/trends_{source}", detail=check.description))
        return dg.MaterializeResult(
            metadata={
                **plotted,
                "latest_partition": report.latest_partition or "(none)",
                "files_measured": report.runs,
                "anomalies": len(report.anomalies),
                "last_runs": dg.MetadataValue.md(trends.markdown(report)),
            },
            check_results=[check],
        )

    return trends_asset
