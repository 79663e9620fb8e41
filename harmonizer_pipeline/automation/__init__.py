"""When things run: the schedules and the declarative automation sensors of each source and target."""
