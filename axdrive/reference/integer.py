"""The integer reference executor: what the AIPU computes, bit for bit.

Why it exists: the quantizer's numbers are only right if some executable
definition says what they mean, and the simulated hardware is only right if it
matches that definition exactly. :func:`run_integer` is that definition, in
numpy, built on :mod:`axdrive.numerics` (the one place rounding is defined).

A quantized graph (the quantizer's output) keeps the float graph's operators;
every node says which integer kernel it is with the attribute
``integer_op`` and carries the parameters of that kernel in its attributes
(:data:`INTEGER_ATTRS`). Activations are int8, weights int8 (symmetric,
per output channel), biases int32. Accumulation is exact (int64, or float64
on integers, which is exact below 2**53) and saturates to int32 before
requantization.

``integer_op`` values and their attributes:

``mac`` (Conv, ConvTranspose, Gemm, MatMul with a constant weight)
    ``acc = sum(w_q * (x_q - in_zero_point)) + bias_q``, saturated to int32,
    then ``requantize(acc, requant_multiplier, requant_shift, out_zero_point)``
    per output channel (``channel_axis``), clamped to ``[clamp_min, clamp_max]``
    (a fused Relu/Clip). ``in_zero_point`` may be per input channel (axis 1).
``add`` / ``sub``
    each input is first rescaled to a common fine scale,
    ``r_i = requantize(x_i - in_zero_points[i], in_multipliers[i], in_shifts[i], 0)``
    in int32, then ``acc = r_0 +/- r_1`` is requantized to the output.
``mul`` / ``matmul``
    ``acc = (a - za) * (b - zb)`` (element-wise or a matrix product), requantized.
``concat``
    every input is requantized to the output's scale and zero point, then
    concatenated (identity for inputs that already share them).
``lut``
    ``y = lut[x + 128]`` (any element-wise function: Sigmoid, SiLU, HardSwish, ...).
``avgpool`` (AveragePool, GlobalAveragePool)
    window sums of ``x - in_zero_point`` requantized with ``s_x / (s_y * count)``.
``move``
    exact data movement or selection on int8 (Reshape, Transpose, Slice,
    MaxPool, Resize nearest, Pad with the zero point, ...): the float kernel
    runs on the integers unchanged.
``softmax``
    :func:`axdrive.numerics.softmax` over ``axis``: ``d = max(x) - x``,
    ``e = exp_table[d]`` (fixed point, 2**-20; 0 beyond the table),
    ``y = round_divide(e * 255, sum(e)) + out_zero_point``: probabilities on
    the grid 1/255, so that 1.0 is representable. After channel padding the
    node also carries ``softmax_channels`` (the real channel count) and
    ``softmax_pad_value`` (``softmax_neutral_value`` on the input grid), which
    the lanes beyond the real channels read.
``quantize`` / ``dequantize``
    the float<->int8 edges of a graph that keeps float I/O (ONNX
    QuantizeLinear/DequantizeLinear semantics: round half to even, saturate).
"""

from __future__ import annotations

__all__ = ["run_integer", "INTEGER_ATTRS", "lut_source", "INTEGER_OPS", "SOFTMAX_FRAC_BITS", "SOFTMAX_LEVELS", "softmax_exp_table",
           "QDQ_KERNELS"]

from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ModelError, UsageError
from ..ir import Graph, Node
from ..numerics import (INT32_MAX, INT32_MIN, QMAX, QMIN, SOFTMAX_FRAC_BITS, SOFTMAX_LEVELS, apply_lut, requantize,
                        saturate_int32, softmax, softmax_exp_table)
from ._executor import run_node

#: Node attributes that describe integer arithmetic (not ONNX attributes):
#: exporters drop them when they write a float/QDQ operator.
INTEGER_ATTRS = (
    "integer_op", "in_zero_point", "in_zero_points", "in_multipliers", "in_shifts", "requant_multiplier",
    "requant_shift", "out_zero_point", "clamp_min", "clamp_max", "channel_axis", "lut", "fused_activation",
    "scale", "zero_point", "quant_axis", "exp_table", "softmax_channels", "softmax_pad_value", "lut_input",
)


def lut_source(node: Node) -> str:
    """The tensor a ``lut`` node's table reads: its one run-time input. That is input 0 unless the quantizer
    recorded another (``lut_input``: an exporter may put the constant first, as in ``Mul(w, x)``); the other
    inputs are the constants the table was computed with, kept so the node still exports as its ONNX op."""
    return node.inputs[int(node.attrs.get("lut_input", 0))]


def _requant(acc: np.ndarray, node: Node, channel_axis: int | None = None) -> np.ndarray:
    """``clamp(requantize(acc) + out_zero_point)`` with per-channel parameters on ``channel_axis``."""
    a = acc
    moved = channel_axis is not None and a.ndim > 0
    if moved:
        a = np.moveaxis(a, channel_axis, -1)
    y = requantize(a, node.attrs["requant_multiplier"], node.attrs["requant_shift"], 0, INT32_MIN, INT32_MAX)
    zp = np.asarray(node.attrs.get("out_zero_point", 0), np.int64)
    lo = np.asarray(node.attrs.get("clamp_min", QMIN), np.int64)
    hi = np.asarray(node.attrs.get("clamp_max", QMAX), np.int64)
    y = np.clip(y.astype(np.int64) + zp, np.maximum(lo, QMIN), np.minimum(hi, QMAX))
    if moved:
        y = np.moveaxis(y, -1, channel_axis)
    return np.ascontiguousarray(y.astype(np.int8))


def _centered(x: np.ndarray, zp: Any, axis: int = 1) -> np.ndarray:
    """``x - zp`` in int64; a 1-D ``zp`` is per channel on ``axis``."""
    z = np.asarray(zp, np.int64)
    if z.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        z = z.reshape(shape)
    return x.astype(np.int64) - z


def _exact(values: np.ndarray) -> np.ndarray:
    """float64 results of integer products/sums back to int64 (exact below 2**53)."""
    return np.rint(values).astype(np.int64)


def _onnx_only(node: Node, inputs: list[str]) -> Node:
    attrs = {k: v for k, v in node.attrs.items() if k not in INTEGER_ATTRS}
    return Node(node.name, node.op, inputs, list(node.outputs), attrs, node.domain, node.source)


def _mac(node: Node, args: list[Any], opset: int) -> np.ndarray:
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 and args[2] is not None else None
    xc = _centered(x, node.attrs.get("in_zero_point", 0)).astype(np.float64)
    wf = np.asarray(w).astype(np.float64)
    if node.op in ("Conv", "ConvTranspose"):
        acc = _exact(run_node(_onnx_only(node, node.inputs[:2]), [xc, wf], opset)[0])
    elif node.op == "Gemm":
        a = xc.T if node.attrs.get("transA", 0) else xc
        b = wf.T if node.attrs.get("transB", 0) else wf
        acc = _exact(np.matmul(a, b))
    elif node.op == "MatMul":
        acc = _exact(np.matmul(xc, wf))
    else:
        raise ModelError(f"integer_op 'mac' is not defined for {node.op}", node=node.name)
    axis = int(node.attrs.get("channel_axis", 1))
    if bias is not None:
        shape = [1] * acc.ndim
        shape[axis % acc.ndim] = -1
        acc = acc + np.asarray(bias, np.int64).reshape(shape)
    return _requant(saturate_int32(acc), node, axis % acc.ndim)


def _add_sub(node: Node, args: list[Any], opset: int) -> np.ndarray:
    zps, mults, shifts = node.attrs["in_zero_points"], node.attrs["in_multipliers"], node.attrs["in_shifts"]
    parts = [requantize(_centered(x, z), m, s, 0, INT32_MIN, INT32_MAX).astype(np.int64)
             for x, z, m, s in zip(args[:2], zps, mults, shifts)]
    acc = parts[0] - parts[1] if node.attrs["integer_op"] == "sub" else parts[0] + parts[1]
    return _requant(saturate_int32(acc), node)


def _mul(node: Node, args: list[Any], opset: int) -> np.ndarray:
    za, zb = node.attrs["in_zero_points"]
    acc = _centered(args[0], za) * _centered(args[1], zb)
    return _requant(saturate_int32(acc), node)


def _matmul(node: Node, args: list[Any], opset: int) -> np.ndarray:
    za, zb = node.attrs["in_zero_points"]
    acc = _exact(np.matmul(_centered(args[0], za).astype(np.float64), _centered(args[1], zb).astype(np.float64)))
    return _requant(saturate_int32(acc), node)


def _concat(node: Node, args: list[Any], opset: int) -> np.ndarray:
    zp = int(node.attrs["out_zero_point"])
    parts = [requantize(_centered(x, z), m, s, zp) for x, z, m, s in
             zip(args, node.attrs["in_zero_points"], node.attrs["in_multipliers"], node.attrs["in_shifts"])]
    return np.concatenate(parts, axis=int(node.attrs.get("axis", 0)))


def _lut(node: Node, args: list[Any], opset: int) -> np.ndarray:
    return apply_lut(args[int(node.attrs.get("lut_input", 0))], node.attrs["lut"])


def _avgpool(node: Node, args: list[Any], opset: int) -> np.ndarray:
    x = _centered(args[0], node.attrs.get("in_zero_point", 0))
    if node.op == "GlobalAveragePool":
        acc = x.sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    else:  # the quantizer only emits AveragePool whose every window counts prod(kernel_shape) elements
        count = int(np.prod(node.attrs["kernel_shape"]))
        mean = run_node(_onnx_only(node, node.inputs[:1]), [x.astype(np.float64)], opset)[0]
        acc = _exact(mean * count)
    return _requant(saturate_int32(acc), node)


def _move(node: Node, args: list[Any], opset: int) -> list[np.ndarray]:
    return run_node(_onnx_only(node, node.inputs), args, opset)


def _softmax(node: Node, args: list[Any], opset: int) -> np.ndarray:
    """Integer softmax over ``axis``, exactly :func:`axdrive.numerics.softmax` (the DPU runs the same)."""
    channels = node.attrs.get("softmax_channels")
    return softmax(args[0], node.attrs["exp_table"], axis=int(node.attrs.get("axis", -1)),
                   channels=None if channels is None else int(channels), pad_value=node.attrs.get("softmax_pad_value"),
                   out_zero_point=int(node.attrs.get("out_zero_point", -128)))


def _grid(node: Node, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The node's ``scale`` and ``zero_point``, shaped to broadcast along ``quant_axis`` (per-tensor: 0-d)."""
    scale, zp = np.asarray(node.attrs["scale"], np.float64), np.asarray(node.attrs["zero_point"], np.int64)
    axis = node.attrs.get("quant_axis")
    if axis is not None:
        shape = [1] * ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return scale, zp


def _quantize(node: Node, args: list[Any], opset: int) -> np.ndarray:
    x = np.asarray(args[0], np.float64)
    scale, zp = _grid(node, x.ndim)
    return np.clip(np.rint(x / scale) + zp, QMIN, QMAX).astype(np.int8)


def _dequantize(node: Node, args: list[Any], opset: int) -> np.ndarray:
    q = np.asarray(args[0], np.int64)
    scale, zp = _grid(node, q.ndim)
    return ((q - zp) * scale).astype(np.float32)


# QuantizeLinear/DequantizeLinear as ONNX defines them live with the float kernels
# (they are ONNX operators a QDQ model contains); re-exported here for callers that
# looked for them next to the integer semantics.
from ._kernels_qdq import KERNELS as _QDQ_BY_OP  # noqa: E402

QDQ_KERNELS = {("", op): fn for op, fn in _QDQ_BY_OP.items()}

IntegerKernel = Callable[[Node, list[Any], int], Any]
#: ``integer_op`` -> kernel.
INTEGER_OPS: dict[str, IntegerKernel] = {
    "mac": _mac, "add": _add_sub, "sub": _add_sub, "mul": _mul, "matmul": _matmul, "concat": _concat,
    "lut": _lut, "avgpool": _avgpool, "move": _move, "softmax": _softmax, "quantize": _quantize,
    "dequantize": _dequantize,
}


def _check_feeds(graph: Graph, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
    unknown = sorted(set(feeds) - set(graph.inputs))
    if unknown:
        raise UsageError(f"unknown input {unknown[0]!r}; the quantized graph's inputs are {graph.inputs}")
    values = {}
    for name in graph.inputs:
        if name not in feeds:
            raise UsageError(f"missing input {name!r}; the quantized graph's inputs are {graph.inputs}")
        t = graph.tensors[name]
        a = np.asarray(feeds[name])
        if tuple(a.shape) != tuple(t.shape):
            raise UsageError(f"input {name!r} has shape {list(a.shape)} but the quantized graph expects "
                             f"{list(t.shape)}")
        if t.dtype == np.int8 and a.dtype != np.int8:
            raise UsageError(f"input {name!r} has dtype {a.dtype} but the quantized graph expects int8")
        values[name] = a.astype(t.dtype, copy=False)
    return values


def run_integer(qgraph: Graph, feeds: Mapping[str, Any], *, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute a quantized graph on integer (int8) feeds; returns the outputs by
    name (every computed value with ``keep_all=True``). A graph that keeps
    float I/O (``quantize``/``dequantize`` nodes) takes and returns float."""
    env: dict[str, Any] = {name: t.data for name, t in qgraph.tensors.items() if t.data is not None}
    env.update(_check_feeds(qgraph, feeds))
    for node in qgraph.nodes:
        kind = node.attrs.get("integer_op")
        kernel = INTEGER_OPS.get(kind) if isinstance(kind, str) else None
        if kernel is None:
            raise ModelError(f"{node.op} has no integer semantics (integer_op={kind!r}); was the graph quantized?",
                             node=node.name)
        args = [env[name] if name else None for name in node.inputs]
        try:
            result = kernel(node, args, qgraph.opset)
        except (ModelError, UsageError):
            raise
        except Exception as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"{node.op} ({kind}) failed in the integer executor: {detail}", node=node.name) from exc
        outputs = result if isinstance(result, list) else [result]
        for name, value in zip(node.outputs, outputs):
            if name:
                env[name] = np.asarray(value)
    if keep_all:
        return {name: env[name] for name in env if not qgraph.is_constant(name)}
    return {name: env[name] for name in qgraph.outputs}
