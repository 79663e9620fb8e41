"""What Desbordante prints or logs while it runs is captured, not shown on the console."""

import logging
import subprocess
import sys
import textwrap

import pandas as pd

from harmonizer_pipeline.engine_output import captured_output
from harmonizer_pipeline.keys.discovery import ENGINE_LOGGERS, analyze

# A column holding one value makes PyroUCC (near-keys) report "Got Median... == 0".
CONSTANT_COLUMN = pd.DataFrame({"id": ["1", "2", "3"], "country": ["DE", "DE", "DE"]})
MESSAGE = "Got MedianInvertedEntropy == 0"


def test_desbordante_reports_are_captured_and_reach_neither_the_descriptors_nor_the_loggers(capfd, caplog):
    caplog.set_level(logging.DEBUG)
    analyze(CONSTANT_COLUMN)
    assert MESSAGE in caplog.text  # uncaptured, it goes to whatever handles the root logger
    caplog.clear()
    with captured_output(ENGINE_LOGGERS) as engine:
        analysis = analyze(CONSTANT_COLUMN)
    assert capfd.readouterr() == ("", "")
    assert caplog.records == []
    assert f"desbordante WARNING: {MESSAGE}\n" in engine.text
    assert [key.columns for key in analysis.minimal_keys] == [("id",)]
    assert logging.getLogger("desbordante").propagate and not logging.getLogger("desbordante").handlers


# Run in a process of its own: pytest swaps sys.stdout and sys.stderr for objects of its own.
SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from harmonizer_pipeline.engine_output import captured_output

    print("before", flush=True)
    try:
        with captured_output(["engine"]) as captured:
            print("python stdout")
            os.write(1, b"fd 1\\n")
            logging.getLogger("engine").warning("a record")
            print("python stderr", file=sys.stderr)
            os.write(2, b"fd 2\\n")
            raise RuntimeError("the engine failed")
    except RuntimeError:
        pass
    print("after", flush=True)
    os.write(2, b"fd 2 again\\n")
    logging.getLogger("engine").warning("a record after")
    print(repr(captured.text))
    """
)


def test_every_kind_of_write_is_captured_in_order_and_everything_comes_back_after_an_error():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["before", "after", repr("python stdout\nfd 1\nengine WARNING: a record\npython stderr\nfd 2\n")]
    assert done.stderr == "fd 2 again\na record after\n"
