"""The declarative automation sensors, one per source and one per target."""

import dagster as dg

from harmonizer_pipeline.settings import Settings


def automation_sensors(settings: Settings) -> list[dg.AutomationConditionSensorDefinition]:
    """Automation runs carry the tag of their source or target, as the jobs' runs do, so the
    instance's per-source and per-target run limits hold for them too; declared running, where
    Dagster's default automation sensor would wait to be switched on in the UI."""
    sensors = []
    for kind, names in (("source", settings.sources), ("target", settings.targets)):
        for name in names:
            if kind == "source":
                selection = dg.AssetSelection.assets(
                    ["raw", name], ["validated", name], ["quality", f"profile_{name}"], ["keys", name], ["keys", f"comparison_{name}"],
                    ["ops", f"trends_{name}"],
                )  # fmt: skip
            else:
                selection = dg.AssetSelection.assets(["harmonized", name], ["export", name])
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
