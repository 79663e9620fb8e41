"""Export writers."""
