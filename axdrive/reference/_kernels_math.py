"""Element-wise, comparison, reduction and cast kernels (ONNX semantics, numpy).

Kernel contract (shared by every ``_kernels_*`` module): ``fn(node, args,
opset)`` where ``args`` are the input arrays in order (``None`` for an absent
optional input); returns one array or a tuple of arrays, one per output.
"""

from __future__ import annotations

__all__ = ["KERNELS", "AXDRIVE_KERNELS"]

import math
from functools import reduce
from typing import Any, Callable

import numpy as np
from onnx import TensorProto
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import UnsupportedOperatorError
from ..ir import Node

Args = list[Any]


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        x = args[0]
        with np.errstate(all="ignore"):
            return np.asarray(fn(x)).astype(x.dtype, copy=False)

    return kernel


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(args[0], args[1]))

    return kernel


def _variadic(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        return np.asarray(reduce(fn, [a for a in args if a is not None]))

    return kernel


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``; for float arrays in one buffer (the same operations in
    the same dtype, without four temporaries: SiLU runs on every YOLOv8n activation)."""
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.ndim == 0:
        return 1.0 / (1.0 + np.exp(-x))
    t = np.negative(x)
    np.exp(t, out=t)
    np.add(t, 1.0, out=t)
    return np.divide(1.0, t, out=t)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if np.issubdtype(a.dtype, np.integer):  # C-style truncating division
        q = np.floor_divide(a, b)
        return q + ((np.mod(a, b) != 0) & ((a < 0) != (b < 0))).astype(q.dtype)
    return a / b


def _mod(node: Node, args: Args, opset: int) -> np.ndarray:
    a, b = args
    return np.fmod(a, b) if node.attrs.get("fmod", 0) else np.mod(a, b)


def _pow(node: Node, args: Args, opset: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.power(args[0], args[1].astype(args[0].dtype)).astype(args[0].dtype)


def _mean(node: Node, args: Args, opset: int) -> np.ndarray:
    xs = [a for a in args if a is not None]
    return (reduce(np.add, xs) / len(xs)).astype(xs[0].dtype)


def _clip(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    lo = args[1] if len(args) > 1 and args[1] is not None else node.attrs.get("min")
    hi = args[2] if len(args) > 2 and args[2] is not None else node.attrs.get("max")
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, dtype=x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, dtype=x.dtype))
    return x


def _leaky_relu(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    return np.where(x >= 0, x, x * np.asarray(node.attrs.get("alpha", 0.01), x.dtype))


def _prelu(node: Node, args: Args, opset: int) -> np.ndarray:
    x, slope = args
    return np.where(x >= 0, x, x * slope).astype(x.dtype)


def _elu(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    alpha = np.asarray(node.attrs.get("alpha", 1.0), x.dtype)
    with np.errstate(all="ignore"):
        return np.where(x >= 0, x, alpha * (np.exp(x) - 1)).astype(x.dtype)


def _selu(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    alpha = np.asarray(node.attrs.get("alpha", 1.67326319217681884765625), x.dtype)
    gamma = np.asarray(node.attrs.get("gamma", 1.05070102214813232421875), x.dtype)
    with np.errstate(all="ignore"):
        return (gamma * np.where(x > 0, x, alpha * (np.exp(x) - 1))).astype(x.dtype)


def _hard_sigmoid(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    alpha = np.asarray(node.attrs.get("alpha", 0.2), x.dtype)
    beta = np.asarray(node.attrs.get("beta", 0.5), x.dtype)
    return np.clip(alpha * x + beta, 0, 1).astype(x.dtype)


def _hard_swish(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    return (x * np.clip(x * np.asarray(1 / 6, x.dtype) + np.asarray(0.5, x.dtype), 0, 1)).astype(x.dtype)


def _silu(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    with np.errstate(over="ignore"):
        s = _sigmoid(x)
        if isinstance(s, np.ndarray) and s.dtype == x.dtype and s.shape == x.shape:
            return np.multiply(x, s, out=s)
        return (x * s).astype(x.dtype)


def _relu6(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.clip(args[0], 0, 6).astype(args[0].dtype)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu(node: Node, args: Args, opset: int) -> np.ndarray:
    x = args[0]
    if node.attrs.get("approximate", "none") == "tanh":
        y = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x.astype(np.float64) ** 3)))
    else:
        y = 0.5 * x * (1 + _erf(x / np.sqrt(2)))
    return y.astype(x.dtype)


#: numpy's own element types; ONNX's others (strings, bfloat16, float8, 4- and 2-bit types) are refused.
_DTYPES = tuple(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                      np.uint32, np.uint64, np.float16, np.float32, np.float64))


def _cast_to(node: Node, x: np.ndarray, dtype: Any, what: str) -> np.ndarray:
    if dtype is None or np.dtype(dtype) not in _DTYPES:
        raise UnsupportedOperatorError(f"{node.op} to {what} is not supported by the reference executor "
                                       "(bool, integer and float16/32/64 types are)", node=node.name)
    return x.astype(dtype)


def _cast(node: Node, args: Args, opset: int) -> np.ndarray:
    to = int(node.attrs["to"])
    try:
        dtype = tensor_dtype_to_np_dtype(to)
    except (KeyError, ValueError):  # UNDEFINED, or a number ONNX does not define
        dtype = None
    name = TensorProto.DataType.Name(to) if to in TensorProto.DataType.values() else str(to)
    return _cast_to(node, args[0], dtype, name)


def _cast_like(node: Node, args: Args, opset: int) -> np.ndarray:
    return _cast_to(node, args[0], args[1].dtype, str(args[1].dtype))


def _where(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.where(args[0], args[1], args[2])


def _reduce_axes(node: Node, args: Args) -> tuple[int, ...] | None:
    """Axes from the second input (ReduceSum >= 13, all >= 18) or the attribute; None = all."""
    if len(args) > 1 and args[1] is not None:
        axes = [int(a) for a in np.asarray(args[1]).reshape(-1)]
    else:
        axes = list(node.attrs.get("axes", []))
    if not axes:
        return None
    return tuple(a % args[0].ndim for a in axes)


def _reduce(fn: Callable[..., np.ndarray]) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        x = args[0]
        axes = _reduce_axes(node, args)
        if axes is None and node.attrs.get("noop_with_empty_axes", 0):
            return x
        keep = bool(node.attrs.get("keepdims", 1))
        return np.asarray(fn(x, axis=axes, keepdims=keep)).astype(x.dtype)

    return kernel


def _reduce_mean(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.mean(x, axis=axis, keepdims=keepdims, dtype=np.float64 if x.dtype.kind == "f" else None)


def _reduce_sum(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axis, keepdims=keepdims)


def _reduce_l2(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.sqrt(np.sum(np.square(x.astype(np.float64)), axis=axis, keepdims=keepdims))


def _reduce_sum_square(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.sum(np.square(x), axis=axis, keepdims=keepdims)


def _arg(fn: Callable[..., np.ndarray]) -> Callable[[Node, Args, int], np.ndarray]:
    def kernel(node: Node, args: Args, opset: int) -> np.ndarray:
        x = args[0]
        axis = node.attrs.get("axis", 0) % x.ndim
        if node.attrs.get("select_last_index", 0):
            idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis)
        else:
            idx = fn(x, axis=axis)
        idx = idx.astype(np.int64)
        return np.expand_dims(idx, axis) if node.attrs.get("keepdims", 1) else idx

    return kernel


def _einsum(node: Node, args: Args, opset: int) -> np.ndarray:
    return np.einsum(node.attrs["equation"], *args)


def _extreme(fn: Callable[..., np.ndarray], lowest: bool) -> Callable[..., np.ndarray]:
    """ReduceMax/ReduceMin whose reduced set may be empty: then the identity, the lowest
    (ReduceMax) or highest (ReduceMin) value of the type, -inf/inf for floats (ONNX 18+)."""
    def reduce_(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
        if x.size:
            return fn(x, axis=axis, keepdims=keepdims)
        if x.dtype == np.bool_:
            initial: Any = not lowest
        elif x.dtype.kind == "f":
            initial = -np.inf if lowest else np.inf
        else:
            initial = np.iinfo(x.dtype).min if lowest else np.iinfo(x.dtype).max
        return fn(x, axis=axis, keepdims=keepdims, initial=initial)

    return reduce_


KERNELS: dict[str, Callable[[Node, Args, int], Any]] = {
    "Relu": _unary(lambda x: np.maximum(x, 0)),
    "Sigmoid": _unary(_sigmoid),
    "Tanh": _unary(np.tanh),
    "Exp": _unary(np.exp),
    "Log": _unary(np.log),
    "Sqrt": _unary(np.sqrt),
    "Neg": _unary(np.negative),
    "Abs": _unary(np.abs),
    "Reciprocal": _unary(lambda x: 1 / x),
    "Floor": _unary(np.floor),
    "Ceil": _unary(np.ceil),
    "Round": _unary(np.round),
    "Sign": _unary(np.sign),
    "Sin": _unary(np.sin),
    "Cos": _unary(np.cos),
    "Erf": _unary(_erf),
    "Softplus": _unary(lambda x: np.logaddexp(0, x)),
    "Softsign": _unary(lambda x: x / (1 + np.abs(x))),
    "Not": _unary(np.logical_not),
    "LeakyRelu": _leaky_relu,
    "PRelu": _prelu,
    "Elu": _elu,
    "Selu": _selu,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": _hard_swish,
    "Gelu": _gelu,
    "Clip": _clip,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(_div),
    "Pow": _pow,
    "Mod": _mod,
    "Max": _variadic(np.maximum),
    "Min": _variadic(np.minimum),
    "Sum": _variadic(np.add),
    "Mean": _mean,
    "Equal": _binary(np.equal),
    "Less": _binary(np.less),
    "LessOrEqual": _binary(np.less_equal),
    "Greater": _binary(np.greater),
    "GreaterOrEqual": _binary(np.greater_equal),
    "And": _binary(np.logical_and),
    "Or": _binary(np.logical_or),
    "Xor": _binary(np.logical_xor),
    "Where": _where,
    "Cast": _cast,
    "CastLike": _cast_like,
    "ReduceMean": _reduce(_reduce_mean),
    "ReduceSum": _reduce(_reduce_sum),
    "ReduceMax": _reduce(_extreme(np.max, lowest=True)),
    "ReduceMin": _reduce(_extreme(np.min, lowest=False)),
    "ReduceProd": _reduce(np.prod),
    "ReduceL2": _reduce(_reduce_l2),
    "ReduceSumSquare": _reduce(_reduce_sum_square),
    "ArgMax": _arg(np.argmax),
    "ArgMin": _arg(np.argmin),
    "Einsum": _einsum,
}

# Fused operators of the axdrive domain (see axdrive.ir.AXDRIVE_DOMAIN).
AXDRIVE_KERNELS: dict[str, Callable[[Node, Args, int], Any]] = {
    "SiLU": _silu,
    "Relu6": _relu6,
}
