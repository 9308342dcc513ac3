"""ONNX ModelProto -> :class:`~axdrive.ir.Graph`.

Constant nodes and initializers both become constant tensors (one notion of
"constant" in the IR); attributes become plain Python values; node names are
made unique, and each node remembers the ONNX node it came from (``source``)
unless spans are switched off.
"""

from __future__ import annotations

__all__ = ["graph_from_proto", "fix_input_shapes"]

from typing import Any, Mapping

import numpy as np
from onnx import AttributeProto, ModelProto, TensorProto, numpy_helper
from onnx.helper import get_attribute_value, tensor_dtype_to_np_dtype

from ..errors import ModelError, UnsupportedOperatorError, UsageError
from ..ir import Graph, Node, Tensor
from ..reference import run_node
from ._read import default_opset

_SUBGRAPH_TYPES = {AttributeProto.GRAPH, AttributeProto.GRAPHS, AttributeProto.SPARSE_TENSOR,
                   AttributeProto.SPARSE_TENSORS, AttributeProto.TYPE_PROTO, AttributeProto.TYPE_PROTOS}


#: The element types axdrive reads: numpy's own bool, integer and float types. ONNX's others
#: (strings, complex, bfloat16, the float8, float4, int4 and int2 types) are refused.
SUPPORTED_DTYPES = frozenset(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                                   np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                                   np.float64))


def elem_type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)


def supported_dtype(elem_type: int) -> np.dtype | None:
    """The numpy dtype of an ONNX element type axdrive handles, else None."""
    try:
        dtype = np.dtype(tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None
    return dtype if dtype in SUPPORTED_DTYPES else None


def _np_dtype(elem_type: int, what: str, label: str) -> np.dtype:
    dtype = supported_dtype(elem_type)
    if dtype is None:
        raise ModelError(f"{what} has unsupported element type {elem_type_name(elem_type)}", file=label)
    return dtype


def _attr_value(attr: AttributeProto, node: str, label: str) -> Any:
    if attr.type in _SUBGRAPH_TYPES:
        raise UnsupportedOperatorError(f"attribute {attr.name!r} holds a subgraph or sparse tensor, which is not supported",
                                       file=label, node=node)
    value = get_attribute_value(attr)
    if attr.type == AttributeProto.STRING:
        return value.decode("utf-8")
    if attr.type == AttributeProto.STRINGS:
        return [v.decode("utf-8") for v in value]
    if attr.type == AttributeProto.TENSOR:
        return numpy_helper.to_array(value)
    if attr.type == AttributeProto.TENSORS:
        return [numpy_helper.to_array(v) for v in value]
    if attr.type in (AttributeProto.INTS, AttributeProto.FLOATS):
        return list(value)
    return value


def _dims(value_info: Any) -> list[int | None] | None:
    """Static dims (None where dynamic), or None when the shape is unknown. A ``dim_value``
    of 0 is a static empty axis, as in ONNX and onnxruntime."""
    ttype = value_info.type.tensor_type
    if not ttype.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None for d in ttype.shape.dim]


def _check_tensor(value_info: Any, what: str, label: str) -> None:
    """Refuse, in one line, a graph input or output that is a sequence, optional or map
    (an untyped one is left to shape inference)."""
    kind = value_info.type.WhichOneof("value")
    if kind not in (None, "tensor_type"):
        shown = {"sequence_type": "a sequence", "optional_type": "an optional", "map_type": "a map",
                 "sparse_tensor_type": "a sparse tensor"}.get(kind, kind)
        raise ModelError(f"{what} {value_info.name!r} is {shown}, not a tensor; only tensors are supported",
                         file=label)


def _fmt_dims(dims: list[int | None]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def fix_input_shapes(model: ModelProto, input_shapes: Mapping[str, Any] | None, label: str) -> None:
    """Write the static input shapes into ``model`` (in place); every input
    must end up fully static, fixed by the model or by ``input_shapes``."""
    init_names = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    given = dict(input_shapes or {})
    unknown = sorted(set(given) - {vi.name for vi in inputs})
    if unknown:
        names = ", ".join(vi.name for vi in inputs)
        raise UsageError(f"{label}: --input-shape names {unknown[0]!r}, which is not a model input (inputs: {names})")
    for vi in inputs:
        _check_tensor(vi, "input", label)
        dims = _dims(vi)
        if vi.name in given:
            shape = [int(d) for d in given[vi.name]]
            # a 0 in the model gives way to a given size (some exporters wrote 0 for "unknown")
            if dims is not None and (len(dims) != len(shape) or any(d and d != s for d, s in zip(dims, shape))):
                raise UsageError(f"{label}: --input-shape {vi.name}={'x'.join(map(str, shape))} does not match "
                                 f"the model's shape {_fmt_dims(dims)} for input {vi.name!r}")
            if any(s <= 0 for s in shape):
                raise UsageError(f"{label}: --input-shape {vi.name} must have positive dimensions, got {shape}")
        elif dims is None or any(d is None for d in dims):
            shown = "unknown" if dims is None else _fmt_dims(dims)
            hint = "x".join("1" if i == 0 and d is None else (str(d) if d is not None else "N")
                            for i, d in enumerate(dims or []))
            raise ModelError(f"input {vi.name!r} has a dynamic shape {shown}; set it with --input-shape "
                             f"{vi.name}={hint or '1x3x224x224'} (N: the size you will run with)", file=label)
        else:
            shape = [int(d) for d in dims]
        tshape = vi.type.tensor_type.shape
        tshape.ClearField("dim")
        for s in shape:
            tshape.dim.add().dim_value = s


def graph_from_proto(model: ModelProto, label: str, *, keep_sources: bool) -> Graph:
    """Build the IR (shapes of computed tensors still unset) and sort it."""
    g = model.graph
    graph = Graph(name=g.name or "graph", opset=default_opset(model) or 0)
    for init in g.initializer:
        _np_dtype(init.data_type, f"initializer {init.name!r}", label)
        try:
            graph.tensors[init.name] = Tensor.constant(init.name, numpy_helper.to_array(init))
        except Exception as exc:
            raise ModelError(f"initializer {init.name!r} cannot be read: {exc}", file=label) from exc
    for vi in g.input:
        if vi.name in graph.tensors:
            continue  # an initializer listed as input (IR < 4): a constant, not a run-time input
        dtype = _np_dtype(vi.type.tensor_type.elem_type, f"input {vi.name!r}", label)
        graph.tensors[vi.name] = Tensor(vi.name, tuple(d or 0 for d in _dims(vi) or []), dtype)
        graph.inputs.append(vi.name)
    used_names: set[str] = set()
    producers: dict[str, str] = {name: "graph input" for name in graph.inputs}
    producers.update({name: "initializer" for name, t in graph.tensors.items() if t.data is not None})
    for i, proto in enumerate(g.node):
        name = proto.name or f"{proto.op_type}_{i}"
        while name in used_names:
            name = f"{name}_{i}"
        used_names.add(name)
        attrs = {a.name: _attr_value(a, name, label) for a in proto.attribute}
        node = Node(name, proto.op_type, list(proto.input), list(proto.output), attrs, "",
                    (proto.name or name,) if keep_sources else ())
        for out in node.outputs:
            if out and out in producers:
                raise ModelError(f"tensor {out!r} is produced twice (also by {producers[out]})", file=label, node=name)
            if out:
                producers[out] = f"node {name!r}"
        if node.op == "Constant":
            graph.tensors[node.outputs[0]] = Tensor.constant(node.outputs[0], run_node(node, [], graph.opset)[0])
            continue
        graph.nodes.append(node)
    for node in graph.nodes:
        for name in node.inputs:
            if name and name not in producers:
                raise ModelError(f"dangling input {name!r}: neither a graph input, an initializer nor produced "
                                 "by any node (missing initializer?)", file=label, node=node.name)
    for out in g.output:
        _check_tensor(out, "graph output", label)
        if out.name not in producers:
            raise ModelError(f"graph output {out.name!r} is not produced by any node", file=label)
        graph.outputs.append(out.name)
    try:
        graph.toposort()
    except ModelError as exc:
        raise ModelError(str(exc).split(": ", 1)[1], file=label, node=exc.node) from exc
    for node in graph.nodes:
        for out in node.outputs:
            if out and out not in graph.tensors:
                graph.tensors[out] = Tensor(out, None, None)
    return graph
