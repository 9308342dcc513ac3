"""Static shapes and dtypes for every tensor of the IR.

Two sources, in order: ONNX shape inference (strict, with data propagation,
which resolves the Shape -> Gather -> Reshape chains exporters emit), then,
for whatever is still unknown, running the float executor on zero inputs of
the fixed input shapes. The second is exact by construction (it is the
semantics every later stage executes), so no tensor is left without a shape.
"""

from __future__ import annotations

__all__ = ["infer_proto", "apply_inferred", "complete_by_execution", "infer_shapes"]

import warnings
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto
from onnx.helper import tensor_dtype_to_np_dtype

from ..errors import ModelError
from ..ir import Graph
from ..reference import run_float


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
            try:
                dtype = np.dtype(tensor_dtype_to_np_dtype(ttype.elem_type))
            except Exception:
                dtype = None
        shape = None
        if ttype.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
            if all(d >= 0 for d in dims):
                shape = tuple(dims)
        found[vi.name] = (shape, dtype)
    return found


def complete_by_execution(graph: Graph, *, force: bool = False) -> int:
    """Fill missing shapes/dtypes (all of them with ``force``) by running the
    executor on zeros. Returns how many tensors it set or changed."""
    missing = [name for name, t in graph.tensors.items() if t.data is None and (t.shape is None or t.dtype is None)]
    if not missing and not force:
        return 0
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
