"""Byte scans over Arrow string data, shared by the readers and the table store (no dagster)."""

import numpy as np
import pyarrow as pa


def may_contain_byte(array: pa.Array, byte: int) -> bool:
    """Whether a string array's data buffer holds `byte`: a fast, exact 'no' before a slow search.

    The buffer may hold bytes outside the array's slice, so a 'yes' only means: look closer."""
    data = array.buffers()[-1]
    return data is not None and bool((np.frombuffer(data, np.uint8) == byte).any())
