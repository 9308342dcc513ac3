"""The quantized graph as a QDQ ONNX model that onnxruntime runs on CPU.

Why QDQ and not QLinear operators: QDQ keeps every float operator as it is
and states the grids explicitly (``DequantizeLinear`` in front of each
operator, ``QuantizeLinear`` after it), so the file documents our integer
graph one to one and onnxruntime fuses the patterns into its own integer
kernels. Integer clamps (fused Relu/Clip) are written as ``Max``/``Min`` with
the clamp bounds dequantized, which quantize back exactly onto the integer
bounds. Data-movement operators run on the integers directly.

Why activations are stored as **uint8** inside the file: an int8 grid with
zero point ``z`` and the uint8 grid with zero point ``z + 128`` represent the
same reals, value for value (``q_u8 = q_s8 + 128``). onnxruntime's x86 CPU
kernels fuse QDQ patterns into integer kernels (QLinearConv, QLinearAdd,
QLinearConcat, ...) only for uint8 activations; with int8 they fall back to
float32 convolutions whose rounding differs from exact integer accumulation
and, through a deep network, from our results. Weights stay int8 (symmetric)
and biases int32. Where the graph's inputs or outputs are int8
(``remove_io_quantization``), an exact DequantizeLinear/QuantizeLinear pair
moves them between the int8 and uint8 grids, so the model still takes and
returns int8.
"""

from __future__ import annotations

__all__ = ["DIRECT_INT8", "to_qdq_model"]

import functools
from typing import Any

import numpy as np
from onnx import ModelProto

from axdrive.ir import Graph, Node, QParams, Tensor
from axdrive.numerics import QMAX, QMIN
from axdrive.onnx_io import to_onnx
from axdrive.reference.integer import INTEGER_ATTRS

#: Operators onnxruntime runs on 8-bit tensors, so they need no Q/DQ around them.
DIRECT_INT8 = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather",
                         "MaxPool", "Identity", "Resize", "Pad", "Tile", "Expand"})
#: uint8 value of the int8 value 0.
SHIFT = 128


class _QDQ:
    def __init__(self, q: Graph, opset: int) -> None:
        self.src = q
        self.g = Graph(q.name, [], {}, list(q.inputs), list(q.outputs), opset)
        self.dq_cache: dict[str, str] = {}
        self.alias: dict[str, str] = {}  # int8 graph input/output -> its uint8 twin inside the model

    # -- tensors -------------------------------------------------------------------
    def is_activation(self, name: str) -> bool:
        t = self.src.tensors.get(name)
        return t is not None and t.data is None and t.dtype == np.int8

    def ref(self, name: str) -> str:
        """The model's name for ``name`` (the uint8 twin of an int8 graph input/output)."""
        return self.alias.get(name, name)

    def tensor(self, base: str, shape: Any, dtype: Any) -> str:
        name = self.g.unique_name(base)
        self.g.tensors[name] = Tensor(name, tuple(shape), np.dtype(dtype))
        return name

    def declare(self, name: str) -> str:
        """Declare ``name`` in the model: activations as uint8, constants as they are."""
        model_name = self.ref(name)
        if name and model_name not in self.g.tensors:
            t = self.src.tensors[name]
            dtype = np.uint8 if self.is_activation(name) else t.dtype
            self.g.tensors[model_name] = Tensor(model_name, t.shape, dtype, t.data)
        return model_name

    def grid(self, base: str, qp: QParams, activation: bool, zp_dtype: Any = np.int8) -> tuple[str, str, dict]:
        zp = qp.zero_point + SHIFT if activation else qp.zero_point
        scale = self.g.add_constant(f"{base}_scale", qp.scale.astype(np.float32))
        zero = self.g.add_constant(f"{base}_zero_point", zp.astype(np.uint8 if activation else zp_dtype))
        return scale, zero, ({"axis": int(qp.axis)} if qp.axis is not None else {})

    # -- Q/DQ ------------------------------------------------------------------------
    def dequantized(self, name: str) -> str:
        """``name`` in float: a DequantizeLinear of an integer tensor (once per tensor)."""
        t = self.src.tensors[name]
        if t.qparams is None or t.dtype.kind not in "iu" or t.dtype == np.int64:
            return self.declare(name)
        if name in self.dq_cache:
            return self.dq_cache[name]
        source = self.declare(name)
        activation = self.is_activation(name)
        scale, zp, attrs = self.grid(name, t.qparams, activation, np.int32 if t.dtype == np.int32 else np.int8)
        out = self.tensor(f"{name}_dequantized", t.shape, np.float32)
        self.g.nodes.append(Node(self.g.unique_name(f"{name}/DequantizeLinear"), "DequantizeLinear",
                                 [source, scale, zp], [out], attrs))
        self.dq_cache[name] = out
        return out

    def quantize_to(self, src: str, dst: str) -> None:
        t = self.src.tensors[dst]
        scale, zp, attrs = self.grid(dst, t.qparams, True)
        target = self.declare(dst)
        self.g.nodes.append(Node(self.g.unique_name(f"{dst}/QuantizeLinear"), "QuantizeLinear", [src, scale, zp],
                                 [target], attrs))

    def regrid(self, src: str, dst: str, qp: QParams, to_uint8: bool, shape: Any) -> None:
        """Exact move between the int8 and uint8 grid of the same reals (DQ then Q)."""
        mid = self.tensor(f"{dst}_real", shape, np.float32)
        s1, z1, a1 = self.grid(f"{src}_in", qp, not to_uint8)
        s2, z2, a2 = self.grid(f"{dst}_out", qp, to_uint8)
        self.g.nodes.append(Node(self.g.unique_name(f"{src}/DequantizeLinear"), "DequantizeLinear", [src, s1, z1],
                                 [mid], a1))
        self.g.nodes.append(Node(self.g.unique_name(f"{dst}/QuantizeLinear"), "QuantizeLinear", [mid, s2, z2],
                                 [dst], a2))

    def clamp(self, src: str, node: Node, out: str) -> str:
        """Max/Min with the dequantized integer clamp bounds, if the clamp is narrower than int8.

        A per-channel output grid always gets its Max: onnxruntime would otherwise fuse
        DQ -> Conv -> Q into a QLinearConv, which cannot requantize per channel and fails."""
        lo = np.asarray(node.attrs.get("clamp_min", QMIN), np.int64)
        hi = np.asarray(node.attrs.get("clamp_max", QMAX), np.int64)
        qp = self.src.tensors[out].qparams
        shape = self.src.tensors[out].shape
        scale, zp = qp.broadcast(len(shape))
        per_channel = qp.axis is not None
        for op, bound, skip in (("Max", lo, np.all(lo <= QMIN) and not per_channel), ("Min", hi, np.all(hi >= QMAX))):
            if skip:
                continue
            real = ((np.broadcast_to(bound, qp.scale.shape).reshape(np.shape(scale)) - zp) * scale).astype(np.float32)
            const = self.g.add_constant(f"{node.name}_{op.lower()}_bound", real)
            nxt = self.tensor(f"{out}_{op.lower()}", shape, np.float32)
            self.g.nodes.append(Node(self.g.unique_name(f"{node.name}/clamp_{op.lower()}"), op, [src, const], [nxt]))
            src = nxt
        return src

    # -- nodes ---------------------------------------------------------------------------
    def node(self, node: Node) -> None:
        kind = node.attrs.get("integer_op")
        onnx_attrs = {k: v for k, v in node.attrs.items() if k not in INTEGER_ATTRS}
        if kind in ("quantize", "dequantize"):
            qp = QParams(node.attrs["scale"], node.attrs["zero_point"], node.attrs.get("quant_axis"))
            ins = [self.declare(node.inputs[0])]
            outs = [self.declare(o) for o in node.outputs]
            scale, zp, attrs = self.grid(node.outputs[0] if kind == "quantize" else node.inputs[0], qp, True)
            self.g.nodes.append(Node(node.name, node.op, [ins[0], scale, zp], outs, attrs))
            return
        if kind == "move" and node.op in DIRECT_INT8:
            inputs = [self.declare(x) if x else "" for x in node.inputs]
            if node.op == "Pad" and len(node.inputs) > 2 and node.inputs[2]:
                value = (self.src.constant(node.inputs[2]).astype(np.int16) + SHIFT).astype(np.uint8)
                inputs[2] = self.g.add_constant(f"{node.name}_pad_value", value)
            outputs = [self.declare(o) if o else "" for o in node.outputs]
            self.g.nodes.append(Node(node.name, node.op, inputs, outputs, onnx_attrs, node.domain))
            return
        inputs = [self.dequantized(x) if x else "" for x in node.inputs]
        float_outs = [self.tensor(f"{out}_float", self.src.tensors[out].shape, np.float32) if out else ""
                      for out in node.outputs]
        self.g.nodes.append(Node(node.name, node.op, inputs, float_outs, onnx_attrs, node.domain))
        for out, fout in zip(node.outputs, float_outs):
            if out:
                self.quantize_to(self.clamp(fout, node, out), out)

    def build(self) -> Graph:
        for name in self.src.inputs:
            t = self.src.tensors[name]
            self.g.tensors[name] = Tensor(name, t.shape, t.dtype)
            if self.is_activation(name):  # int8 input: move it onto the uint8 grid first
                self.alias[name] = self.g.unique_name(f"{name}_uint8")
                self.declare(name)
                self.regrid(name, self.alias[name], t.qparams, True, t.shape)
        outputs = [o for o in self.src.outputs if self.is_activation(o) and o not in self.src.inputs]
        for name in outputs:
            self.alias[name] = self.g.unique_name(f"{name}_uint8")
        for node in self.src.nodes:
            self.node(node)
        for name in outputs:  # and back onto the int8 grid at the outputs
            t = self.src.tensors[name]
            self.g.tensors[name] = Tensor(name, t.shape, np.int8)
            self.regrid(self.alias[name], name, t.qparams, False, t.shape)
        return self.g


@functools.lru_cache(maxsize=None)
def _first_opset(op: str) -> int | None:
    """The first opset of the default domain that has ``op`` (None: ONNX has no such operator): asked once per
    operator type, since scanning ONNX's schema history costs milliseconds."""
    import onnx

    found = [s.since_version for s in onnx.defs.get_all_schemas_with_history() if s.name == op and s.domain == ""]
    return min(found) if found else None


def qdq_opset(qgraph: Graph, requested: int) -> tuple[int, str | None]:
    """The opset to write ``qgraph`` at: ``requested``, unless an operator of the graph only exists from a later
    opset (ONNX's Mish from 18, say); then that opset, and why, so the QDQ model stays loadable."""
    needed = {}
    for node in qgraph.nodes:
        if node.domain in ("", "ai.onnx"):
            first = _first_opset(node.op)
            if first is not None and first > requested:
                needed[node.op] = first
    if not needed:
        return requested, None
    op = max(needed, key=lambda k: (needed[k], k))
    return needed[op], f"{op} exists from opset {needed[op]} only"


def to_qdq_model(qgraph: Graph, opset: int) -> ModelProto:
    """The QDQ ONNX model of a quantized graph, at ``opset`` (>= 13 for per-axis Q/DQ)."""
    return to_onnx(_QDQ(qgraph, opset).build())
