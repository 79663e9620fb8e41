"""Byte scans over Arrow string data, shared by the readers, the table store, the rules and the
export writers (no dagster)."""

import numpy as np
import pyarrow as pa


def may_contain_byte(array: pa.Array, byte: int) -> bool:
    """Whether a string array's data buffer holds `byte`: a fast, exact 'no' before a slow search.

    The buffer may hold bytes outside the array's slice, so a 'yes' only means: look closer."""
    data = array.buffers()[-1]
    return data is not None and bool((np.frombuffer(data, np.uint8) == byte).any())


def utf8_bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(each value's start in the bytes and the end of the last, the values' UTF-8 bytes) of a
    string array, without copies; numpy over bytes is exact for ASCII characters, as every byte
    of a non-ASCII character is 0x80 or more."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    return offsets - offsets[0], np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
