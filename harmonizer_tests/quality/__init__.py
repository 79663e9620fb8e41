"""Validation, the gate, profiles, recommendations, schema inference, drift."""
