"""The code location as a whole: definitions, settings, CLI, docs, module boundaries."""
