"""MVM unit kernels: convolution and matrix multiply on int8, int32 accumulators.

Layouts: activations NHWC int8 with zero point; conv weights OHWI int8
(``(O, KH, KW, C // groups)``), symmetric; dense weights ``(O, K)``; bias int32
``(O,)``. Padding positions hold the zero point (they contribute 0). Sums are
accumulated in int64 and saturated to int32, as the adder tree does.

Three implementations give the same bits: int64 loops (any operands), int16
dot products summed in int32 (one-byte operands, rows up to ``_K_INT32``) and,
on targets with AVX-512 VNNI, byte dot products (``vpdpbusd``, emitted through
Numba intrinsics) for one-group convolutions with int8 weights; each states
why its int32 sums are exact.
"""

from __future__ import annotations

__all__ = ["conv_output_size", "conv2d_acc", "conv2d_requant", "matmul_acc", "plan_weight_sets",
           "matmul_weight_sets_acc", "ConvWeightPlan", "plan_conv_weights", "conv2d_acc_planned",
           "ConvPlanCache", "conv2d_requant_planned_into"]

from dataclasses import dataclass
from typing import Hashable

import numba
import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import config, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..imc import plan_weight_sets  # noqa: F401  (re-exported: the IMC geometry lives in axdrive_hw.imc)

from axdrive_hw.numerics import requantize_nb

from ._cpu import numba_target_has

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


@njit(cache=True, nogil=True)
def _rq_fill(m: np.ndarray, sh: np.ndarray, rq: np.ndarray) -> bool:
    """Fills ``rq`` (see :func:`_rq_rows`) from 1-D int64 ``m``/``sh`` of one entry or one per channel; ``False``
    where a shift is outside 1..62 (``rq`` then undefined)."""
    o = rq.shape[1]
    for oc in range(o):
        k = 0 if m.shape[0] == 1 else oc
        j = 0 if sh.shape[0] == 1 else oc
        if sh[j] < 1 or sh[j] > 62:
            return False
        rq[0, oc] = m[k]
        rq[1, oc] = np.int64(1) << (sh[j] - 1)
        rq[2, oc] = sh[j]
    return True


def _rq_rows(multiplier: np.ndarray, shift: np.ndarray, o: int) -> np.ndarray:
    """``(3, o)`` int64: multiplier, rounding term ``2**(shift-1)`` and shift per output channel (a per-tensor
    pair spread to every channel), the form :func:`_emit_row` reads. Shifts must be in the rule's 1..62.
    (One compiled loop: this runs once per convolution, where NumPy's broadcasting took longer than small
    convolutions.)"""
    m = np.asarray(multiplier, dtype=np.int64).ravel()
    sh = np.asarray(shift, dtype=np.int64).ravel()
    if m.shape[0] not in (1, o) or sh.shape[0] not in (1, o):
        raise ValueError(f"requantization operands of {m.shape[0]} and {sh.shape[0]} entries for {o} channels")
    rq = np.empty((3, o), dtype=np.int64)
    if not _rq_fill(m, sh, rq):
        raise ValueError("requantization shift outside 1..62")
    return rq


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


# ---------------------------------------------------------------------------------------------------------
# The byte dot-product path (AVX-512 VNNI): the same sums, 64 multiply-adds per instruction.
#
# ``vpdpbusd`` adds to each int32 lane the four products of an unsigned byte of one operand and a signed
# byte of the other, without saturation. The activations become unsigned by an offset: ``xu = x + off``
# (``off`` = 128 for int8 ``x``, 0 for uint8), and a padding tap holds ``zu = x_zp + off`` (in 0..255, else
# this path does not apply), so ``xu - zu == x - x_zp`` at every tap and
#
#     sum_k (x - x_zp) * w  ==  S - zu * wsum,    S = sum_k xu * w,   wsum = sum_k w.
#
# Exactness: every product xu * w is at most 255 * 128 = 32640 in magnitude and a row has at most _K_INT32
# weights that are not zero (the zeros that pad K to a multiple of 4 and the channel blocks to 16 add
# exactly 0), so S and each of its partial sums, in any order, stay within 32640 * 16384 < 2**31: the int32
# lanes never wrap. ``bias - zu * wsum`` is formed in int64, added to S in int64 and saturated to int32
# once, as the other kernels do: bit-identical.
#
# The output stage then applies _emit_row's rule in int64 vector lanes (the same wrapping int64 multiply,
# add and arithmetic shift, then the clamp), so requantized outputs are bit-identical too. Where
# |bias - zu * wsum| + 32640 * K cannot exceed 2**31 - 1 the sum cannot leave int32 and the saturation is
# left out (it would change nothing).
#
# Layouts: the im2col patch is ``(pixels, K4)`` uint8, K in (tap row, tap column, channel) order padded
# with zeros to K4 = a multiple of 4; the weights are ``(O16 / 16, K4 / 4, 64)`` int8, each 64-byte vector
# the 4 consecutive K of 16 output channels (lane ``4 * l + j`` = channel ``l``, K ``4 * t + j``), the
# operand order of the instruction. A tile of P pixels by NB * 16 channels keeps its P * NB accumulators
# in registers for the whole K loop and reuses each loaded weight vector P times and each broadcast
# activation quadruple NB times, so it runs at about one instruction per cycle (64 multiply-adds).
#
# Numba cannot express these instructions, so the inner loops are Numba intrinsics that emit LLVM IR:
# the tile, masked 64-byte copies for the im2col (no scalar remainder loops), and the output stage. With
# NUMBA_DISABLE_JIT they are NumPy emulations, so the pure-Python tests run the same blocking and indexing.
# ---------------------------------------------------------------------------------------------------------


# the byte path where Numba targets a CPU with AVX-512 VNNI; with NUMBA_DISABLE_JIT its tile is a NumPy
# emulation. A module switch: tests turn it off to exercise the int16 kernels
_VNNI = bool(config.DISABLE_JIT) or numba_target_has("avx512f", "avx512bw", "avx512vnni")

# pixels per block of the byte kernel: a multiple of every tile height below (6, 8, 12, 24)
_VNNI_BLOCK = 96
_PARALLEL_MACS = 40_000_000  # a convolution runs on several threads from this many MACs (~0.4 ms on one)

if config.DISABLE_JIT:
    def _dpbusd_tile(a: np.ndarray, a_off: int, lda: int, b: np.ndarray, b_off: int, b_step: int, kq: int,
                     c: np.ndarray, c_off: int, ldc: int, p: int, nb: int, flip: int) -> None:
        """NumPy emulation of the tile below (for ``NUMBA_DISABLE_JIT``): the same sums in int64."""
        af, bf, cf = a.reshape(-1).view(np.uint8), b.reshape(-1), c.reshape(-1)
        for i in range(p):
            ar = af[a_off + i * lda:a_off + i * lda + 4 * kq].astype(np.int64).reshape(kq, 1, 4)
            if flip:
                ar = ar ^ 0x80
            for j in range(nb):
                wb = bf[b_off + j * b_step:b_off + j * b_step + 64 * kq].astype(np.int64).reshape(kq, 16, 4)
                s = (ar * wb).sum(axis=(0, 2))
                cf[c_off + i * ldc + 16 * j:c_off + i * ldc + 16 * j + 16] = s.astype(np.int32)

    def _copy_bytes(dst: np.ndarray, d_off: int, src: np.ndarray, s_off: int, n: int, flip: int, spill: int) -> None:
        """NumPy emulation of the byte copy below (it writes only the ``n`` bytes, also with ``spill``)."""
        v = src.reshape(-1).view(np.uint8)[s_off:s_off + n]
        dst.reshape(-1)[d_off:d_off + n] = v ^ np.uint8(0x80) if flip else v

    def _fill_bytes(dst: np.ndarray, d_off: int, n: int, value: np.uint8, spill: int) -> None:
        """NumPy emulation of the byte fill below (it writes only the ``n`` bytes, also with ``spill``)."""
        dst.reshape(-1)[d_off:d_off + n] = value

    def _pixel_rows(out: np.ndarray, m0: int, rows: int) -> list[tuple[int, int, int]]:
        """``(b, y, xo)`` of the flat output pixels ``m0 .. m0 + rows``."""
        oh, ow = out.shape[1], out.shape[2]
        return [(m // (oh * ow), m // ow % oh, m % ow) for m in range(m0, m0 + rows)]

    def _put_rows(out: np.ndarray, m0: int, ldo: int, oc0: int, src: np.ndarray, n: int, rows: int) -> None:
        """NumPy emulation of the row copies below (``ldo`` is implied by ``out``)."""
        for b, y, xo in _pixel_rows(out, m0, rows):
            out[b, y, xo, oc0:oc0 + n] = src[:n]

    def _requant_rows(out: np.ndarray, m0: int, ldo: int, oc0: int, acc: np.ndarray, rows: int, tab: np.ndarray,
                      n: int, zq: np.int64, lo: np.int64, hi: np.int64, sat: int) -> None:
        """NumPy emulation of the output stage below (it always clamps: the same result where the caller
        leaves the clamp out, as there it changes nothing)."""
        for p, (b, y, xo) in enumerate(_pixel_rows(out, m0, rows)):
            a = np.clip(tab[0, :n] + acc[p, :n].astype(np.int64), _I32MIN, _I32MAX)
            if out.itemsize == 1:
                a = np.clip(((a * tab[1, :n] + tab[2, :n]) >> tab[3, :n]) + zq, lo, hi)
            out[b, y, xo, oc0:oc0 + n] = a
else:
    _I8, _I32 = ir.IntType(8), ir.IntType(32)
    _V64I8, _V16I32 = ir.VectorType(_I8, 64), ir.VectorType(_I32, 16)

    @intrinsic(prefer_literal=True)
    def _dpbusd_tile(typingctx, a, a_off, lda, b, b_off, b_step, kq, c, c_off, ldc, p,  # type: ignore[no-untyped-def]
                     nb, flip):
        """``c[c_off + i * ldc + 16 * j + l]`` = sum over ``t < kq``, ``s < 4`` of
        ``a[a_off + i * lda + 4 * t + s]`` (uint8) times ``b[b_off + j * b_step + 64 * t + 4 * l + s]``
        (int8), for ``i < p``, ``j < nb``, ``l < 16`` (offsets in elements of the flat, contiguous arrays).
        ``p`` and ``nb`` are compile-time constants: the ``p * nb`` int32x16 accumulators are SSA values
        (allocas that LLVM promotes to registers), each step one ``vpdpbusd``."""
        if not all(isinstance(v, types.IntegerLiteral) for v in (p, nb, flip)):
            return None
        np_, nb_, flip_ = p.literal_value, nb.literal_value, flip.literal_value
        sig = types.void(a, a_off, lda, b, b_off, b_step, kq, c, c_off, ldc, p, nb, flip)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            tys = signature.args
            i64 = ir.IntType(64)
            a_off_, lda_, b_off_, b_step_, kq_, c_off_, ldc_ = (
                context.cast(builder, args[k], tys[k], types.int64) for k in (1, 2, 4, 5, 6, 8, 9))
            ap = builder.bitcast(context.make_array(tys[0])(context, builder, args[0]).data, _I8.as_pointer())
            bp = builder.bitcast(context.make_array(tys[3])(context, builder, args[3]).data, _I8.as_pointer())
            cp = builder.bitcast(context.make_array(tys[7])(context, builder, args[7]).data, _I32.as_pointer())
            ap = builder.gep(ap, [a_off_])
            bp = builder.gep(bp, [b_off_])
            cp = builder.gep(cp, [c_off_])
            # the <16 x i32> operand form: every LLVM accepts it (newer ones upgrade it to byte vectors)
            dp = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_V16I32, [_V16I32] * 3),
                                                "llvm.x86.avx512.vpdpbusd.512")
            acc = [[cgutils.alloca_once_value(builder, ir.Constant(_V16I32, None)) for _ in range(nb_)]
                   for _ in range(np_)]
            rows = [builder.mul(ir.Constant(i64, i), lda_) for i in range(np_)]
            blocks = [builder.mul(ir.Constant(i64, j), b_step_) for j in range(nb_)]
            undef = ir.Constant(_V16I32, None)
            splat = ir.Constant(_V16I32, None)  # all-zero shuffle mask: lane 0 everywhere
            with cgutils.for_range(builder, kq_) as loop:
                t = loop.index
                wofs = builder.mul(t, ir.Constant(i64, 64))
                aofs = builder.mul(t, ir.Constant(i64, 4))
                wv = [builder.load(builder.bitcast(builder.gep(bp, [builder.add(blocks[j], wofs)]),
                                                   _V16I32.as_pointer()), align=1) for j in range(nb_)]
                for i in range(np_):
                    q = builder.load(builder.bitcast(builder.gep(ap, [builder.add(rows[i], aofs)]),
                                                     _I32.as_pointer()), align=1)
                    if flip_:
                        q = builder.xor(q, ir.Constant(_I32, 0x80808080))
                    av = builder.shuffle_vector(builder.insert_element(undef, q, ir.Constant(_I32, 0)), undef, splat)
                    for j in range(nb_):
                        builder.store(builder.call(dp, [builder.load(acc[i][j]), av, wv[j]]), acc[i][j])
            for i in range(np_):
                crow = builder.mul(ir.Constant(i64, i), ldc_)
                for j in range(nb_):
                    dst = builder.gep(cp, [builder.add(crow, ir.Constant(i64, 16 * j))])
                    builder.store(builder.load(acc[i][j]), builder.bitcast(dst, _V16I32.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    def _byte_chunks(builder, n, body):  # type: ignore[no-untyped-def]
        """Calls ``body(at, mask)`` for each 64-byte chunk of ``n`` bytes (``at``: its offset, ``mask``: its
        valid lanes): masked vector accesses, no scalar remainder loop."""
        i64 = ir.IntType(64)
        iota = ir.Constant(_V64I8, list(range(64)))
        chunks = builder.udiv(builder.add(n, ir.Constant(i64, 63)), ir.Constant(i64, 64))
        with cgutils.for_range(builder, chunks) as loop:
            at = builder.mul(loop.index, ir.Constant(i64, 64))
            rest = builder.sub(n, at)
            rest = builder.select(builder.icmp_signed("<", rest, ir.Constant(i64, 64)), rest, ir.Constant(i64, 64))
            lim = builder.trunc(rest, _I8)
            lim = builder.shuffle_vector(builder.insert_element(ir.Constant(_V64I8, None), lim, ir.Constant(_I32, 0)),
                                         ir.Constant(_V64I8, None), ir.Constant(ir.VectorType(_I32, 64), None))
            body(at, builder.icmp_unsigned("<", iota, lim))

    def _masked_name(op: str, vty: ir.VectorType) -> str:
        """The name of LLVM's masked load/store on ``vty``, mangled for opaque pointers (LLVM 15 on) or
        typed ones."""
        v = f"v{vty.count}i{vty.element.width}"
        return f"llvm.masked.{op}.{v}.p0" if _llvm.llvm_version_info[0] >= 15 else f"llvm.masked.{op}.{v}.p0{v}"

    def _masked(builder, vty=None):  # type: ignore[no-untyped-def]
        """LLVM's masked load and store of ``vty`` (64 bytes by default), for the loads and stores of part of
        a vector: AVX-512 does them with a lane mask, and never touches the memory of lanes outside it."""
        vty = vty or _V64I8
        mask = ir.VectorType(ir.IntType(1), vty.count)
        ld = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            vty, [vty.as_pointer(), _I32, mask, vty]), _masked_name("load", vty))
        st = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            ir.VoidType(), [vty, vty.as_pointer(), _I32, mask]), _masked_name("store", vty))
        return ld, st

    @intrinsic(prefer_literal=True)
    def _copy_bytes(typingctx, dst, d_off, src, s_off, n, flip, spill):  # type: ignore[no-untyped-def]
        """``dst[d_off:d_off + n]`` = the bytes ``src[s_off:s_off + n]`` (flat, contiguous arrays; offsets in
        bytes), plus 128 (an exclusive or with 0x80) when ``flip``: masked 64-byte loads and stores. With
        ``spill`` the stores are whole 64-byte vectors (faster than masked ones): up to 63 bytes after the
        range are overwritten with garbage, which the caller's buffer must have room for and rewrite."""
        if not (isinstance(flip, types.IntegerLiteral) and isinstance(spill, types.IntegerLiteral)):
            return None
        flip_, spill_ = flip.literal_value, spill.literal_value
        sig = types.void(dst, d_off, src, s_off, n, flip, spill)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            tys = signature.args
            d_off_, s_off_, n_ = (context.cast(builder, args[k], tys[k], types.int64) for k in (1, 3, 4))
            dp = builder.gep(builder.bitcast(context.make_array(tys[0])(context, builder, args[0]).data,
                                             _I8.as_pointer()), [d_off_])
            sp = builder.gep(builder.bitcast(context.make_array(tys[2])(context, builder, args[2]).data,
                                             _I8.as_pointer()), [s_off_])
            ld, st = _masked(builder)

            def body(at, mask):  # type: ignore[no-untyped-def]
                v = builder.call(ld, [builder.bitcast(builder.gep(sp, [at]), _V64I8.as_pointer()),
                                      ir.Constant(_I32, 1), mask, ir.Constant(_V64I8, None)])
                if flip_:
                    v = builder.xor(v, ir.Constant(_V64I8, [0x80] * 64))
                to = builder.bitcast(builder.gep(dp, [at]), _V64I8.as_pointer())
                if spill_:
                    builder.store(v, to, align=1)
                else:
                    builder.call(st, [v, to, ir.Constant(_I32, 1), mask])
            _byte_chunks(builder, n_, body)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic(prefer_literal=True)
    def _fill_bytes(typingctx, dst, d_off, n, value, spill):  # type: ignore[no-untyped-def]
        """``dst[d_off:d_off + n]`` = ``value`` (a flat, contiguous byte array): masked 64-byte stores, or whole
        ones with ``spill`` (as in :func:`_copy_bytes`)."""
        if not isinstance(spill, types.IntegerLiteral):
            return None
        spill_ = spill.literal_value
        sig = types.void(dst, d_off, n, value, spill)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            tys = signature.args
            d_off_, n_ = (context.cast(builder, args[k], tys[k], types.int64) for k in (1, 2))
            val = context.cast(builder, args[3], tys[3], types.uint8)
            dp = builder.gep(builder.bitcast(context.make_array(tys[0])(context, builder, args[0]).data,
                                             _I8.as_pointer()), [d_off_])
            splat = builder.shuffle_vector(builder.insert_element(ir.Constant(_V64I8, None), val,
                                                                  ir.Constant(_I32, 0)),
                                           ir.Constant(_V64I8, None), ir.Constant(ir.VectorType(_I32, 64), None))
            _, st = _masked(builder)

            def body(at, mask):  # type: ignore[no-untyped-def]
                to = builder.bitcast(builder.gep(dp, [at]), _V64I8.as_pointer())
                if spill_:
                    builder.store(splat, to, align=1)
                else:
                    builder.call(st, [splat, to, ir.Constant(_I32, 1), mask])
            _byte_chunks(builder, n_, body)
            return context.get_dummy_value()

        return sig, codegen

    def _row_ptr(context, builder, outty, out, m, ldo, oc0):  # type: ignore[no-untyped-def]
        """Byte pointer to channel ``oc0`` of flat pixel ``m`` of ``out`` (pixels ``ldo`` elements apart)."""
        i64 = ir.IntType(64)
        base = builder.bitcast(context.make_array(outty)(context, builder, out).data, _I8.as_pointer())
        at = builder.mul(builder.add(builder.mul(m, ldo), oc0), ir.Constant(i64, outty.dtype.bitwidth // 8))
        return builder.gep(base, [at])

    @intrinsic
    def _put_rows(typingctx, out, m0, ldo, oc0, src, n, rows):  # type: ignore[no-untyped-def]
        """``out[m, oc0:oc0 + n]`` = ``src[:n]`` for the flat pixels ``m0 <= m < m0 + rows`` of ``out`` (pixel
        ``m`` at element ``m * ldo``, its channels contiguous; ``src`` 1-D contiguous of ``out``'s dtype):
        each 64-byte chunk of ``src`` loaded once, then one masked store per pixel."""
        sig = types.void(out, m0, ldo, oc0, src, n, rows)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            tys = signature.args
            i64 = ir.IntType(64)
            m0_, ldo_, oc0_, n_, rows_ = (context.cast(builder, args[k], tys[k], types.int64) for k in (1, 2, 3, 5, 6))
            size = ir.Constant(i64, tys[0].dtype.bitwidth // 8)
            sp = builder.bitcast(context.make_array(tys[4])(context, builder, args[4]).data, _I8.as_pointer())
            ld, st = _masked(builder)

            def body(at, mask):  # type: ignore[no-untyped-def]
                v = builder.call(ld, [builder.bitcast(builder.gep(sp, [at]), _V64I8.as_pointer()),
                                      ir.Constant(_I32, 1), mask, ir.Constant(_V64I8, None)])
                with cgutils.for_range(builder, rows_) as loop:
                    dp = _row_ptr(context, builder, tys[0], args[0], builder.add(m0_, loop.index), ldo_, oc0_)
                    builder.call(st, [v, builder.bitcast(builder.gep(dp, [at]), _V64I8.as_pointer()),
                                      ir.Constant(_I32, 1), mask])
            _byte_chunks(builder, builder.mul(n_, size), body)
            return context.get_dummy_value()

        return sig, codegen

    @intrinsic(prefer_literal=True)
    def _requant_rows(typingctx, out, m0, ldo, oc0, acc, rows, tab, n, zq, lo, hi, sat):  # type: ignore[no-untyped-def]
        """The output stage of ``rows`` pixels, 16 channels per step: ``a = clamp(tab[0, q] + acc[p, q])`` to
        int32, into channel ``oc0 + q`` (``q < n``) of flat pixel ``m0 + p`` of ``out`` (as :func:`_put_rows`)
        as it is (an int32 ``out``) or requantized (int8: ``clamp(((a * tab[1, q] + tab[2, q]) >> tab[3, q])
        + zq, lo, hi)``, :func:`_emit_row`'s rule), in int64 lanes. The rows of ``acc`` (int32, C-contiguous)
        and of ``tab`` (int64) must hold whole 16-lane steps past ``n``; the stores are masked to the ``n``
        channels. Channel step outer, pixel inner: the ``tab`` vectors are loaded once per step. Without
        ``sat`` the clamp to int32 is left out (the caller knows ``a`` is in range)."""
        sig = types.void(out, m0, ldo, oc0, acc, rows, tab, n, zq, lo, hi, sat)
        bits = out.dtype.bitwidth  # 8: requantize, 32: accumulators
        if bits not in (8, 32) or not isinstance(sat, types.IntegerLiteral):
            return None
        sat_ = sat.literal_value

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            tys = signature.args
            i64 = ir.IntType(64)
            v16i64 = ir.VectorType(i64, 16)
            m0_, ldo_, oc0_, rows_, n_, zq_, lo_, hi_ = (context.cast(builder, args[k], tys[k], types.int64)
                                                         for k in (1, 2, 3, 5, 7, 8, 9, 10))
            vout = ir.VectorType(ir.IntType(bits), 16)
            acc = context.make_array(tys[4])(context, builder, args[4])
            ldc = cgutils.unpack_tuple(builder, acc.shape)[1]
            ap = builder.bitcast(acc.data, _I32.as_pointer())
            tab = context.make_array(tys[6])(context, builder, args[6])
            ld_t = cgutils.unpack_tuple(builder, tab.shape)[1]
            tp = builder.bitcast(tab.data, i64.as_pointer())
            _, st = _masked(builder, vout)

            def splat(v):  # type: ignore[no-untyped-def]
                one = builder.insert_element(ir.Constant(v16i64, None), v, ir.Constant(_I32, 0))
                return builder.shuffle_vector(one, ir.Constant(v16i64, None), ir.Constant(_V16I32, None))

            def smin(a, c):  # type: ignore[no-untyped-def]
                return builder.select(builder.icmp_signed("<", a, c), a, c)

            def smax(a, c):  # type: ignore[no-untyped-def]
                return builder.select(builder.icmp_signed(">", a, c), a, c)

            i32min, i32max = splat(ir.Constant(i64, -(2**31))), splat(ir.Constant(i64, 2**31 - 1))
            zqv, lov, hiv = splat(zq_), splat(lo_), splat(hi_)
            iota = ir.Constant(v16i64, list(range(16)))
            steps = builder.udiv(builder.add(n_, ir.Constant(i64, 15)), ir.Constant(i64, 16))
            with cgutils.for_range(builder, steps) as step:
                at = builder.mul(step.index, ir.Constant(i64, 16))
                corr, mul, rnd, sh = (builder.load(builder.bitcast(builder.gep(
                    tp, [builder.add(builder.mul(ir.Constant(i64, r), ld_t), at)]), v16i64.as_pointer()), align=8)
                    for r in range(4))
                mask = builder.icmp_signed("<", iota, splat(builder.sub(n_, at)))
                with cgutils.for_range(builder, rows_) as loop:
                    p = loop.index
                    sv = builder.load(builder.bitcast(builder.gep(ap, [builder.add(builder.mul(p, ldc), at)]),
                                                      _V16I32.as_pointer()), align=4)
                    a = builder.add(builder.sext(sv, v16i64), corr)
                    if sat_:
                        a = smax(smin(a, i32max), i32min)
                    if bits == 8:
                        v = builder.ashr(builder.add(builder.mul(a, mul), rnd), sh)
                        a = smax(smin(builder.add(v, zqv), hiv), lov)
                    dp = _row_ptr(context, builder, tys[0], args[0], builder.add(m0_, p), ldo_,
                                  builder.add(oc0_, at))
                    if bits == 8:
                        # the low byte of each int64 lane (a truncation, the value being in lo..hi): one byte
                        # shuffle of both halves, cheaper than LLVM's two narrowing moves
                        halves = [builder.bitcast(builder.shuffle_vector(a, a, ir.Constant(
                            ir.VectorType(_I32, 8), list(range(h, h + 8)))), _V64I8) for h in (0, 8)]
                        a = builder.shuffle_vector(halves[0], halves[1], ir.Constant(
                            ir.VectorType(_I32, 16), [8 * k for k in range(16)]))
                    else:
                        a = builder.trunc(a, vout)
                    builder.call(st, [a, builder.bitcast(dp, vout.as_pointer()), ir.Constant(_I32, bits // 8), mask])
            return context.get_dummy_value()

        return sig, codegen


@njit(cache=True, nogil=True)
def _dpbusd_block(a: np.ndarray, a_off: int, lda: int, wq: np.ndarray, acc: np.ndarray, rows: int,
                  flip: bool) -> None:
    """``acc[:rows, :16 * nblocks]`` = the byte rows ``a_off + i * lda`` (i < rows) of the flat ``a`` (uint8;
    int8 with ``flip``: the tile adds 128) times the packed int8 weights ``wq`` (int32 sums). Tiles of 6
    pixels by 4 channel blocks, then a last group of 3, 2 or 1 blocks with taller tiles (8, 12, 24 pixels;
    the same 24 accumulators). A tile reads and writes whole pixel rows up to the next multiple of its
    height, which the caller's buffers hold (``_VNNI_BLOCK`` rows); those extra rows are never read back."""
    kq = wq.shape[1]
    nbt = wq.shape[0]
    ldc = acc.shape[1]
    step = kq * 64
    j0 = 0
    # The two branches differ only in the last argument: the tile's height, width and flip must be literal
    # constants at each call (they shape the generated code), so a variable cannot be passed for them.
    if flip:
        while j0 + 4 <= nbt:
            for i0 in range(0, rows, 6):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 6, 4,
                             1)
            j0 += 4
        r = nbt - j0
        if r == 3:
            for i0 in range(0, rows, 8):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 8, 3,
                             1)
        elif r == 2:
            for i0 in range(0, rows, 12):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 12, 2,
                             1)
        elif r == 1:
            for i0 in range(0, rows, 24):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 24, 1,
                             1)
    else:
        while j0 + 4 <= nbt:
            for i0 in range(0, rows, 6):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 6, 4,
                             0)
            j0 += 4
        r = nbt - j0
        if r == 3:
            for i0 in range(0, rows, 8):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 8, 3,
                             0)
        elif r == 2:
            for i0 in range(0, rows, 12):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 12, 2,
                             0)
        elif r == 1:
            for i0 in range(0, rows, 24):
                _dpbusd_tile(a, a_off + i0 * lda, lda, wq, j0 * step, step, kq, acc, i0 * ldc + j0 * 16, ldc, 24, 1,
                             0)


@njit(cache=True, nogil=True, inline="always")
def _im2col_block(src: np.ndarray, h: int, wd: int, cs: int, s_lo: int, flip: bool, patch: np.ndarray, k4: int,
                  rows: int, b: int, y: int, xo: int, oh: int, ow: int, kh: int, kw: int, stride_h: int,
                  stride_w: int, pad_t: int, pad_l: int, dil_h: int, dil_w: int, cc: int, zfill: np.uint8) -> None:
    """``patch[:rows]`` (flat rows of ``k4`` bytes) = the taps of ``rows`` consecutive output pixels from
    ``(b, y, xo)``: channels ``s_lo .. s_lo + cc`` of the flat NHWC bytes ``src`` (``cs`` channels; plus 128
    with ``flip``), a tap in the padding as ``zfill``, the K tail up to a multiple of 4 as 0. Where the
    ``kw`` taps of a kernel row are one run of ``src`` (adjacent columns, ``cs == cc``, all inside), they
    are one copy. Stores spill (see :func:`_copy_bytes`): each write is followed by the next one in the
    patch, which ``patch`` has 64 bytes of room after its last row for."""
    kk = kh * kw * cc
    run = dil_w == 1 and cs == cc
    for p in range(rows):
        pr = p * k4
        ix0 = xo * stride_w - pad_l
        whole = run and ix0 >= 0 and ix0 + kw <= wd
        for i in range(kh):
            iy = y * stride_h - pad_t + i * dil_h
            dst = pr + i * kw * cc
            if iy < 0 or iy >= h:
                _fill_bytes(patch, dst, kw * cc, zfill, 1)
            elif whole:
                at = ((b * h + iy) * wd + ix0) * cs + s_lo
                if flip:
                    _copy_bytes(patch, dst, src, at, kw * cc, 1, 1)
                else:
                    _copy_bytes(patch, dst, src, at, kw * cc, 0, 1)
            else:
                for j in range(kw):
                    ix = ix0 + j * dil_w
                    if ix < 0 or ix >= wd:
                        _fill_bytes(patch, dst + j * cc, cc, zfill, 1)
                    elif flip:
                        _copy_bytes(patch, dst + j * cc, src, ((b * h + iy) * wd + ix) * cs + s_lo, cc, 1, 1)
                    else:
                        _copy_bytes(patch, dst + j * cc, src, ((b * h + iy) * wd + ix) * cs + s_lo, cc, 0, 1)
        _fill_bytes(patch, pr + kk, k4 - kk, np.uint8(0), 1)
        xo += 1
        if xo == ow:
            xo = 0
            y += 1
            if y == oh:
                y = 0
                b += 1


@njit(cache=True, nogil=True, parallel=True)
def _compact_channels(x: np.ndarray, c_lo: int, cc: int, flip: bool) -> np.ndarray:
    """Channels ``c_lo .. c_lo + cc`` of every pixel of the C-contiguous one-byte NHWC ``x`` as flat bytes
    (plus 128 with ``flip``): the operand of :func:`_im2col_block` when a convolution reads few of ``x``'s
    channels, so that each input pixel's cache line is read once, not once per tap, and the taps of a
    kernel row become one run."""
    n, h, wd, c = x.shape
    xs = np.empty(n * h * wd * cc, dtype=np.uint8)
    span = (cc + 63) // 64 * 64  # the bytes a spilling copy of one pixel writes
    for r in prange(n * h):
        # pixels in increasing order, each copy spilling into the next pixels (rewritten after it), but
        # not past the row: the next row may be another thread's, and may already be written
        end = (r + 1) * wd * cc
        for q in range(r * wd, (r + 1) * wd):
            if q * cc + span <= end:
                if flip:
                    _copy_bytes(xs, q * cc, x, q * c + c_lo, cc, 1, 1)
                else:
                    _copy_bytes(xs, q * cc, x, q * c + c_lo, cc, 0, 1)
            elif flip:
                _copy_bytes(xs, q * cc, x, q * c + c_lo, cc, 1, 0)
            else:
                _copy_bytes(xs, q * cc, x, q * c + c_lo, cc, 0, 0)
    return xs


@njit(cache=True, nogil=True, parallel=True)
def _conv2d_vnni(x: np.ndarray, x_off: int, zu: int, wq: np.ndarray, wsum: np.ndarray, bias: np.ndarray,
                 c_lo: int, cc: int, o_lo: int, o_hi: int, kh: int, kw: int, stride_h: int, stride_w: int,
                 pad_t: int, pad_l: int, dil_h: int, dil_w: int, out: np.ndarray, mult: np.ndarray, shift: np.ndarray,
                 out_zp: int, qmin: int, qmax: int, ldo: int, direct: bool) -> bool:
    """:func:`conv2d_acc` (one group) into ``out`` (int32 accumulators, or int8 requantized by the rule of
    :func:`_emit_row` with ``mult``/``shift``: one entry, or one per output channel), on the byte
    dot-product path (see the section comment for exactness). ``False`` (nothing written) where a shift is
    outside the rule's 1..62.

    Only input channels ``c_lo .. c_lo + cc`` and output channels ``o_lo .. o_hi`` may have nonzero
    weights (``wq``/``wsum`` hold those, :func:`_vnni_pack`); every other output channel is its bias.
    The output pixels of all images form one sequence cut into blocks of ``_VNNI_BLOCK``: each block is
    an im2col into a per-thread buffer, one tiled byte GEMM and the output stage, which addresses ``out``
    as flat pixels ``ldo`` elements apart, each with contiguous channels. ``direct`` (a 1x1
    convolution with stride 1, no padding, C-contiguous ``x`` and ``cc`` a multiple of 4): output pixel
    ``m`` reads input pixel ``m``, so a whole block takes its operand rows from ``x`` itself (the offset
    applied in the tile), without im2col.
    """
    n, h, wd, c = x.shape
    o = bias.shape[0]
    oh = out.shape[1]
    ow = out.shape[2]
    nbt = wq.shape[0]
    k4 = wq.shape[1] * 4
    no = o_hi - o_lo
    zq = np.int64(out_zp)
    lo = np.int64(qmin)
    hi = np.int64(qmax)
    requant = out.itemsize == 1
    # per channel: its output if it is outside o_lo .. o_hi (a constant: bias, requantized), and for the
    # others bias - zu * wsum (int64, exact) and the rule's multiplier, rounding term 2**(shift - 1) and
    # shift, in rows padded to whole 16-lane steps
    no16 = (no + 15) // 16 * 16
    tab = np.zeros((4, no16), dtype=np.int64)
    const = np.empty(o, dtype=out.dtype)
    big = np.int64(0)  # the largest |bias - zu * wsum|
    for oc in range(o):
        a = np.int64(bias[oc])
        m_ = np.int64(0)
        r_ = np.int64(0)
        s_ = np.int64(0)
        if requant:
            m_ = mult[0 if mult.shape[0] == 1 else oc]
            s_ = shift[0 if shift.shape[0] == 1 else oc]
            if s_ < 1 or s_ > 62:
                return False
            r_ = np.int64(1) << (s_ - 1)
            a = min(max(((a * m_ + r_) >> s_) + zq, lo), hi)
        const[oc] = a
        if o_lo <= oc < o_hi:
            q = oc - o_lo
            tab[0, q] = np.int64(bias[oc]) - np.int64(zu) * wsum[q]
            tab[1, q] = m_
            tab[2, q] = r_
            tab[3, q] = s_
            big = max(big, abs(tab[0, q]))
    # |S| <= 32640 * kk (the section comment): when bias - zu * wsum + S cannot leave int32, the output
    # stage may skip the saturation (the usual case; large biases keep it)
    sat = big + np.int64(32640) * np.int64(kh * kw * cc) > _I32MAX
    zfill = np.uint8(zu)
    # the im2col source: x itself, or (a kernel larger than 1x1 reading few of x's channels) those channels
    # compacted once, which each input pixel's several taps then read from cache
    if cc < c and kh * kw > 1 and no > 0 and not direct:
        src = _compact_channels(x, c_lo, cc, x_off != 0)
        cs = cc
        s_lo = 0
        s_flip = False
    else:
        src = x.reshape(-1).view(np.uint8)
        cs = c
        s_lo = c_lo
        s_flip = x_off != 0
    ohw = oh * ow
    m_all = n * ohw
    blk = _VNNI_BLOCK
    nblk = (m_all + blk - 1) // blk
    # Blocks in parallel. The buffers are allocated in the loop body, and Numba hoists the allocations to
    # the start of each thread's run of iterations (they depend on no iteration): one per thread, not per
    # block. (Every iteration writes the parts of them it reads.)
    for bi in prange(nblk):
        patch = np.empty(blk * k4 + 64, dtype=np.uint8)  # flat rows of k4, and room for spilled stores
        acc = np.empty((blk, nbt * 16), dtype=np.int32)
        m0 = bi * blk
        rows = min(blk, m_all - m0)
        b = m0 // ohw
        y = (m0 - b * ohw) // ow
        xo = m0 - b * ohw - y * ow
        if no == 0:
            pass  # every output channel is a constant
        elif direct and rows == blk:
            _dpbusd_block(x, m0 * c + c_lo, c, wq, acc, rows, x_off != 0)
        else:
            _im2col_block(src, h, wd, cs, s_lo, s_flip, patch, k4, rows, b, y, xo, oh, ow, kh, kw, stride_h,
                          stride_w, pad_t, pad_l, dil_h, dil_w, cc, zfill)
            _dpbusd_block(patch, 0, k4, wq, acc, rows, False)
        # the output stage: channels outside o_lo .. o_hi are constants, the others from acc
        if o_lo > 0:
            _put_rows(out, m0, ldo, 0, const, o_lo, rows)
        if o_hi < o:
            _put_rows(out, m0, ldo, o_hi, const[o_hi:], o - o_hi, rows)
        if no > 0 and sat:
            _requant_rows(out, m0, ldo, o_lo, acc, rows, tab, no, zq, lo, hi, 1)
        elif no > 0:
            _requant_rows(out, m0, ldo, o_lo, acc, rows, tab, no, zq, lo, hi, 0)
    return True


@dataclass(frozen=True)
class _VnniWeights:
    """One weight tensor packed for :func:`_conv2d_vnni`: the box of input channels ``c_lo .. c_hi`` and
    output channels ``o_lo .. o_hi`` that holds every nonzero weight."""

    c_lo: int
    c_hi: int
    o_lo: int
    o_hi: int
    wq: np.ndarray    # (ceil((o_hi - o_lo) / 16), K4 / 4, 64) int8
    wsum: np.ndarray  # (o_hi - o_lo,) int64: the sum of each output channel's weights


def _vnni_pack(w: np.ndarray, cidx: np.ndarray | None = None, ocidx: np.ndarray | None = None) -> _VnniWeights:
    """The packed weights of OHWI int8 ``w`` restricted to the channel ranges spanned by ``cidx``/``ocidx``
    (the channels with a nonzero weight; found here when not given). A zero weight inside the ranges
    is packed as such: it adds 0."""
    o, kh, kw, c = w.shape
    if cidx is None or ocidx is None:
        nz = w.reshape(o, kh * kw, c) != 0
        cidx = np.flatnonzero(nz.any(axis=(0, 1)))
        ocidx = np.flatnonzero(nz.any(axis=(1, 2)))
    if cidx.size == 0 or ocidx.size == 0:
        c_lo = c_hi = o_lo = o_hi = 0
    else:
        c_lo, c_hi, o_lo, o_hi = int(cidx[0]), int(cidx[-1]) + 1, int(ocidx[0]), int(ocidx[-1]) + 1
    no, kk = o_hi - o_lo, kh * kw * (c_hi - c_lo)
    sub = w[o_lo:o_hi, :, :, c_lo:c_hi].reshape(no, kk)
    nbt, k4 = -(-no // 16), max(4, -(-kk // 4) * 4)
    full = np.zeros((nbt * 16, k4), dtype=np.int8)
    full[:no, :kk] = sub
    wq = np.ascontiguousarray(full.reshape(nbt, 16, k4 // 4, 4).transpose(0, 2, 1, 3).reshape(nbt, k4 // 4, 64))
    return _VnniWeights(c_lo, c_hi, o_lo, o_hi, wq, sub.sum(axis=1, dtype=np.int64))


def _vnni_offset(x: np.ndarray, x_zp: int, w: np.ndarray) -> int | None:
    """The activation offset of the byte path (128 for int8 ``x``, 0 for uint8), or ``None`` where it does
    not apply: int8 weights, and the padding value ``x_zp + offset`` must be a byte."""
    if not _VNNI or w.dtype != np.int8 or x.dtype not in (np.int8, np.uint8):
        return None
    off = 128 if x.dtype == np.int8 else 0
    return off if 0 <= x_zp + off <= 255 else None


def _run_vnni(pk: _VnniWeights, off: int, x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray,
              stride_h: int, stride_w: int, pad_t: int, pad_l: int, dil_h: int, dil_w: int, out: np.ndarray,
              mult: np.ndarray, shift: np.ndarray, out_zp: int, qmin: int, qmax: int) -> None:
    """:func:`_conv2d_vnni` of ``pk``, with the operand layouts it needs: ``x`` C-contiguous (copied if
    not), ``out`` with pixels at one stride and contiguous channels (else computed into a temporary)."""
    cc = pk.c_hi - pk.c_lo
    x = np.ascontiguousarray(x)  # the kernel addresses it as one flat byte array
    direct = (w.shape[1] == 1 and w.shape[2] == 1 and stride_h == 1 and stride_w == 1 and pad_t == 0 and pad_l == 0
              and out.shape[1] == x.shape[1] and out.shape[2] == x.shape[2] and cc % 4 == 0)
    st, size = out.strides, out.itemsize
    flat = (st[3] == size and st[2] % size == 0 and st[2] >= out.shape[3] * size
            and (out.shape[1] == 1 or st[1] == out.shape[2] * st[2])
            and (out.shape[0] == 1 or st[0] == out.shape[1] * out.shape[2] * st[2]))
    target = out if flat else np.empty(out.shape, dtype=out.dtype)
    # a parallel region pays only for enough work: waking the other threads costs tens of microseconds, and
    # on a loaded host a descheduled thread stalls the whole region (the setting is this thread's own)
    threads = numba.get_num_threads()
    if threads > 1 and out.shape[0] * out.shape[1] * out.shape[2] * (pk.o_hi - pk.o_lo) * w.shape[1] * w.shape[2] \
            * cc < _PARALLEL_MACS:
        numba.set_num_threads(1)
    try:
        done = _conv2d_vnni(x, off, x_zp + off, pk.wq, pk.wsum, bias, pk.c_lo, cc, pk.o_lo, pk.o_hi, w.shape[1],
                            w.shape[2], stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, target, mult, shift, out_zp,
                            qmin, qmax, target.strides[2] // size, direct)
    finally:
        numba.set_num_threads(threads)
    if not done:
        raise ValueError("requantization shift outside 1..62")
    if not flat:
        out[...] = target


_NO_SCALE = np.ones(1, dtype=np.int64)  # the multiplier and shift operands of an int32 (accumulator) output


@dataclass(frozen=True)
class ConvWeightPlan:
    """What the planned kernels need of one weight tensor: the kept channels, their int16 weights (the
    int16 kernels) and, where the byte path applies, the packed bytes (made once per weight tensor)."""

    shape: tuple[int, ...]
    cidx: np.ndarray     # input channels with a nonzero weight (int64, ascending)
    ocidx: np.ndarray    # output channels with a nonzero weight (int64, ascending)
    wc: np.ndarray       # (len(ocidx), KH * KW * len(cidx)) int16
    kept: float          # fraction of the MACs still computed
    vnni: _VnniWeights | None = None  # the weights packed for the byte path (None: packed when used)


# Compacting pays when it removes at least this fraction of the MACs (below, the dense kernel is as fast).
_COMPACT_BELOW = 0.8


def _weight_plan(w: np.ndarray) -> ConvWeightPlan | None:
    """The plan of OHWI one-byte weights whatever their zeros (``None``: no int32 kernel applies)."""
    if w.ndim != 4 or w.itemsize != 1 or w.size == 0:
        return None
    o, kh, kw, c = w.shape
    nz = w.reshape(o, kh * kw, c) != 0
    cidx = np.flatnonzero(nz.any(axis=(0, 1))).astype(np.int64)
    ocidx = np.flatnonzero(nz.any(axis=(1, 2))).astype(np.int64)
    if kh * kw * cidx.size > _K_INT32:
        return None
    kept = (cidx.size * ocidx.size) / (c * o)
    wc = np.ascontiguousarray(w[ocidx][:, :, :, cidx].astype(np.int16).reshape(ocidx.size, kh * kw * cidx.size))
    vnni = _vnni_pack(w, cidx, ocidx) if _VNNI and w.dtype == np.int8 else None
    return ConvWeightPlan(tuple(w.shape), cidx, ocidx, wc, kept, vnni)


def plan_conv_weights(w: np.ndarray) -> ConvWeightPlan | None:
    """The zero-skipping plan of OHWI weights, or ``None`` when too little of them is zero to pay.

    Compilers pad channel counts to the PWORD (64): the padding is whole input
    channels and output channels of zero weights, which add nothing to the
    accumulators (see :func:`_conv2d_acc_compact`).
    """
    plan = _weight_plan(w)
    return plan if plan is not None and plan.kept < _COMPACT_BELOW else None


def _is_run(idx: np.ndarray) -> bool:
    """Whether ascending indices are consecutive."""
    return idx.size == 0 or int(idx[-1]) - int(idx[0]) == idx.size - 1


def _plan_fits(plan: ConvWeightPlan | None, x: np.ndarray, w: np.ndarray, groups: int) -> bool:
    return (plan is not None and groups == 1 and x.ndim == 4 and plan.shape == tuple(w.shape)
            and x.shape[3] == w.shape[3])


def _byte_path(plan: ConvWeightPlan | None, x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray,
               stride_h: int, stride_w: int, pad_t: int, pad_l: int, dil_h: int, dil_w: int, groups: int,
               out: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, out_zp: int, qmin: int, qmax: int) -> bool:
    """``out`` (int32 accumulators or int8 requantized) by :func:`_conv2d_vnni` where it applies: one group,
    int8 weights, one-byte activations whose padding value is a byte, a VNNI target; ``False`` otherwise.
    The packed weights come from the plan, or are made here (a plan without them, or none)."""
    if groups != 1 or x.ndim != 4 or w.ndim != 4 or x.shape[3] != w.shape[3]:
        return False
    off = _vnni_offset(x, x_zp, w)
    if off is None:
        return False
    m = np.asarray(multiplier, dtype=np.int64).ravel()
    sh = np.asarray(shift, dtype=np.int64).ravel()
    o = w.shape[0]
    if m.shape[0] not in (1, o) or sh.shape[0] not in (1, o):
        raise ValueError(f"requantization operands of {m.shape[0]} and {sh.shape[0]} entries for {o} channels")
    if _plan_fits(plan, x, w, groups):
        pk = plan.vnni if plan.vnni is not None else _vnni_pack(w, plan.cidx, plan.ocidx)
    else:
        pk = _vnni_pack(w)
    _run_vnni(pk, off, x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, out, m, sh, out_zp, qmin,
              qmax)
    return True


def conv2d_acc_planned(plan: ConvWeightPlan | None, x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray,
                       stride_h: int, stride_w: int, pad_t: int, pad_l: int, pad_b: int, pad_r: int, dil_h: int,
                       dil_w: int, groups: int) -> np.ndarray:
    """:func:`conv2d_acc`, skipping the zero channels of ``plan`` (made by :func:`plan_conv_weights` from ``w``).

    Falls back to :func:`conv2d_acc` without a plan, for grouped convolutions,
    and for operands outside the int32 fast path; the result is the same bit
    for bit either way.
    """
    if (not _plan_fits(plan, x, w, groups) or x.itemsize != 1 or not -128 <= x_zp <= 127):
        return conv2d_acc(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w, groups)
    out = np.empty(_out_shape(x, w, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w), dtype=np.int32)
    if not _byte_path(plan, x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, groups, out,
                      _NO_SCALE, _NO_SCALE, 0, 0, 0):
        _conv2d_acc_compact(x, x_zp, plan.wc, plan.cidx, plan.ocidx, bias, w.shape[1], w.shape[2], stride_h,
                            stride_w, pad_t, pad_l, dil_h, dil_w, out, _NO_RQ, 0, 0, 0)
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
    if _byte_path(plan, x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, groups, out, multiplier,
                  shift, out_zp, qmin, qmax):
        return True
    rq = _rq_rows(multiplier, shift, w.shape[0])
    if _plan_fits(plan, x, w, groups) and (plan.kept < _COMPACT_BELOW or _is_run(plan.cidx)):
        # (a dense plan whose channels are one run: the compact kernel is the dense one, without the
        # int16 copy of the weights that _conv2d_into makes per call)
        _conv2d_acc_compact(x, x_zp, plan.wc, plan.cidx, plan.ocidx, bias, w.shape[1], w.shape[2], stride_h,
                            stride_w, pad_t, pad_l, dil_h, dil_w, out, rq, out_zp, qmin, qmax)
    else:
        _conv2d_into(x, x_zp, w, bias, stride_h, stride_w, pad_t, pad_l, dil_h, dil_w, groups, out, rq, out_zp,
                     qmin, qmax)
    return True


class ConvPlanCache:
    """The plans of the weights each convolution task sees, computed once per weight tensor.

    ``get(key, w)`` gives the plan for ``w`` (``None`` where no int32 kernel
    applies); unlike :func:`plan_conv_weights` it also plans dense weights, so
    their packed layout is made once. A hit needs the same key and
    byte-identical weights (checked by one comparison), so a task whose
    weights are constants pays the analysis on its first run only.
    """

    def __init__(self) -> None:
        self._plans: dict[Hashable, tuple[np.ndarray, ConvWeightPlan | None]] = {}

    def get(self, key: Hashable, w: np.ndarray) -> ConvWeightPlan | None:
        hit = self._plans.get(key)
        if hit is not None:
            seen, plan = hit
            if seen.shape == w.shape and seen.dtype == w.dtype and np.array_equal(seen, w):
                return plan
        plan = _weight_plan(w)
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
