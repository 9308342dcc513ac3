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
* Division (the DPU's ``divr``)::

      round_divide(a, b) = floor((2*a + b) / (2*b))      (b != 0; 0 when b == 0)

  i.e. ``a / b`` rounded half up, exact in int64 for int32 operands.
* Softmax (:func:`softmax`), over the channel axis of int8 ``x`` with input
  scale ``s_in``; output grid ``1/SOFTMAX_LEVELS``, zero point ``-128``::

      lanes at or beyond ``channels`` are replaced by ``pad_value`` (int32)
      d   = max(x) - x                        (int, >= 0; the max over all lanes)
      e   = EXP[d] if d <= 255 else 0         (EXP = softmax_exp_table(s_in): exp(-s_in*d) * 2**20, int32)
      s   = sat32(sum(e))                     (over every lane, padding included)
      y   = clamp(round_divide(e * 255, s) - 128, -128, 127)

  On int8 inputs ``d <= 255`` always; ``d > 255`` only happens for a padding
  value below the grid, whose exponent is then exactly 0 (a neutral lane).
"""

from __future__ import annotations

__all__ = ["QMIN", "QMAX", "INT32_MIN", "INT32_MAX", "quantize_multiplier", "requantize", "saturate_int32",
           "apply_lut", "make_lut", "round_divide", "SOFTMAX_FRAC_BITS", "SOFTMAX_LEVELS", "SOFTMAX_OUT_ZERO_POINT",
           "softmax_exp_table", "softmax", "softmax_pad_value"]

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



def round_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` rounded half up (towards +inf), element-wise in int64: ``floor((2a + b) / (2b))``.

    The DPU's ``divr``; a zero divisor gives 0 (the hardware does not trap).
    ``a`` and ``b`` are int32 values, so ``2a + b`` and ``2b`` cannot overflow int64.
    """
    a64 = np.asarray(a, dtype=np.int64)
    b64 = np.asarray(b, dtype=np.int64)
    safe = np.where(b64 == 0, 1, b64)
    return np.where(b64 == 0, 0, (2 * a64 + safe) // (2 * safe))


#: Fixed-point fraction bits of the softmax exponent table (``exp(0)`` is ``2**20``).
SOFTMAX_FRAC_BITS = 20
#: Softmax outputs are multiples of ``1/SOFTMAX_LEVELS``: 1.0 is code 127, so a certain class is exact.
SOFTMAX_LEVELS = 255
#: Zero point of the softmax output grid (probability 0 is code -128).
SOFTMAX_OUT_ZERO_POINT = -128


def softmax_exp_table(in_scale: float) -> np.ndarray:
    """``round(exp(-in_scale * d) * 2**SOFTMAX_FRAC_BITS)`` for ``d = 0..255`` (int64, at most ``2**20``).

    256 entries because two int8 codes are at most 255 apart; the DPU keeps it
    as four int8 byte planes of one 32-bit table (``lutw``).
    """
    d = np.arange(256, dtype=np.float64)
    return np.round(np.exp(-float(in_scale) * d) * (1 << SOFTMAX_FRAC_BITS)).astype(np.int64)


def softmax_pad_value(neutral: float, in_scale: float, in_zero_point: int) -> int:
    """The real ``neutral`` value on the softmax input's grid, in the DPU's int32 register range.

    Not saturated to int8: a padding lane is never stored, and a value far
    below the grid (the default -1e5) makes ``d > 255``, whose exponent is 0
    for *every* input, where -128 would still count ``EXP[max + 128]``.
    """
    q = np.rint(np.float64(neutral) / np.float64(in_scale)) + int(in_zero_point)
    return int(np.clip(q, INT32_MIN, INT32_MAX))


def softmax(x: np.ndarray, exp_table: np.ndarray, *, axis: int = -1, channels: int | None = None,
            pad_value: int | None = None, out_zero_point: int = SOFTMAX_OUT_ZERO_POINT) -> np.ndarray:
    """Integer softmax of int8 ``x`` over ``axis`` (see the module rule); returns int8.

    ``channels``/``pad_value``: lanes ``channels..`` of ``axis`` are channel
    padding and read as ``pad_value`` (``softmax_neutral_value`` on the input
    grid); they take part in the max and the sum, which is why a non-neutral
    value changes the real lanes' results. Their own outputs are meaningless.
    """
    v = np.moveaxis(np.asarray(x, dtype=np.int64), axis, -1).copy()
    if channels is not None and channels < v.shape[-1]:
        v[..., channels:] = np.int64(0 if pad_value is None else pad_value)
    d = v.max(axis=-1, keepdims=True) - v
    table = np.asarray(exp_table, dtype=np.int64)
    if table.shape != (256,):
        raise ValueError(f"softmax exponent table must have 256 entries, got shape {table.shape}")
    e = np.where(d <= 255, table[np.minimum(d, 255)], 0)
    total = np.clip(e.sum(axis=-1, keepdims=True), INT32_MIN, INT32_MAX)
    y = round_divide(e * SOFTMAX_LEVELS, total) + np.int64(out_zero_point)
    return np.moveaxis(np.clip(y, QMIN, QMAX).astype(np.int8), -1, axis)
