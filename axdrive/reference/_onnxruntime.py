"""Operators the float executor has no kernel for, run one node at a time in onnxruntime.

Why: a model is not refused because our numpy executor lacks one of its
operators (an LSTM, a TopK, a NonMaxSuppression). Such a node can never run on
the AIPU anyway; it ends up in a host part, which onnxruntime runs. Until then
the compile still has to execute it: shape completion, constant folding and
calibration all run the float model. This kernel gives every standard ONNX
operator that onnxruntime implements the same semantics there as on the host.

Each call builds a one-node model whose inputs are typed and shaped like the
arguments, and keeps the session for the next call with the same signature
(calibration runs a node once per sample). Subgraph attributes (``If``,
``Loop``, ``Scan``) have no plain form in the IR and stay unsupported.
"""

from __future__ import annotations

__all__ = ["onnxruntime_kernel", "onnxruntime_knows"]

import functools
from typing import Any

import numpy as np

from ..errors import UnsupportedOperatorError
from ..ir import Node


def onnxruntime_knows(op: str, domain: str = "") -> bool:
    """``op`` is a standard ONNX operator (the ones onnxruntime's CPU provider implements)."""
    import onnx

    return domain in ("", "ai.onnx") and onnx.defs.has(op)


def _freeze(value: Any) -> Any:
    """A hashable stand-in for an attribute value (arrays by dtype, shape and bytes)."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@functools.lru_cache(maxsize=256)
def _session(op: str, attrs: tuple, signature: tuple, n_outputs: int, opset: int) -> Any:
    import onnxruntime as ort
    from onnx import helper

    from ..onnx_io._export import _attribute

    inputs = []
    names = []
    for i, entry in enumerate(signature):
        if entry is None:  # an omitted optional input
            names.append("")
            continue
        dtype, shape = entry
        name = f"in{i}"
        names.append(name)
        inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                    list(shape)))
    outputs = [f"out{k}" for k in range(n_outputs)]
    node = helper.make_node(op, names, outputs)
    node.attribute.extend(_attribute(op, opset, key, _thaw(value)) for key, value in attrs)
    graph = helper.make_graph([node], f"axdrive_{op}", inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs])
    opset_id = helper.make_opsetid("", opset)
    model = helper.make_model(graph, opset_imports=[opset_id], producer_name="axdrive")
    model.ir_version = max(7, helper.find_min_ir_version_for([opset_id]))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime has its own exception types
        raise UnsupportedOperatorError(f"operator {op!r} is run by onnxruntime, which cannot build it: "
                                       f"{' '.join(str(exc).split())[:300]}") from None


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == "array":
        _, dtype, shape, data = value
        return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape).copy()
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def onnxruntime_kernel(node: Node, args: list[Any], opset: int) -> list[np.ndarray]:
    """Run ``node`` on ``args`` in onnxruntime; the outputs in ``node.outputs`` order."""
    if any(isinstance(v, dict) or hasattr(v, "node") for v in node.attrs.values()):
        raise UnsupportedOperatorError(f"operator {node.op!r} holds a subgraph; it is not supported", node=node.name)
    arrays = [None if a is None else np.asarray(a) for a in args]
    signature = tuple(None if a is None else (a.dtype.str, a.shape) for a in arrays)
    attrs = tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items()))
    n_outputs = len(node.outputs)
    sess = _session(node.op, attrs, signature, n_outputs, opset)
    feeds = {f"in{i}": a for i, a in enumerate(arrays) if a is not None}
    try:
        values = sess.run(None, feeds)
    except Exception as exc:
        raise UnsupportedOperatorError(f"operator {node.op!r} failed in onnxruntime: "
                                       f"{' '.join(str(exc).split())[:300]}", node=node.name) from None
    return [np.asarray(v) for v in values]
