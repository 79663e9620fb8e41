"""Byte scans over Arrow string data, shared by the readers, the table store, the rules and the
export writers (no dagster); with them the few numpy and pyarrow calls whose stubs are wrong here."""

from typing import cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc


def buffer_view(buffer: pa.Buffer | bytes, dtype: npt.DTypeLike, count: int = -1, offset: int = 0) -> np.ndarray:
    """np.frombuffer over an Arrow buffer: a numpy view of its memory, no copy."""
    # numpy's stubs take any buffer (collections.abc.Buffer) only from Python 3.12 on; for 3.11
    # they list bytes, memoryview, ndarray and a few more, which leaves out Arrow's Buffer.
    return np.frombuffer(buffer, dtype, count, offset)  # pyright: ignore[reportArgumentType, reportCallIssue]


def numpy_buffer(array: np.ndarray) -> pa.Buffer:
    """pa.py_buffer over a numpy array: an Arrow buffer on its memory, no copy."""
    # pyarrow-stubs ask for __buffer__ (Python 3.12's buffer protocol), which numpy's stubs give
    # ndarray only from Python 3.12 on.
    return pa.py_buffer(array)  # pyright: ignore[reportArgumentType]


def join_element_wise(*pieces: pa.Array | pa.Scalar | str | bytes, separator: str | bytes) -> pa.Array:
    """pc.binary_join_element_wise: each row's pieces joined; a scalar piece is the same in every row."""
    # pyarrow-stubs type it for arrays alone or scalars alone, never Python strings; pyarrow takes
    # any mix and repeats the scalars (the separator is the last argument).
    return pc.binary_join_element_wise(*pieces, separator)  # pyright: ignore[reportCallIssue, reportArgumentType]


def text_values(array: pa.Array) -> list[str]:
    """A string array that holds no null, as Python strings."""
    # Array.to_pylist is typed for arrays that may hold nulls; the callers' arrays hold none.
    return cast(list[str], array.to_pylist())


def may_contain_byte(array: pa.Array, byte: int) -> bool:
    """Whether a string array's data buffer holds `byte`: a fast, exact 'no' before a slow search.

    The buffer may hold bytes outside the array's slice, so a 'yes' only means: look closer."""
    data = array.buffers()[-1]
    return data is not None and bool((buffer_view(data, np.uint8) == byte).any())


def utf8_bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(each value's start in the bytes and the end of the last, the values' UTF-8 bytes) of a
    string array, without copies; numpy over bytes is exact for ASCII characters, as every byte
    of a non-ASCII character is 0x80 or more."""
    offsets_buffer = array.buffers()[1]
    assert offsets_buffer is not None  # a string array always has its offsets
    offsets = buffer_view(offsets_buffer, np.int32)[array.offset : array.offset + len(array) + 1]
    return offsets - offsets[0], buffer_view(array.buffers()[2] or b"", np.uint8)[offsets[0] : offsets[-1]]
