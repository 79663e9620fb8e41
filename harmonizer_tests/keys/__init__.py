"""Unique-key discovery and file comparison."""
