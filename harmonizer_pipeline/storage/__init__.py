"""harmonizer's PostgreSQL storage, free of dagster, by concern: the database URL and the embedded
development server (`postgres`), DataFrame columns as table columns (`frame_codec`), the catalog, DDL and
locks (`catalog`), writes by COPY (`writes`), per-key partitions swapped in whole (`partitions`),
reads (`reads`) and the threads streaming between them (`streams`). Dagster reaches it through
`harmonizer_pipeline.resources` only."""
