"""Import passes: load the ONNX model, check the IR, infer shapes."""

from __future__ import annotations

__all__ = ["load", "check", "shape_infer"]

from collections import Counter
from typing import Any

from axdrive.onnx_io import infer_shapes, load_model
from axdrive.passes import Phase, compiler_pass


@compiler_pass("frontend.load", provides=("graph_loaded",), phase=Phase.IMPORT,
               config_keys=("propagate_span_information",))
def load(ctx: Any) -> dict[str, Any]:
    """Import the ONNX model (path or ModelProto) into the IR.

    Dynamic input dimensions are fixed from the ``input_shapes`` input
    (``--input-shape NAME=1x3x320x320``); with
    ``propagate_span_information=false`` nodes carry no ONNX source names.
    Statistics: nodes, constants, inputs, outputs, opset."""
    keep = bool(getattr(ctx.config, "propagate_span_information", True))
    graph = load_model(ctx.session.model, input_shapes=ctx.inputs.get("input_shapes"), keep_sources=keep)
    ctx.graph = graph
    return {"nodes": len(graph.nodes), "constants": sum(1 for t in graph.tensors.values() if t.data is not None),
            "inputs": len(graph.inputs), "outputs": len(graph.outputs), "opset": graph.opset}


@compiler_pass("frontend.check", requires=("graph_loaded",), provides=("graph_checked",), phase=Phase.IMPORT)
def check(ctx: Any) -> dict[str, Any]:
    """Verify the IR invariants (no dangling input, no double producer, no
    cycle, topological order, static shapes) and count what is there.
    Statistics: nodes, tensors, constants, op_types."""
    graph = ctx.graph
    graph.verify()
    ops = Counter(node.qualified_op for node in graph.nodes)
    return {"nodes": len(graph.nodes), "tensors": len(graph.tensors),
            "constants": sum(1 for t in graph.tensors.values() if t.data is not None), "op_types": len(ops)}


@compiler_pass("frontend.shape_infer", requires=("graph_checked",), provides=("shapes_inferred",), phase=Phase.IMPORT)
def shape_infer(ctx: Any) -> dict[str, Any]:
    """Recompute the static shape and dtype of every computed tensor (ONNX
    shape inference, then execution on zeros for what it cannot resolve).
    Statistics: tensors, inferred, completed_by_execution, changed."""
    return infer_shapes(ctx.graph)
