"""Neural-network kernels: convolution, pooling, matrix products,
normalization, softmax and resize (ONNX semantics, numpy).

Why im2col: the float executor is the ground truth for calibration and for
every numeric test, so it runs whole models many times. Convolution and
pooling therefore use ``sliding_window_view`` plus one batched matmul or
reduction; the only Python loops are over kernel taps (ConvTranspose,
MaxPool, the 2-D im2col) or axes (Resize), never over pixels.

Why the 2-D convolution builds its im2col rows tap by tap: calibration
spends most of its time in convolutions, and half of that was numpy copying
the window view, whose innermost axis is a kernel row of 3 elements. From a
channels-last copy of the input every tap is one strided copy with the
channels innermost, done a few output rows at a time so the rows being filled
stay in cache. The rows, their column order (channel, kernel row, kernel
column) and the one matmul are exactly those of the generic path, so the
results are bit for bit the same (the quantizer's grids depend on them).
"""

from __future__ import annotations

__all__ = ["KERNELS"]

import math
from typing import Any, Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import UnsupportedOperatorError
from ..ir import Node

Args = list[Any]


def _spatial_pads(node: Node, in_sp: tuple[int, ...], k_eff: list[int], strides: list[int]) -> tuple[list[int], list[int]]:
    """Begin/end padding per spatial axis from ``pads`` or ``auto_pad``."""
    n = len(in_sp)
    auto = node.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s in zip(in_sp, k_eff, strides):
            total = max(0, (math.ceil(size / s) - 1) * s + k - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin, end
    if auto == "VALID":
        return [0] * n, [0] * n
    pads = list(node.attrs.get("pads", [0] * (2 * n)))
    return pads[:n], pads[n:]


def _geometry(node: Node, x: np.ndarray, kernel: tuple[int, ...]) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    n = x.ndim - 2
    strides = list(node.attrs.get("strides", [1] * n))
    dilations = list(node.attrs.get("dilations", [1] * n))
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    begin, end = _spatial_pads(node, x.shape[2:], k_eff, strides)
    return strides, dilations, k_eff, begin, end


def _windows(xp: np.ndarray, k_eff: list[int], strides: list[int], dilations: list[int],
             out: list[int] | None = None) -> np.ndarray:
    """View of shape ``(N, C, *out, *kernel)`` over the padded input."""
    n = len(k_eff)
    axes = tuple(range(2, 2 + n))
    win = sliding_window_view(xp, k_eff, axis=axes)
    index = (slice(None), slice(None)) + tuple(
        slice(0, None if out is None else (o - 1) * s + 1, s) for s, o in zip(strides, out or [0] * n)
    ) + tuple(slice(None, None, d) for d in dilations)
    return win[index]


#: Bytes of im2col rows filled per block: the block stays in L2 while every
#: kernel tap writes its columns, and is large enough that the Python loop
#: over blocks and taps costs little.
IM2COL_BLOCK_BYTES = 1 << 18


def _im2col_2d(x: np.ndarray, kernel: tuple[int, ...], strides: list[int], dilations: list[int],
               begin: list[int], end: list[int]) -> tuple[np.ndarray, tuple[int, int]]:
    """im2col rows ``(N*Ho*Wo, C*kh*kw)`` of a 2-D convolution with one group, columns
    ordered (channel, kernel row, kernel column) as in :func:`_conv`'s generic path,
    and the output size ``(Ho, Wo)``. See the module doc for why tap by tap."""
    n, c, h, w = x.shape
    kh, kw = kernel
    (sh, sw), (dh, dw) = strides, dilations
    hp, wp = h + begin[0] + end[0], w + begin[1] + end[1]
    ho, wo = (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1
    nhwc = x.transpose(0, 2, 3, 1)
    if kh == kw == 1 and sh == sw == 1 and hp == h and wp == w:
        return np.ascontiguousarray(nhwc).reshape(n * h * w, c), (h, w)
    padded = np.zeros((n, hp, wp, c), x.dtype)
    padded[:, begin[0]:begin[0] + h, begin[1]:begin[1] + w] = nhwc
    cols = np.empty((n, ho, wo, c, kh, kw), x.dtype)
    rows = max(1, IM2COL_BLOCK_BYTES // (n * wo * c * kh * kw * x.itemsize))
    for r0 in range(0, ho, rows):
        r1 = min(ho, r0 + rows)
        for i in range(kh):
            band = padded[:, r0 * sh + i * dh:(r1 - 1) * sh + i * dh + 1:sh]
            for j in range(kw):
                cols[:, r0:r1, :, :, i, j] = band[:, :, j * dw:(wo - 1) * sw + j * dw + 1:sw]
    return cols.reshape(n * ho * wo, c * kh * kw), (ho, wo)


def _conv_output(y: np.ndarray, b: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """``y`` (a channels-last view ``(N, *out, O)``) as a contiguous ``(N, O, *out)`` array
    plus the bias, in one pass (the same additions as ``y + b``)."""
    moved = np.moveaxis(y, -1, 1)
    out = np.empty(moved.shape, dtype)
    if b is None:
        np.copyto(out, moved, casting="unsafe")
    else:
        np.add(moved, b.reshape((1, -1) + (1,) * (y.ndim - 2)), out=out, casting="unsafe")
    return out


def _conv(node: Node, args: Args, opset: int) -> np.ndarray:
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    groups = int(node.attrs.get("group", 1))
    kernel = tuple(node.attrs.get("kernel_shape", w.shape[2:]))
    strides, dilations, k_eff, begin, end = _geometry(node, x, kernel)
    if groups == 1 and len(kernel) == 2:
        cols, out_sp = _im2col_2d(x, kernel, strides, dilations, begin, end)
        wmat = w.reshape(1, w.shape[0], -1).transpose(0, 2, 1)
        y = np.matmul(cols[None], wmat)  # the generic path's call: (1, N*P, C*k) @ (1, C*k, O)
        return _conv_output(y.reshape(x.shape[0], *out_sp, w.shape[0]), b, x.dtype)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begin, end)))
    win = _windows(xp, k_eff, strides, dilations)  # N, C, *out, *k
    n_batch, channels = x.shape[:2]
    out_sp = win.shape[2:2 + len(kernel)]
    cg, og = channels // groups, w.shape[0] // groups
    k_size = int(np.prod(kernel))
    positions = int(np.prod(out_sp))
    nsp = len(kernel)
    win = win.reshape(n_batch, groups, cg, *out_sp, *kernel)
    # -> (G, N, *out, Cg, *k): im2col rows per output position, one matrix per group
    order = (1, 0) + tuple(range(3, 3 + nsp)) + (2,) + tuple(range(3 + nsp, 3 + 2 * nsp))
    cols = win.transpose(order).reshape(groups, n_batch * positions, cg * k_size)
    wmat = w.reshape(groups, og, cg * k_size).transpose(0, 2, 1)
    y = np.matmul(cols, wmat)  # G, N*P, Og
    y = y.reshape(groups, n_batch, *out_sp, og)
    y = np.moveaxis(y, -1, 2).swapaxes(0, 1).reshape(n_batch, groups * og, *out_sp)
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nsp)
    return np.ascontiguousarray(y, dtype=x.dtype)


def _conv_transpose_crop(node: Node, full: list[int], in_sp: tuple[int, ...],
                         strides: list[int]) -> tuple[list[int], list[int]]:
    """Where the output starts in the full result (``full``: every tap, ``output_padding``
    included) and its size, per spatial axis (ONNX ConvTranspose).

    ``output_shape`` (or, for SAME_UPPER/SAME_LOWER, input * stride) is the size, and ``pads``
    are then ignored (ONNX spec): the total padding ``full - size`` is split with the larger
    half at the end for SAME_UPPER, at the beginning otherwise. The halves use floor division,
    so a negative total (an ``output_shape`` larger than ``full``) starts at 0 or before.
    Otherwise the output is ``full`` minus the explicit ``pads``."""
    nsp = len(full)
    auto = node.attrs.get("auto_pad", "NOTSET")
    pads = node.attrs.get("pads")
    if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in node.attrs:
            target = [int(t) for t in list(node.attrs["output_shape"])[-nsp:]]
        else:
            target = [i * s for i, s in zip(in_sp, strides)]
        total = [f - t for f, t in zip(full, target)]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return begin, target
    pads = [0] * (2 * nsp) if pads is None or auto == "VALID" else [int(p) for p in pads]
    return pads[:nsp], [f - pb - pe for f, pb, pe in zip(full, pads[:nsp], pads[nsp:])]


def _conv_transpose(node: Node, args: Args, opset: int) -> np.ndarray:
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None
    groups = int(node.attrs.get("group", 1))
    nsp = x.ndim - 2
    kernel = tuple(node.attrs.get("kernel_shape", w.shape[2:]))
    strides = list(node.attrs.get("strides", [1] * nsp))
    dilations = list(node.attrs.get("dilations", [1] * nsp))
    out_pad = list(node.attrs.get("output_padding", [0] * nsp))
    n_batch, channels = x.shape[:2]
    in_sp = x.shape[2:]
    cg, og = channels // groups, w.shape[1]
    full = [(i - 1) * s + (k - 1) * d + 1 + p for i, s, k, d, p in zip(in_sp, strides, kernel, dilations, out_pad)]
    positions = int(np.prod(in_sp))
    xm = x.reshape(n_batch, groups, cg, positions).transpose(1, 0, 3, 2).reshape(groups, n_batch * positions, cg)
    wm = w.reshape(groups, cg, og * int(np.prod(kernel)))
    contrib = np.matmul(xm, wm).reshape(groups, n_batch, *in_sp, og, *kernel)
    y = np.zeros((n_batch, groups, og, *full), dtype=np.float64 if x.dtype == np.float64 else x.dtype)
    lead = (1, 0, 2 + nsp) + tuple(range(2, 2 + nsp))
    for tap in np.ndindex(*kernel):
        part = contrib[(Ellipsis,) + tap].transpose(lead)  # N, G, Og, *in
        sl = tuple(slice(t * d, t * d + (i - 1) * s + 1, s) for t, d, i, s in zip(tap, dilations, in_sp, strides))
        y[(slice(None),) * 3 + sl] += part
    y = y.reshape(n_batch, groups * og, *full)
    begin, target = _conv_transpose_crop(node, full, in_sp, strides)
    if all(0 <= pb and pb + t <= f for pb, t, f in zip(begin, target, full)):
        y = y[(slice(None), slice(None)) + tuple(slice(pb, pb + t) for pb, t in zip(begin, target))]
    else:  # an ``output_shape`` larger than the full result: the positions no tap reaches are 0
        out = np.zeros((n_batch, groups * og, *target), y.dtype)
        src = tuple(slice(max(pb, 0), min(pb + t, f)) for pb, t, f in zip(begin, target, full))
        dst = tuple(slice(s.start - pb, s.stop - pb) for s, pb in zip(src, begin))
        out[(slice(None), slice(None)) + dst] = y[(slice(None), slice(None)) + src]
        y = out
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nsp)
    return np.ascontiguousarray(y, dtype=x.dtype)


def _pool_setup(node: Node, x: np.ndarray, fill: Any) -> tuple[np.ndarray, np.ndarray, list[int], list[int], list[int], list[int]]:
    """Padded input, the count mask, and the geometry (k_eff, strides, dilations, out).

    The mask is 1 where a window element counts for AveragePool: the real
    input, plus the explicit padding when ``count_include_pad``; never the
    extra right padding that ``ceil_mode`` needs."""
    kernel = tuple(node.attrs["kernel_shape"])
    strides, dilations, k_eff, begin, end = _geometry(node, x, kernel)
    out, extra = [], []
    for size, k, s, pb, pe in zip(x.shape[2:], k_eff, strides, begin, end):
        span = size + pb + pe - k
        o = (-(-span // s) if node.attrs.get("ceil_mode", 0) else span // s) + 1
        if node.attrs.get("ceil_mode", 0) and (o - 1) * s >= size + pb:
            o -= 1  # the last window must start inside the input or the left padding
        out.append(o)
        extra.append(max(0, (o - 1) * s + k - (size + pb + pe)))
    widths = [(0, 0), (0, 0)] + [(pb, pe + ex) for pb, pe, ex in zip(begin, end, extra)]
    xp = np.pad(x, widths, constant_values=fill)
    mask = np.ones(x.shape[2:], np.float64)
    if node.attrs.get("count_include_pad", 0):
        mask = np.pad(mask, list(zip(begin, end)), constant_values=1)
        mask = np.pad(mask, [(0, ex) for ex in extra])
    else:
        mask = np.pad(mask, [(pb, pe + ex) for pb, pe, ex in zip(begin, end, extra)])
    return xp, mask, k_eff, strides, dilations, out


def _max_pool_indices(node: Node, x: np.ndarray, xp: np.ndarray, k_eff: list[int], strides: list[int],
                      dilations: list[int], out: list[int]) -> np.ndarray:
    """MaxPool's ``Indices``: where each maximum is in ``x`` flattened (batch and channel
    included), the first of equal maxima in row-major window order, as ONNX's reference;
    ``storage_order=1`` counts the spatial position column-major."""
    nsp = x.ndim - 2
    kernel = list(node.attrs["kernel_shape"])
    win = _windows(xp, k_eff, strides, dilations, out)  # N, C, *out, *kernel
    flat = win.reshape(*win.shape[:2 + nsp], -1)
    arg = np.argmax(flat, axis=-1)
    # the spatial position in the padded input of each window's first element, and of each tap
    begin = _geometry(node, x, tuple(kernel))[3]
    taps = np.stack(np.meshgrid(*[np.arange(k) * d for k, d in zip(kernel, dilations)], indexing="ij"),
                    axis=-1).reshape(-1, nsp)  # kernel row-major, as the window view flattens
    pos = [np.arange(o) * s - b for o, s, b in zip(out, strides, begin)]
    spatial = x.shape[2:]
    coords = []
    for axis in range(nsp):
        shape = [1] * nsp
        shape[axis] = out[axis]
        coords.append(pos[axis].reshape(shape) + taps[:, axis][arg])  # broadcast over N, C, *out
    if node.attrs.get("storage_order", 0):
        index = sum(c * int(np.prod(spatial[:a], dtype=np.int64)) for a, c in enumerate(coords))
    else:
        index = sum(c * int(np.prod(spatial[a + 1:], dtype=np.int64)) for a, c in enumerate(coords))
    plane = np.arange(x.shape[0] * x.shape[1], dtype=np.int64).reshape(x.shape[0], x.shape[1], *([1] * nsp))
    return (plane * int(np.prod(spatial, dtype=np.int64)) + index).astype(np.int64)


def _max_pool(node: Node, args: Args, opset: int) -> Any:
    x = args[0]
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp, _, k_eff, strides, dilations, out = _pool_setup(node, x, fill)
    if len(node.outputs) > 1 and node.outputs[1]:
        indices = _max_pool_indices(node, x, xp, k_eff, strides, dilations, out)
        return _max_pool_values(node, xp, strides, dilations, out), indices
    return _max_pool_values(node, xp, strides, dilations, out)


def _max_pool_values(node: Node, xp: np.ndarray, strides: list[int], dilations: list[int],
                     out: list[int]) -> np.ndarray:
    # Separable: the maximum over a box is the maximum over its rows of the
    # maximum along each row, and max is exact, so one strided np.maximum per
    # tap and axis gives the same values as reducing the whole window view
    # (which numpy walked element by element: 25 taps of YOLOv8n's SPPF pools
    # cost more than the convolutions around them).
    y = xp
    for axis, (k, s, d, o) in enumerate(zip(node.attrs["kernel_shape"], strides, dilations, out)):
        index: list[slice] = [slice(None)] * y.ndim
        acc: np.ndarray | None = None
        for tap in range(k):
            index[2 + axis] = slice(tap * d, tap * d + (o - 1) * s + 1, s)
            part = y[tuple(index)]
            acc = part.copy() if acc is None else np.maximum(acc, part, out=acc)
        y = acc
    return np.ascontiguousarray(y)


def _average_pool(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    xp, mask, k_eff, strides, dilations, out = _pool_setup(node, x, 0)
    axes = tuple(range(-len(out), 0))
    total = _windows(xp, k_eff, strides, dilations, out).sum(axis=axes, dtype=np.float64)
    count = _windows(mask[None, None], k_eff, strides, dilations, out).sum(axis=axes)
    return (total / count).astype(x.dtype)


def _global_average_pool(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype)


def _global_max_pool(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def _gemm(node: Node, args: Args, opset: int) -> np.ndarray:
    a, b = args[0], args[1]
    c = args[2] if len(args) > 2 else None
    a = a.T if node.attrs.get("transA", 0) else a
    b = b.T if node.attrs.get("transB", 0) else b
    y = np.matmul(a, b)
    alpha, beta = node.attrs.get("alpha", 1.0), node.attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if c is not None:
        y = y + (c if beta == 1.0 else c * np.asarray(beta, c.dtype))
    return y.astype(args[0].dtype, copy=False)


def _matmul(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.matmul(args[0], args[1])


def _channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _batch_norm(node: Node, args: Args, opset: int) -> Any:
    x, scale, bias, mean, var = args[:5]
    eps = node.attrs.get("epsilon", 1e-5)
    # training: the ``training_mode`` attribute from opset 14, the extra outputs before
    training = node.attrs.get("training_mode", 0) if opset >= 14 else sum(1 for o in node.outputs if o) > 1
    if training:
        return _batch_norm_training(node, x, scale, bias, mean, var, eps, opset)
    factor = scale / np.sqrt(var + np.asarray(eps, var.dtype))
    y = (x - _channel(mean, x.ndim)) * _channel(factor, x.ndim) + _channel(bias, x.ndim)
    return y.astype(x.dtype, copy=False)


def _batch_norm_training(node: Node, x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray,
                         var: np.ndarray, eps: float, opset: int) -> tuple[np.ndarray, ...]:
    """Training-mode BatchNormalization as ONNX's reference computes it: ``Y`` normalized with
    the batch's own mean and (biased) variance, and the running statistics updated with
    ``momentum``: ``running = input * momentum + batch * (1 - momentum)``. Opset >= 14 outputs
    ``Y, running_mean, running_var``; before, also ``saved_mean, saved_var`` (the batch's)."""
    momentum = node.attrs.get("momentum", 0.9)
    axes = tuple(a for a in range(x.ndim) if a != 1)
    batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)
    running_mean = mean * momentum + batch_mean * (1 - momentum)
    running_var = var * momentum + batch_var * (1 - momentum)
    y = _channel(scale, x.ndim) * (x - _channel(batch_mean, x.ndim)) / np.sqrt(_channel(batch_var, x.ndim) + eps)
    y = y + _channel(bias, x.ndim)
    outputs = [y, running_mean, running_var] + ([] if opset >= 14 else [batch_mean, batch_var])
    return tuple(o.astype(x.dtype) for o in outputs)


def _instance_norm(node: Node, args: Args, opset: int) -> np.ndarray:
    x, scale, bias = args
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    eps = node.attrs.get("epsilon", 1e-5)
    y = (x - mean) / np.sqrt(var + eps) * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return y.astype(x.dtype)


def _layer_norm(node: Node, args: Args, opset: int) -> Any:
    x, scale = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    axis = node.attrs.get("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    eps = node.attrs.get("epsilon", 1e-5)
    y = (x - mean) / np.sqrt(var + eps) * scale
    if bias is not None:
        y = y + bias
    y = y.astype(x.dtype)
    if not any(node.outputs[1:]):
        return y
    # the optional Mean and InvStdDev, shaped like x with 1 from ``axis`` on, in the stash type
    stash = np.dtype(np.float64 if node.attrs.get("stash_type", 1) == 11 else np.float32)
    inv_std = 1 / np.sqrt(var.astype(stash) + np.asarray(eps, stash))
    return (y, mean.astype(stash), inv_std.astype(stash))[:len(node.outputs)]


def _softmax_like(log: bool) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        x = args[0]
        if opset < 13:  # input coerced to 2-D at ``axis`` (default 1)
            axis = node.attrs.get("axis", 1) % max(x.ndim, 1)
            flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
            return kernel_axis(flat, 1).reshape(x.shape)
        return kernel_axis(x, node.attrs.get("axis", -1))

    def kernel_axis(x: np.ndarray, axis: int) -> np.ndarray:
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=axis, keepdims=True)
        return (shifted - np.log(total) if log else e / total).astype(x.dtype)

    return kernel


def _source_coords(out: int, size: int, scale: float, mode: str) -> np.ndarray:
    """Input coordinate of each output index along one axis (ONNX Resize)."""
    x = np.arange(out, dtype=np.float32)
    scale = np.float32(scale)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return np.zeros(out, np.float32) if out == 1 else x * np.float32(size - 1) / np.float32(out - 1)
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out > 1 else np.zeros(out, np.float32)
    if mode == "half_pixel_symmetric":
        adjust = np.float32(out) / (scale * np.float32(size))
        offset = np.float32(size) / 2 * (1 - adjust)
        return offset + (x + 0.5) / scale - 0.5
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    raise ValueError(f"Resize coordinate_transformation_mode {mode!r} is not supported")


_RESIZE_COORDINATE_MODES = ("asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric", "half_pixel")


def _nearest_index(coords: np.ndarray, size: int, mode: str) -> np.ndarray:
    if mode == "round_prefer_floor":
        idx = np.ceil(coords - 0.5)
    elif mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    elif mode == "floor":
        idx = np.floor(coords)
    elif mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise ValueError(f"Resize nearest_mode {mode!r} is not supported")
    return np.clip(idx, 0, size - 1).astype(np.int64)


def _resize(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    attrs = node.attrs
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    refused = None
    if mode not in ("nearest", "linear"):
        refused = f"mode={mode!r}"
    elif attrs.get("antialias", 0):
        refused = f"antialias={attrs['antialias']}"
    elif attrs.get("keep_aspect_ratio_policy", "stretch") not in ("stretch", "not_larger", "not_smaller"):
        refused = f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy']!r}"
    elif ctm not in _RESIZE_COORDINATE_MODES:
        refused = f"coordinate_transformation_mode={ctm!r}"
    if refused:
        raise UnsupportedOperatorError(f"Resize with {refused} is not supported by the reference executor (modes "
                                       "nearest and linear, no antialias, coordinate_transformation_mode "
                                       f"{', '.join(_RESIZE_COORDINATE_MODES)})", node=node.name)
    axes = [a % x.ndim for a in attrs.get("axes", range(x.ndim))]
    scales_in = args[2] if len(args) > 2 and args[2] is not None and args[2].size else None
    sizes_in = args[3] if len(args) > 3 and args[3] is not None and args[3].size else None
    kept = None  # keep_aspect_ratio_policy (opset 18): one scale for every axis, from ``sizes``
    if sizes_in is not None and attrs.get("keep_aspect_ratio_policy", "stretch") != "stretch":
        ratios = [int(sizes_in[i]) / x.shape[a] for i, a in enumerate(axes)]
        kept = min(ratios) if attrs["keep_aspect_ratio_policy"] == "not_larger" else max(ratios)
    y = x
    for i, axis in enumerate(axes):
        size = x.shape[axis]
        if kept is not None:
            scale = kept
            out = int(kept * size + 0.5)  # rounded half up, as ONNX's reference
        elif sizes_in is not None:
            out = int(sizes_in[i])
            scale = out / size
        else:
            scale = float(np.float32(scales_in[i]))
            out = int(math.floor(size * scale))
        if out == size and scale == 1.0:
            continue
        coords = _source_coords(out, size, scale, ctm)
        if mode == "nearest":
            y = np.take(y, _nearest_index(coords, size, attrs.get("nearest_mode", "round_prefer_floor")), axis=axis)
            continue
        coords = np.clip(coords, 0, size - 1)
        lo = np.floor(coords).astype(np.int64)
        hi = np.minimum(lo + 1, size - 1)
        frac = (coords - lo).astype(x.dtype)
        shape = [1] * x.ndim
        shape[axis] = out
        frac = frac.reshape(shape)
        y = np.take(y, lo, axis=axis) * (1 - frac) + np.take(y, hi, axis=axis) * frac
    return np.ascontiguousarray(y, dtype=x.dtype)


KERNELS: dict[str, Callable[[Node, Args, int], Any]] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "MaxPool": _max_pool,
    "AveragePool": _average_pool,
    "GlobalAveragePool": _global_average_pool,
    "GlobalMaxPool": _global_max_pool,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batch_norm,
    "InstanceNormalization": _instance_norm,
    "LayerNormalization": _layer_norm,
    "Softmax": _softmax_like(log=False),
    "LogSoftmax": _softmax_like(log=True),
    "Resize": _resize,
}
