"""Reports people read, written from what the pipeline recorded (no dagster): plain-English
summaries of each file and each merge (summary.py)."""
