"""The deployed process topology, crash recovery, deploy files, the UI."""
