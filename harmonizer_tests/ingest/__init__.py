"""Landing zones, readers, the raw layer, exactly-once loads."""
