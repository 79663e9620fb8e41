"""The bookkeeping tables: migrations, audit, metrics, trends."""
