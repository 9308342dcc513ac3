"""Integer semantics of the AIPU, defined once.

Everyone who needs a number to match the hardware bit for bit imports it from
here: the quantizer, the integer reference executor, the quantized-graph export,
and ``axdrive_hw`` (whose Numba kernels are tested bit-exact against these
NumPy definitions). It lives in the core because it is the contract between the
compiler and the hardware, not a property of either.

Conventions
-----------
* Activations: int8 with a zero point ``zp`` (real = scale * (q - zp)).
* Weights: int8 symmetric (zero point 0), per output channel scales.
* Bias and accumulators: int32. Kernels accumulate in int64 and **saturate**
  to int32 (never wrap).
* Requantization (THE rounding rule)::

      y = clamp(((acc * M + 2**(s-1)) >> s) + out_zp, qmin, qmax)

  with ``M`` an int32 in ``[2**30, 2**31)`` and ``s`` in ``[1, 62]``; the
  product is computed in int64 (``|acc| < 2**31`` so it cannot overflow) and
  ``>>`` is an arithmetic (floor) shift, i.e. **round half up** (towards +inf).
  ``real_scale ~= M * 2**-s``. Per-channel: ``M`` and ``s`` are arrays over the
  last (channel) axis.
* LUT: ``lut`` is 256 int8 values, ``lut[i]`` is the output for input ``i - 128``.
"""

from __future__ import annotations

__all__ = ["QMIN", "QMAX", "INT32_MIN", "INT32_MAX", "quantize_multiplier", "requantize", "saturate_int32",
           "apply_lut", "make_lut"]

import math
from typing import Callable

import numpy as np

QMIN = -128
QMAX = 127
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _quantize_multiplier_one(real_scale: float) -> tuple[int, int]:
    if not (real_scale > 0.0 and math.isfinite(real_scale)):
        raise ValueError(f"requantization scale must be positive and finite, got {real_scale!r}")
    mant, exp = math.frexp(real_scale)  # real = mant * 2**exp, mant in [0.5, 1)
    m = int(round(mant * (1 << 31)))
    if m == 1 << 31:  # mantissa rounded up to 1.0
        m //= 2
        exp += 1
    shift = 31 - exp
    if shift > 62:  # tiny scale: keep s in range; M shrinks (possibly to 0, every result then rounds to 0)
        m >>= shift - 62
        shift = 62
    if shift < 1:
        raise ValueError(f"requantization scale {real_scale!r} is too large (>= 2**30)")
    return m, shift


def quantize_multiplier(real_scale: float | np.ndarray) -> tuple[int, int] | tuple[np.ndarray, np.ndarray]:
    """Split a positive real scale into ``(M, s)`` with ``real ~= M * 2**-s``.

    ``M`` is in ``[2**30, 2**31)`` (an int32) except for scales below
    ``2**-32`` where the shift saturates at 62 and ``M`` shrinks. Accepts a
    scalar (returns two ints) or an array (returns int64 arrays, one entry per
    output channel).
    """
    if np.ndim(real_scale) == 0:
        return _quantize_multiplier_one(float(real_scale))
    flat = np.asarray(real_scale, dtype=np.float64).ravel()
    pairs = [_quantize_multiplier_one(float(v)) for v in flat]
    shape = np.shape(real_scale)
    return (np.array([p[0] for p in pairs], dtype=np.int64).reshape(shape),
            np.array([p[1] for p in pairs], dtype=np.int64).reshape(shape))


def requantize(acc: np.ndarray, multiplier: int | np.ndarray, shift: int | np.ndarray, out_zero_point: int,
               qmin: int = QMIN, qmax: int = QMAX) -> np.ndarray:
    """Vectorised requantization of int32 accumulators to int8 (see module rule).

    ``multiplier``/``shift`` broadcast against the last axis of ``acc`` for
    per-channel use. Returns int8 when ``[qmin, qmax]`` fits int8, else int32.
    """
    a = np.asarray(acc).astype(np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    if np.any(s < 1) or np.any(s > 62):
        raise ValueError("requantize shift must be in [1, 62]")
    y = (a * m + (np.int64(1) << (s - 1))) >> s
    y = np.clip(y + np.int64(out_zero_point), qmin, qmax)
    return y.astype(np.int8 if (qmin >= QMIN and qmax <= QMAX) else np.int32)


def saturate_int32(x: np.ndarray) -> np.ndarray:
    """Saturate an integer array to int32 (how accumulators leave the int64 adder tree)."""
    return np.clip(np.asarray(x, dtype=np.int64), INT32_MIN, INT32_MAX).astype(np.int32)


def apply_lut(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Look up every int8 of ``x`` in the 256-entry int8 table (``lut[q + 128]``)."""
    lut = np.asarray(lut)
    if lut.shape != (256,):
        raise ValueError(f"LUT must have 256 entries, got shape {lut.shape}")
    return lut.astype(np.int8)[np.asarray(x, dtype=np.int16) + 128]


def make_lut(fn: Callable[[np.ndarray], np.ndarray], in_scale: float, in_zp: int, out_scale: float,
             out_zp: int) -> np.ndarray:
    """Tabulate a real function (sigmoid, SiLU, ...) as an int8 LUT.

    The table is where float enters and leaves: ``q -> real -> fn -> q``, with
    round-half-to-even of numpy and saturation to int8.
    """
    q = np.arange(-128, 128, dtype=np.int64)
    real = (q - in_zp) * in_scale
    y = np.round(np.asarray(fn(real), dtype=np.float64) / out_scale) + out_zp
    return np.clip(y, QMIN, QMAX).astype(np.int8)

