"""The pipeline's bookkeeping: the fixed-shape tables of schemas ops, quality and keys that
record what it saw and did (file registry, audit log, metrics, gate results, profiles, keys,
merges), one module per group of tables, none of them importing dagster.

Their shape belongs to the alembic migrations under migrations/, applied by `harmonizer db
migrate` and at the start of `harmonizer demo` / `dev` and of a deployment (schema.py); nothing
creates or alters them at run time. Tables whose shape follows harmonizer.yaml (raw, validated,
staged, harmonized) are data, created by the storage and merge code.
"""
