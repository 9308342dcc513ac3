"""Import passes: load the ONNX model, check the IR, infer shapes."""

from __future__ import annotations

__all__ = ["load", "check", "shape_infer", "nonfinite_constants"]

from collections import Counter
from typing import Any

import numpy as np

from axdrive.errors import ModelError
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
    cycle, topological order, static shapes), refuse NaN/Inf weights, and
    count what is there.

    A float constant (initializer or ``Constant`` node) holding NaN or Inf is a
    :class:`~axdrive.errors.ModelError` naming it and the counts: such weights
    make every activation after them NaN, and calibration would fail far from
    the cause (an ``OverflowError`` choosing a grid). Inf as a ``Clip`` bound
    (an open side) is legitimate and kept.
    Statistics: nodes, tensors, constants, op_types."""
    graph = ctx.graph
    graph.verify()
    bad = nonfinite_constants(graph)
    if bad:
        name, nan, inf, size = bad[0]
        more = f" (and {len(bad) - 1} more constant(s) like it)" if len(bad) > 1 else ""
        raise ModelError(f"{_origin(ctx.session.model, name)} holds {nan} NaN and {inf} Inf value(s) among its {size}"
                         f"{more}: the weights are corrupt (re-export the model, or check the training run)",
                         file=_label(ctx))
    ops = Counter(node.qualified_op for node in graph.nodes)
    return {"nodes": len(graph.nodes), "tensors": len(graph.tensors),
            "constants": sum(1 for t in graph.tensors.values() if t.data is not None), "op_types": len(ops)}


@compiler_pass("frontend.shape_infer", requires=("graph_checked",), provides=("shapes_inferred",), phase=Phase.IMPORT)
def shape_infer(ctx: Any) -> dict[str, Any]:
    """Recompute the static shape and dtype of every computed tensor (ONNX
    shape inference, then execution on zeros for what it cannot resolve).
    Statistics: tensors, inferred, completed_by_execution, changed."""
    return infer_shapes(ctx.graph)


def nonfinite_constants(graph: Any) -> list[tuple[str, int, int, int]]:
    """``(name, NaN count, Inf count, size)`` of every float constant holding NaN or Inf, in tensor order.

    Inf (not NaN) in a constant read only as a ``Clip`` bound is left out: it
    means "no bound on that side", which the quantizer handles."""
    clip_bounds: set[str] = set()
    other_reads: set[str] = set()
    for node in graph.nodes:
        for i, name in enumerate(node.inputs):
            (clip_bounds if node.op == "Clip" and i > 0 else other_reads).add(name)
    found = []
    for name, t in graph.tensors.items():
        a = t.data
        if a is None or np.asarray(a).dtype.kind != "f":
            continue
        finite = np.isfinite(a)
        if finite.all():
            continue
        nan = int(np.count_nonzero(np.isnan(a)))
        inf = int(np.size(a) - np.count_nonzero(finite)) - nan
        if nan == 0 and name in clip_bounds and name not in other_reads:
            continue
        found.append((name, nan, inf, int(np.size(a))))
    return found


def _label(ctx: Any) -> str:
    """The model as errors name it: its file, or ``<model NAME>`` for an in-memory ModelProto."""
    path = getattr(ctx.session, "model_path", None)
    if path is not None:
        return str(path)
    return f"<model {getattr(getattr(ctx.session.model, 'graph', None), 'name', '') or 'unnamed'}>"


def _origin(model: Any, name: str) -> str:
    """Where constant ``name`` comes from in the ONNX model: an initializer or a ``Constant`` node.

    Read again from the model only on this error path: the IR keeps no record of it."""
    import onnx

    try:
        proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    except Exception:  # unreadable now (moved, changed): name the tensor only
        return f"constant {name!r}"
    if any(init.name == name for init in proto.graph.initializer):
        return f"initializer {name!r}"
    for i, node in enumerate(proto.graph.node):
        if node.op_type == "Constant" and name in node.output:
            return f"Constant node {node.name or f'Constant_{i}'!r} (output {name!r})"
    return f"constant {name!r}"
