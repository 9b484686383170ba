"""Vectorised number-to-text formatting for large OBJ tables.

A 43,867-vertex mesh is about half a million numbers. Python's ``%`` or ``str.format`` pays for
each one; here a whole (N, K) table becomes one (N, K, width) matrix of ASCII codes filled with
integer array arithmetic (one division by 10 per digit position, over the whole table), padding
bytes are dropped with one boolean mask, and the result is one ``bytes``. Floats are written in
fixed point with ``digits`` decimals; ``-0.000`` is written as ``0.000``, and a value half-way
between two decimals may round differently from Python's ``%`` (by one in the last digit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = 0  # byte value marking "no character here"; removed at the end
_DOT, _MINUS, _ZERO = ord("."), ord("-"), ord("0")


def _table_chars(magnitude: np.ndarray, negative: np.ndarray, digits: int, separator: str) -> np.ndarray:
    """(N, K, W) ASCII cells: [sign][whole digits][. decimals][separator], unused bytes PAD.

    ``magnitude`` is the non-negative (N, K) table scaled by 10**digits.
    """
    scale = 10**digits
    whole_width = len(str(int(magnitude.max(initial=0)) // scale))
    frac_width = digits + 1 if digits else 0
    width = 1 + whole_width + frac_width + 1
    cells = np.empty((*magnitude.shape, width), dtype=np.uint8)
    cells[..., 0] = negative.view(np.uint8) * np.uint8(_MINUS)  # PAD (0) where not negative
    # Least significant digit first: decimals, then the whole part. Narrow integers divide faster.
    largest = magnitude.max(initial=0)
    rest: np.ndarray = magnitude.astype(np.uint16 if largest < 2**16 else np.uint32 if largest < 2**32 else np.uint64)
    columns = list(range(width - 2, width - 2 - digits, -1)) + list(range(whole_width, 0, -1))
    for significance, column in enumerate(columns):  # one pass per digit position, never per row
        # Floor division by a constant has a fast path in numpy (libdivide); divmod is 5x slower.
        quotient = rest // 10
        cells[..., column] = rest - quotient * 10
        cells[..., column] += _ZERO
        rest = quotient
        if significance > digits:  # a whole-part digit above the units: blank when it is a leading zero
            cells[..., column] *= magnitude >= 10**significance
    if digits:
        cells[..., whole_width + 1] = _DOT
    cells[..., -1] = np.frombuffer(separator.encode("ascii"), np.uint8) if len(separator) > 1 else ord(separator)
    return cells


def _row_chars(array: np.ndarray, digits: int | None, separator: str) -> np.ndarray:
    """(N, K * W) ASCII codes of the (N, K) ``array``'s cells, each ending with its separator, padding PAD."""
    if digits is None:
        signed = np.asarray(array, dtype=np.int64)
        magnitude, negative = np.abs(signed), signed < 0
        digits = 0
    else:
        floats = np.asarray(array, dtype=np.float64)
        magnitude = np.rint(np.abs(floats) * 10**digits).astype(np.int64)
        negative = (floats < 0) & (magnitude > 0)
    return _table_chars(magnitude, negative, digits, separator).reshape(len(array), -1)


def format_table(prefix: str, array: np.ndarray, *, digits: int | None = None, separator: str = " ") -> bytes:
    """Lines ``prefix v0<sep>v1...\\n`` for each row of the (N, K) ``array``.

    Integers when ``digits`` is None, else fixed-point floats with that many decimals.
    ``separator`` is one character for every column, or one per column (``"/ / / "`` writes OBJ
    ``a/a b/b c/c`` corners); the last column always ends the line.
    """
    return format_columns(prefix, [(array, digits)], separator=separator)


def format_columns(prefix: str, blocks: Sequence[tuple[np.ndarray, int | None]], *, separator: str = " ") -> bytes:
    """Lines of several (N, K_i) tables side by side, each with its own ``digits`` (None: integers).

    ``v x y z r g b`` with positions to 5 decimals and colours to 3 is one call; ``separator`` applies to
    every block (one character, or one per column as in :func:`format_table`).
    """
    rows = len(blocks[0][0])
    if rows == 0:
        return b""
    body = np.hstack([_row_chars(array, digits, separator) for array, digits in blocks])
    body[:, -1] = ord("\n")  # the last column's separator ends the line
    head = np.broadcast_to(np.frombuffer(f"{prefix} ".encode("ascii"), np.uint8), (rows, len(prefix) + 1))
    flat = np.hstack([head, body]).reshape(-1)
    return flat[flat != PAD].tobytes()
