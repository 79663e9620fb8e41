"""ops/load_summary: files and rows loaded per source."""

import dagster as dg
import pandas as pd


def load_summary_asset(sources: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        key=["ops", "load_summary"],
        group_name="ops",
        kinds={"pandas", "postgres"},
        owners=["team:data-engineering"],
        # Only the lineage column is needed: the IO manager selects it in SQL.
        ins={s: dg.AssetIn(key=["raw", s], metadata={"columns": ["_source_file"]}) for s in sources},
    )
    def load_summary(**raw_tables: pd.DataFrame) -> pd.DataFrame:
        """Files and rows per source in the latest load."""
        return pd.DataFrame(
            {
                "source": list(raw_tables),
                "files": [t["_source_file"].nunique() for t in raw_tables.values()],
                "rows": [len(t) for t in raw_tables.values()],
            }
        ).astype({"files": "int64", "rows": "int64"})

    return load_summary
