"""``quantized_graph.json``: the quantized graph as data for tools and the lowering.

Why a JSON file next to the QDQ model: the QDQ model states grids but not the
integer parameters the hardware uses (requantization multipliers and shifts,
clamps, tables); this file states all of them, per node, in the order the
nodes run. Weights are not included (they are in ``quantized_model.onnx``
and the program); their scales are.
"""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "graph_document"]

from typing import Any

import numpy as np

from axdrive.ir import Graph
from axdrive.reference.integer import INTEGER_ATTRS

FORMAT_VERSION = 1


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def graph_document(qgraph: Graph) -> dict[str, Any]:
    """The JSON document of a quantized graph (canonical once written with sorted keys)."""
    tensors = {}
    for name, t in sorted(qgraph.tensors.items()):
        if t.qparams is None:
            continue
        tensors[name] = {"shape": list(t.shape), "dtype": t.dtype.name, "constant": t.data is not None,
                         "quantization": t.qparams.to_dict()}
    nodes = []
    for node in qgraph.nodes:
        params = {k: _plain(v) for k, v in sorted(node.attrs.items()) if k in INTEGER_ATTRS and k != "integer_op"}
        attrs = {k: _plain(v) for k, v in sorted(node.attrs.items()) if k not in INTEGER_ATTRS}
        nodes.append({"name": node.name, "op": node.qualified_op, "integer_op": node.attrs.get("integer_op"),
                      "inputs": list(node.inputs), "outputs": list(node.outputs), "params": params,
                      "attributes": attrs, "source": list(node.source)})
    return {"format": "axdrive.quantized_graph", "version": FORMAT_VERSION, "name": qgraph.name,
            "opset": qgraph.opset, "inputs": list(qgraph.inputs), "outputs": list(qgraph.outputs),
            "tensors": tensors, "nodes": nodes}
