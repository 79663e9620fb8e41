"""The declarative automation sensors, one per source and one per target."""

import dagster as dg

from harmonizer_pipeline import naming, wiring
from harmonizer_pipeline.settings import Settings


def automation_sensors(settings: Settings) -> list[dg.AutomationConditionSensorDefinition]:
    """Automation runs carry the tag of their source or target, as the jobs' runs do, so the
    instance's per-source and per-target run limits hold for them too; declared running, where
    Dagster's default automation sensor would wait to be switched on in the UI."""
    sensors = []
    for kind, names in (("source", settings.sources), ("target", settings.targets)):
        for name in names:
            if kind == "source":
                # Not staged/<source>: a file is staged by its load job, its merge is the target's.
                assets = [*naming.measured(name), naming.comparison(name), naming.trends(name)]
            else:
                assets = [naming.harmonized(name), naming.export(name)]
            selection = dg.AssetSelection.assets(*wiring.keys(assets))
            sensors.append(
                dg.AutomationConditionSensorDefinition(
                    f"automation_{name}",
                    target=selection,
                    run_tags={f"harmonizer/{kind}": name},
                    default_status=dg.DefaultSensorStatus.RUNNING,
                    minimum_interval_seconds=30,
                    description=f"Declarative automation of the {kind} {name}'s assets.",
                )
            )
    return sensors
