"""DWPU kernels: depthwise convolution, max/average pooling, nearest resize.

All per channel on NHWC int8. Rounding of average pooling: round half up,
``floor((2*sum + count) / (2*count))`` on the raw int8 values (the zero point
cancels when padding is excluded; with ``count_include_pad`` padded taps hold
the zero point). Max pooling ignores padded taps.
"""

from __future__ import annotations

__all__ = ["depthwise_conv2d_acc", "max_pool2d", "avg_pool2d", "resize_nearest"]

import numpy as np
from numba import njit, prange

_I32MIN = np.int64(-(2**31))
_I32MAX = np.int64(2**31 - 1)


@njit(cache=True, nogil=True, parallel=True)
def depthwise_conv2d_acc(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray, stride_h: int,
                         stride_w: int, pad_t: int, pad_l: int, pad_b: int, pad_r: int, dil_h: int,
                         dil_w: int) -> np.ndarray:
    """Depthwise conv: x NHWC int8, w ``(KH, KW, C)`` int8, bias ``(C,)`` -> NHWC int32."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    oh = (h + pad_t + pad_b - dil_h * (kh - 1) - 1) // stride_h + 1
    ow = (wd + pad_l + pad_r - dil_w * (kw - 1) - 1) // stride_w + 1
    out = np.empty((n, oh, ow, c), dtype=np.int32)
    zp = np.int64(x_zp)
    for row in prange(n * oh):  # output rows are independent
        b = row // oh
        y = row % oh
        acc = np.empty(c, dtype=np.int64)
        for xo in range(ow):
            for ch in range(c):
                acc[ch] = np.int64(bias[ch])
            for i in range(kh):
                iy = y * stride_h - pad_t + i * dil_h
                if iy < 0 or iy >= h:
                    continue
                for j in range(kw):
                    ix = xo * stride_w - pad_l + j * dil_w
                    if ix < 0 or ix >= wd:
                        continue
                    # all channels of one tap at once (PWORD lanes): contiguous, vectorises
                    xv = x[b, iy, ix, :]
                    wv = w[i, j, :]
                    for ch in range(c):
                        acc[ch] += (np.int64(xv[ch]) - zp) * np.int64(wv[ch])
            for ch in range(c):
                v = acc[ch]
                if v > _I32MAX:
                    v = _I32MAX
                elif v < _I32MIN:
                    v = _I32MIN
                out[b, y, xo, ch] = np.int32(v)
    return out


@njit(cache=True, nogil=True)
def max_pool2d(x: np.ndarray, kh: int, kw: int, stride_h: int, stride_w: int, pad_t: int, pad_l: int,
               pad_b: int, pad_r: int) -> np.ndarray:
    """Max pooling over valid taps (a window with no valid tap yields -128)."""
    n, h, wd, c = x.shape
    oh = (h + pad_t + pad_b - kh) // stride_h + 1
    ow = (wd + pad_l + pad_r - kw) // stride_w + 1
    out = np.empty((n, oh, ow, c), dtype=np.int8)
    for b in range(n):
        for y in range(oh):
            for xo in range(ow):
                for ch in range(c):
                    m = np.int64(-128)
                    for i in range(kh):
                        iy = y * stride_h - pad_t + i
                        if iy < 0 or iy >= h:
                            continue
                        for j in range(kw):
                            ix = xo * stride_w - pad_l + j
                            if ix < 0 or ix >= wd:
                                continue
                            v = np.int64(x[b, iy, ix, ch])
                            if v > m:
                                m = v
                    out[b, y, xo, ch] = np.int8(m)
    return out


@njit(cache=True, nogil=True)
def avg_pool2d(x: np.ndarray, x_zp: int, kh: int, kw: int, stride_h: int, stride_w: int, pad_t: int,
               pad_l: int, pad_b: int, pad_r: int, count_include_pad: bool) -> np.ndarray:
    """Average pooling with round-half-up integer division (see module docstring)."""
    n, h, wd, c = x.shape
    oh = (h + pad_t + pad_b - kh) // stride_h + 1
    ow = (wd + pad_l + pad_r - kw) // stride_w + 1
    out = np.empty((n, oh, ow, c), dtype=np.int8)
    for b in range(n):
        for y in range(oh):
            for xo in range(ow):
                for ch in range(c):
                    s = np.int64(0)
                    cnt = np.int64(0)
                    for i in range(kh):
                        iy = y * stride_h - pad_t + i
                        for j in range(kw):
                            ix = xo * stride_w - pad_l + j
                            if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                                if count_include_pad:
                                    s += np.int64(x_zp)
                                    cnt += 1
                                continue
                            s += np.int64(x[b, iy, ix, ch])
                            cnt += 1
                    if cnt == 0:
                        out[b, y, xo, ch] = np.int8(x_zp)
                    else:
                        out[b, y, xo, ch] = np.int8((2 * s + cnt) // (2 * cnt))
    return out


@njit(cache=True, nogil=True)
def resize_nearest(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest resize, source index ``floor(o * in / out)`` (ONNX asymmetric + floor)."""
    n, h, wd, c = x.shape
    out = np.empty((n, out_h, out_w, c), dtype=x.dtype)
    for b in range(n):
        for y in range(out_h):
            sy = (y * h) // out_h
            for xo in range(out_w):
                sx = (xo * wd) // out_w
                for ch in range(c):
                    out[b, y, xo, ch] = x[b, sy, sx, ch]
    return out
