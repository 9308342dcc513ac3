"""The AIPU's integer semantics, as the simulator runs them.

The rules themselves (requantization by int32 multiplier and shift with round
half up, int32 saturation, the 256-entry LUT) are defined once, in the core
module :mod:`axdrive.numerics`, which the quantizer, the integer reference
executor and the quantized-graph export use as well; this module re-exports
them and adds the Numba versions the kernels call. Tests check that the two
agree bit for bit, with and without ``NUMBA_DISABLE_JIT``.
"""

from __future__ import annotations

__all__ = ["QMIN", "QMAX", "INT32_MIN", "INT32_MAX", "quantize_multiplier", "requantize",
           "requantize_scalar_nb", "requantize_nb", "saturate_int32", "apply_lut", "apply_lut_nb", "make_lut",
           "round_shift", "round_divide", "round_divide_nb", "softmax", "softmax_exp_table", "softmax_pad_value",
           "SOFTMAX_FRAC_BITS", "SOFTMAX_LEVELS", "SOFTMAX_OUT_ZERO_POINT"]

import numpy as np
from numba import njit

from axdrive.numerics import (INT32_MAX, INT32_MIN, QMAX, QMIN, SOFTMAX_FRAC_BITS, SOFTMAX_LEVELS,
                              SOFTMAX_OUT_ZERO_POINT, apply_lut, make_lut, quantize_multiplier, requantize,
                              round_divide, saturate_int32, softmax, softmax_exp_table, softmax_pad_value)


@njit(cache=True, nogil=True)
def round_divide_nb(a: np.int64, b: np.int64) -> np.int64:
    """Numba scalar :func:`round_divide`: ``floor((2a + b) / (2b))``, 0 for ``b == 0`` (the DPU's ``divr``)."""
    if b == 0:
        return np.int64(0)
    return (np.int64(2) * np.int64(a) + np.int64(b)) // (np.int64(2) * np.int64(b))


@njit(cache=True, nogil=True)
def round_shift(x: np.int64, s: np.int64) -> np.int64:
    """``(x + 2**(s-1)) >> s`` in int64 (round half up); ``s <= 0`` shifts left."""
    if s <= 0:
        return np.int64(x) << np.int64(-s)
    return (np.int64(x) + (np.int64(1) << np.int64(s - 1))) >> np.int64(s)


@njit(cache=True, nogil=True)
def requantize_scalar_nb(acc: np.int64, multiplier: np.int64, shift: np.int64, out_zp: np.int64,
                         qmin: np.int64, qmax: np.int64) -> np.int64:
    """Numba scalar version of :func:`requantize` (bit-exact with it)."""
    y = round_shift(np.int64(acc) * np.int64(multiplier), np.int64(shift)) + np.int64(out_zp)
    if y < qmin:
        return np.int64(qmin)
    if y > qmax:
        return np.int64(qmax)
    return y


@njit(cache=True, nogil=True)
def requantize_nb(acc2d: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, out_zp: int,
                  qmin: int, qmax: int) -> np.ndarray:
    """Numba per-channel requantization of a ``(rows, C)`` int32 array to int8.

    ``multiplier``/``shift`` have length ``C`` (or 1 for per-tensor).
    """
    rows, c = acc2d.shape
    out = np.empty((rows, c), dtype=np.int8)
    per_tensor = multiplier.shape[0] == 1
    # per-channel operands of the rule, spread to the C lanes once: with every shift positive (the case
    # the compiler emits) the row loop is branch-free and vectorises (a per-lane variable shift)
    m = np.empty(c, dtype=np.int64)
    sh = np.empty(c, dtype=np.int64)
    rnd = np.empty(c, dtype=np.int64)
    positive = True
    for j in range(c):
        k = 0 if per_tensor else j
        m[j] = np.int64(multiplier[k])
        sh[j] = np.int64(shift[k])
        if sh[j] <= 0:
            positive = False
        else:
            rnd[j] = np.int64(1) << (sh[j] - 1)
    zp = np.int64(out_zp)
    lo = np.int64(qmin)
    hi = np.int64(qmax)
    if positive:
        for i in range(rows):
            a = acc2d[i]
            o = out[i]
            for j in range(c):
                y = ((np.int64(a[j]) * m[j] + rnd[j]) >> sh[j]) + zp
                o[j] = np.int8(min(max(y, lo), hi))
        return out
    for i in range(rows):
        for j in range(c):
            out[i, j] = np.int8(requantize_scalar_nb(np.int64(acc2d[i, j]), m[j], sh[j], zp, lo, hi))
    return out


@njit(cache=True, nogil=True)
def apply_lut_nb(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Numba version of :func:`apply_lut` on a flat int8 array."""
    out = np.empty(x.shape[0], dtype=np.int8)
    for i in range(x.shape[0]):
        out[i] = lut[np.int64(x[i]) + 128]
    return out
