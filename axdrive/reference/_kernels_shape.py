"""Kernels that move, select or create data without arithmetic: reshapes,
slicing, gathering, padding, constants (ONNX semantics, opsets 11..28).

Where an ONNX opset moved an attribute to an input (Split, Squeeze,
Unsqueeze, Pad, ...), the kernel accepts both forms, so one kernel serves
every supported opset.
"""

from __future__ import annotations

__all__ = ["KERNELS"]

from typing import Any, Callable

import numpy as np

from ..errors import UnsupportedOperatorError
from ..ir import Node

Args = list[Any]


def _ints(value: Any) -> list[int]:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def _input_or_attr(node: Node, args: Args, index: int, attr: str) -> list[int] | None:
    if len(args) > index and args[index] is not None:
        return _ints(args[index])
    if attr in node.attrs:
        return _ints(node.attrs[attr])
    return None


def _identity(node: Node, args: Args, opset: int) -> Any:
    return args[0]


def _dropout(node: Node, args: Args, opset: int) -> Any:
    """Inference Dropout: the identity (and an all-true mask). In training mode (opset >= 12:
    ``training_mode`` true) with a ratio above 0 the output is random, which is refused."""
    x = args[0]
    training = len(args) > 2 and args[2] is not None and bool(np.asarray(args[2]).reshape(-1)[0])
    if training:
        ratio = float(np.asarray(args[1]).reshape(-1)[0]) if len(args) > 1 and args[1] is not None else 0.5
        if ratio != 0.0:
            raise UnsupportedOperatorError(f"Dropout with training_mode true and ratio {ratio:g} drops random "
                                           "values; only inference (training_mode false) is supported",
                                           node=node.name)
    if len(node.outputs) > 1 and node.outputs[1]:
        return x, np.ones(x.shape, dtype=bool)
    return x


def _reshape(node: Node, args: Args, opset: int) -> np.ndarray:
    x, shape = args[0], _ints(args[1])
    if not node.attrs.get("allowzero", 0):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    return x.reshape(shape)


def _flatten(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    axis = int(node.attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis  # in [-r, r]: -1 keeps the last axis on the right
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, int(np.prod(x.shape[axis:], dtype=np.int64)))


def _transpose(node: Node, args: Args, opset: int) -> np.ndarray:
    perm = node.attrs.get("perm")
    return np.transpose(args[0], None if perm is None else list(perm))


def _squeeze(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    axes = _input_or_attr(node, args, 1, "axes")
    if not axes:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a % x.ndim for a in axes))


def _unsqueeze(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    axes = _input_or_attr(node, args, 1, "axes") or []
    rank = x.ndim + len(axes)
    shape = list(x.shape)
    for axis in sorted(a % rank for a in axes):
        shape.insert(axis, 1)
    return x.reshape(shape)


def _concat(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.concatenate([a for a in args if a is not None], axis=node.attrs["axis"])


def _split(node: Node, args: Args, opset: int) -> tuple[np.ndarray, ...]:
    x = args[0]
    axis = node.attrs.get("axis", 0) % x.ndim
    sizes = _input_or_attr(node, args, 1, "split")
    if sizes is None:
        n = int(node.attrs.get("num_outputs", len(node.outputs)))
        chunk = -(-x.shape[axis] // n)
        sizes = [chunk] * (n - 1) + [x.shape[axis] - chunk * (n - 1)]
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=axis))


def _slice(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    starts, ends = _ints(args[1]), _ints(args[2])
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = x.shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        index[axis % x.ndim] = slice(start, end if end >= 0 else None, step)
    return x[tuple(index)]


def _gather(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.take(args[0], args[1].astype(np.int64), axis=node.attrs.get("axis", 0))


def _gather_elements(node: Node, args: Args, opset: int) -> np.ndarray:
    x, idx = args
    axis = node.attrs.get("axis", 0) % x.ndim
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return np.take_along_axis(x, idx.astype(np.int64), axis=axis)


def _shape(node: Node, args: Args, opset: int) -> np.ndarray:
    shape = args[0].shape
    start, end = node.attrs.get("start", 0), node.attrs.get("end")
    return np.array(shape[start:end], dtype=np.int64)


def _size(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.array(args[0].size, dtype=np.int64)


def _expand(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    return np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(_ints(args[1])))))


def _constant_of_shape(node: Node, args: Args, opset: int) -> np.ndarray:
    value = node.attrs.get("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(tuple(_ints(args[0])), fill[0], dtype=fill.dtype)


def _range(node: Node, args: Args, opset: int) -> np.ndarray:
    start, limit, delta = (np.asarray(a).reshape(()) for a in args)
    if float(delta) == 0:
        raise ValueError("Range delta is 0")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    dtype = start.dtype
    if opset >= 27 and dtype == np.float16:  # stash_type: float16 is computed in float32 (or float64)
        dtype = np.dtype(np.float64 if node.attrs.get("stash_type", 1) == 11 else np.float32)
    start_c, delta_c = start.astype(dtype), delta.astype(dtype)
    return (start_c + np.arange(count, dtype=dtype) * delta_c).astype(start.dtype)


def _tile(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.tile(args[0], _ints(args[1]))


def _pad(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    pads = _input_or_attr(node, args, 1, "pads") or [0] * (2 * x.ndim)
    value = args[2] if len(args) > 2 and args[2] is not None else node.attrs.get("value", 0)
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else list(range(x.ndim))
    begin, end = [0] * x.ndim, [0] * x.ndim
    for i, axis in enumerate(axes):
        begin[axis % x.ndim], end[axis % x.ndim] = pads[i], pads[i + len(axes)]
    mode = node.attrs.get("mode", "constant")
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "constant":
        y = np.pad(x, widths, mode="constant", constant_values=np.asarray(value, dtype=x.dtype).reshape(()))
    else:
        y = np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])
    crop = tuple(slice(-min(b, 0), y.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end)))
    return y[crop]


def _constant(node: Node, args: Args, opset: int) -> np.ndarray:
    attrs = node.attrs
    if "value" in attrs:
        return np.asarray(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], dtype=np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], dtype=np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], dtype=np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], dtype=np.int64)
    raise ValueError(f"Constant with attributes {sorted(attrs)} is not supported")


def _depth_to_space(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    b = node.attrs["blocksize"]
    n, c, h, w = x.shape
    if node.attrs.get("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


def _space_to_depth(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    b = node.attrs["blocksize"]
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    if node.attrs.get("mode", "DCR") == "DCR":  # ``mode`` exists from opset 28; before, DCR only
        y = y.transpose(0, 3, 5, 1, 2, 4)
    else:  # CRD: the inverse of DepthToSpace's CRD
        y = y.transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


KERNELS: dict[str, Callable[[Node, Args, int], Any]] = {
    "Identity": _identity,
    "Dropout": _dropout,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Split": _split,
    "Slice": _slice,
    "Gather": _gather,
    "GatherElements": _gather_elements,
    "Shape": _shape,
    "Size": _size,
    "Expand": _expand,
    "ConstantOfShape": _constant_of_shape,
    "Range": _range,
    "Tile": _tile,
    "Pad": _pad,
    "Constant": _constant,
    "DepthToSpace": _depth_to_space,
    "SpaceToDepth": _space_to_depth,
}
