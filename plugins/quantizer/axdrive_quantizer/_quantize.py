"""Float graph + activation grids -> the quantized graph (integer semantics of
:mod:`axdrive.reference.integer`).

The quantized graph keeps the float graph's operators and tensor names; only
fused activations disappear (their clamp moves into the producer) and a
division by a constant becomes a multiplication by its reciprocal. Every
activation becomes int8 with :class:`~axdrive.ir.QParams`, weights int8
per output channel, biases int32, and every node carries ``integer_op`` and
its integer parameters. Multipliers come from :func:`axdrive.numerics.quantize_multiplier`
and tables from :func:`axdrive.numerics.make_lut`; nothing here rounds on its own
except where a value is quantized onto a grid (weights, biases, constants).
"""

from __future__ import annotations

__all__ = ["ADD_HEADROOM_BITS", "quantize_graph", "wrap_float_io"]

from collections import Counter
from typing import Any

import numpy as np

from axdrive.errors import UnsupportedOperatorError
from axdrive.ir import Graph, Node, QParams, Tensor
from axdrive.operators import OperatorRegistry
from axdrive.numerics import (INT32_MAX, INT32_MIN, QMAX, QMIN, SOFTMAX_LEVELS, SOFTMAX_OUT_ZERO_POINT, make_lut,
                               quantize_multiplier, softmax_exp_table)
from axdrive.reference import run_node

from ._ranges import f32, grid, weight_qparams
from ._rules import MOVE_OPS, activation_bounds, integer_kind, integer_reason, is_depthwise, lut_input

#: Add/Sub rescale both inputs to ``max(s_a, s_b) / 2**ADD_HEADROOM_BITS`` before
#: summing: fine enough that the rescaling error is far below one output LSB,
#: coarse enough that 255 * 2**20 plus its twin stays inside int32.
ADD_HEADROOM_BITS = 20
#: Output grid of an integer softmax: probabilities in [0, 1] in steps of 1/255, so that a
#: certain class is exactly 1.0 (with 1/256 it would saturate at 255/256).
SOFTMAX_QPARAMS = QParams.per_tensor(float(f32(1.0 / SOFTMAX_LEVELS)), SOFTMAX_OUT_ZERO_POINT)


def _multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(real, np.float64)
    m, s = quantize_multiplier(real.reshape(-1))
    return np.asarray(m, np.int64).reshape(real.shape), np.asarray(s, np.int64).reshape(real.shape)


def _clamp(bounds: tuple[float, float] | None, qp: QParams) -> dict[str, Any]:
    """Integer clamp of a fused activation on the output grid ``qp``."""
    if bounds is None:
        return {"clamp_min": QMIN, "clamp_max": QMAX}
    lo, hi = bounds
    zp, scale = qp.zero_point, qp.scale
    qlo = np.clip(zp + np.round(lo / scale), QMIN, QMAX) if np.isfinite(lo) else np.full_like(zp, QMIN)
    qhi = np.clip(zp + np.round(hi / scale), QMIN, QMAX) if np.isfinite(hi) else np.full_like(zp, QMAX)
    qlo, qhi = np.asarray(qlo, np.int64), np.asarray(qhi, np.int64)
    if qlo.ndim == 0:
        return {"clamp_min": int(qlo), "clamp_max": int(qhi)}
    return {"clamp_min": qlo, "clamp_max": qhi}


def _zp(qp: QParams) -> int | np.ndarray:
    return int(qp.zero_point) if qp.axis is None else qp.zero_point.copy()


class _Builder:
    """Walks the float graph once, in order, emitting quantized nodes."""

    def __init__(self, graph: Graph, act: dict[str, QParams], fused: dict[str, Node],
                 fixed: dict[str, tuple[np.ndarray, QParams]], operators: OperatorRegistry) -> None:
        self.f = graph
        self.operators = operators
        self.fixed = fixed
        self.act = dict(act)
        self.fused = fused
        self.fused_names = {n.name for n in fused.values()}
        self.q = Graph(graph.name, [], {}, list(graph.inputs), list(graph.outputs), graph.opset)
        self.stats: Counter[str] = Counter()

    # -- tensors ----------------------------------------------------------------
    def qp(self, name: str, node: Node) -> QParams:
        qp = self.act.get(name)
        if qp is None:
            raise UnsupportedOperatorError(f"tensor {name!r} has no calibrated range (is it a float activation?)",
                                           node=node.name)
        return qp

    def activation(self, name: str, qp: QParams) -> None:
        t = self.f.tensors[name]
        self.q.tensors[name] = Tensor(name, t.shape, np.int8, None, qp)
        self.act[name] = qp

    def constant(self, base: str, data: np.ndarray, qp: QParams | None = None) -> str:
        name = self.q.unique_name(base)
        self.q.tensors[name] = Tensor(name, data.shape, data.dtype, data, qp)
        return name

    def keep_constant(self, name: str) -> str:
        if name and name not in self.q.tensors:
            t = self.f.tensors[name]
            self.q.tensors[name] = Tensor(name, t.shape, t.dtype, t.data)
        return name

    # -- nodes ------------------------------------------------------------------
    def emit(self, node: Node, inputs: list[str], outputs: list[str], attrs: dict[str, Any],
             op: str | None = None) -> None:
        onnx_attrs = dict(node.attrs)
        onnx_attrs.update(attrs)
        self.q.nodes.append(Node(node.name, op or node.op, inputs, outputs, onnx_attrs, node.domain, node.source))
        self.stats[f"integer_op.{attrs['integer_op']}"] += 1

    def out_name(self, node: Node) -> tuple[str, tuple[float, float] | None, str | None]:
        """Output name after fusion, the fused clamp bounds, the fused op."""
        act = self.fused.get(node.name)
        if act is None:
            return node.outputs[0], None, None
        return act.outputs[0], activation_bounds(self.f, act), act.op

    def run(self) -> Graph:
        for name in self.f.inputs:
            self.activation(name, self.qp(name, Node(name, "input")))
        for node in self.f.nodes:
            if node.name in self.fused_names:
                continue
            self.quantize_node(node)
        used = {x for n in self.q.nodes for x in n.inputs if x}
        for name in list(self.q.tensors):
            t = self.q.tensors[name]
            if t.data is not None and name not in used and name not in self.q.outputs:
                del self.q.tensors[name]
        return self.q

    def quantize_node(self, node: Node) -> None:
        kind = integer_kind(self.f, node, self.operators)
        if kind is None:
            why = integer_reason(self.f, node, self.operators)
            raise UnsupportedOperatorError(f"{node.qualified_op} cannot be quantized to int8 ({why}; leave it to "
                                           "the host with the graph cleaner)", node=node.name)
        if kind == "lut":
            return self.lut(node, lut_input(self.f, node))
        return getattr(self, kind)(node)

    def mac(self, node: Node) -> None:
        f = self.f
        x = node.input(0)
        xq = self.qp(x, node)
        out, bounds, act_op = self.out_name(node)
        yq = self.qp(out, node)
        w = np.asarray(f.constant(node.input(1)), np.float64)
        bias = f.constant(node.input(2)) if node.input(2) else None
        if node.input(2) and bias is None:
            raise UnsupportedOperatorError(f"{node.op} with a non-constant bias cannot be quantized", node=node.name)
        attrs: dict[str, Any] = {}
        out_rank = len(f.tensors[node.outputs[0]].shape)
        if node.op == "Conv":
            w_axis, channel_axis = 0, 1
        elif node.op == "ConvTranspose":
            if int(node.attrs.get("group", 1)) != 1:
                raise UnsupportedOperatorError("grouped ConvTranspose cannot be quantized", node=node.name)
            w_axis, channel_axis = 1, 1
        elif node.op == "Gemm":
            w = w * float(node.attrs.get("alpha", 1.0))
            w_axis, channel_axis = (0 if node.attrs.get("transB", 0) else 1), 1
            if bias is not None:
                bias = np.asarray(bias, np.float64) * float(node.attrs.get("beta", 1.0))
            attrs.update(alpha=1.0, beta=1.0)
        else:  # MatMul
            if w.ndim != 2:
                raise UnsupportedOperatorError("MatMul with a constant weight of rank != 2 cannot be quantized",
                                               node=node.name)
            w_axis, channel_axis = 1, out_rank - 1
        channels = w.shape[w_axis]
        wq, wqp = self.fixed_weight(node, w_axis) if node.input(1) in self.fixed else weight_qparams(w, w_axis)
        w_name = self.constant(f"{node.input(1)}_int8", wq, wqp)
        if xq.axis is not None and not is_depthwise(f, node):
            raise UnsupportedOperatorError(f"{node.op} reads the per-channel tensor {x!r}; only depthwise "
                                           "convolutions can absorb per-channel input scales", node=node.name)
        acc_scale = f32(xq.scale * wqp.scale)  # per output channel (a depthwise input's channel is its output's)
        inputs = [x, w_name]
        if bias is not None:
            b = np.broadcast_to(np.asarray(bias, np.float64).reshape(-1), (channels,))
            bq = np.clip(np.round(b / acc_scale), INT32_MIN, INT32_MAX).astype(np.int32)
            given = self.fixed.get(node.input(2))
            if given is not None and given[0].dtype == np.int32 and np.allclose(
                    np.broadcast_to(given[1].scale, (channels,)), acc_scale, rtol=1e-6, atol=0):
                bq = np.broadcast_to(given[0].reshape(-1), (channels,)).astype(np.int32)  # a QDQ model's own bias
            self.stats["bias_saturated"] += int(np.sum(np.abs(b / acc_scale) > INT32_MAX))
            inputs.append(self.constant(f"{node.input(2)}_int32", bq,
                                        QParams(acc_scale, np.zeros(channels, np.int64), axis=0, dtype="int32")))
        y_scale = yq.scale
        m, s = _multiplier(acc_scale / y_scale)
        attrs.update(integer_op="mac", in_zero_point=_zp(xq), requant_multiplier=m, requant_shift=s,
                     out_zero_point=_zp(yq), channel_axis=channel_axis, **_clamp(bounds, yq))
        if act_op is not None:
            attrs["fused_activation"] = act_op if bounds is None or act_op != "Clip" else \
                f"Clip({bounds[0]:g},{bounds[1]:g})"
            self.stats["activations_fused"] += 1
        self.activation(out, yq)
        self.emit(node, inputs, [out], attrs)
        self.stats["layers_quantized"] += 1

    def fixed_weight(self, node: Node, w_axis: int) -> tuple[np.ndarray, QParams]:
        """The int8 weight a QDQ model gave (``lower_only``): used as is, per output channel."""
        wq, qp = self.fixed[node.input(1)]
        if wq.dtype != np.int8 or np.any(qp.zero_point != 0):
            raise UnsupportedOperatorError(f"weight {node.input(1)!r} is not symmetric int8 (dtype {wq.dtype}, "
                                           "zero point != 0); the AIPU needs symmetric int8 weights", node=node.name)
        if qp.axis is None:
            qp = QParams(np.full(wq.shape[w_axis], float(qp.scale)), np.zeros(wq.shape[w_axis], np.int64), axis=w_axis)
        elif qp.axis % wq.ndim != w_axis:
            raise UnsupportedOperatorError(f"weight {node.input(1)!r} is quantized along axis {qp.axis}, not along "
                                           f"the output channels (axis {w_axis})", node=node.name)
        return wq, qp

    def move(self, node: Node) -> None:
        x = node.input(0)
        xq = self.qp(x, node)
        if xq.axis is not None:
            raise UnsupportedOperatorError(f"{node.op} cannot read the per-channel tensor {x!r}", node=node.name)
        inputs = [x] + [self.keep_constant(n) for n in node.inputs[1:]]
        if node.op == "Resize" and node.attrs.get("mode", "nearest") != "nearest":
            raise UnsupportedOperatorError("Resize mode linear cannot be quantized as data movement; use nearest",
                                           node=node.name)
        if node.op == "Gather" and not self.f.is_constant(node.input(1)):
            raise UnsupportedOperatorError("Gather with run-time indices cannot be quantized", node=node.name)
        if node.op == "Pad" and node.attrs.get("mode", "constant") == "constant":
            value = float(self.f.constant(node.input(2))) if node.input(2) else float(node.attrs.get("value", 0.0))
            pad_q = np.clip(np.round(value / xq.scale) + xq.zero_point, QMIN, QMAX).astype(np.int8)
            inputs = [x, inputs[1] if len(inputs) > 1 else "", self.constant(f"{node.name}_pad_value", pad_q)] \
                + inputs[3:]
        for out in node.outputs:
            if out:
                self.activation(out, xq)
        self.emit(node, inputs, list(node.outputs), {"integer_op": "move"})

    def lut(self, node: Node, x: str) -> None:
        xq = self.qp(x, node)
        out = node.outputs[0]
        yq = self.qp(out, node)
        if xq.axis is not None or yq.axis is not None:
            raise UnsupportedOperatorError(f"{node.op} as a table needs per-tensor grids", node=node.name)
        consts = {n: self.f.constant(n) for n in node.inputs if n and self.f.is_constant(n)}

        def fn(real: np.ndarray) -> np.ndarray:
            args = [real.astype(np.float32) if n == x else (consts[n] if n else None) for n in node.inputs]
            return np.asarray(run_node(node, args, self.f.opset)[0], np.float64).reshape(-1)

        table = make_lut(fn, float(xq.scale), int(xq.zero_point), float(yq.scale), int(yq.zero_point))
        inputs = [x if n == x else self.keep_constant(n) for n in node.inputs]
        self.activation(out, yq)
        attrs: dict[str, Any] = {"integer_op": "lut", "lut": table}
        if node.inputs.index(x) != 0:  # e.g. Mul(w, x): the table reads input 1 (axdrive.reference.integer.lut_source)
            attrs["lut_input"] = node.inputs.index(x)
        self.emit(node, inputs, [out], attrs)
        self.stats["luts_built"] += 1

    def operand(self, name: str, node: Node, symmetric: bool) -> tuple[str, QParams]:
        """An activation as is, or a constant operand quantized to int8."""
        if not self.f.is_constant(name):
            return name, self.qp(name, node)
        data = np.asarray(self.f.constant(name), np.float64)
        if symmetric:
            q, qp = weight_qparams(data, None)
        else:
            scale, zp = grid(np.asarray(data.min(initial=0.0)), np.asarray(data.max(initial=0.0)))
            qp = QParams(scale, zp)
            q = np.clip(np.round(data / scale) + zp, QMIN, QMAX).astype(np.int8)
        return self.constant(f"{name}_int8", q, qp), qp

    def add(self, node: Node) -> None:
        (a, aq), (b, bq) = (self.operand(n, node, symmetric=False) for n in node.inputs[:2])
        out, bounds, act_op = self.out_name(node)
        yq = self.qp(out, node)
        if aq.axis is not None or bq.axis is not None or yq.axis is not None:
            raise UnsupportedOperatorError(f"{node.op} needs per-tensor grids", node=node.name)
        fine = max(float(aq.scale), float(bq.scale)) / 2.0 ** ADD_HEADROOM_BITS
        (ma, sa), (mb, sb) = _multiplier(float(aq.scale) / fine), _multiplier(float(bq.scale) / fine)
        m, s = _multiplier(fine / float(yq.scale))
        attrs = {"integer_op": node.op.lower(), "in_zero_points": [int(aq.zero_point), int(bq.zero_point)],
                 "in_multipliers": [int(ma), int(mb)], "in_shifts": [int(sa), int(sb)],
                 "requant_multiplier": m, "requant_shift": s, "out_zero_point": int(yq.zero_point),
                 **_clamp(bounds, yq)}
        if act_op is not None:
            attrs["fused_activation"] = act_op
            self.stats["activations_fused"] += 1
        self.activation(out, yq)
        self.emit(node, [a, b], [out], attrs)

    def mul(self, node: Node) -> None:
        a_name, b_name = node.inputs[:2]
        op = node.op
        if op == "Div":  # x / c == x * (1/c): the reciprocal is the int8 constant
            c = np.asarray(self.f.constant(b_name), np.float64)
            b_name = self.keep_constant_value(f"{b_name}_reciprocal", 1.0 / c)
            op = "Mul"
        (a, aq), (b, bq) = self.operand(a_name, node, True), self.operand(b_name, node, True)
        out = node.outputs[0]
        yq = self.qp(out, node)
        if aq.axis is not None or bq.axis is not None or yq.axis is not None:
            raise UnsupportedOperatorError(f"{node.op} needs per-tensor grids", node=node.name)
        m, s = _multiplier(float(aq.scale) * float(bq.scale) / float(yq.scale))
        self.activation(out, yq)
        self.emit(node, [a, b], [out], {"integer_op": "mul", "in_zero_points": [int(aq.zero_point), int(bq.zero_point)],
                                        "requant_multiplier": m, "requant_shift": s,
                                        "out_zero_point": int(yq.zero_point), "clamp_min": QMIN, "clamp_max": QMAX},
                  op=op)

    def keep_constant_value(self, base: str, value: np.ndarray) -> str:
        """A new float constant in the *float* graph's table, so operand() can quantize it."""
        name = self.f.unique_name(base)
        self.f.tensors[name] = Tensor.constant(name, np.asarray(value, np.float32))
        return name

    def matmul(self, node: Node) -> None:
        a, b = node.inputs[:2]
        aq, bq = self.qp(a, node), self.qp(b, node)
        out = node.outputs[0]
        yq = self.qp(out, node)
        m, s = _multiplier(float(aq.scale) * float(bq.scale) / float(yq.scale))
        self.activation(out, yq)
        self.emit(node, [a, b], [out], {"integer_op": "matmul",
                                        "in_zero_points": [int(aq.zero_point), int(bq.zero_point)],
                                        "requant_multiplier": m, "requant_shift": s,
                                        "out_zero_point": int(yq.zero_point), "clamp_min": QMIN, "clamp_max": QMAX})

    def concat(self, node: Node) -> None:
        out = node.outputs[0]
        yq = self.qp(out, node)
        inputs, zps, mults, shifts = [], [], [], []
        for name in node.inputs:
            x, xq = self.operand(name, node, symmetric=False)
            if xq.axis is not None:
                raise UnsupportedOperatorError("Concat needs per-tensor grids", node=node.name)
            m, s = _multiplier(float(xq.scale) / float(yq.scale))
            inputs.append(x)
            zps.append(int(xq.zero_point))
            mults.append(int(m))
            shifts.append(int(s))
        self.activation(out, yq)
        self.emit(node, inputs, [out], {"integer_op": "concat", "in_zero_points": zps, "in_multipliers": mults,
                                        "in_shifts": shifts, "out_zero_point": int(yq.zero_point)})

    def avgpool(self, node: Node) -> None:
        x = node.input(0)
        xq, yq = self.qp(x, node), self.qp(node.outputs[0], node)
        shape = self.f.tensors[x].shape
        if node.op == "GlobalAveragePool":
            count = int(np.prod(shape[2:]))
        else:
            pads = list(node.attrs.get("pads", []))
            padded = any(pads) or node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")
            if (padded and not node.attrs.get("count_include_pad", 0)) or node.attrs.get("ceil_mode", 0):
                raise UnsupportedOperatorError("AveragePool whose windows count different numbers of elements "
                                               "(padding without count_include_pad, ceil_mode) cannot be quantized",
                                               node=node.name)
            count = int(np.prod(node.attrs["kernel_shape"]))
        if xq.axis is not None:
            raise UnsupportedOperatorError(f"{node.op} needs a per-tensor input grid", node=node.name)
        m, s = _multiplier(float(xq.scale) / (float(yq.scale) * count))
        self.activation(node.outputs[0], yq)
        self.emit(node, [x], list(node.outputs), {"integer_op": "avgpool", "in_zero_point": int(xq.zero_point),
                                                  "requant_multiplier": m, "requant_shift": s,
                                                  "out_zero_point": int(yq.zero_point),
                                                  "clamp_min": QMIN, "clamp_max": QMAX})

    def softmax(self, node: Node) -> None:
        x = node.input(0)
        xq = self.qp(x, node)
        rank = len(self.f.tensors[x].shape)
        axis = int(node.attrs.get("axis", -1 if self.f.opset >= 13 else 1)) % rank
        if self.f.opset < 13 and axis != rank - 1:
            raise UnsupportedOperatorError("Softmax before opset 13 over more than the last axis cannot be quantized",
                                           node=node.name)
        self.activation(node.outputs[0], SOFTMAX_QPARAMS)
        self.emit(node, [x], list(node.outputs), {"integer_op": "softmax", "axis": axis,
                                                  "exp_table": softmax_exp_table(float(xq.scale)),
                                                  "out_zero_point": int(SOFTMAX_QPARAMS.zero_point)})
        self.stats["luts_built"] += 1


def _align_concat_inputs(graph: Graph, act: dict[str, QParams], fused: dict[str, Node]) -> int:
    """Give a Concat input the Concat's grid when its producer requantizes anyway and
    the Concat is its only reader: the Concat then copies those inputs unchanged."""
    users = graph.consumer_map()
    producer_of: dict[str, Node] = {}
    for node in graph.nodes:
        target = fused[node.name].outputs[0] if node.name in fused else None
        for out in node.outputs:
            producer_of[out] = node
        if target:
            producer_of[target] = node
    aligned = 0
    for node in graph.nodes:
        if node.op != "Concat" or node.outputs[0] not in act:
            continue
        out_qp = act[node.outputs[0]]
        for name in node.inputs:
            prod = producer_of.get(name)
            if (prod is None or name in graph.outputs or len(users.get(name, [])) != 1 or name not in act
                    or act[name].axis is not None or prod.op in MOVE_OPS or prod.op == "Concat"
                    or prod.op == "Softmax"):
                continue
            if act[name] != out_qp:
                act[name] = out_qp
                aligned += 1
    return aligned


def quantize_graph(graph: Graph, act: dict[str, QParams], fused: dict[str, Node],
                   fixed: dict[str, tuple[np.ndarray, QParams]] | None = None,
                   operators: OperatorRegistry | None = None) -> tuple[Graph, dict[str, int]]:
    """The quantized graph (int8 inputs and outputs) and statistics of what was done.
    ``fixed`` maps weight/bias constant names to integer values and grids to use as
    they are (from a QDQ model) instead of quantizing the float constant. ``operators``
    (default: the installed plugins') says which integer kernel quantizes each node."""
    if operators is None:
        from axdrive.passes import default_operators

        operators = default_operators()
    act = dict(act)
    aligned = _align_concat_inputs(graph, act, fused)
    work = Graph(graph.name, graph.nodes, dict(graph.tensors), graph.inputs, graph.outputs, graph.opset)
    builder = _Builder(work, act, fused, fixed or {}, operators)
    qgraph = builder.run()
    stats = dict(sorted(builder.stats.items()))
    stats["concat_inputs_aligned"] = aligned
    stats["per_channel_activations"] = sum(1 for t in qgraph.tensors.values()
                                           if t.data is None and t.qparams is not None and t.qparams.axis is not None)
    return qgraph, stats


def wrap_float_io(qgraph: Graph, float_graph: Graph) -> Graph:
    """A copy of ``qgraph`` that takes and returns float: a ``quantize`` node after
    every input and a ``dequantize`` node before every output (tensor names of
    the float model stay at the edges, the int8 values get a ``_quantized`` name)."""
    g = qgraph.copy()
    renames: dict[str, str] = {}
    head: list[Node] = []
    tail: list[Node] = []

    def edge(op: str, src: str, dst: str, qp: QParams) -> Node:
        attrs = {"integer_op": op.lower().replace("linear", ""), "scale": qp.scale.copy(),
                 "zero_point": qp.zero_point.copy(), "quant_axis": qp.axis}
        return Node(g.unique_name(f"{dst}/{op}"), op, [src], [dst], attrs)

    for name in g.inputs:
        qt = g.tensors[name]
        new = g.unique_name(f"{name}_quantized")
        renames[name] = new
        g.tensors[new] = Tensor(new, qt.shape, np.int8, None, qt.qparams)
        g.tensors[name] = Tensor(name, qt.shape, float_graph.tensors[name].dtype)
        head.append(edge("QuantizeLinear", name, new, qt.qparams))
    for node in g.nodes:
        node.inputs = [renames.get(x, x) for x in node.inputs]
    out_renames: dict[str, str] = {}
    for name in g.outputs:
        if name in out_renames or name in renames:
            continue
        qt = g.tensors[name]
        new = g.unique_name(f"{name}_quantized")
        out_renames[name] = new
        g.tensors[new] = Tensor(new, qt.shape, np.int8, None, qt.qparams)
        g.tensors[name] = Tensor(name, qt.shape, float_graph.tensors[name].dtype)
        tail.append(edge("DequantizeLinear", new, name, qt.qparams))
    for node in g.nodes:
        node.inputs = [out_renames.get(x, x) for x in node.inputs]
        node.outputs = [out_renames.get(x, x) for x in node.outputs]
    g.nodes = head + g.nodes + tail
    return g
