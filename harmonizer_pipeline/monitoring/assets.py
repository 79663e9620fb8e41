"""ops/trends_<source>: the source's latest run (the file measured last) against its other files, with
a WARN check; Dagster wiring over the trends step in monitoring.trends."""

import dagster as dg

from harmonizer_pipeline import naming, wiring
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
    key = wiring.key(naming.trends(source))
    options = settings.trends

    @dg.asset(
        key=key,
        deps=wiring.keys(naming.measured(source)),
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
        judged = trends.judge_latest(postgres.connect, context.run, source, options)
        report = judged.report
        latest = report.table.iloc[-1] if not report.table.empty else None
        plotted = {m: float(latest[m]) for m in trends.SHOWN_METRICS if latest is not None and m in latest and latest[m] == latest[m]}
        return dg.MaterializeResult(
            metadata={
                **plotted,
                "latest_partition": report.latest_partition or "(none)",
                "files_measured": report.runs,
                "anomalies": len(report.anomalies),
                "last_runs": dg.MetadataValue.md(trends.markdown(report)),
            },
            check_results=[_trends_check(judged)],
        )

    return trends_asset


def _trends_check(judged: trends.Judged) -> dg.AssetCheckResult:
    report = judged.report
    if not report.trends:
        return dg.AssetCheckResult(check_name=TRENDS_CHECK, passed=True, description=judged.verdict)
    return dg.AssetCheckResult(
        check_name=TRENDS_CHECK,
        passed=not report.anomalies,
        severity=dg.AssetCheckSeverity.WARN,
        description=judged.verdict,
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
