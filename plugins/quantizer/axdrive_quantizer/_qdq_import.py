"""``lower_only``: read an already-quantized QDQ model's grids instead of calibrating.

A QDQ model (e.g. from ``onnxruntime.quantization.quantize_static``) states
every activation's grid as a QuantizeLinear -> DequantizeLinear pair and every
weight as a DequantizeLinear of an integer initializer. This module turns
each pair into the :class:`~axdrive.ir.QParams` of the float tensor it
brackets, each dequantized weight back into the integer weight it was, removes
the Q/DQ nodes, and hands the float graph, the grids and the fixed weights to
the same :func:`~axdrive_quantizer._quantize.quantize_graph` the calibrating
path uses. uint8 activations (onnxruntime's default) are moved to int8 by
shifting the zero point by -128, which represents the same reals.
"""

from __future__ import annotations

__all__ = ["QDQ_OPS", "import_qdq_graph"]

from typing import Any

import numpy as np

from axdrive.errors import ModelError, UnsupportedOperatorError
from axdrive.ir import Graph, Node, QParams, Tensor

from ._quantize import quantize_graph
from ._rules import MOVE_OPS, fusions

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def _qparams(graph: Graph, node: Node, dtype: np.dtype) -> QParams:
    scale = graph.constant(node.input(1))
    zp_name = node.input(2)
    zp = graph.constant(zp_name) if zp_name else np.zeros(np.shape(scale), np.uint8)
    if scale is None or zp is None:
        raise UnsupportedOperatorError(f"{node.op} with a run-time scale or zero point cannot be imported",
                                       node=node.name)
    zp64 = np.asarray(zp).astype(np.int64)
    if np.dtype(dtype) == np.uint8:  # same reals on the int8 grid
        zp64 = zp64 - 128
    elif np.dtype(dtype) not in (np.dtype(np.int8), np.dtype(np.int32)):
        raise UnsupportedOperatorError(f"{node.op} to {np.dtype(dtype).name} is not supported (int8/uint8 only)",
                                       node=node.name)
    axis = int(node.attrs.get("axis", 1)) if np.ndim(scale) == 1 and np.size(scale) > 1 else None
    scale = np.asarray(scale, np.float64)
    if axis is None:
        scale, zp64 = scale.reshape(()), zp64.reshape(())
    return QParams(scale, zp64, axis, "int32" if np.dtype(dtype) == np.int32 else "int8")


def _rename(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if x == old else x for x in node.inputs]
        node.outputs = [new if x == old else x for x in node.outputs]
    graph.outputs = [new if x == old else x for x in graph.outputs]
    t = graph.tensors.pop(old)
    graph.tensors[new] = Tensor(new, t.shape, t.dtype, t.data, t.qparams)


def _unwrap_quantized(g: Graph, users: dict[str, list[Node]], qname: str, src: str, qp: QParams,
                      acts: dict[str, QParams]) -> str:
    """Replace the integer tensor ``qname`` by the float tensor ``src`` it encodes.

    Its DequantizeLinear readers disappear (their readers read ``src``). A
    data-movement reader (MaxPool, Split, Reshape, ...: exporters, ours
    included, let these run on the integers directly, since they keep the
    grid) now reads ``src``; each of its outputs becomes a float tensor on
    the same grid, unwrapped the same way. Returns the name that now stands
    for ``src`` (a model output keeps its name)."""
    for reader in users.get(qname, []):
        if reader.op == "DequantizeLinear":
            g.nodes.remove(reader)
            out = reader.outputs[0]
            for other in g.nodes:
                other.inputs = [src if x == out else x for x in other.inputs]
            if out in g.outputs:
                g.outputs = [src if x == out else x for x in g.outputs]
                if src not in g.inputs:  # keep the model's output name
                    _rename(g, src, out)
                    acts[out] = acts.pop(src)
                    src = out
        elif reader.op in MOVE_OPS:
            reader.inputs = [src if x == qname else x for x in reader.inputs]
            for out in reader.outputs:
                if out:
                    t = g.tensors[out]
                    g.tensors[out] = Tensor(out, t.shape, np.dtype(np.float32), None, None)
                    acts.setdefault(out, qp)
                    _unwrap_quantized(g, users, out, out, qp, acts)
        else:
            raise UnsupportedOperatorError(f"{reader.op} reads the quantized tensor {qname!r} directly; only "
                                           "DequantizeLinear and data movement may", node=reader.name)
    return src


def _uniform(g: Graph, name: str) -> float | None:
    """The one value of a constant whose entries are all equal, else ``None``."""
    if not name or not g.is_constant(name):
        return None
    c = np.asarray(g.constant(name), np.float64).reshape(-1)
    return float(c[0]) if c.size and np.all(c == c[0]) else None


def _clamps_as_clips(g: Graph) -> int:
    """Max/Min against a constant whose entries are all equal become one Clip, so the fused-activation rules
    see the clamp. Why: the QDQ export writes a fused clamp as Max/Min against the dequantized integer bound,
    per channel when the grid is per channel (to keep onnxruntime from fusing a QLinearConv that cannot
    requantize per channel); on a per-channel grid with a shared zero point a Relu's bound is 0.0 in every
    channel, one clamp. A Max read only by such a Min merges with it into one Clip(min, max)."""
    users = g.consumer_map()
    merged = 0
    for node in [n for n in g.nodes if n.op in ("Max", "Min") and n.domain == "" and len(n.inputs) == 2]:
        if node not in g.nodes:
            continue
        value = _uniform(g, node.inputs[1])
        x = g.tensors.get(node.inputs[0])
        y = g.tensors.get(node.outputs[0])
        if value is None or x is None or y is None or tuple(x.shape) != tuple(y.shape):
            continue  # a Max/Min that broadcasts its input up is not a clamp
        lo, hi = (value, None) if node.op == "Max" else (None, value)
        out = node.outputs[0]
        nxt = users.get(out, [])
        if node.op == "Max" and len(nxt) == 1 and nxt[0].op == "Min" and nxt[0].domain == "" \
                and len(nxt[0].inputs) == 2 and nxt[0].inputs[0] == out and out not in g.outputs:
            hi = _uniform(g, nxt[0].inputs[1])
            if hi is not None:
                g.nodes.remove(nxt[0])
                out = nxt[0].outputs[0]
        bounds = [g.add_constant(f"{node.name}_clip_{k}", np.array(v, np.float32)) if v is not None else ""
                  for k, v in (("min", lo), ("max", hi))]
        node.op, node.inputs, node.outputs, node.attrs = "Clip", [node.inputs[0], *bounds], [out], {}
        merged += 1
    return merged


def import_qdq_graph(graph: Graph, operators: Any = None) -> tuple[Graph, dict[str, Any]]:
    """The quantized graph (int8 I/O) of a float IR that still has its Q/DQ nodes."""
    g = graph.copy()
    acts: dict[str, QParams] = {}
    fixed: dict[str, tuple[np.ndarray, QParams]] = {}
    pairs = weights = 0
    dq_nodes = [n for n in g.nodes if n.op == "DequantizeLinear" and n.domain == ""]
    # 1. DequantizeLinear of integer constants: weights and biases
    for node in dq_nodes:
        if not g.is_constant(node.input(0)):
            continue
        q = np.asarray(g.constant(node.input(0)))
        qp = _qparams(g, node, q.dtype)
        if q.dtype == np.uint8:
            q = (q.astype(np.int16) - 128).astype(np.int8)
        out = node.outputs[0]
        g.tensors[out] = Tensor.constant(out, qp.dequantize(q).astype(np.float32))
        fixed[out] = (q, qp)
        g.nodes.remove(node)
        weights += 1
    # 2. QuantizeLinear -> DequantizeLinear pairs around activations
    users = g.consumer_map()
    for node in [n for n in g.nodes if n.op == "QuantizeLinear" and n.domain == ""]:
        src, qname = node.input(0), node.outputs[0]
        zp_t = g.tensors.get(node.input(2)) if node.input(2) else None
        qp = _qparams(g, node, zp_t.dtype if zp_t is not None else np.dtype(np.uint8))
        acts.setdefault(src, qp)
        g.nodes.remove(node)
        pairs += 1
        src = _unwrap_quantized(g, users, qname, src, qp, acts)
        if qname in g.outputs:
            g.outputs = [src if x == qname else x for x in g.outputs]
    _clamps_as_clips(g)
    # 3. int8 graph inputs read through a DequantizeLinear
    for node in [n for n in g.nodes if n.op == "DequantizeLinear"]:
        src = node.input(0)
        if src not in g.inputs:
            raise UnsupportedOperatorError("DequantizeLinear of a tensor that no QuantizeLinear produced",
                                           node=node.name)
        acts[src] = _qparams(g, node, g.tensors[src].dtype)
        g.nodes.remove(node)
        for reader in g.nodes:
            reader.inputs = [src if x == node.outputs[0] else x for x in reader.inputs]
    used = {x for n in g.nodes for x in n.inputs if x}
    for name in [n for n, t in g.tensors.items() if t.data is not None and n not in used and n not in fixed]:
        del g.tensors[name]
    try:
        g.verify()
    except ModelError as exc:
        raise ModelError(f"removing the Q/DQ nodes left an invalid graph: {exc}", node=exc.node) from exc
    missing = [t for t in [*g.inputs, *(o for n in g.nodes for o in n.outputs if o)] if t not in acts]
    fused = fusions(g)
    fused_outputs = {n.outputs[0] for n in fused.values()}
    for name in missing:
        # a MAC/Add output followed by a fused Relu, or a data-movement output, needs no grid of its own
        producer = g.producer(name)
        if producer is not None and (producer.name in fused or producer.op in MOVE_OPS):
            continue
        if name in fused_outputs:
            continue
        raise UnsupportedOperatorError(f"tensor {name!r} has no QuantizeLinear/DequantizeLinear pair, so its grid is "
                                       "unknown (quantize the model with every activation in QDQ form)",
                                       node=producer.name if producer else None)
    qgraph, stats = quantize_graph(g, acts, fused, fixed, operators)
    return qgraph, {"qdq_pairs": pairs, "weights": weights, **stats}

