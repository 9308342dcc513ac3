"""Which integer kernel each float operator becomes, and which tensors may be per-channel.

Why a classification module: the quantizer, the calibration observer (which
tensors need per-channel statistics) and the QDQ reader all ask the same
questions of a float node ("is this a MAC with constant weights?", "can an
8-bit table compute it?"), so the answers live in one place. Which kernel
quantizes a node is not decided here but by the operator registry's ``int8``
rules: :func:`operator_rules` is what this plugin registers there.
"""

from __future__ import annotations

__all__ = ["MAC_OPS", "MOVE_OPS", "FUSABLE_ACTIVATIONS", "LUT_OPS", "KERNELS", "is_mac", "is_depthwise", "lut_input",
           "activation_bounds", "fusions", "per_channel_candidates", "integer_kind", "integer_reason", "operator_rules"]

import numpy as np

from axdrive import operators
from axdrive.ir import AXDRIVE_DOMAIN, Graph, Node
from axdrive.operators import Constraint, OperatorRegistry, OperatorRule

#: Multiply-accumulate operators (the core's operator class); quantized as such with a constant weight (input 1).
MAC_OPS = operators.MAC_OPS
#: Operators that only move or select int8 values (the core's operator class): the output shares the input's grid.
MOVE_OPS = operators.MOVE_OPS
#: Activations that become the clamp of the preceding MAC/Add when they are its only consumer.
FUSABLE_ACTIVATIONS = frozenset({"Relu", "Clip", "Relu6"})
#: Element-wise functions of one activation (other operands, if any, scalar constants) this plugin registers as
#: 256-entry tables. The table is computed by the float kernel, so another plugin may register any element-wise
#: operator as ``kind="lut"`` (``axdrive_operators``) and the same kernel quantizes it.
LUT_OPS = frozenset({"Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "SiLU", "Relu", "Clip", "Relu6",
                     "Elu", "Selu", "Gelu", "Softplus", "Softsign", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
                     "Sin", "Cos", "Reciprocal", "Ceil", "Floor", "Round", "Sign", "Pow", "Add", "Sub", "Mul",
                     "Div", "Max", "Min", "PRelu"})
#: The integer kernels the quantizer implements (its methods of these names); an ``int8`` rule naming another
#: kernel cannot be quantized and sends its node to the host.
KERNELS = frozenset({"mac", "move", "lut", "add", "mul", "matmul", "concat", "avgpool", "softmax"})
_AXDRIVE_OPS = frozenset({"SiLU", "Relu6"})  # the frontend's fused activations (AXDRIVE_DOMAIN)


def is_mac(graph: Graph, node: Node) -> bool:
    """A Conv/ConvTranspose/Gemm/MatMul whose weight (input 1) is a constant."""
    return node.op in MAC_OPS and node.domain == "" and graph.is_constant(node.input(1)) \
        and not graph.is_constant(node.input(0))


def integer_kind(graph: Graph, node: Node, registry: OperatorRegistry) -> str | None:
    """Which integer kernel quantizes ``node`` (the name of the quantizer's method), or ``None`` when there is
    none: the registry's ``int8`` rules decide, and this is the one dispatch the quantizer follows."""
    kind = registry.integer_kind(graph, node)
    return kind if kind in KERNELS else None


def integer_reason(graph: Graph, node: Node, registry: OperatorRegistry) -> str | None:
    """Why no integer kernel of the quantizer takes ``node`` (the host placement's reason), or ``None``."""
    why = registry.integer_reason(graph, node)
    if why:
        return why
    rule = registry.integer_rule(graph, node)
    if rule is not None and rule.kind not in KERNELS:
        return (f"{node.qualified_op}: integer kernel {rule.kind!r} (registered by {rule.plugin or 'a plugin'}) is "
                f"not one the quantizer implements ({', '.join(sorted(KERNELS))})")
    return None


# -- the int8 rules, as predicates ------------------------------------------------------------------------------
def _constant_weight(graph: Graph, node: Node) -> str | None:
    if not graph.is_constant(node.input(1)):
        return f"its weight {node.input(1)!r} (input 1) is a run-time tensor"
    if graph.is_constant(node.input(0)):
        return "its input 0 is a constant (folded, never run)"
    return None


def _table(graph: Graph, node: Node) -> str | None:
    if len(node.outputs) != 1:
        return f"{len(node.outputs)} outputs"
    live = [name for name in node.inputs if name and not graph.is_constant(name)]
    if len(live) != 1:
        return f"{len(live)} run-time inputs"
    big = [name for name in node.inputs if name and graph.is_constant(name) and graph.constant(name).size > 1]
    return f"constant operand {big[0]!r} is not a scalar" if big else None


def _two_operands(graph: Graph, node: Node) -> str | None:
    return None if len(node.inputs) == 2 else f"{len(node.inputs)} operands"


def _div_by_constant(graph: Graph, node: Node) -> str | None:
    if node.op == "Div" and not graph.is_constant(node.input(1)):
        return f"it divides by the run-time tensor {node.input(1)!r}"
    return None


def _runtime_product(graph: Graph, node: Node) -> str | None:
    live = [x for x in node.inputs if x and not graph.is_constant(x)]
    return None if len(live) == 2 else "it has a constant operand"


_WEIGHT = Constraint("the weight (input 1) and the bias are constants", _constant_weight)
_TABLE = Constraint("one run-time input; any other operand a scalar constant", _table)


def operator_rules() -> list[OperatorRule]:
    """The quantizer's ``int8`` rules, in the order they are tried for an operator."""
    def each(ops, kind, summary, *constraints, domain=""):  # noqa: ANN001, ANN202
        return [OperatorRule(op, "int8", f"{kind}: {summary}", tuple(constraints), domain=domain, kind=kind)
                for op in sorted(ops)]

    table = "a table of 256 int8 entries, computed by the float kernel"
    return [
        *each(MAC_OPS, "mac", "int8 x int8 summed in int32, requantized per output channel", _WEIGHT),
        *each({"MatMul"}, "matmul", "two run-time int8 operands, the product requantized",
              Constraint("both operands are run-time tensors", _runtime_product)),
        *each(MOVE_OPS, "move", "int8 values moved or selected, the output on the input's grid"),
        *each(LUT_OPS - _AXDRIVE_OPS, "lut", table, _TABLE),
        *each(_AXDRIVE_OPS, "lut", table, _TABLE, domain=AXDRIVE_DOMAIN),
        *each({"Add", "Sub"}, "add" , "both operands rescaled to the output's grid",
              Constraint("two operands", _two_operands)),
        *each({"Mul", "Div"}, "mul", "the product requantized", Constraint("two operands", _two_operands),
              Constraint("Div only by a constant", _div_by_constant)),
        *each({"Concat"}, "concat", "every input rescaled to the output's grid"),
        *each({"AveragePool", "GlobalAveragePool"}, "avgpool", "the window sum requantized by 1/count"),
        *each({"Softmax"}, "softmax", "a 256-entry exponent table and an integer normalisation"),
    ]


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A Conv with one input channel per group (every channel filtered on its own)."""
    if node.op != "Conv" or not graph.is_constant(node.input(1)):
        return False
    groups = int(node.attrs.get("group", 1))
    w = graph.constant(node.input(1))
    return groups > 1 and w.shape[1] == 1 and w.shape[0] == groups


def lut_input(graph: Graph, node: Node) -> str | None:
    """The single activation input of ``node`` when a table can compute it (one run-time input, any other
    operand a scalar constant), else None; whether its operator is a table at all is the registry's ``int8`` rule."""
    if _table(graph, node):
        return None
    return next(name for name in node.inputs if name and not graph.is_constant(name))


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

