"""From statistics to quantization parameters: range selection and int8 grids.

Range selection for ``per_tensor_histogram``: the clipping range ``[lo, hi]``
that minimises the expected squared quantization error of the observed
distribution. With the histogram's bin centres ``c`` and counts ``n``::

    E(lo, hi) = w * sum_{c < lo} n (c - lo)^2      # clipped below
              + w * sum_{c > hi} n (c - hi)^2      # clipped above
              + N_inside(lo, hi) * step^2 / 12     # rounding, step = (hi - lo) / 255

``w`` (the clipping weight, 1 for plain MSE) is larger for tensors read only
by identity-like activations (:data:`CLIP_WEIGHTS`). Why: rounding noise is
white and the following convolutions average it out, while clipping error is
concentrated in the strongest responses, correlated across neighbouring
pixels and channels, and passes through the next layers like signal. On
YOLOv8n, plain MSE clipped the inputs of its SiLU tables by 15-40 % and lost
2.3 dB at the outputs against min-max; weighting their clipping 6x gained
about 3 dB over plain MSE and 2.5 dB over min-max (docs/quantization.md).

Each term is a closed form in prefix sums of ``n``, ``n*c`` and ``n*c^2``, so
every pair of candidate edges is evaluated at once (a 2-D grid, no Python
loop over bins). ``lo`` runs over edges <= 0 and ``hi`` over edges >= 0, so
zero is always exactly representable.

Why scales are rounded to float32: the QDQ model stores them as float32 and
onnxruntime computes with those; the integer multipliers are derived from
the very same values, so both sides quantize to the same grid.
"""

from __future__ import annotations

__all__ = ["MIN_SCALE", "CANDIDATES", "CLIP_WEIGHTS", "clip_weight", "mse_range", "minmax_range", "activation_qparams", "weight_qparams",
           "f32", "grid", "shared_zero_point_grid"]

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from axdrive.ir import AXDRIVE_DOMAIN, Graph, QParams
from axdrive.numerics import QMAX, QMIN

from ._observe import NBINS, Histogram, TensorStats, bin_edges

#: Floor of an activation scale: a dead (all-zero) or constant tensor still gets a
#: valid grid (and every requantization multiplier derived from it stays finite).
MIN_SCALE = 1e-8
#: At most this many candidate edges per side of zero in the MSE search.
CANDIDATES = 256
#: Clipping-error weight of the MSE search for a tensor read only by these
#: table activations, by (domain, op). SiLU passes large inputs through
#: unchanged, so clipping its input cuts the strongest responses of a layer.
#: Measured on YOLOv8n (28 photos: the 4 evaluation photos plus flipped and
#: 2x-zoomed versions of all 12): weight 1 -> median output SQNR 31.7 dB,
#: 6 -> 34.6, 8 -> 34.5, 12 -> 35.0, 16 -> 33.8 (all tensors 16 -> 33.6, but
#: PP-OCR's probabilities then fell to 13 dB). HardSwish (PP-OCR) showed no
#: gain beyond the noise of four photos, so it keeps weight 1.
CLIP_WEIGHTS: dict[tuple[str, str], float] = {(AXDRIVE_DOMAIN, "SiLU"): 6.0}


def f32(x: np.ndarray | float) -> np.ndarray:
    """Round to float32 and back (what the QDQ model will store)."""
    return np.asarray(x, np.float32).astype(np.float64)


def _refine(cand: np.ndarray, best: np.ndarray, err_at: "Callable[[np.ndarray], np.ndarray]") -> np.ndarray:
    """Sub-bin refinement: the vertex of the parabola through the error at the best
    candidate and its two neighbours. Besides being closer to the true optimum, it
    keeps thresholds off the dyadic bin edges: two ranges that are both edges
    have scale ratios of small rationals, which make exact rounding ties (x.5)
    common in Add/Concat rescaling, where round-half-up and onnxruntime's
    round-half-even then disagree."""
    inner = (best > 0) & (best < len(cand) - 1)
    k = np.clip(best, 1, len(cand) - 2)
    e0, e1, e2 = err_at(k - 1), err_at(k), err_at(k + 1)
    curvature = e0 - 2 * e1 + e2
    ok = inner & (curvature > 0)
    delta = np.clip(np.where(ok, 0.5 * (e0 - e2) / np.where(ok, curvature, 1.0), 0.0), -0.5, 0.5)
    step = np.where(delta > 0, cand[k + 1] - cand[k], cand[k] - cand[k - 1])
    return np.where(ok, cand[k] + delta * step, cand[best])


def clip_weight(graph: Graph, name: str, readers: dict[str, list] | None = None) -> float:
    """The clipping weight of tensor ``name``: :data:`CLIP_WEIGHTS` of its readers
    when every reader is one of them (the smallest), else 1 (plain MSE)."""
    users = (readers if readers is not None else graph.consumer_map()).get(name, [])
    weights = [CLIP_WEIGHTS.get((u.domain, u.op)) for u in users]
    if not weights or name in graph.outputs or any(w is None for w in weights):
        return 1.0
    return float(min(weights))  # type: ignore[type-var]


@dataclass(frozen=True)
class _Candidates:
    """What the MSE search needs of a histogram's radius alone: bin centres, the
    candidate edges (``lo`` <= 0 <= ``hi``) and the rounding step of every
    candidate pair. Why cached: every tensor repeated the same 257 x 257 grid
    arithmetic, yet the radii are powers of two and a model has only a few."""

    centres: np.ndarray
    centres_sq: np.ndarray
    lo_idx: np.ndarray
    hi_idx: np.ndarray
    lo_e: np.ndarray
    hi_e: np.ndarray
    two_lo: np.ndarray  # 2 * lo_e
    two_hi: np.ndarray
    lo_sq: np.ndarray  # lo_e ** 2
    hi_sq: np.ndarray
    step2: np.ndarray  # ((hi - lo) / 255) ** 2, (L, H)


@lru_cache(maxsize=64)
def _candidates(radius: float) -> _Candidates:
    edges = bin_edges(radius)
    centres = 0.5 * (edges[:-1] + edges[1:])
    zero = NBINS // 2
    lo_idx = np.unique(np.linspace(0, zero, CANDIDATES + 1).round().astype(np.int64))
    hi_idx = np.unique(np.linspace(zero, NBINS, CANDIDATES + 1).round().astype(np.int64))
    lo_e, hi_e = edges[lo_idx], edges[hi_idx]
    step2 = ((hi_e[None, :] - lo_e[:, None]) / (QMAX - QMIN)) ** 2
    arrays = (centres, centres ** 2, lo_idx, hi_idx, lo_e, hi_e, 2 * lo_e, 2 * hi_e, lo_e ** 2, hi_e ** 2, step2)
    for a in arrays:
        a.flags.writeable = False
    return _Candidates(*arrays)


def mse_range(hist: Histogram, minimum: np.ndarray, maximum: np.ndarray,
              weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` minimising the weighted expected error (see module doc) per
    histogram row, clipped to the observed range. ``weight`` multiplies the
    clipping terms (1: plain MSE)."""
    counts = np.atleast_2d(hist.counts).astype(np.float64)
    cand = _candidates(float(hist.radius))
    lo_idx, hi_idx, lo_e, hi_e = cand.lo_idx, cand.hi_idx, cand.lo_e, cand.hi_e

    def prefix(values: np.ndarray | None) -> np.ndarray:
        weighted = counts if values is None else counts * values
        return np.concatenate([np.zeros((counts.shape[0], 1)), np.cumsum(weighted, axis=1)], axis=1)

    # counts * 1.0 is counts, bit for bit
    cum_n, cum_1, cum_2 = prefix(None), prefix(cand.centres), prefix(cand.centres_sq)
    below = cum_2[:, lo_idx] - cand.two_lo * cum_1[:, lo_idx] + cand.lo_sq * cum_n[:, lo_idx]  # (rows, L)
    tot_n, tot_1, tot_2 = cum_n[:, -1:], cum_1[:, -1:], cum_2[:, -1:]
    above = (tot_2 - cum_2[:, hi_idx]) - cand.two_hi * (tot_1 - cum_1[:, hi_idx]) + cand.hi_sq * (tot_n - cum_n[:, hi_idx])
    # err = weight * (below + above) + inside * step2 / 12, evaluated in place in that
    # order: the grid is rows x 257 x 257 float64 and every temporary was a fresh
    # half-megabyte allocation per tensor.
    rounding = np.subtract(cum_n[:, None, hi_idx], cum_n[:, lo_idx, None])  # N_inside, (rows, L, H)
    rounding *= cand.step2[None]
    rounding /= 12.0
    err = np.add(below[:, :, None], above[:, None, :])
    if weight != 1.0:  # x * 1.0 is x, bit for bit
        err *= weight
    err += rounding
    del rounding
    flat = err.reshape(err.shape[0], -1).argmin(axis=1)
    li, hj = flat // len(hi_idx), flat % len(hi_idx)
    rows = np.arange(err.shape[0])
    lo = _refine(lo_e, li, lambda k: err[rows, k, hj])
    hi = _refine(hi_e, hj, lambda k: err[rows, li, k])
    lo = np.maximum(lo, np.minimum(np.atleast_1d(minimum), 0.0))
    hi = np.minimum(hi, np.maximum(np.atleast_1d(maximum), 0.0))
    return lo, hi


def minmax_range(minimum: np.ndarray, maximum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(np.asarray(minimum, np.float64), 0.0), np.maximum(np.asarray(maximum, np.float64), 0.0)


def grid(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric int8 grid ``(scale, zero_point)`` covering ``[lo, hi]`` (which contains 0)."""
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    scale = f32(np.maximum((hi - lo) / (QMAX - QMIN), MIN_SCALE))
    zp = np.clip(np.round(QMIN - lo / scale), QMIN, QMAX).astype(np.int64)
    return scale, zp


def shared_zero_point_grid(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel scales with **one** zero point for all channels ``(scale[C], zp[C])``.

    Why one zero point: the AIPU's data path subtracts a single zero point per
    tensor; per-channel *scales* cost nothing (they fold into the per-channel
    requantization of the producer and of the depthwise reader). For a zero
    point ``z`` each channel needs ``s_c = max(hi_c / (127 - z), -lo_c / (z + 128))``;
    ``z`` is the one minimising the total rounding noise ``sum(s_c^2)``. After a
    Relu (every ``lo_c = 0``) that is ``z = -128`` and ``s_c = hi_c / 255``,
    exactly the per-channel min-max grid."""
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    z = np.arange(QMIN, QMAX + 1, dtype=np.float64)[:, None]  # (256, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(hi > 0, hi / (QMAX - z), 0.0)
        down = np.where(lo < 0, -lo / (z - QMIN), 0.0)
    need = np.maximum(up, down)  # (256, C); inf where a side has no codes left
    cost = np.where(np.isfinite(need), need, np.inf) ** 2
    best = int(np.argmin(cost.sum(axis=1)))
    scale = f32(np.maximum(need[best], MIN_SCALE))
    return scale, np.full(scale.shape, best + QMIN, np.int64)


def activation_qparams(stats: TensorStats, method: str, per_channel: bool, weight: float = 1.0) -> QParams:
    """Quantization parameters of one activation. ``method``: ``histogram`` or ``min_max``;
    ``weight``: clipping weight of the per-tensor histogram search (:func:`clip_weight`)."""
    if per_channel and stats.channel_min is not None:
        if method == "histogram" and stats.channel_histogram is not None:
            lo, hi = mse_range(stats.channel_histogram, stats.channel_min, stats.channel_max)
        else:
            lo, hi = minmax_range(stats.channel_min, stats.channel_max)
        scale, zp = shared_zero_point_grid(lo, hi)
        return QParams(scale, zp, axis=1)
    if method == "histogram" and stats.histogram is not None:
        lo, hi = mse_range(stats.histogram, np.asarray(stats.minimum), np.asarray(stats.maximum), weight)
        lo, hi = lo[0], hi[0]
    else:
        lo, hi = minmax_range(np.asarray(stats.minimum), np.asarray(stats.maximum))
    scale, zp = grid(np.asarray(lo), np.asarray(hi))
    return QParams(scale.reshape(()), zp.reshape(()))


def weight_qparams(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, QParams]:
    """Symmetric int8 weights (zero point 0, range [-127, 127]) with one scale per
    index of ``axis`` (per output channel) or one per tensor; returns ``(w_q, qparams)``."""
    w = np.asarray(w, np.float64)
    if axis is None:
        amax = np.asarray(np.abs(w).max(initial=0.0))
        scale = f32(np.where(amax > 0, amax / QMAX, 1.0))
        q = np.clip(np.round(w / scale), -QMAX, QMAX).astype(np.int8)
        return q, QParams(scale.reshape(()), np.zeros((), np.int64))
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1, initial=0.0)
    scale = f32(np.where(amax > 0, amax / QMAX, 1.0))
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -QMAX, QMAX).astype(np.int8)
    return q, QParams(scale, np.zeros_like(scale, dtype=np.int64), axis=axis)
