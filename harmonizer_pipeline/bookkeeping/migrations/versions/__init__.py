"""The bookkeeping revisions, one module each, named after the revision id."""
