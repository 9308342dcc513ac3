"""ONNX at the edges of the compiler: :func:`load_model` (file or ModelProto ->
verified IR with static shapes) and :func:`to_onnx` (IR -> ModelProto that
onnxruntime runs).

Import accepts the default ONNX domain at opsets 11..28 (older models are
upgraded with ``onnx.version_converter``; 28 is the newest onnxruntime 1.32
loads). Every failure is one line naming the file and, where known, the node.
"""

from __future__ import annotations

__all__ = ["load_model", "to_onnx", "save_model", "infer_shapes", "chain_models", "MIN_OPSET", "MAX_OPSET"]

from typing import Any, Mapping

from ..errors import ModelError
from ..ir import Graph
from ._chain import chain_models
from ._export import save_model, to_onnx
from ._import import fix_input_shapes, graph_from_proto
from ._read import MAX_OPSET, MIN_OPSET, read_model
from ._shapes import apply_inferred, complete_by_execution, infer_proto, infer_shapes


def load_model(source: Any, *, input_shapes: Mapping[str, Any] | None = None, keep_sources: bool = True) -> Graph:
    """Import an ONNX model (path or ModelProto) into a verified :class:`Graph`.

    ``input_shapes`` fixes dynamic input dimensions (``{"images": (1, 3, 320,
    320)}``); an input left dynamic is an error saying how to set it.
    ``keep_sources=False`` leaves ``Node.source`` empty (config
    ``propagate_span_information=false``)."""
    model, label, _ = read_model(source)
    fix_input_shapes(model, input_shapes, label)
    graph = graph_from_proto(model, label, keep_sources=keep_sources)
    for output in model.graph.output:  # exporters leave stale or -1 dims here; inference recomputes them
        output.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]
    apply_inferred(graph, infer_proto(model, label))
    try:
        complete_by_execution(graph)
        graph.verify()
    except ModelError as exc:
        if exc.file is None:
            raise ModelError(str(exc).split(": ", 1)[1] if exc.node else str(exc), file=label, node=exc.node) from exc
        raise
    return graph
