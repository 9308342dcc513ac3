"""Which nodes of a quantized graph the AIPU can run, and why not the others.

Why a check of its own, before any rewrite: a user whose model has three
unsupported operators wants to hear about all three at once, named as in
their model, with the reason, and not about whichever the first failing
rewrite or the code generator happens to trip over.
"""

from __future__ import annotations

__all__ = ["unsupported_nodes", "check_operators", "float_reason", "operator_support"]

from typing import Callable

import numpy as np

from axdrive.errors import UnsupportedOperatorError
from axdrive.ir import Graph, Node
from axdrive.operators import VIEW_OPS

from ._layout import device_shape
from ._rules_moves import move_reason
from ._rules_spatial import conv_pads_of_transpose

_ALIAS_OPS = VIEW_OPS
_RUNTIME_WEIGHTS = "a product of two run-time tensors has no MVM mapping (weights must be constant)"


def _shape(graph: Graph, name: str) -> tuple[int, ...]:
    return tuple(graph.tensors[name].shape)


def _per_tensor(graph: Graph, node: Node) -> str | None:
    """Per-channel activation grids lower only with one zero point shared by the channels: the data path
    subtracts one zero point per tensor, and per-channel *scales* live in the producer's and the consumers'
    per-channel requantization (the quantizer makes such grids only where that holds: a Conv's output read
    by depthwise convolutions, docs/quantization.md)."""
    for name in (*node.inputs, *node.outputs):
        if not name or graph.is_constant(name):
            continue
        qp = graph.tensors[name].qparams
        if qp is not None and qp.axis is not None and np.unique(np.asarray(qp.zero_point)).size > 1:
            return (f"tensor {name!r} is quantized per channel with different zero points; the AIPU's data path "
                    "takes one zero point per tensor")
    for key in ("clamp_min", "clamp_max"):
        if key in node.attrs and np.unique(np.asarray(node.attrs[key])).size > 1:
            return f"its fused clamp ({key}) differs per channel; the output stage clamps the whole tensor alike"
    return None


def _conv(graph: Graph, node: Node) -> str | None:
    if len(_shape(graph, node.inputs[0])) != 4:
        return "only 2-D convolutions (4-D tensors) map onto the MVM/DWPU"
    w = graph.constant(node.inputs[1])
    groups = int(node.attrs.get("group", 1))
    if node.op == "ConvTranspose":
        if groups != 1:
            return f"transposed convolution with {groups} groups is not lowered (only group 1)"
        crop = [p for p in conv_pads_of_transpose(graph, node) if p < 0]
        if crop:
            return ("transposed convolution whose pads exceed dilation x (kernel - 1) crops its output; only "
                    "pads up to that are lowered (as a zero insertion and a stride-1 convolution)")
        return None
    c_in, c_out = _shape(graph, node.inputs[0])[1], _shape(graph, node.outputs[0])[1]
    if groups != 1 and (c_in % groups or c_out % groups or w.shape[1] * groups != c_in):
        return f"convolution with {groups} groups does not divide its {c_in} -> {c_out} channels"
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "auto_pad SAME_* is not lowered; give explicit pads"
    return None


def _dense(graph: Graph, node: Node) -> str | None:
    if len(_shape(graph, node.inputs[0])) != 2:
        return "dense layers on more than 2-D inputs are not lowered"
    if node.op == "Gemm" and node.attrs.get("transA", 0):
        return "Gemm with transA is not lowered"
    return None


def _elementwise(graph: Graph, node: Node) -> str | None:
    out = _shape(graph, node.outputs[0])
    for name in node.inputs[:2]:
        if graph.is_constant(name):
            c = graph.constant(name)
            if c.size > 1 and (len(out) < 2 or c.size != out[1] or max(c.shape) != c.size):
                return f"constant operand {name!r} of shape {list(c.shape)} is neither a scalar nor per channel"
            continue
        s = _shape(graph, name)
        if s != out and not (len(s) == 4 and s[2:] == (1, 1) and s[:2] == out[:2]):
            return f"operand {name!r} {list(s)} broadcasts other than a 1x1 map over the output {list(out)}"
    return None


def _move(graph: Graph, node: Node) -> str | None:
    op = node.op
    x = _shape(graph, node.inputs[0])
    if op == "MaxPool":
        if node.attrs.get("ceil_mode", 0) or any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
            return "MaxPool with ceil_mode or dilations is not lowered"
        return None if len(x) == 4 else "only 2-D max pooling is lowered"
    if op == "Resize":
        y = _shape(graph, node.outputs[0])
        if node.attrs.get("mode", "nearest") != "nearest" or len(x) != 4 or y[:2] != x[:2] \
                or y[2] % x[2] or y[3] % x[3]:
            return "only nearest-neighbour upsampling by whole factors maps onto the DWPU"
        if node.attrs.get("coordinate_transformation_mode", "half_pixel") != "asymmetric" \
                or node.attrs.get("nearest_mode", "round_prefer_floor") != "floor":
            if y[2] != x[2] * 2 or y[3] != x[3] * 2:
                return "nearest Resize other than asymmetric/floor is only lowered for factor 2"
        return None
    if op == "Split":
        axis = int(node.attrs.get("axis", 0))
        if len(x) != 4 or axis % 4 == 0:
            return f"{op} along axis {axis} of a rank-{len(x)} tensor (channels, rows or columns of NCHW are lowered)"
        return None
    if op in ("Slice", "Gather", "Transpose"):
        return move_reason(graph, node)
    if op == "Expand":
        y = _shape(graph, node.outputs[0])
        return None if len(x) == 4 and x[2:] == (1, 1) and y[:2] == x[:2] else "Expand other than 1x1 -> HxW"
    if op in _ALIAS_OPS:
        a, b = device_shape(x), device_shape(_shape(graph, node.outputs[0]))
        if a is None or a != b:
            return (f"{op} {list(x)} -> {list(_shape(graph, node.outputs[0]))} changes the channels-innermost "
                    "layout; only reshapes between NCHW and NC of 1x1 maps are free")
        return None
    return f"data movement {op} is not lowered"


def _concat(graph: Graph, node: Node) -> str | None:
    rank = len(_shape(graph, node.outputs[0]))
    return None if rank == 4 and int(node.attrs.get("axis", 0)) % 4 == 1 else "Concat other than along channels"


def _pool(graph: Graph, node: Node) -> str | None:
    return None if len(_shape(graph, node.inputs[0])) == 4 else "only 2-D average pooling is lowered"


def _softmax_axis(graph: Graph, node: Node) -> str | None:
    rank = len(_shape(graph, node.inputs[0]))
    axis = int(node.attrs.get("axis", -1)) % rank
    if axis != 1:
        return (f"Softmax over axis {axis} of a rank-{rank} tensor; the DPU reduces over the channels (axis 1) "
                "of each pixel only (run_graph_cleaner leaves such a final Softmax to the host)")
    return None


def _softmax(graph: Graph, node: Node) -> str | None:
    why = _softmax_axis(graph, node)
    if why:
        return why
    if np.shape(node.attrs.get("exp_table")) != (256,):
        return "Softmax without its 256-entry exponent table (exp_table); was it quantized by axdrive's quantizer?"
    return None


_CHECKS: dict[str, Callable[[Graph, Node], str | None]] = {
    "move": _move, "add": _elementwise, "sub": _elementwise, "mul": _elementwise, "lut": lambda g, n: None,
    "concat": _concat, "avgpool": _pool, "softmax": _softmax,
}


def _output_shapes(graph: Graph, node: Node) -> str | None:
    """Every output is a batch-1 tensor of rank 4 (NCHW) or 2 (NC): the layouts the device stores."""
    for name in node.outputs:
        shape = graph.tensors[name].shape if name in graph.tensors else None
        if not name or shape is None:
            continue
        if device_shape(shape) is None:
            why = f"output {name!r} has rank {len(shape)}; the AIPU stores NCHW (rank 4) or NC (rank 2) tensors"
            if node.op == "Gather" and graph.is_constant(node.inputs[1]) and graph.constant(node.inputs[1]).ndim == 0:
                why = "a scalar index removes the gathered axis: " + why
            return why
        if shape[0] != 1:
            return f"output {name!r} has batch {shape[0]}; programs run one frame (batch 1) at a time"
    return None


def _reason(graph: Graph, node: Node) -> str | None:
    kind = node.attrs.get("integer_op")
    if kind in ("quantize", "dequantize"):
        return None  # the float edges: removed by lowering.remove_float_io
    if kind is None:
        return "the node has no integer semantics (was the graph quantized?)"
    why = _output_shapes(graph, node) or _per_tensor(graph, node)
    if why:
        return why
    if kind == "mac":
        return _conv(graph, node) if node.op in ("Conv", "ConvTranspose") else _dense(graph, node)
    if kind == "matmul":
        return _RUNTIME_WEIGHTS
    check = _CHECKS.get(kind)
    return check(graph, node) if check else f"integer_op {kind!r} has no AIPU mapping"


#: On the float graph (before quantization): the checks above that depend only on operators, shapes and
#: attributes, by ONNX operator. Each is the same predicate ``validate_operators`` applies to the quantized node,
#: so a node it names would fail there; named here, it goes to the host instead (``axdrive_host_reason``).
_FLOAT_CHECKS: dict[str, Callable[[Graph, Node], str | None]] = {
    "Conv": _conv, "ConvTranspose": _conv, "Gemm": _dense, "Concat": _concat,
    "AveragePool": _pool, "GlobalAveragePool": _pool,
    **dict.fromkeys(("Add", "Sub", "Mul"), _elementwise),
    **dict.fromkeys(("MaxPool", "Resize", "Split", "Slice", "Gather", "Transpose", "Expand", "GlobalMaxPool",
                     "DepthToSpace", "SpaceToDepth", "Pad", "Tile", *_ALIAS_OPS), _move),
}


#: The mapping and the constraints of ``_FLOAT_CHECKS`` and ``_CHECKS`` in words, per operator, for the
#: supported-operators report (docs/lowering.md, "emit_program", has the tasks). Every operator besides: batch 1,
#: tensors of rank 4 (NCHW) or 2 (NC).
_AIPU: dict[str, tuple[str, tuple[str, ...]]] = {
    "Conv": ("MVM conv2d (depthwise: DWPU), requantization fused",
             ("2-D (rank-4 tensors)", "groups divide the channels", "explicit pads (no auto_pad SAME_*)")),
    "ConvTranspose": ("DMA zero insertion, then an MVM stride-1 conv2d",
                      ("group 1", "pads up to dilation x (kernel - 1)")),
    "Gemm": ("MVM matmul (or conv2d: rewrite_dense_to_conv2d)", ("2-D input", "no transA")),
    "MatMul": ("MVM matmul (or conv2d: rewrite_dense_to_conv2d)", ("2-D input", "a constant weight")),
    **dict.fromkeys(("Add", "Sub", "Mul", "Div"), (
        "DPU program", ("a constant operand is a scalar or per channel",
                        "a run-time operand has the output's shape or is a 1x1 map broadcast over it"))),
    "Concat": ("strided DMA into channel slices", ("along the channels of rank-4 tensors",)),
    **dict.fromkeys(("AveragePool", "GlobalAveragePool"), ("DWPU depthwise with unit weights", ("2-D",))),
    "MaxPool": ("DWPU maxpool", ("2-D", "no ceil_mode, no dilations")),
    "Resize": ("DWPU resize_nearest", ("nearest", "whole factors", "asymmetric/floor, else factor 2 only")),
    "Expand": ("DWPU resize_nearest", ("a 1x1 map to HxW",)),
    "Split": ("DMA copies", ("along the channels, rows or columns of an NCHW tensor",)),
    "Slice": ("DMA copies", ("constant starts, ends, axes and steps", "not along the batch axis", "rank 4")),
    "Gather": ("DMA copies", ("constant 1-D indices", "not along the batch axis", "rank 4")),
    "Transpose": ("DMA copies", ("only the H/W swap [0, 1, 3, 2]",)),
    **dict.fromkeys(("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"), (
        "nothing: a view of the same bytes", ("only between NCHW and NC of 1x1 maps",))),
    "Softmax": ("DPU program (pixel reductions)", ("over the channels (axis 1)", "a final Softmax of the model")),
}


def operator_support() -> list:
    """:data:`_AIPU` as report entries, plus the table-driven element-wise operators the DPU runs."""
    from axdrive.operators import OperatorSupport

    entries = [OperatorSupport(op, "aipu", summary, constraints) for op, (summary, constraints) in sorted(_AIPU.items())]
    entries.append(OperatorSupport("", "aipu", "DPU program (table lookup)", kind="lut"))
    return entries


def float_reason(graph: Graph, node: Node) -> str | None:
    """Why the float ``node`` cannot run on the AIPU whatever its quantization, or None (see ``_FLOAT_CHECKS``)."""
    if node.domain not in ("", "ai.onnx") or node.op in ("QuantizeLinear", "DequantizeLinear"):
        return None  # a QDQ model's grid markers (lower_only): the quantizer's import removes them
    if all(not i or graph.is_constant(i) for i in node.inputs):
        return None  # a computation on constants (a QDQ weight) is folded, never run
    why = _output_shapes(graph, node)
    if why:
        return why
    if node.op in ("MatMul", "Conv", "ConvTranspose", "Gemm") and not graph.is_constant(node.input(1)):
        return _RUNTIME_WEIGHTS  # the quantizer makes the same product an integer "matmul": no MVM mapping
    if node.op == "MatMul":
        return _dense(graph, node)
    if node.op == "Softmax":
        return _softmax_axis(graph, node)
    check = _FLOAT_CHECKS.get(node.op)
    return None if check is None else check(graph, node)


def unsupported_nodes(graph: Graph) -> list[tuple[Node, str]]:
    """Every node the AIPU cannot run, with the reason, in graph order."""
    out = []
    for node in graph.nodes:
        why = _reason(graph, node)
        if why:
            out.append((node, why.strip()))
    return out


def check_operators(graph: Graph) -> dict[str, int]:
    """Raise one :class:`UnsupportedOperatorError` listing every unsupported node."""
    bad = unsupported_nodes(graph)
    if bad:
        listed = ", ".join(f"{node.name!r} ({node.op}: {why})" for node, why in bad)
        noun = "node cannot" if len(bad) == 1 else "nodes cannot"
        reasons = {src: f"{node.op}: {why}" for node, why in bad for src in (node.source or (node.name,))}
        raise UnsupportedOperatorError(f"{len(bad)} {noun} run on the AIPU: {listed}", node=bad[0][0].name,
                                       reasons=reasons)
    return {"nodes_checked": len(graph.nodes)}
