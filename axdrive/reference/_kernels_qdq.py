"""ONNX QuantizeLinear / DequantizeLinear for the float reference executor.

They are ordinary ONNX operators of a QDQ model (``compiler_mode=lower_only``
takes one), so the float executor, and through it the importer, accepts them
like any other operator: round half to even and saturation for QuantizeLinear,
exact integer arithmetic in float64 for DequantizeLinear, per-axis when the
scale is a vector, per block with ``block_size`` (opset 21).

QuantizeLinear divides ``x / scale`` in float64, where ONNX (and onnxruntime)
divide in the scale's type: when the float32 quotient rounds to exactly .5 but
the exact one is just below (or above), the two differ by one step. (Its
``precision`` attribute, opset 23, which picks the division's type, is
therefore not read.)
"""

from __future__ import annotations

__all__ = ["KERNELS"]

from typing import Any, Callable

import numpy as np
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import UnsupportedOperatorError
from ..ir import Node

#: Integer types QuantizeLinear produces and DequantizeLinear reads here (the float8 and
#: 4-bit types of newer opsets are not numpy types and are refused).
_QUANT_TYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32))


def _per_axis(value: np.ndarray, node: Node, ndim: int, size: int | None = None) -> np.ndarray:
    """``value`` (a scale or zero point) shaped to broadcast against the quantized tensor:
    a scalar as is, a vector along ``axis`` (per-axis), and with ``block_size`` (opset >= 21,
    same rank as the tensor) each entry repeated ``block_size`` times along ``axis`` and cut
    to the tensor's ``size`` there (blocked quantization)."""
    block = int(node.attrs.get("block_size", 0))
    if block > 0 and value.ndim == ndim and ndim > 0:
        axis = int(node.attrs.get("axis", 1)) % ndim
        repeated = np.repeat(value, block, axis=axis)
        return repeated[(slice(None),) * axis + (slice(0, size),)]
    if value.ndim != 1 or ndim == 0:
        return value
    shape = [1] * ndim
    shape[int(node.attrs.get("axis", 1)) % ndim] = -1
    return value.reshape(shape)


def _refuse_type(node: Node, dtype: np.dtype, what: str) -> None:
    if np.dtype(dtype) not in _QUANT_TYPES:
        raise UnsupportedOperatorError(f"{node.op} with {what} {np.dtype(dtype).name} is not supported "
                                       "(int8, uint8, int16, uint16, int32 are)", node=node.name)


def _quantize_linear_onnx(node: Node, args: list[Any], opset: int) -> np.ndarray:
    """ONNX QuantizeLinear (float in, int8/uint8/int16/uint16/int32 out; round half to even, saturate)."""
    x, scale = np.asarray(args[0], np.float64), np.asarray(args[1], np.float64)
    if len(args) > 2 and args[2] is not None:
        zp = np.asarray(args[2])
    else:  # no zero point: ``output_dtype`` (opset >= 21) or uint8
        out_type = int(node.attrs.get("output_dtype", 0))
        zp = np.zeros((), tensor_dtype_to_np_dtype(out_type) if out_type else np.uint8)
    _refuse_type(node, zp.dtype, "output type")
    axis_size = x.shape[int(node.attrs.get("axis", 1)) % x.ndim] if x.ndim else None
    info = np.iinfo(zp.dtype)
    y = np.rint(x / _per_axis(scale, node, x.ndim, axis_size)) + _per_axis(zp.astype(np.int64), node, x.ndim,
                                                                           axis_size)
    return np.clip(y, info.min, info.max).astype(zp.dtype)


def _dequantize_linear_onnx(node: Node, args: list[Any], opset: int) -> np.ndarray:
    """ONNX DequantizeLinear (integer in, float out in the scale's dtype or ``output_dtype``)."""
    q, scale = np.asarray(args[0]), np.asarray(args[1])
    _refuse_type(node, q.dtype, "input type")
    zp = np.asarray(args[2]).astype(np.int64) if len(args) > 2 and args[2] is not None else np.zeros((), np.int64)
    axis_size = q.shape[int(node.attrs.get("axis", 1)) % q.ndim] if q.ndim else None
    real = (q.astype(np.int64) - _per_axis(zp, node, q.ndim, axis_size)) * _per_axis(scale.astype(np.float64), node,
                                                                                     q.ndim, axis_size)
    out_type = int(node.attrs.get("output_dtype", 0))
    return real.astype(tensor_dtype_to_np_dtype(out_type) if out_type else scale.dtype)


KERNELS: dict[str, Callable[[Node, list[Any], int], Any]] = {
    "QuantizeLinear": _quantize_linear_onnx,
    "DequantizeLinear": _dequantize_linear_onnx,
}
