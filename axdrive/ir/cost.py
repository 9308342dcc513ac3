"""What a node of the float graph costs, in multiply-accumulates: the measure placement decisions and
reports share (how much of a model the accelerator runs, which side of a host node keeps more work).

Only the learned layers count (convolutions and dense products), as in every accelerator's "MACs" figure;
element-wise work and data movement count zero.
"""

from __future__ import annotations

__all__ = ["node_macs", "graph_macs"]

from typing import Iterable

import numpy as np

from ._graph import Graph
from ._node import Node


def _numel(shape: Iterable[int] | None) -> int:
    return int(np.prod(tuple(shape), dtype=np.int64)) if shape is not None else 0


def node_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of one ``node`` (0 for anything but Conv, ConvTranspose, Gemm and MatMul)."""
    from ..operators import MAC_OPS

    if node.domain not in ("", "ai.onnx") or node.op not in MAC_OPS:
        return 0
    shapes = [graph.tensors[n].shape if n in graph.tensors else None for n in (*node.inputs[:2], node.outputs[0])]
    x, w, y = shapes
    if x is None or w is None or y is None:
        return 0
    if node.op == "Conv":  # every output element sums C_in/groups x kernel products: exactly W[1:]
        return _numel(y) * _numel(w[1:])
    if node.op == "ConvTranspose":  # every input element scatters into C_out/groups x kernel outputs
        return _numel(x) * _numel(w[1:])
    if node.op == "Gemm":
        k = x[0] if node.attrs.get("transA", 0) else x[-1]
        return _numel(y) * int(k)
    return _numel(y) * int(x[-1]) if len(x) else 0  # MatMul


def graph_macs(graph: Graph, names: Iterable[str] | None = None) -> int:
    """The MACs of ``graph``'s nodes (only those named in ``names``, if given)."""
    wanted = None if names is None else set(names)
    return sum(node_macs(graph, n) for n in graph.nodes if wanted is None or n.name in wanted)
