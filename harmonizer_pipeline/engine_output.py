"""What third-party engines print while they run, kept off the console (no dagster).

Engines written in C or C++ write to file descriptors 1 and 2 directly, past sys.stdout and
sys.stderr, so only redirecting the descriptors catches them; Desbordante also reports through
Python logging (logger `desbordante`: "Got MedianInvertedEntropy == 0"), which with no handler
configured lands on standard error. Both go to one temporary file, in the order written. The
caller decides where the text goes: an asset logs it at debug level in its run, the CLI drops it
unless asked.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

_LIBC = ctypes.CDLL(None)


@dataclass
class Captured:
    text: str = ""  # filled in when the block ends


def _flush() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    _LIBC.fflush(None)  # C stdio buffers (C++ iostreams sync with them), else they leak out later


@contextmanager
def captured_output(loggers: Sequence[str] = ()) -> Iterator[Captured]:
    """Everything written to file descriptors 1 and 2 inside the block, and the records of the
    named Python loggers (kept from their parents meanwhile), go to a temporary file instead;
    its text is in the yielded Captured once the block ends (also when it raises).

    Both redirections are process-wide: whatever another thread writes or logs there meanwhile
    is captured too, and two such blocks must not overlap in different threads."""
    captured = Captured()
    _flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with tempfile.TemporaryFile() as sink, open(os.dup(sink.fileno()), "w", encoding="utf-8") as records:
            # The descriptors share the sink's offset, so records and raw writes interleave as they came.
            handler = logging.StreamHandler(records)
            handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
            engines = [logging.getLogger(name) for name in loggers]
            propagate = [engine.propagate for engine in engines]
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                for engine in engines:
                    engine.addHandler(handler)
                    engine.propagate = False
                yield captured
            finally:
                for engine, before in zip(engines, propagate):
                    engine.removeHandler(handler)
                    engine.propagate = before
                _flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                records.flush()
                sink.seek(0)
                captured.text = sink.read().decode("utf-8", errors="replace")
    finally:
        for fd in saved:
            os.close(fd)
