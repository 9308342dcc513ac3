"""The multi-core partition: which core runs which layer in ``pipeline`` mode.

Why contiguous stages balanced by work: in a layer pipeline each core is one
stage and frames flow through them, so throughput is set by the slowest
stage; cutting the layer sequence where the running sum of estimated work
crosses ``k / cores`` of the total keeps stages near equal and every
activation flows forward to the same or a later core.
"""

from __future__ import annotations

__all__ = ["node_work", "pipeline_stages"]

import numpy as np

from axdrive.ir import Graph, Node


def node_work(g: Graph, node: Node) -> float:
    """Estimated work of a node: MACs for convolutions and dense layers, output elements otherwise."""
    out = g.tensors[node.outputs[0]].shape if node.outputs else ()
    elems = float(np.prod(out)) if out else 0.0
    if node.attrs.get("integer_op") == "mac" and len(node.inputs) > 1 and g.is_constant(node.inputs[1]):
        w = g.constant(node.inputs[1])
        per_out = float(np.prod(w.shape[1:])) if w.ndim > 1 else 1.0
        return elems * per_out
    return elems


def pipeline_stages(g: Graph, cores: int) -> dict[str, int]:
    """Core per node, contiguous in graph order, balanced by :func:`node_work`."""
    work = [node_work(g, n) for n in g.nodes]
    total = sum(work) or 1.0
    out: dict[str, int] = {}
    acc = 0.0
    for n, w in zip(g.nodes, work):
        core = min(cores - 1, int((acc + w / 2) * cores / total))
        out[n.name] = core
        acc += w
    return out
