"""A load's sign of life in its registry row, for the landing sensor to tell a slow load from a
dead one (no dagster): a thread writes `heartbeat_at` every `interval` seconds, each beat on a
connection of its own, so a database restart costs beats, not the thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from harmonizer_pipeline.bookkeeping import registry


class Heartbeat:
    def __init__(self, connect: Callable[[], AbstractContextManager], entry_id: int, interval: float):
        self.connect, self.entry_id, self.interval = connect, entry_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{entry_id}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while True:
            try:
                with self.connect() as conn:
                    registry.beat(conn, self.entry_id)
            except Exception:  # noqa: BLE001 - the database may be away; the next beat tries again
                pass
            if self._stop.wait(self.interval):
                return
