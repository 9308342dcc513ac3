"""``quantization_debug``: where does quantization lose accuracy?

For every activation of the quantized graph, the signal-to-quantization-noise
ratio of its integer value (dequantized) against the float value, over the
calibration samples, worst layers first (``layers``) and in graph order
(``graph_order``). Each quantized tensor sees the *quantized* inputs, so a
layer's figure includes the error it inherits; ``graph_order`` says how much
each layer inherited and how much it added, so the first layer that adds a
lot is where to look.

``sensitivity`` is the per-layer analysis AIMET and NNCF provide: in graph
order, each layer's *own* SQNR (its integer kernel on inputs that are the
float values put on their grids: what quantizing this layer alone costs) next
to the *cumulative* SQNR up to it (every layer before it quantized too), with
its MACs, and the SQNR of the outputs. The lowest own SQNR is the layer whose
quantization hurts most; ``--target-sqnr`` moves such layers to the host.
"""

from __future__ import annotations

__all__ = ["sqnr_db", "layer_report", "graph_order", "debug_model", "sensitivity", "most_sensitive"]

#: Reported for a layer without any error (or without any signal): JSON has no infinities.
NO_ERROR_DB, NO_SIGNAL_DB = 999.0, -999.0

from typing import Any

import numpy as np
import onnx

from axdrive.ir import Graph
from axdrive.reference import run_float, run_integer

from ._agreement import quantize_feeds


def sqnr_db(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)`` of summed squares, rounded to 0.001 dB."""
    if noise == 0.0:
        return NO_ERROR_DB
    if signal == 0.0:
        return NO_SIGNAL_DB
    return round(float(10.0 * np.log10(signal / noise)), 3)


def layer_report(float_graph: Graph, qgraph: Graph, feeds: dict[str, np.ndarray], samples: int) -> list[dict[str, Any]]:
    """Per-activation SQNR over the first ``samples`` calibration samples, worst first."""
    producers = qgraph.producers()
    acc: dict[str, list[np.ndarray]] = {}
    n = int(next(iter(feeds.values())).shape[0])
    for i in range(min(n, samples)):
        one = {k: v[i:i + 1] for k, v in feeds.items()}
        ref = run_float(float_graph, one, keep_all=True)
        got = run_integer(qgraph, quantize_feeds(qgraph, one), keep_all=True)
        for name, value in got.items():
            t = qgraph.tensors.get(name)
            if name in ref and t is not None and t.qparams is not None and t.data is None:
                acc.setdefault(name, [np.zeros(()), np.zeros(())])
                f = np.asarray(ref[name], np.float64)
                d = t.qparams.dequantize(value)
                acc[name][0] = acc[name][0] + (f ** 2).sum()
                acc[name][1] = acc[name][1] + ((f - d) ** 2).sum()
    rows = []
    for name, (signal, noise) in acc.items():
        node = producers.get(name)
        qp = qgraph.tensors[name].qparams
        rows.append({"tensor": name, "node": node.name if node else None,
                     "op": node.qualified_op if node else "input", "sqnr_db": sqnr_db(float(signal), float(noise)),
                     "scale": qp.scale.tolist(), "zero_point": qp.zero_point.tolist()})
    rows.sort(key=lambda r: (r["sqnr_db"], r["tensor"]))
    return rows


def graph_order(qgraph: Graph, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same figures in graph order, with where the error comes from: ``inherited_db`` is the worst
    SQNR among the tensor's quantized inputs (what it was handed), ``added_db`` how much worse the tensor
    is than that (what its own requantization cost; negative when it averages error away). The first
    rows with a large ``added_db`` are where accuracy is lost, the rest is how the loss propagates."""
    by_tensor = {r["tensor"]: r for r in rows}
    order = {name: i for i, name in enumerate(qgraph.inputs)}
    for node in qgraph.nodes:
        for name in node.outputs:
            order.setdefault(name, len(order))
    producers = qgraph.producers()
    out = []
    for name in sorted(by_tensor, key=lambda n: (order.get(n, len(order)), n)):
        row = by_tensor[name]
        node = producers.get(name)
        inputs = [by_tensor[i]["sqnr_db"] for i in (node.inputs if node else ()) if i in by_tensor]
        inherited = min(inputs) if inputs else None
        out.append({"order": order.get(name, len(order)), "tensor": name, "op": row["op"], "sqnr_db": row["sqnr_db"],
                    "inherited_db": inherited,
                    "added_db": round(inherited - row["sqnr_db"], 3) if inherited is not None else None})
    return out


def debug_model(qdq_model: onnx.ModelProto, qgraph: Graph) -> onnx.ModelProto:
    """The QDQ model with every quantized activation also a graph output (inspect any
    layer in onnxruntime). Inside the QDQ model activations sit on the uint8 twin of
    their int8 grid (value + 128, zero point + 128; see ``_qdq``)."""
    model = onnx.ModelProto()
    model.CopyFrom(qdq_model)
    present = {o.name for o in model.graph.output}
    produced = {o for n in model.graph.node for o in n.output}
    for node in qgraph.nodes:
        for name in node.outputs:
            if name and name not in present and name in produced and qgraph.tensors[name].dtype == np.int8:
                model.graph.output.append(onnx.helper.make_tensor_value_info(
                    name, onnx.TensorProto.UINT8, list(qgraph.tensors[name].shape)))
                present.add(name)
    return model


def sensitivity(float_graph: Graph, qgraph: Graph, feeds: dict[str, np.ndarray], samples: int,
                cumulative: dict[str, float]) -> tuple[list[dict[str, Any]], float]:
    """``(rows, output_sqnr_db)``: per quantized node in graph order its own SQNR (see the module), the cumulative
    SQNR of its output (``cumulative``: tensor -> dB, from :func:`layer_report`), its MACs and the ONNX nodes it
    came from; and the SQNR of the graph's outputs, pooled, over the first ``samples`` calibration samples."""
    from axdrive.ir import node_macs
    from axdrive.reference.integer import INTEGER_OPS

    nodes = [n for n in qgraph.nodes if n.attrs.get("integer_op") not in (None, "quantize", "dequantize")]
    own: dict[str, list[float]] = {n.name: [0.0, 0.0] for n in nodes}
    spans: dict[str, list[float]] = {}  # node -> [int8 min, int8 max, float min, float max] of its first output
    out = [0.0, 0.0]
    n_total = int(next(iter(feeds.values())).shape[0])
    for i in range(min(n_total, samples)):
        one = {k: v[i:i + 1] for k, v in feeds.items()}
        ref = run_float(float_graph, one, keep_all=True)
        got = run_integer(qgraph, quantize_feeds(qgraph, one))
        for name in qgraph.outputs:
            f = np.asarray(ref[name], np.float64)
            d = qgraph.tensors[name].qparams.dequantize(got[name])
            out[0] += float((f ** 2).sum())
            out[1] += float(((f - d) ** 2).sum())
        for node in nodes:
            args: list[Any] = []
            for name in node.inputs:
                t = qgraph.tensors.get(name) if name else None
                if t is None:
                    args.append(None)
                elif t.data is not None:
                    args.append(t.data)
                elif name in ref and t.qparams is not None:
                    args.append(t.qparams.quantize(ref[name]))
                else:
                    break
            else:
                result = INTEGER_OPS[node.attrs["integer_op"]](node, args, qgraph.opset)
                values = result if isinstance(result, list) else [result]
                for name, value in zip(node.outputs, values):
                    t = qgraph.tensors.get(name)
                    if name in ref and t is not None and t.qparams is not None:
                        f = np.asarray(ref[name], np.float64)
                        own[node.name][0] += float((f ** 2).sum())
                        own[node.name][1] += float(((f - t.qparams.dequantize(value)) ** 2).sum())
                        if name == node.outputs[0]:
                            seen = [float(np.min(value)), float(np.max(value)), float(f.min()), float(f.max())]
                            old = spans.setdefault(node.name, seen)
                            spans[node.name] = [min(old[0], seen[0]), max(old[1], seen[1]),
                                                min(old[2], seen[2]), max(old[3], seen[3])]
    rows = []
    for order, node in enumerate(nodes):
        signal, noise = own[node.name]
        row = {"order": order, "node": node.name, "op": node.qualified_op, "source": list(node.source),
               "tensor": node.outputs[0], "own_db": sqnr_db(signal, noise),
               "cumulative_db": cumulative.get(node.outputs[0]), "macs": int(node_macs(qgraph, node))}
        why = _collapse(qgraph, node, row["own_db"], spans.get(node.name))
        if why:
            row["collapsed"] = why
        rows.append(row)
    return rows, sqnr_db(out[0], out[1])


#: An own SQNR at or below this is a layer whose quantized output has lost its signal.
COLLAPSE_DB = 1.0


def _collapse(qgraph: Graph, node: Any, own_db: float, span: list[float] | None) -> str | None:
    """Why the node's int8 output carries (almost) nothing of its float output, or None: a constant output whose
    grid step exceeds the spread of the float values, or an own SQNR near 0 dB."""
    if span is None:
        return None
    qlo, qhi, flo, fhi = span
    qp = qgraph.tensors[node.outputs[0]].qparams
    step = float(np.max(qp.scale))
    if qlo == qhi and fhi > flo:
        return (f"its int8 output is always {int(qlo)}: the float output spans [{flo:.4g}, {fhi:.4g}], "
                f"narrower than or off its grid (step {step:.4g}, zero point {int(np.max(qp.zero_point))})")
    if own_db <= COLLAPSE_DB:
        return (f"its own SQNR is {own_db:g} dB: on inputs exactly on their grids its integer kernel already loses "
                f"the signal (float output in [{flo:.4g}, {fhi:.4g}], grid step {step:.4g})")
    return None


def most_sensitive(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The ``count`` rows of lowest own SQNR, shown in graph order (how the CLI prints the table)."""
    worst = sorted(rows, key=lambda r: (r["own_db"], r["order"]))[:count]
    return sorted(worst, key=lambda r: r["order"])
