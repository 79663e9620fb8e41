"""When a file's load is tried again: failures of the infrastructure, never of the file (no dagster).

A load that died with its run (worker killed, database gone, run canceled) or failed on a
connection, a lock or a server shutting down is retried with a fresh run, `max_attempts` times
in all, waiting `backoff_seconds` × 2^(attempt − 1) (at most an hour) before each new attempt.
A file that cannot be read or parsed fails the same way every time, so it is not retried: its
registry row and the audit log say why, and a fixed copy landed again loads.
"""

from __future__ import annotations

from dataclasses import dataclass

# SQLSTATE classes and codes of failures that a later attempt can get past: connection
# exceptions (08), insufficient resources (53), the server shutting down or starting (57P),
# a canceled statement (57014), serialization failures and deadlocks (40001, 40P01) and locks
# not granted in time (55P03).
_TRANSIENT_CLASSES = ("08", "53", "57P")
_TRANSIENT_CODES = {"57014", "40001", "40P01", "55P03"}
MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    backoff_seconds: float

    def delay(self, attempt: int) -> float | None:
        """Seconds to wait before the attempt after `attempt` (1-based), or None once all are spent."""
        if attempt >= self.max_attempts:
            return None
        return min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    def describe(self, attempt: int) -> str:
        """What happens next, for the registry and the audit log."""
        delay = self.delay(attempt)
        if delay is None:
            return f"attempt {attempt} of {self.max_attempts}; no attempt left"
        return f"attempt {attempt} of {self.max_attempts}; tried again in {delay:g} s"


def is_transient(error: BaseException) -> bool:
    """Whether the error, or one it was raised from, is the infrastructure's (see module docstring)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate:
            if sqlstate.startswith(_TRANSIENT_CLASSES) or sqlstate in _TRANSIENT_CODES:
                return True
        elif type(current).__name__ == "OperationalError":
            # psycopg's and ADBC's: a connection lost or refused, with no SQLSTATE from a server.
            return True
        if isinstance(current, (ConnectionError, TimeoutError)):
            return True
        current = current.__cause__ or current.__context__
    return False
