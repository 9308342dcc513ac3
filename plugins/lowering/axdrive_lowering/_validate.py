"""Which nodes of a quantized graph the AIPU can run, and why not the others.

Why a check of its own, before any rewrite: a user whose model has three
unsupported operators wants to hear about all three at once, named as in
their model, with the reason, and not about whichever the first failing
rewrite or the code generator happens to trip over.
"""

from __future__ import annotations

__all__ = ["unsupported_nodes", "check_operators", "float_reason", "operator_rules"]

from typing import Any, Callable

import numpy as np

from axdrive.errors import UnsupportedOperatorError
from axdrive.ir import Graph, Node
from axdrive.operators import EVERY_OP, VIEW_OPS, Constraint, OperatorRegistry, OperatorRule

from ._layout import device_shape
from ._rules_moves import move_reason
from ._rules_spatial import ZERO_INSERTION, conv_pads_of_transpose

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


def _rank4(what: str) -> Callable[[Graph, Node], str | None]:
    def check(graph: Graph, node: Node) -> str | None:
        return None if len(_shape(graph, node.inputs[0])) == 4 else what
    return check


def _groups(graph: Graph, node: Node) -> str | None:
    w = graph.constant(node.inputs[1])
    groups = int(node.attrs.get("group", 1))
    c_in, c_out = _shape(graph, node.inputs[0])[1], _shape(graph, node.outputs[0])[1]
    if groups != 1 and (c_in % groups or c_out % groups or w.shape[1] * groups != c_in):
        return f"convolution with {groups} groups does not divide its {c_in} -> {c_out} channels"
    return None


def _explicit_pads(graph: Graph, node: Node) -> str | None:
    if node.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return "auto_pad SAME_* is not lowered; give explicit pads"
    return None


def _transpose_group(graph: Graph, node: Node) -> str | None:
    groups = int(node.attrs.get("group", 1))
    return None if groups == 1 else f"transposed convolution with {groups} groups is not lowered (only group 1)"


def _transpose_crop(graph: Graph, node: Node) -> str | None:
    if any(p < 0 for p in conv_pads_of_transpose(graph, node)):
        return ("transposed convolution whose pads exceed dilation x (kernel - 1) crops its output; only "
                "pads up to that are lowered (as a zero insertion and a stride-1 convolution)")
    return None


def _dense(graph: Graph, node: Node) -> str | None:
    return None if len(_shape(graph, node.inputs[0])) == 2 else "dense layers on more than 2-D inputs are not lowered"


def _no_trans_a(graph: Graph, node: Node) -> str | None:
    return "Gemm with transA is not lowered" if node.attrs.get("transA", 0) else None


def _constant_weight(graph: Graph, node: Node) -> str | None:
    return None if graph.is_constant(node.input(1)) else _RUNTIME_WEIGHTS


def _constant_operands(graph: Graph, node: Node) -> str | None:
    out = _shape(graph, node.outputs[0])
    for name in node.inputs[:2]:
        if name and graph.is_constant(name):
            c = graph.constant(name)
            if c.size > 1 and (len(out) < 2 or c.size != out[1] or max(c.shape) != c.size):
                return f"constant operand {name!r} of shape {list(c.shape)} is neither a scalar nor per channel"
    return None


def _broadcast(graph: Graph, node: Node) -> str | None:
    out = _shape(graph, node.outputs[0])
    for name in node.inputs[:2]:
        if not name or graph.is_constant(name):
            continue
        s = _shape(graph, name)
        if s != out and not (len(s) == 4 and s[2:] == (1, 1) and s[:2] == out[:2]):
            return f"operand {name!r} {list(s)} broadcasts other than a 1x1 map over the output {list(out)}"
    return None


def _maxpool(graph: Graph, node: Node) -> str | None:
    if node.attrs.get("ceil_mode", 0) or any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        return "MaxPool with ceil_mode or dilations is not lowered"
    return None


def _resize_factors(graph: Graph, node: Node) -> str | None:
    x, y = _shape(graph, node.inputs[0]), _shape(graph, node.outputs[0])
    if node.attrs.get("mode", "nearest") != "nearest" or len(x) != 4 or y[:2] != x[:2] or y[2] % x[2] or y[3] % x[3]:
        return "only nearest-neighbour upsampling by whole factors maps onto the DWPU"
    return None


def _resize_coordinates(graph: Graph, node: Node) -> str | None:
    x, y = _shape(graph, node.inputs[0]), _shape(graph, node.outputs[0])
    if node.attrs.get("coordinate_transformation_mode", "half_pixel") != "asymmetric" \
            or node.attrs.get("nearest_mode", "round_prefer_floor") != "floor":
        if y[2] != x[2] * 2 or y[3] != x[3] * 2:
            return "nearest Resize other than asymmetric/floor is only lowered for factor 2"
    return None


def _split_axis(graph: Graph, node: Node) -> str | None:
    x = _shape(graph, node.inputs[0])
    axis = int(node.attrs.get("axis", 0))
    if len(x) != 4 or axis % 4 == 0:
        return f"Split along axis {axis} of a rank-{len(x)} tensor (channels, rows or columns of NCHW are lowered)"
    return None


def _expand(graph: Graph, node: Node) -> str | None:
    x, y = _shape(graph, node.inputs[0]), _shape(graph, node.outputs[0])
    return None if len(x) == 4 and x[2:] == (1, 1) and y[:2] == x[:2] else "Expand other than 1x1 -> HxW"


def _view(graph: Graph, node: Node) -> str | None:
    x = _shape(graph, node.inputs[0])
    a, b = device_shape(x), device_shape(_shape(graph, node.outputs[0]))
    if a is None or a != b:
        return (f"{node.op} {list(x)} -> {list(_shape(graph, node.outputs[0]))} changes the channels-innermost "
                "layout; only reshapes between NCHW and NC of 1x1 maps are free")
    return None


def _concat(graph: Graph, node: Node) -> str | None:
    rank = len(_shape(graph, node.outputs[0]))
    return None if rank == 4 and int(node.attrs.get("axis", 0)) % 4 == 1 else "Concat other than along channels"


def _softmax_axis(graph: Graph, node: Node) -> str | None:
    rank = len(_shape(graph, node.inputs[0]))
    axis = int(node.attrs.get("axis", -1)) % rank
    if axis != 1:
        return (f"Softmax over axis {axis} of a rank-{rank} tensor; the DPU reduces over the channels (axis 1) "
                "of each pixel only (run_graph_cleaner leaves such a final Softmax to the host)")
    return None


def _exp_table(graph: Graph, node: Node) -> str | None:
    if np.shape(node.attrs.get("exp_table")) != (256,):
        return "Softmax without its 256-entry exponent table (exp_table); was it quantized by axdrive's quantizer?"
    return None


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


def _zero_insertion_unit(node: Node) -> str:
    return "dma" if node.attrs.get(ZERO_INSERTION) else "mvm"  # a lowered ConvTranspose's upsampling: a scatter


_C = Constraint
#: First of every MAC's constraints: the others read the weight's shape, and a product of two run-time tensors
#: has no MVM mapping at all.
_WEIGHT = _C("a constant weight", _constant_weight)
_RANK4_CONV = _C("2-D (rank-4 tensors)", _rank4("only 2-D convolutions (4-D tensors) map onto the MVM/DWPU"))
_ELEMENTWISE = (_C("a constant operand is a scalar or per channel", _constant_operands),
                _C("a run-time operand has the output's shape or is a 1x1 map broadcast over it", _broadcast))
_VIEW = ("nothing: a view of the same bytes", "view", (_C("only between NCHW and NC of 1x1 maps", _view),))

#: How each operator maps onto the AIPU: ``op -> (summary, unit, integer kernels, constraints)``. These are the
#: lowering's ``aipu`` rules of the operator registry (:func:`operator_rules`); the constraints are the checks of
#: ``lowering.validate_operators`` (docs/lowering.md, "emit_program", has the tasks).
_AIPU: dict[str, tuple[str, Any, tuple[str, ...], tuple[Constraint, ...]]] = {
    "Conv": ("MVM conv2d (depthwise: DWPU), requantization fused", "mvm", ("mac",),
             (_WEIGHT, _RANK4_CONV, _C("groups divide the channels", _groups),
              _C("explicit pads (no auto_pad SAME_*)", _explicit_pads))),
    "ConvTranspose": ("DMA zero insertion, then an MVM stride-1 conv2d", _zero_insertion_unit, ("mac",),
                      (_WEIGHT, _RANK4_CONV, _C("group 1", _transpose_group),
                       _C("pads up to dilation x (kernel - 1)", _transpose_crop))),
    "Gemm": ("MVM matmul (or conv2d: rewrite_dense_to_conv2d)", "mvm", ("mac",),
             (_WEIGHT, _C("2-D input", _dense), _C("no transA", _no_trans_a))),
    "MatMul": ("MVM matmul (or conv2d: rewrite_dense_to_conv2d)", "mvm", (), (_WEIGHT, _C("2-D input", _dense))),
    **dict.fromkeys(("Add", "Sub"), ("DPU program", "dpu", ("add", "sub"), _ELEMENTWISE)),
    **dict.fromkeys(("Mul", "Div"), ("DPU program", "dpu", ("mul",), _ELEMENTWISE)),
    "Concat": ("strided DMA into channel slices", "dma", ("concat",),
               (_C("along the channels of rank-4 tensors", _concat),)),
    **dict.fromkeys(("AveragePool", "GlobalAveragePool"), (
        "DWPU depthwise with unit weights", "dwpu", ("avgpool",),
        (_C("2-D", _rank4("only 2-D average pooling is lowered")),))),
    "MaxPool": ("DWPU maxpool", "dwpu", ("move",),
                (_C("2-D", _rank4("only 2-D max pooling is lowered")), _C("no ceil_mode, no dilations", _maxpool))),
    "Resize": ("DWPU resize_nearest", "dwpu", ("move",),
               (_C("nearest, by whole factors", _resize_factors),
                _C("asymmetric/floor, else factor 2 only", _resize_coordinates))),
    "Expand": ("DWPU resize_nearest", "dwpu", ("move",), (_C("a 1x1 map to HxW", _expand),)),
    "Split": ("DMA copies", "dma", ("move",), (_C("along the channels, rows or columns of an NCHW tensor",
                                                 _split_axis),)),
    "Slice": ("DMA copies", "dma", ("move",),
              (_C("constant starts, ends, axes and steps of a rank-4 tensor, not along the batch axis", move_reason),)),
    "Gather": ("DMA copies", "dma", ("move",),
               (_C("constant 1-D indices into a rank-4 tensor, not along the batch axis", move_reason),)),
    "Transpose": ("DMA copies", "dma", ("move",), (_C("only the H/W swap [0, 1, 3, 2]", move_reason),)),
    **dict.fromkeys(sorted(VIEW_OPS), (_VIEW[0], _VIEW[1], ("move",), _VIEW[2])),
    "Softmax": ("DPU program (pixel reductions)", "dpu", ("softmax",),
                (_C("over the channels (axis 1)", _softmax_axis),
                 _C("a final Softmax of the model (the graph cleaner's tail search keeps any other on the host)"),
                 _C("its 256-entry exponent table", _exp_table, quantized=True))),
}


def operator_rules() -> list[OperatorRule]:
    """The lowering's ``aipu`` rules: what every node must meet, each operator's mapping, and the tables."""
    every = OperatorRule(EVERY_OP, "aipu", "every node", (
        _C("batch 1; every output of rank 4 (NCHW) or 2 (NC)", _output_shapes),
        _C("one zero point per tensor; one clamp for all channels", _per_tensor, quantized=True)))
    rules = [OperatorRule(op, "aipu", summary, constraints, kinds=kinds, unit=unit)
             for op, (summary, unit, kinds, constraints) in sorted(_AIPU.items())]
    return [every, *rules, OperatorRule("", "aipu", "DPU program (table lookup)", kinds=("lut",), unit="dpu")]


def float_reason(graph: Graph, node: Node, operators: OperatorRegistry) -> str | None:
    """Why the float ``node`` cannot run on the AIPU whatever its quantization, or None: the registry's ``aipu``
    constraints that do not depend on quantization (the same predicates ``validate_operators`` applies to the
    quantized node, so a node named here would fail there; named here, it goes to the host instead)."""
    if node.domain not in ("", "ai.onnx") or node.op in ("QuantizeLinear", "DequantizeLinear"):
        return None  # a QDQ model's grid markers (lower_only): the quantizer's import removes them
    if all(not i or graph.is_constant(i) for i in node.inputs):
        return None  # a computation on constants (a QDQ weight) is folded, never run
    return operators.aipu_reason(graph, node)


def _reason(graph: Graph, node: Node, operators: OperatorRegistry) -> str | None:
    kind = node.attrs.get("integer_op")
    if kind in ("quantize", "dequantize"):
        return None  # the float edges: removed by lowering.remove_float_io
    if kind is None:
        return "the node has no integer semantics (was the graph quantized?)"
    return operators.aipu_reason(graph, node, kind=kind, quantized=True)


def unsupported_nodes(graph: Graph, operators: OperatorRegistry) -> list[tuple[Node, str]]:
    """Every node the AIPU cannot run, with the reason, in graph order."""
    out = []
    for node in graph.nodes:
        why = _reason(graph, node, operators)
        if why:
            out.append((node, why.strip()))
    return out


def check_operators(graph: Graph, operators: OperatorRegistry) -> dict[str, int]:
    """Raise one :class:`UnsupportedOperatorError` listing every unsupported node."""
    bad = unsupported_nodes(graph, operators)
    if bad:
        listed = ", ".join(f"{node.name!r} ({node.op}: {why})" for node, why in bad)
        noun = "node cannot" if len(bad) == 1 else "nodes cannot"
        reasons = {src: f"{node.op}: {why}" for node, why in bad for src in (node.source or (node.name,))}
        raise UnsupportedOperatorError(f"{len(bad)} {noun} run on the AIPU: {listed}", node=bad[0][0].name,
                                       reasons=reasons)
    return {"nodes_checked": len(graph.nodes)}
