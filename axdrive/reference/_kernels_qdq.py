"""ONNX QuantizeLinear / DequantizeLinear for the float reference executor.

They are ordinary ONNX operators of a QDQ model (``compiler_mode=lower_only``
takes one), so the float executor, and through it the importer, accepts them
like any other operator: round half to even and saturation for QuantizeLinear,
exact integer arithmetic in float64 for DequantizeLinear, per-axis when the
scale is a vector.
"""

from __future__ import annotations

__all__ = ["KERNELS"]

from typing import Any, Callable

import numpy as np

from ..ir import Node

def _per_axis(value: np.ndarray, node: Node, ndim: int) -> np.ndarray:
    if value.ndim != 1 or ndim == 0:
        return value
    shape = [1] * ndim
    shape[int(node.attrs.get("axis", 1)) % ndim] = -1
    return value.reshape(shape)


def _quantize_linear_onnx(node: Node, args: list[Any], opset: int) -> np.ndarray:
    """ONNX QuantizeLinear (float in, int8/uint8/int32 out; round half to even, saturate)."""
    x, scale = np.asarray(args[0], np.float64), np.asarray(args[1], np.float64)
    zp = np.asarray(args[2]) if len(args) > 2 and args[2] is not None else np.zeros((), np.uint8)
    info = np.iinfo(zp.dtype)
    y = np.rint(x / _per_axis(scale, node, x.ndim)) + _per_axis(zp.astype(np.int64), node, x.ndim)
    return np.clip(y, info.min, info.max).astype(zp.dtype)


def _dequantize_linear_onnx(node: Node, args: list[Any], opset: int) -> np.ndarray:
    """ONNX DequantizeLinear (integer in, float out in the scale's dtype)."""
    q, scale = np.asarray(args[0]), np.asarray(args[1])
    zp = np.asarray(args[2]).astype(np.int64) if len(args) > 2 and args[2] is not None else np.zeros((), np.int64)
    real = (q.astype(np.int64) - _per_axis(zp, node, q.ndim)) * _per_axis(scale.astype(np.float64), node, q.ndim)
    return real.astype(scale.dtype)


KERNELS: dict[str, Callable[[Node, list[Any], int], Any]] = {
    "QuantizeLinear": _quantize_linear_onnx,
    "DequantizeLinear": _dequantize_linear_onnx,
}
