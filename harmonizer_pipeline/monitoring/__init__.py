"""What runs did and how they went: alert channels and their sensor, run-to-run trends, the run
launcher's worker health check."""
