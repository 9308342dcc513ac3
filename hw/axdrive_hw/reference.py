"""Independent plain-NumPy integer references for every kernel.

Written differently on purpose (im2col + int64 matmul, whole-tensor slicing,
vectorised DPU interpretation) so a shared mistake is unlikely; the tests
compare kernels and references bit for bit.
"""

from __future__ import annotations

__all__ = ["conv2d_ref", "matmul_ref", "depthwise_conv2d_ref", "max_pool2d_ref", "avg_pool2d_ref",
           "resize_nearest_ref", "copy2d_ref", "dpu_ref"]

import numpy as np

from axdrive_hw.isa import (OP_ADD, OP_ADDI, OP_CLAMP, OP_CMPGT, OP_DIVR, OP_LOAD, OP_LOADC, OP_LUT, OP_LUTW, OP_MAX,
                            OP_MIN, OP_MOVI, OP_MUL, OP_MULI, OP_MULQ, OP_RMAX, OP_RSUM, OP_SELECT, OP_SHIFT_ROUND,
                            OP_SPILL_LOAD, OP_SPILL_STORE, OP_STORE, OP_SUB)
from axdrive_hw.numerics import INT32_MAX, INT32_MIN, round_divide

#: Opcodes whose result is one saturated int32 expression of their operands.
_ARITHMETIC = (OP_ADD, OP_SUB, OP_MUL, OP_ADDI, OP_MULI, OP_SHIFT_ROUND, OP_MOVI, OP_MULQ)


def _sat(x: np.ndarray) -> np.ndarray:
    return np.clip(x, INT32_MIN, INT32_MAX)


def _windows(xp: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, oh: int, ow: int) -> np.ndarray:
    """``(N, OH, OW, KH, KW, C)`` view of the padded input's receptive fields."""
    cols = np.empty((xp.shape[0], oh, ow, kh, kw, xp.shape[3]), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                                        j * dw: j * dw + sw * (ow - 1) + 1: sw, :]
    return cols


def conv2d_ref(x, x_zp, w, bias, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1) -> np.ndarray:
    """im2col + int64 matmul per group, saturated to int32."""
    n, h, wd, c = x.shape
    o, kh, kw, cg = w.shape
    t, l, b, r = pads
    xp = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (t, b), (l, r), (0, 0)))
    oh = (h + t + b - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = _windows(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1], oh, ow)
    og = o // groups
    outs = []
    for g in range(groups):
        a = cols[..., g * cg:(g + 1) * cg].reshape(n * oh * ow, kh * kw * cg)
        wm = w[g * og:(g + 1) * og].astype(np.int64).reshape(og, -1)
        outs.append(a @ wm.T)
    acc = np.concatenate(outs, axis=1) + bias.astype(np.int64)
    return _sat(acc).astype(np.int32).reshape(n, oh, ow, o)


def matmul_ref(a, a_zp, w, bias) -> np.ndarray:
    return _sat((a.astype(np.int64) - a_zp) @ w.astype(np.int64).T + bias.astype(np.int64)).astype(np.int32)


def depthwise_conv2d_ref(x, x_zp, w, bias, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)) -> np.ndarray:
    """Sum of shifted, strided slices times the per-channel tap weights."""
    kh, kw, c = w.shape
    t, l, b, r = pads
    xp = np.pad(x.astype(np.int64) - x_zp, ((0, 0), (t, b), (l, r), (0, 0)))
    cols = _windows(xp, kh, kw, stride[0], stride[1], dilation[0], dilation[1],
                    (x.shape[1] + t + b - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
                    (x.shape[2] + l + r - dilation[1] * (kw - 1) - 1) // stride[1] + 1)
    acc = np.einsum("nyxijc,ijc->nyxc", cols, w.astype(np.int64)) + bias.astype(np.int64)
    return _sat(acc).astype(np.int32)


def max_pool2d_ref(x, kernel, stride, pads) -> np.ndarray:
    t, l, b, r = pads
    xp = np.pad(x.astype(np.int64), ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-(10**6))
    oh = (x.shape[1] + t + b - kernel[0]) // stride[0] + 1
    ow = (x.shape[2] + l + r - kernel[1]) // stride[1] + 1
    m = _windows(xp, kernel[0], kernel[1], stride[0], stride[1], 1, 1, oh, ow).max(axis=(3, 4))
    return np.maximum(m, -128).astype(np.int8)


def avg_pool2d_ref(x, x_zp, kernel, stride, pads, count_include_pad=False) -> np.ndarray:
    t, l, b, r = pads
    oh = (x.shape[1] + t + b - kernel[0]) // stride[0] + 1
    ow = (x.shape[2] + l + r - kernel[1]) // stride[1] + 1
    valid = np.pad(np.ones(x.shape, dtype=np.int64), ((0, 0), (t, b), (l, r), (0, 0)))
    fill = x_zp if count_include_pad else 0
    xp = np.pad(x.astype(np.int64), ((0, 0), (t, b), (l, r), (0, 0)), constant_values=fill)
    s = _windows(xp, kernel[0], kernel[1], stride[0], stride[1], 1, 1, oh, ow).sum(axis=(3, 4))
    if count_include_pad:
        cnt = np.full(s.shape, kernel[0] * kernel[1], dtype=np.int64)
    else:
        cnt = _windows(valid, kernel[0], kernel[1], stride[0], stride[1], 1, 1, oh, ow).sum(axis=(3, 4))
    safe = np.maximum(cnt, 1)
    q = np.floor_divide(2 * s + safe, 2 * safe)
    return np.where(cnt == 0, x_zp, q).astype(np.int8)


def resize_nearest_ref(x, out_h, out_w) -> np.ndarray:
    ys = (np.arange(out_h) * x.shape[1]) // out_h
    xs = (np.arange(out_w) * x.shape[2]) // out_w
    return x[:, ys][:, :, xs]


def copy2d_ref(src, src_offset, src_stride, dst, dst_offset, dst_stride, rows, row_bytes) -> None:
    idx_s = src_offset + np.arange(rows)[:, None] * src_stride + np.arange(row_bytes)[None, :]
    idx_d = dst_offset + np.arange(rows)[:, None] * dst_stride + np.arange(row_bytes)[None, :]
    dst[idx_d.ravel()] = src[idx_s.ravel()]


def _rs(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = np.clip(np.broadcast_to(np.asarray(s, dtype=np.int64), x.shape), -31, 62)
    left = _sat(x) << np.maximum(-s, 0)  # left shifts saturate their operand to int32 first
    right = (x + (np.int64(1) << np.maximum(s - 1, 0))) >> np.maximum(s, 0)
    return np.where(s <= 0, left, right)


def dpu_ref(code, inputs, consts, luts, channels, n_outputs, registers) -> np.ndarray:
    """Whole-stream vectorised interpretation (no lane chunking) of a DPU program."""
    e = inputs.shape[1]
    reg = np.zeros((registers, e), dtype=np.int64)
    spill: dict[int, np.ndarray] = {}
    out = np.zeros((n_outputs, e), dtype=np.int32)
    ch = np.arange(e) % channels
    for op, d, a, b, i0, i1 in np.asarray(code).tolist():
        if op == OP_LOAD:
            reg[d] = inputs[i0]
        elif op == OP_STORE:
            out[i0] = np.clip(reg[a], -128, 127) if i1 == 1 else reg[a]
        elif op in _ARITHMETIC:
            v = {OP_ADD: lambda: reg[a] + reg[b], OP_SUB: lambda: reg[a] - reg[b], OP_MUL: lambda: reg[a] * reg[b],
                 OP_ADDI: lambda: reg[a] + i0, OP_MULI: lambda: reg[a] * i0, OP_SHIFT_ROUND: lambda: _rs(reg[a], i0),
                 OP_MOVI: lambda: np.full(e, i0, dtype=np.int64),
                 OP_MULQ: lambda: _rs(reg[a] * reg[b], reg[i0])}[op]()
            reg[d] = _sat(v)
        elif op == OP_CLAMP:
            reg[d] = np.clip(reg[a], i0, i1)
        elif op == OP_MIN:
            reg[d] = np.minimum(reg[a], reg[b])
        elif op == OP_MAX:
            reg[d] = np.maximum(reg[a], reg[b])
        elif op == OP_SELECT:
            reg[d] = np.where(reg[i0] != 0, reg[a], reg[b])
        elif op == OP_CMPGT:
            reg[d] = (reg[a] > reg[b]).astype(np.int64)
        elif op == OP_LUT:
            reg[d] = luts[i0].astype(np.int64)[np.clip(reg[a], -128, 127) + 128]
        elif op == OP_SPILL_STORE:
            spill[i0] = reg[a].copy()
        elif op == OP_SPILL_LOAD:
            reg[d] = spill.get(i0, np.zeros(e, dtype=np.int64))
        elif op == OP_LOADC:
            reg[d] = consts[i0][ch]
        elif op in (OP_RMAX, OP_RSUM):  # pixel reductions: groups of `channels` elements (the last may be short)
            starts = np.arange(0, e, max(channels, 1))
            red = (np.maximum.reduceat(reg[a], starts) if op == OP_RMAX else _sat(np.add.reduceat(reg[a], starts)))
            reg[d] = np.repeat(red, np.diff(np.append(starts, e)))
        elif op == OP_DIVR:
            reg[d] = _sat(round_divide(reg[a], reg[b]))
        elif op == OP_LUTW:
            idx = np.clip(reg[a], -128, 127) + 128
            planes = [luts[i0 + k].astype(np.uint8).astype(np.int64)[idx] << (8 * k) for k in range(4)]
            reg[d] = (planes[0] | planes[1] | planes[2] | planes[3]).astype(np.uint32).astype(np.int32)
    return out
