"""Graph-level optimization passes. Each is a list of rewrite rules run by
the core engine; statistics are the per-rule hit counts plus node counts."""

from __future__ import annotations

__all__ = ["fold_constants", "eliminate_dead_code", "fold_batchnorm", "fuse_activations", "optimize", "remove_dead"]

from typing import Any

from axdrive.ir import Graph
from axdrive.ir.rewrite import Rule, rewrite
from axdrive.passes import Phase, compiler_pass, pass_group

from ._rules import FOLD_BATCHNORM_RULES, FOLD_CONSTANT_RULES, FUSE_ACTIVATION_RULES, RELU6_RULES, SIMPLIFY_RULES


def remove_dead(graph: Graph) -> dict[str, int]:
    """Drop nodes none of whose outputs reaches a graph output, then every
    tensor nothing references any more (unused constants included)."""
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(out in live for out in node.outputs if out):
            kept.append(node)
            live.update(x for x in node.inputs if x)
    removed_nodes = len(graph.nodes) - len(kept)
    graph.nodes = kept[::-1]
    referenced = live | set(graph.inputs) | {o for n in graph.nodes for o in n.outputs if o}
    dead = [name for name in graph.tensors if name not in referenced]
    constants = sum(1 for name in dead if graph.tensors[name].data is not None)
    for name in dead:
        del graph.tensors[name]
    return {"dead_nodes": removed_nodes, "dead_constants": constants, "dead_tensors": len(dead) - constants}


def _run(graph: Graph, *rule_lists: list[Rule]) -> dict[str, Any]:
    before = len(graph.nodes)
    stats: dict[str, Any] = {}
    for rules in rule_lists:
        stats.update(rewrite(graph, rules))
    stats.update(remove_dead(graph))
    stats["nodes_before"], stats["nodes_after"] = before, len(graph.nodes)
    return stats


@compiler_pass("frontend.fold_constants", phase=Phase.OPTIMIZE)
def fold_constants(ctx: Any) -> dict[str, Any]:
    """Evaluate every node whose inputs are constants (and Shape/Size of
    static tensors) with the reference executor and replace it by its value.

    Removes the shape arithmetic exporters emit (Shape -> Gather -> Concat ->
    Reshape). Values above 2**20 elements are left computed.
    Statistics: hits per rule, nodes before/after."""
    return _run(ctx.graph, FOLD_CONSTANT_RULES)


@compiler_pass("frontend.eliminate_dead_code", phase=Phase.OPTIMIZE)
def eliminate_dead_code(ctx: Any) -> dict[str, Any]:
    """Remove Identity/Dropout (unless they define a graph output), nodes
    whose results are never used, and unreferenced constants.
    Statistics: hits per rule, dead nodes/constants/tensors, nodes before/after."""
    return _run(ctx.graph, SIMPLIFY_RULES)


@compiler_pass("frontend.fold_batchnorm", phase=Phase.OPTIMIZE)
def fold_batchnorm(ctx: Any) -> dict[str, Any]:
    """Fold an inference BatchNormalization into the Conv feeding it (new
    weights ``W*g/sqrt(v+eps)`` and bias ``(b-m)*g/sqrt(v+eps)+beta``),
    computed in float64. Statistics: hits per rule, nodes before/after."""
    return _run(ctx.graph, FOLD_BATCHNORM_RULES)


@compiler_pass("frontend.fuse_activations", phase=Phase.OPTIMIZE)
def fuse_activations(ctx: Any) -> dict[str, Any]:
    """Fuse activation subgraphs into single nodes: ``x*Sigmoid(x)`` ->
    ``axdrive.SiLU``; ``x*HardSigmoid(x)`` (alpha 1/6) and
    ``x*Clip(x+3,0,6)/6`` -> ``HardSwish``; then ``Clip(x,0,6)`` ->
    ``axdrive.Relu6``. The export to ONNX expands them back.
    Statistics: hits per rule, nodes before/after."""
    return _run(ctx.graph, FUSE_ACTIVATION_RULES, RELU6_RULES)


#: The optimisations run as one group, in this order, each a sub-pass with its
#: own span and statistics. Grouping (rather than chaining requirements) means
#: ``--disable-pass frontend.fold_batchnorm`` skips that rewrite alone while the
#: rest of the compile still gets ``graph_optimized``.
optimize = pass_group(
    "frontend.optimize",
    [fold_constants, eliminate_dead_code, fold_batchnorm, fuse_activations],
    requires=("shapes_inferred",),
    provides=("graph_optimized",),
    phase=Phase.OPTIMIZE,
    description="Fold constants, remove dead code, fold BatchNorm into Conv, fuse activations.",
)
