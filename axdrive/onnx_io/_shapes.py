"""Static shapes and dtypes for every tensor of the IR.

Two sources, in order: ONNX shape inference (strict, with data propagation,
which resolves the Shape -> Gather -> Reshape chains exporters emit), then,
for whatever is still unknown, running the float executor on zero inputs of
the fixed input shapes. The second is exact by construction (it is the
semantics every later stage executes), so no tensor is left without a shape.
"""

from __future__ import annotations

__all__ = ["infer_proto", "apply_inferred", "complete_by_execution", "infer_shapes", "value_dependent_shapes",
           "SHAPE_INPUTS"]

import warnings
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto

from ..errors import ModelError
from ..ir import Graph, Node
from ..reference import run_float
from ._import import elem_type_name, supported_dtype


def infer_proto(model: ModelProto, label: str) -> dict[str, tuple[tuple[int, ...] | None, np.dtype | None]]:
    """Shapes and dtypes ONNX shape inference finds (``None`` where it cannot)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # InferenceError, ValidationError
        text = " ".join(str(exc).split())
        raise ModelError(f"shape inference failed: {text}", file=label) from exc
    found: dict[str, tuple[tuple[int, ...] | None, np.dtype | None]] = {}
    g = inferred.graph
    for vi in [*g.input, *g.value_info, *g.output]:
        ttype = vi.type.tensor_type
        dtype = None
        if ttype.elem_type:
            dtype = supported_dtype(ttype.elem_type)
            if dtype is None:  # a Cast to bfloat16, a float8 QuantizeLinear, ...
                producer = next((n.name or f"{n.op_type}_{i}" for i, n in enumerate(g.node) if vi.name in n.output),
                                None)
                raise ModelError(f"tensor {vi.name!r} has unsupported element type "
                                 f"{elem_type_name(ttype.elem_type)}", file=label, node=producer)
        shape = None
        if ttype.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
            if all(d >= 0 for d in dims):
                shape = tuple(dims)
        found[vi.name] = (shape, dtype)
    return found


#: Inputs whose *values* set the shape of an operator's output (ONNX spec), by operator.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,),
    "Slice": (1, 2, 3, 4), "Pad": (1, 3), "ConstantOfShape": (0,), "Range": (0, 1, 2), "Resize": (2, 3),
    **{op: (1,) for op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                           "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp")},
}


def value_dependent_shapes(graph: Graph) -> dict[str, tuple[str, Node, int]]:
    """Tensors whose shape depends on the *values* of a graph input, each with the input and
    the node input (node, index) where a value derived from it sets a shape. Values flow
    through every operator but Shape and Size, which read only shapes."""
    value_from: dict[str, str] = {name: name for name in graph.inputs}
    shape_from: dict[str, tuple[str, Node, int]] = {}
    for node in graph.nodes:
        dynamic = next(((value_from[node.inputs[i]], node, i) for i in SHAPE_INPUTS.get(node.op, ())
                        if i < len(node.inputs) and node.inputs[i] in value_from), None)
        if dynamic is None:
            dynamic = next((shape_from[n] for n in node.inputs if n in shape_from), None)
        if node.op in ("Shape", "Size"):
            source = dynamic[0] if dynamic else None
            dynamic = None  # the output's own shape is static
        else:
            source = next((value_from[n] for n in node.inputs if n in value_from), None)
        for out in node.outputs:
            if out and dynamic:
                shape_from[out] = dynamic
            if out and source:
                value_from[out] = source
    return shape_from


def complete_by_execution(graph: Graph, *, force: bool = False) -> int:
    """Fill missing shapes/dtypes (all of them with ``force``) by running the
    executor on zeros. Returns how many tensors it set or changed.

    Zeros give the right shapes only where shapes do not depend on input values: a
    missing shape that does (Reshape's shape, a Slice's starts, ... computed from a
    graph input) is refused in one line naming the input to make constant."""
    missing = [name for name, t in graph.tensors.items() if t.data is None and (t.shape is None or t.dtype is None)]
    if not missing and not force:
        return 0
    dynamic = value_dependent_shapes(graph)
    for name in (graph.tensors if force else missing):
        if name in dynamic:
            source, node, index = dynamic[name]
            raise ModelError(f"the shape of {name!r} depends on the values of graph input {source!r} (input "
                             f"{index} of {node.op}); axdrive compiles static shapes: make {source!r} an "
                             "initializer", node=node.name)
    _check_execution_fits(graph)
    feeds = {name: np.zeros(graph.tensors[name].shape, graph.tensors[name].dtype) for name in graph.inputs}
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = run_float(graph, feeds, keep_all=True)
    except MemoryError:
        raise ModelError("running the model on zeros to find its remaining shapes ran out of memory; give "
                         "smaller fixed input shapes (--input-shape NAME=1x3xHxW)", file=graph.name) from None
    changed = 0
    for name, value in values.items():
        t = graph.tensors[name]
        shape, dtype = tuple(value.shape), np.dtype(value.dtype)
        if t.shape != shape or t.dtype != dtype:
            t.shape, t.dtype = shape, dtype
            changed += 1
    return changed


def _check_execution_fits(graph: Graph) -> None:
    """Refuse, in one line naming the largest tensor, a run on zeros whose *known* tensors alone (every one
    is kept: ``keep_all``) exceed the memory this process can allocate: a model declaring a 1x3x100000x100000
    input must not reach the OOM killer before the quantizer's own estimate can speak."""
    from ..inputs import available_memory_bytes, format_bytes

    sizes = {name: int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize
             for name, t in graph.tensors.items()
             if t.data is None and t.shape is not None and t.dtype is not None and all(d > 0 for d in t.shape)}
    room = available_memory_bytes()
    if not sizes or room is None or sum(sizes.values()) <= room:
        return
    largest = max(sizes, key=lambda n: sizes[n])
    raise ModelError(f"finding the remaining shapes means running the model once, and its tensors of known shape "
                     f"alone take {format_bytes(sum(sizes.values()))} (the largest, {largest!r} "
                     f"{list(graph.tensors[largest].shape)}, {format_bytes(sizes[largest])}) against "
                     f"{format_bytes(room)} available; give smaller fixed input shapes (--input-shape)",
                     file=graph.name)


def apply_inferred(graph: Graph, found: dict[str, Any]) -> int:
    """Copy inferred shapes/dtypes into non-constant tensors; returns how many changed."""
    changed = 0
    for name, t in graph.tensors.items():
        if t.data is not None or name in graph.inputs or name not in found:
            continue
        shape, dtype = found[name]
        if shape is not None and dtype is not None and (t.shape != shape or t.dtype != dtype):
            t.shape, t.dtype = shape, dtype
            changed += 1
    return changed


def infer_shapes(graph: Graph) -> dict[str, int]:
    """Recompute every computed tensor's shape and dtype (after rewrites).
    Returns statistics: tensors, changed, completed_by_execution."""
    from ._export import to_onnx

    computed = [n for n, t in graph.tensors.items() if t.data is None and n not in graph.inputs]
    before = {n: (graph.tensors[n].shape, graph.tensors[n].dtype) for n in computed}
    for name in computed:
        graph.tensors[name].shape = graph.tensors[name].dtype = None
    inferred = apply_inferred(graph, infer_proto(to_onnx(graph), f"<graph {graph.name}>"))
    executed = complete_by_execution(graph)
    changed = sum(1 for n in computed if before[n] != (graph.tensors[n].shape, graph.tensors[n].dtype))
    return {"tensors": len(computed), "inferred": inferred, "completed_by_execution": executed, "changed": changed}
