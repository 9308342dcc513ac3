"""Which integer kernel each float operator becomes, and which tensors may be per-channel.

Why a classification module: the quantizer, the calibration observer (which
tensors need per-channel statistics) and the QDQ reader all ask the same
questions of a float node ("is this a MAC with constant weights?", "can an
8-bit table compute it?"), so the answers live in one place.
"""

from __future__ import annotations

__all__ = ["MAC_OPS", "MOVE_OPS", "FUSABLE_ACTIVATIONS", "LUT_OPS", "is_mac", "is_depthwise", "lut_input",
           "activation_bounds", "fusions", "per_channel_candidates", "integer_kind", "operator_support"]

import numpy as np

from axdrive import operators
from axdrive.ir import AXDRIVE_DOMAIN, Graph, Node

#: Multiply-accumulate operators (the core's operator class); quantized as such with a constant weight (input 1).
MAC_OPS = operators.MAC_OPS
#: Operators that only move or select int8 values (the core's operator class): the output shares the input's grid.
MOVE_OPS = operators.MOVE_OPS
#: Activations that become the clamp of the preceding MAC/Add when they are its only consumer.
FUSABLE_ACTIVATIONS = frozenset({"Relu", "Clip", "Relu6"})
#: Element-wise functions of one activation (other operands, if any, scalar constants): 256-entry LUTs.
LUT_OPS = frozenset({"Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "SiLU", "Relu", "Clip", "Relu6",
                     "Elu", "Selu", "Gelu", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
                     "Sin", "Cos", "Reciprocal", "Ceil", "Floor", "Round", "Sign", "Pow", "Add", "Sub", "Mul",
                     "Div", "Max", "Min", "PRelu"})


def is_mac(graph: Graph, node: Node) -> bool:
    """A Conv/ConvTranspose/Gemm/MatMul whose weight (input 1) is a constant."""
    return node.op in MAC_OPS and node.domain == "" and graph.is_constant(node.input(1)) \
        and not graph.is_constant(node.input(0))


def integer_kind(graph: Graph, node: Node) -> str | None:
    """Which integer kernel quantizes ``node`` (the name of the quantizer's method: ``"mac"``, ``"move"``,
    ``"lut"``, ``"add"``, ``"mul"``, ``"matmul"``, ``"concat"``, ``"avgpool"``, ``"softmax"``), or ``None``
    when there is none: the one dispatch the quantizer follows and the host-placement answer is read from."""
    if is_mac(graph, node):
        return "mac"
    if node.op in MOVE_OPS and node.domain == "":
        return "move"
    if lut_input(graph, node) is not None:
        return "lut"
    live = [x for x in node.inputs if x and not graph.is_constant(x)]
    if node.op in ("Add", "Sub") and len(node.inputs) == 2:
        return "add"
    if node.op in ("Mul", "Div") and len(node.inputs) == 2 and not (node.op == "Div" and len(live) == 2):
        return "mul"
    if node.op == "MatMul" and len(live) == 2:
        return "matmul"
    if node.op == "Concat":
        return "concat"
    if node.op in ("GlobalAveragePool", "AveragePool"):
        return "avgpool"
    if node.op == "Softmax":
        return "softmax"
    return None


def operator_support() -> list:
    """What :func:`integer_kind` quantizes, in words, for the supported-operators report."""
    from axdrive.operators import OperatorSupport

    def each(ops, summary, *constraints):  # noqa: ANN001, ANN202
        kind = summary.split(":", 1)[0] if ":" in summary else ""
        return [OperatorSupport(op, "int8", summary, tuple(constraints), kind=kind) for op in sorted(ops)]

    return [
        *each(MAC_OPS - {"MatMul"}, "mac: int8 x int8 summed in int32, requantized per output channel",
              "the weight (input 1) and the bias are constants"),
        *each({"MatMul"}, "mac with a constant weight of rank 2; or matmul of two run-time tensors"),
        *each(MOVE_OPS, "move: int8 values moved or selected, the output on the input's grid"),
        *each(LUT_OPS - {"Add", "Sub", "Mul", "Div"}, "lut: a table of 256 int8 entries",
              "one run-time input; any other operand a scalar constant"),
        *each({"Add", "Sub"}, "add: both operands rescaled to the output's grid (a scalar constant: a table)"),
        *each({"Mul", "Div"}, "mul: the product requantized (a scalar constant: a table)",
              "Div only by a constant"),
        *each({"Concat"}, "concat: every input rescaled to the output's grid"),
        *each({"AveragePool", "GlobalAveragePool"}, "avgpool: the window sum requantized by 1/count"),
        *each({"Softmax"}, "softmax: a 256-entry exponent table and an integer normalisation"),
    ]


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A Conv with one input channel per group (every channel filtered on its own)."""
    if node.op != "Conv" or not graph.is_constant(node.input(1)):
        return False
    groups = int(node.attrs.get("group", 1))
    w = graph.constant(node.input(1))
    return groups > 1 and w.shape[1] == 1 and w.shape[0] == groups


def lut_input(graph: Graph, node: Node) -> str | None:
    """The single activation input of an element-wise node a LUT can compute, else None."""
    if node.op not in LUT_OPS or node.domain not in ("", AXDRIVE_DOMAIN) or len(node.outputs) != 1:
        return None
    live = [name for name in node.inputs if name and not graph.is_constant(name)]
    consts = [graph.constant(name) for name in node.inputs if name and graph.is_constant(name)]
    if len(live) != 1 or any(c.size > 1 for c in consts):
        return None
    return live[0]


def activation_bounds(graph: Graph, node: Node) -> tuple[float, float] | None:
    """The real clamp ``(lo, hi)`` of a fusable Relu/Clip/Relu6, or None if its bounds are not constant."""
    if node.op == "Relu" and node.domain == "":
        return 0.0, float("inf")
    if node.op == "Relu6" and node.domain == AXDRIVE_DOMAIN:
        return 0.0, 6.0
    if node.op == "Clip" and node.domain == "":
        if "min" in node.attrs or "max" in node.attrs:  # opset < 11
            return float(node.attrs.get("min", -np.inf)), float(node.attrs.get("max", np.inf))
        bounds = []
        for index, default in ((1, -np.inf), (2, np.inf)):
            name = node.input(index)
            if name and not graph.is_constant(name):
                return None
            bounds.append(float(graph.constant(name)) if name else default)
        return bounds[0], bounds[1]
    return None


def fusions(graph: Graph) -> dict[str, Node]:
    """Producer node name -> the activation node fused into its clamp: a Relu/Clip
    that is the only consumer of a MAC's or an Add/Sub's output (not a graph output)."""
    users = graph.consumer_map()
    producers = graph.producers()
    fused: dict[str, Node] = {}
    for node in graph.nodes:
        if node.op not in FUSABLE_ACTIVATIONS or activation_bounds(graph, node) is None:
            continue
        src = node.input(0)
        prod = producers.get(src)
        if prod is None or src in graph.outputs or len(users.get(src, [])) != 1 or prod.name in fused:
            continue
        if is_mac(graph, prod) or (prod.op in ("Add", "Sub") and lut_input(graph, prod) is None):
            fused[prod.name] = node
    return fused


def per_channel_candidates(graph: Graph, fused: dict[str, Node]) -> set[str]:
    """Tensors that may be quantized per channel (axis 1): produced by a Conv (its
    per-channel requantization absorbs the per-channel output scale) and read
    only by depthwise convolutions (whose per-channel requantization absorbs
    the per-channel input scale). Names are those of the quantized graph, i.e.
    the fused activation's output where one was fused."""
    users = graph.consumer_map()
    out: set[str] = set()
    for node in graph.nodes:
        if node.op != "Conv" or not is_mac(graph, node):
            continue
        name = fused[node.name].outputs[0] if node.name in fused else node.outputs[0]
        readers = users.get(name, [])
        if readers and name not in graph.outputs and all(is_depthwise(graph, r) and r.input(0) == name
                                                         for r in readers):
            out.add(name)
    return out

