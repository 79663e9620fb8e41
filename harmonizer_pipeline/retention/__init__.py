"""Retention and erasure: layers emptied of files older than their limit (`retention:`, the
ops/retention asset and its daily schedule) and `harmonizer erase` of a file or a data subject."""
