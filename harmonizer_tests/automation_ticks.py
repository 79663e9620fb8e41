"""Ticks of declarative automation on a test instance, as the daemon's automation sensor runs them."""

import dagster as dg


class AutomationTicks:
    """Each call evaluates the assets' automation conditions once, carrying the cursor over from
    the tick before, and returns the number of runs requested for each asset."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, *keys: dg.AssetKey):
        self.defs, self.instance, self.keys = defs, instance, keys
        self.cursor = None

    def __call__(self) -> tuple[int, ...]:
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, asset_selection=dg.AssetSelection.assets(*self.keys), cursor=self.cursor
        )
        self.cursor = result.cursor
        return tuple(result.get_num_requested(key) for key in self.keys)
