"""MVM unit kernels: convolution and matrix multiply on int8, int32 accumulators.

Layouts: activations NHWC int8 with zero point; conv weights OHWI int8
(``(O, KH, KW, C // groups)``), symmetric; dense weights ``(O, K)``; bias int32
``(O,)``. Padding positions hold the zero point (they contribute 0). Sums are
accumulated in int64 and saturated to int32, as the adder tree does.
"""

from __future__ import annotations

__all__ = ["conv_output_size", "conv2d_acc", "conv2d_requant", "matmul_acc", "plan_weight_sets",
           "matmul_weight_sets_acc", "ConvWeightPlan", "plan_conv_weights", "conv2d_acc_planned",
           "ConvPlanCache", "conv2d_requant_planned_into"]

from dataclasses import dataclass
from typing import Hashable

import numpy as np
from numba import njit, prange

from ..imc import plan_weight_sets  # noqa: F401  (re-exported: the IMC geometry lives in axdrive_hw.imc)

from axdrive_hw.numerics import requantize_nb

_I32MIN = np.int64(-(2**31))
_I32MAX = np.int64(2**31 - 1)


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    """Output length of one spatial axis (floor mode, like ONNX)."""
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


@njit(cache=True, nogil=True)
def _sat32(v: np.int64) -> np.int32:
    if v < _I32MIN:
        return np.int32(_I32MIN)
    if v > _I32MAX:
        return np.int32(_I32MAX)
    return np.int32(v)


# A product of (x - zp) and an int8 weight is at most 255 * 128 = 32640 in
# magnitude (383 * 255 for any one-byte dtypes and an int8 zero point), so a
# sum of up to 16384 of them is exact in int32: the dot products of the fast
# kernels run in int32 on int16 operands (which vectorises to multiply-add
# pairs), and the int32 sum is then added to the int64 accumulator and
# saturated once, as before. Other operands (longer rows, wider dtypes or zero
# points) take the int64 loops.
_K_INT32 = 16384


@njit(cache=True, nogil=True, parallel=True)
def _conv2d_acc_int64(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray, stride_h: int, stride_w: int,
                      pad_t: int, pad_l: int, pad_b: int, pad_r: int, dil_h: int, dil_w: int,
                      groups: int) -> np.ndarray:
    """:func:`conv2d_acc` with every product added in int64 (any K)."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    og = o // groups
    oh = (h + pad_t + pad_b - dil_h * (kh - 1) - 1) // stride_h + 1
    ow = (wd + pad_l + pad_r - dil_w * (kw - 1) - 1) // stride_w + 1
    out = np.empty((n, oh, ow, o), dtype=np.int32)
    zp = np.int64(x_zp)
    for row in prange(n * oh):
        b = row // oh
        y = row % oh
        for xo in range(ow):
            for oc in range(o):
                c0 = (oc // og) * cg
                acc = np.int64(bias[oc])
                for i in range(kh):
                    iy = y * stride_h - pad_t + i * dil_h
                    if iy < 0 or iy >= h:
                        continue
                    for j in range(kw):
                        ix = xo * stride_w - pad_l + j * dil_w
                        if ix < 0 or ix >= wd:
                            continue
                        xv = x[b, iy, ix, c0:c0 + cg]
                        wv = w[oc, i, j, :]
                        for k in range(cg):
                            acc += (np.int64(xv[k]) - zp) * np.int64(wv[k])
                out[b, y, xo, oc] = _sat32(acc)
    return out


# inlined at Numba IR level: a real call in the prange body costs the inner loops their vectorisation
@njit(cache=True, nogil=True, inline="always")
def _im2col_row(x: np.ndarray, b: int, y: int, patch: np.ndarray, kh: int, kw: int, stride_h: int, stride_w: int,
                pad_t: int, pad_l: int, dil_h: int, dil_w: int, c_lo: int, cc: int, cidx: np.ndarray,
                contiguous: bool, zp: np.int16) -> None:
    """Fill ``patch`` (``(OW, KH * KW * cc)`` int16) with output row ``y``'s taps as ``x - zp``
    (0 where a tap falls in the padding): channels ``c_lo .. c_lo + cc`` when ``contiguous``,
    else the channels listed in ``cidx``. The one im2col of both convolution kernels."""
    h = x.shape[1]
    wd = x.shape[2]
    for xo in range(patch.shape[0]):
        pr = patch[xo]
        for i in range(kh):
            iy = y * stride_h - pad_t + i * dil_h
            for j in range(kw):
                ix = xo * stride_w - pad_l + j * dil_w
                base = (i * kw + j) * cc
                if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                    for k in range(cc):
                        pr[base + k] = 0
                elif contiguous:
                    xv = x[b, iy, ix, c_lo:c_lo + cc]
                    for k in range(cc):
                        pr[base + k] = np.int16(xv[k]) - zp
                else:
                    xv = x[b, iy, ix, :]
                    for k in range(cc):
                        pr[base + k] = np.int16(xv[cidx[k]]) - zp


@njit(cache=True, nogil=True, inline="always")
def _dot_patch(patch: np.ndarray, wr: np.ndarray, bias: np.int64, racc: np.ndarray, oc: int) -> None:
    """``racc[:, oc]`` = saturated ``bias + patch . wr`` for one output row (int16 x int16 summed in int32:
    exact, see _K_INT32)."""
    kk = wr.shape[0]
    for xo in range(patch.shape[0]):
        pr = patch[xo]
        s = np.int32(0)
        for k in range(kk):
            s += np.int32(pr[k]) * np.int32(wr[k])
        # the truncation lets the loop use 32-bit lanes
        racc[xo, oc] = _sat32(bias + np.int64(np.int32(s)))


@njit(cache=True, nogil=True, inline="always")
def _emit_row(racc: np.ndarray, out: np.ndarray, b: int, y: int, rq: np.ndarray, zp: np.int64, lo: np.int64,
              hi: np.int64) -> None:
    """One output row's accumulators into ``out``: as they are into an int32 ``out``; into an int8 ``out``
    requantized, as the MVM's output stage does (``rq`` rows: multiplier, rounding term, shift per output
    channel; every shift positive): :func:`~axdrive_hw.numerics.requantize_scalar_nb` of each accumulator,
    in a loop over the channels that vectorises."""
    orow = out[b, y]
    if out.itemsize == 4:
        for xo in range(racc.shape[0]):
            for oc in range(racc.shape[1]):
                orow[xo, oc] = racc[xo, oc]
        return
    for xo in range(racc.shape[0]):
        a = racc[xo]
        o = orow[xo]
        for oc in range(racc.shape[1]):
            v = ((np.int64(a[oc]) * rq[0, oc] + rq[1, oc]) >> rq[2, oc]) + zp
            o[oc] = min(max(v, lo), hi)


def _rq_rows(multiplier: np.ndarray, shift: np.ndarray, o: int) -> np.ndarray:
    """``(3, o)`` int64: multiplier, rounding term ``2**(shift-1)`` and shift per output channel (a per-tensor
    pair spread to every channel), the form :func:`_emit_row` reads. Shifts must be in the rule's 1..62."""
    m = np.broadcast_to(np.asarray(multiplier, dtype=np.int64).ravel(), (o,))
    sh = np.broadcast_to(np.asarray(shift, dtype=np.int64).ravel(), (o,))
    if np.any(sh < 1) or np.any(sh > 62):
        raise ValueError("requantization shift outside 1..62")
    return np.ascontiguousarray(np.stack([m, np.int64(1) << (sh - 1), sh]))


_NO_RQ = np.zeros((3, 1), dtype=np.int64)  # the requantization operands of an int32 (accumulator) output


def _fast(x: np.ndarray, x_zp: int, w: np.ndarray) -> bool:
    """Whether the int32 fast kernels apply: one-byte operands, an int8 zero point, rows of at most _K_INT32."""
    return (x.itemsize == 1 and w.itemsize == 1 and -128 <= x_zp <= 127
            and w.shape[1] * w.shape[2] * w.shape[3] <= _K_INT32)


@njit(cache=True, nogil=True)
def conv2d_acc(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray, stride_h: int, stride_w: int,
               pad_t: int, pad_l: int, pad_b: int, pad_r: int, dil_h: int, dil_w: int, groups: int) -> np.ndarray:
    """Grouped 2-D convolution, NHWC x OHWI -> NHWO int32 accumulators (bias added)."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    kk = kh * kw * cg
    if kk > _K_INT32 or x.itemsize != 1 or w.itemsize != 1 or x_zp < -128 or x_zp > 127:
        return _conv2d_acc_int64(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w,
                                 groups)
    oh = (h + pad_t + pad_b - dil_h * (kh - 1) - 1) // stride_h + 1
    ow = (wd + pad_l + pad_r - dil_w * (kw - 1) - 1) // stride_w + 1
    out = np.empty((n, oh, ow, o), dtype=np.int32)
    _conv2d_into(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, groups, out,
                 np.zeros((3, 1), dtype=np.int64), 0, 0, 0)
    return out


@njit(cache=True, nogil=True, parallel=True)
def _conv2d_into(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray, stride_h: int, stride_w: int,
                 pad_t: int, pad_l: int, dil_h: int, dil_w: int, groups: int, out: np.ndarray, rq: np.ndarray,
                 out_zp: int, qmin: int, qmax: int) -> None:
    """The fast path of :func:`conv2d_acc` into ``out`` (int32 accumulators, or int8 requantized by ``rq``)."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    kk = kh * kw * cg
    og = o // groups
    oh = out.shape[1]
    ow = out.shape[2]
    zq = np.int64(out_zp)
    lo = np.int64(qmin)
    hi = np.int64(qmax)
    # weights as (O, K) int16 rows, K in (tap row, tap column, channel) order like the patches below
    w16 = np.empty((o, kk), dtype=np.int16)
    for oc in range(o):
        for i in range(kh):
            for j in range(kw):
                for k in range(cg):
                    w16[oc, (i * kw + j) * cg + k] = np.int16(w[oc, i, j, k])
    zp = np.int16(x_zp)
    no_idx = np.empty(0, dtype=np.int64)
    # One parallel loop over output rows of all images: enough work per
    # iteration to pay for the thread hand-off, no shared writes.
    for row in prange(n * oh):
        b = row // oh
        y = row % oh
        # im2col of this output row only (it stays in cache), and its accumulators
        patch = np.empty((ow, kk), dtype=np.int16)
        racc = np.empty((ow, o), dtype=np.int32)
        for g in range(groups):
            _im2col_row(x, b, y, patch, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, g * cg, cg, no_idx,
                        True, zp)
            for oc in range(g * og, (g + 1) * og):
                _dot_patch(patch, w16[oc], np.int64(bias[oc]), racc, oc)
        _emit_row(racc, out, b, y, rq, zq, lo, hi)


@njit(cache=True, nogil=True, parallel=True)
def _conv2d_acc_compact(x: np.ndarray, x_zp: int, wc: np.ndarray, cidx: np.ndarray, ocidx: np.ndarray,
                        bias: np.ndarray, kh: int, kw: int, stride_h: int, stride_w: int, pad_t: int, pad_l: int,
                        dil_h: int, dil_w: int, out: np.ndarray, rq: np.ndarray, out_zp: int, qmin: int,
                        qmax: int) -> None:
    """:func:`conv2d_acc` (one group) on the kept part of the weights only, into ``out`` (int32
    accumulators, or int8 requantized by ``rq``: see :func:`_emit_row`).

    ``wc`` is ``(O', KH * KW * C')`` int16: the weights of output channels
    ``ocidx`` and input channels ``cidx`` in (tap row, tap column, channel)
    order; every other weight is zero. A zero weight adds exactly 0 to the
    int32 sum, so an output channel outside ``ocidx`` is its bias and the
    others only need the kept channels: bit-identical to :func:`conv2d_acc`.
    """
    n, h, wd, c = x.shape
    o = bias.shape[0]
    cc = cidx.shape[0]
    no = ocidx.shape[0]
    kk = kh * kw * cc
    oh = out.shape[1]
    ow = out.shape[2]
    zq = np.int64(out_zp)
    lo = np.int64(qmin)
    hi = np.int64(qmax)
    zp = np.int16(x_zp)
    contiguous = cc > 0 and cidx[cc - 1] - cidx[0] == cc - 1  # the kept channels are one run
    c_lo = cidx[0] if cc > 0 else 0
    for row in prange(n * oh):
        b = row // oh
        y = row % oh
        patch = np.empty((ow, kk), dtype=np.int16)
        _im2col_row(x, b, y, patch, kh, kw, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, c_lo, cc, cidx,
                    contiguous, zp)
        racc = np.empty((ow, o), dtype=np.int32)
        for xo in range(ow):
            for oc in range(o):
                racc[xo, oc] = bias[oc]  # an all-zero output channel: the bias (an int32, saturation is a no-op)
        for q in range(no):
            oc = ocidx[q]
            _dot_patch(patch, wc[q], np.int64(bias[oc]), racc, oc)
        _emit_row(racc, out, b, y, rq, zq, lo, hi)


@dataclass(frozen=True)
class ConvWeightPlan:
    """What :func:`conv2d_acc_planned` needs of one weight tensor: the kept channels and their int16 weights."""

    shape: tuple[int, ...]
    cidx: np.ndarray     # input channels with a nonzero weight (int64, ascending)
    ocidx: np.ndarray    # output channels with a nonzero weight (int64, ascending)
    wc: np.ndarray       # (len(ocidx), KH * KW * len(cidx)) int16
    kept: float          # fraction of the MACs still computed


# Compacting pays when it removes at least this fraction of the MACs (below, the dense kernel is as fast).
_COMPACT_BELOW = 0.8


def plan_conv_weights(w: np.ndarray) -> ConvWeightPlan | None:
    """The zero-skipping plan of OHWI weights, or ``None`` when too little of them is zero to pay.

    Compilers pad channel counts to the PWORD (64): the padding is whole input
    channels and output channels of zero weights, which add nothing to the
    accumulators (see :func:`_conv2d_acc_compact`).
    """
    if w.ndim != 4 or w.itemsize != 1 or w.size == 0:
        return None
    o, kh, kw, c = w.shape
    nz = w.reshape(o, kh * kw, c) != 0
    cidx = np.flatnonzero(nz.any(axis=(0, 1))).astype(np.int64)
    ocidx = np.flatnonzero(nz.any(axis=(1, 2))).astype(np.int64)
    kept = (cidx.size * ocidx.size) / (c * o)
    if kept >= _COMPACT_BELOW or kh * kw * cidx.size > _K_INT32:
        return None
    wc = np.ascontiguousarray(w[ocidx][:, :, :, cidx].astype(np.int16).reshape(ocidx.size, kh * kw * cidx.size))
    return ConvWeightPlan(tuple(w.shape), cidx, ocidx, wc, kept)


def conv2d_acc_planned(plan: ConvWeightPlan | None, x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray,
                       stride_h: int, stride_w: int, pad_t: int, pad_l: int, pad_b: int, pad_r: int, dil_h: int,
                       dil_w: int, groups: int) -> np.ndarray:
    """:func:`conv2d_acc`, skipping the zero channels of ``plan`` (made by :func:`plan_conv_weights` from ``w``).

    Falls back to :func:`conv2d_acc` without a plan, for grouped convolutions,
    and for operands outside the int32 fast path; the result is the same bit
    for bit either way.
    """
    if (plan is None or groups != 1 or x.ndim != 4 or x.itemsize != 1 or not -128 <= x_zp <= 127
            or plan.shape != tuple(w.shape) or x.shape[3] != w.shape[3]):
        return conv2d_acc(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, groups)
    out = np.empty(_out_shape(x, w, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w), dtype=np.int32)
    _conv2d_acc_compact(x, x_zp, plan.wc, plan.cidx, plan.ocidx, bias, w.shape[1], w.shape[2], stride_h, stride_w,
                        pad_t, pad_l, dil_h, dil_w, out, _NO_RQ, 0, 0, 0)
    return out


def _out_shape(x: np.ndarray, w: np.ndarray, stride_h: int, stride_w: int, pad_t: int, pad_l: int, pad_b: int,
               pad_r: int, dil_h: int, dil_w: int) -> tuple[int, int, int, int]:
    return (x.shape[0], conv_output_size(x.shape[1], w.shape[1], stride_h, pad_t, pad_b, dil_h),
            conv_output_size(x.shape[2], w.shape[2], stride_w, pad_l, pad_r, dil_w), w.shape[0])


def conv2d_requant_planned_into(plan: ConvWeightPlan | None, x: np.ndarray, x_zp: int, w: np.ndarray,
                                bias: np.ndarray, stride_h: int, stride_w: int, pad_t: int, pad_l: int, pad_b: int,
                                pad_r: int, dil_h: int, dil_w: int, groups: int, multiplier: np.ndarray,
                                shift: np.ndarray, out_zp: int, qmin: int, qmax: int, out: np.ndarray) -> bool:
    """Convolution and requantization in one pass, into the int8 NHWO array ``out`` (any strides, e.g. a
    channel slice of a wider tensor); what the MVM's output stage does, bit-identical to
    :func:`conv2d_acc_planned` followed by :func:`~axdrive_hw.numerics.requantize_nb` but without the int32
    tensor in between. ``multiplier``/``shift`` have one entry per output channel or one for the tensor.

    Returns ``False`` (and writes nothing) where only the int64 kernels apply (long rows, wide operands):
    the caller then takes the two-step path.
    """
    if not _fast(x, x_zp, w) or x.ndim != 4 or w.ndim != 4 or out.dtype != np.int8:
        return False
    if out.shape != _out_shape(x, w, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w):
        raise ValueError(f"output {list(out.shape)} does not fit the convolution of x{list(x.shape)} by "
                         f"w{list(w.shape)}")
    rq = _rq_rows(multiplier, shift, w.shape[0])
    if (plan is None or groups != 1 or plan.shape != tuple(w.shape) or x.shape[3] != w.shape[3]):
        _conv2d_into(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, groups, out, rq, out_zp,
                     qmin, qmax)
    else:
        _conv2d_acc_compact(x, x_zp, plan.wc, plan.cidx, plan.ocidx, bias, w.shape[1], w.shape[2], stride_h,
                            stride_w, pad_t, pad_l, dil_h, dil_w, out, rq, out_zp, qmin, qmax)
    return True


class ConvPlanCache:
    """Zero-skipping plans of the weights each convolution task sees, computed once per weight tensor.

    ``get(key, w)`` gives the plan for ``w`` (or ``None``: dense): a hit
    needs the same key and byte-identical weights (checked by one comparison),
    so a task whose weights are constants pays the analysis on its first run only.
    """

    def __init__(self) -> None:
        self._plans: dict[Hashable, tuple[np.ndarray, ConvWeightPlan | None]] = {}

    def get(self, key: Hashable, w: np.ndarray) -> ConvWeightPlan | None:
        hit = self._plans.get(key)
        if hit is not None:
            seen, plan = hit
            if seen.shape == w.shape and seen.dtype == w.dtype and np.array_equal(seen, w):
                return plan
        plan = plan_conv_weights(w)
        self._plans[key] = (w.copy(), plan)
        return plan


@njit(cache=True, nogil=True, parallel=True)
def _matmul_acc_int64(a: np.ndarray, a_zp: int, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """:func:`matmul_acc` with every product added in int64 (any K)."""
    m, k = a.shape
    o = w.shape[0]
    out = np.empty((m, o), dtype=np.int32)
    zp = np.int64(a_zp)
    for r in prange(m):
        for oc in range(o):
            acc = np.int64(bias[oc])
            for i in range(k):
                acc += (np.int64(a[r, i]) - zp) * np.int64(w[oc, i])
            out[r, oc] = _sat32(acc)
    return out


@njit(cache=True, nogil=True, parallel=True)
def matmul_acc(a: np.ndarray, a_zp: int, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``(M, K) int8 - zp`` times ``(O, K) int8`` transposed -> ``(M, O)`` int32 (bias added)."""
    m, k = a.shape
    o = w.shape[0]
    if k > _K_INT32 or a.itemsize != 1 or w.itemsize != 1 or a_zp < -128 or a_zp > 127:
        return _matmul_acc_int64(a, a_zp, w, bias)
    out = np.empty((m, o), dtype=np.int32)
    w16 = np.empty((o, k), dtype=np.int16)
    for oc in range(o):
        for i in range(k):
            w16[oc, i] = np.int16(w[oc, i])
    zp = np.int16(a_zp)
    for r in prange(m):
        ar = np.empty(k, dtype=np.int16)
        for i in range(k):
            ar[i] = np.int16(a[r, i]) - zp
        for oc in range(o):
            wr = w16[oc]
            s = np.int32(0)
            for i in range(k):
                s += np.int32(ar[i]) * np.int32(wr[i])
            out[r, oc] = _sat32(np.int64(bias[oc]) + np.int64(np.int32(s)))
    return out


def conv2d_requant(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray, multiplier: np.ndarray,
                   shift: np.ndarray, out_zp: int, *, stride: tuple[int, int] = (1, 1),
                   pads: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: tuple[int, int] = (1, 1),
                   groups: int = 1, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """Convolution with the requantization fused on the output (int8 NHWO).

    ``pads`` is ``(top, left, bottom, right)``; ``multiplier``/``shift`` are
    per output channel (length O) or per tensor (length 1).
    """
    acc = conv2d_acc(x, x_zp, w, bias, stride[0], stride[1], pads[0], pads[1], pads[2], pads[3],
                     dilation[0], dilation[1], groups)
    o = acc.shape[-1]
    flat = acc.reshape(-1, o)
    y = requantize_nb(flat, np.atleast_1d(np.asarray(multiplier, dtype=np.int64)),
                      np.atleast_1d(np.asarray(shift, dtype=np.int64)), out_zp, qmin, qmax)
    return y.reshape(acc.shape)


@njit(cache=True, nogil=True)
def matmul_weight_sets_acc(a: np.ndarray, a_zp: int, w: np.ndarray, bias: np.ndarray,
                           tiles: np.ndarray) -> np.ndarray:
    """:func:`matmul_acc` computed tile by tile, as the IMC array does.

    ``tiles`` is ``(t, 4)`` int64 rows ``(k0, k1, o0, o1)`` covering the
    weight matrix once (the concatenation of :func:`plan_weight_sets`).
    Partial sums of the tiles of one output column accumulate in the int64
    accumulator and saturate to int32 once at the end, so the result equals
    the untiled product bit for bit.
    """
    m = a.shape[0]
    o = w.shape[0]
    acc = np.empty((m, o), dtype=np.int64)
    for r in range(m):
        for oc in range(o):
            acc[r, oc] = np.int64(bias[oc])
    zp = np.int64(a_zp)
    for t in range(tiles.shape[0]):
        k0, k1, o0, o1 = tiles[t, 0], tiles[t, 1], tiles[t, 2], tiles[t, 3]
        for r in range(m):
            for oc in range(o0, o1):
                s = np.int64(0)
                for i in range(k0, k1):
                    s += (np.int64(a[r, i]) - zp) * np.int64(w[oc, i])
                acc[r, oc] += s
    out = np.empty((m, o), dtype=np.int32)
    for r in range(m):
        for oc in range(o):
            out[r, oc] = _sat32(acc[r, oc])
    return out
