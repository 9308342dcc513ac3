"""``quantization_debug``: where does quantization lose accuracy?

For every activation of the quantized graph, the signal-to-quantization-noise
ratio of its integer value (dequantized) against the float value, over the
calibration samples, worst layers first (``layers``) and in graph order
(``graph_order``). Each quantized tensor sees the *quantized* inputs, so a
layer's figure includes the error it inherits; ``graph_order`` says how much
each layer inherited and how much it added, so the first layer that adds a
lot is where to look.
"""

from __future__ import annotations

__all__ = ["sqnr_db", "layer_report", "graph_order", "debug_model"]

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
