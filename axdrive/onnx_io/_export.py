""":class:`~axdrive.ir.Graph` -> ONNX ModelProto that onnxruntime runs.

Operators ONNX does not have at the graph's opset (the fused ``axdrive``
operators, HardSwish before opset 14) are expanded back into standard ops
here, so every IR the frontend produces stays exportable and comparable
with onnxruntime.
"""

from __future__ import annotations

__all__ = ["to_onnx", "save_model", "EXPANSIONS"]

import os
from typing import Any, Callable

import numpy as np
import onnx
from onnx import AttributeProto, ModelProto, NodeProto, helper, numpy_helper

from ..errors import UnsupportedOperatorError
from ..ir import AXDRIVE_DOMAIN, Graph, Node

Emit = Callable[[Node, Callable[[str], str], Callable[[str, np.ndarray], str]], list[NodeProto]]


def _silu(node: Node, fresh: Callable[[str], str], const: Callable[[str, np.ndarray], str]) -> list[NodeProto]:
    sig = fresh(f"{node.outputs[0]}/sigmoid")
    return [helper.make_node("Sigmoid", [node.inputs[0]], [sig], name=f"{node.name}/sigmoid"),
            helper.make_node("Mul", [node.inputs[0], sig], node.outputs, name=node.name)]


def _hard_swish(node: Node, fresh: Callable[[str], str], const: Callable[[str, np.ndarray], str]) -> list[NodeProto]:
    hs = fresh(f"{node.outputs[0]}/hardsigmoid")
    return [helper.make_node("HardSigmoid", [node.inputs[0]], [hs], name=f"{node.name}/hardsigmoid",
                             alpha=1.0 / 6.0, beta=0.5),
            helper.make_node("Mul", [node.inputs[0], hs], node.outputs, name=node.name)]


def _relu6(node: Node, fresh: Callable[[str], str], const: Callable[[str, np.ndarray], str]) -> list[NodeProto]:
    lo = const(f"{node.name}/min", np.array(0, np.float32))
    hi = const(f"{node.name}/max", np.array(6, np.float32))
    return [helper.make_node("Clip", [node.inputs[0], lo, hi], node.outputs, name=node.name)]


# (domain, op) -> (first opset where ONNX has it natively, or None, expansion)
EXPANSIONS: dict[tuple[str, str], tuple[int | None, Emit]] = {
    (AXDRIVE_DOMAIN, "SiLU"): (None, _silu),
    (AXDRIVE_DOMAIN, "Relu6"): (None, _relu6),
    ("", "HardSwish"): (14, _hard_swish),
}


def _attribute(op: str, opset: int, key: str, value: Any) -> AttributeProto:
    """An attribute with the type the operator schema declares (so ``alpha=1``
    stays a FLOAT and an empty list keeps its type)."""
    attr_type = None
    try:
        schema = onnx.defs.get_schema(op, opset, "")
        if key in schema.attributes:
            attr_type = schema.attributes[key].type
    except Exception:
        attr_type = None
    T = AttributeProto
    if isinstance(value, np.ndarray):
        value = numpy_helper.from_array(value)
    elif attr_type == T.FLOAT:
        value = float(value)
    elif attr_type == T.INT:
        value = int(value)
    elif attr_type == T.FLOATS:
        value = [float(v) for v in value]
    elif attr_type == T.INTS:
        value = [int(v) for v in value]
    elif attr_type == T.TENSOR and not isinstance(value, onnx.TensorProto):
        value = numpy_helper.from_array(np.asarray(value))
    elif isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
        value = [numpy_helper.from_array(v) for v in value]
    return helper.make_attribute(key, value, attr_type=attr_type)


def _value_info(graph: Graph, name: str) -> onnx.ValueInfoProto:
    t = graph.tensors[name]
    elem = helper.np_dtype_to_tensor_dtype(t.dtype) if t.dtype is not None else onnx.TensorProto.UNDEFINED
    return helper.make_tensor_value_info(name, elem, list(t.shape) if t.shape is not None else None)


def to_onnx(graph: Graph) -> ModelProto:
    """Export ``graph``; the model runs in onnxruntime and computes what the
    float executor computes. Custom-domain ops are expanded (see EXPANSIONS)."""
    taken = set(graph.tensors) | {n.name for n in graph.nodes}
    extra_inits: list[onnx.TensorProto] = []

    def fresh(base: str) -> str:
        name, i = base, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        taken.add(name)
        return name

    def const(base: str, value: np.ndarray) -> str:
        name = fresh(base)
        extra_inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    nodes: list[NodeProto] = []
    for node in graph.nodes:
        expansion = EXPANSIONS.get((node.domain, node.op))
        if expansion is not None and (expansion[0] is None or graph.opset < expansion[0]):
            nodes.extend(expansion[1](node, fresh, const))
            continue
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOperatorError(f"operator {node.qualified_op!r} has no ONNX form to export", node=node.name)
        proto = helper.make_node(node.op, node.inputs, node.outputs, name=node.name)
        proto.attribute.extend(_attribute(node.op, graph.opset, k, v) for k, v in sorted(node.attrs.items()))
        nodes.append(proto)

    used: list[str] = []
    seen: set[str] = set()
    for name in [x for n in graph.nodes for x in n.inputs] + list(graph.outputs):
        if name and name not in seen and graph.is_constant(name):
            seen.add(name)
            used.append(name)
    initializers = [numpy_helper.from_array(graph.tensors[name].data, name) for name in used] + extra_inits
    io = set(graph.inputs) | set(graph.outputs)
    value_info = [_value_info(graph, out) for n in graph.nodes for out in n.outputs
                  if out and out not in io and out in graph.tensors
                  and graph.tensors[out].shape is not None and graph.tensors[out].dtype is not None]
    proto_graph = helper.make_graph(nodes, graph.name, [_value_info(graph, n) for n in graph.inputs],
                                    [_value_info(graph, n) for n in graph.outputs], initializers, value_info=value_info)
    opset = helper.make_opsetid("", graph.opset)
    model = helper.make_model(proto_graph, opset_imports=[opset], producer_name="axdrive")
    model.ir_version = max(7, helper.find_min_ir_version_for([opset]))
    return model


def save_model(graph: Graph, path: str | os.PathLike[str]) -> None:
    """Write ``to_onnx(graph)`` with deterministic serialisation (byte-identical reruns)."""
    data = to_onnx(graph).SerializeToString(deterministic=True)
    with open(path, "wb") as fh:
        fh.write(data)
