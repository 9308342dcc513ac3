"""The frontend's rewrite rules, as data for :func:`axdrive.ir.rewrite.rewrite`.

Each list is one pass's worth of rules; the pass reports the per-rule hit
counts as its statistics.
"""

from __future__ import annotations

__all__ = ["FOLD_CONSTANT_RULES", "SIMPLIFY_RULES", "FOLD_BATCHNORM_RULES", "FUSE_ACTIVATION_RULES", "RELU6_RULES",
           "MAX_FOLDED_ELEMENTS"]

import numpy as np

from axdrive.ir import AXDRIVE_DOMAIN, Node, Tensor
from axdrive.ir.rewrite import Match, Rule, const, op, var
from axdrive.reference import run_node

# A folded value bigger than this stays computed: folding it would bloat the
# weights (e.g. an Expand to a full feature map) for no speed gain.
MAX_FOLDED_ELEMENTS = 1 << 20


def _store_constants(m: Match, values: list[np.ndarray]) -> list[Node] | None:
    if any(v.size > MAX_FOLDED_ELEMENTS for v in values):
        return None
    for name, value in zip(m.root.outputs, values):
        if name:
            m.graph.tensors[name] = Tensor.constant(name, value)
    return []


def _fold(m: Match) -> list[Node] | None:
    node, graph = m.root, m.graph
    if node.op == "DequantizeLinear":
        # A QDQ model's integer weight or bias (compiler_mode=lower_only): folding it to
        # float would lose the integers and grid that quantizer.import_qdq takes as they are.
        return None
    if not all(not x or graph.is_constant(x) for x in node.inputs):
        return None
    args = [graph.constant(x) if x else None for x in node.inputs]
    return _store_constants(m, run_node(node, args, graph.opset))


def _static_shape(m: Match) -> list[Node] | None:
    """Shape/Size of a tensor whose shape is static is a constant."""
    node, graph = m.root, m.graph
    tensor = graph.tensors.get(node.inputs[0])
    if tensor is None or tensor.shape is None:
        return None
    probe = np.empty(tensor.shape, dtype=np.uint8)
    return _store_constants(m, run_node(node, [probe], graph.opset))


FOLD_CONSTANT_RULES = [
    Rule("shape_of_static", op(("Shape", "Size"), var("x")), _static_shape),
    Rule("constant_inputs", op(None, any_inputs=True), _fold),
]


def _alias(m: Match) -> str | None:
    if len(m.root.outputs) > 1 and any(m.root.outputs[1:]):
        return None  # Dropout's mask is used
    return m["x"]


SIMPLIFY_RULES = [
    Rule("identity", op(("Identity", "Dropout"), var("x")), _alias),
]


def _bn_factor(m: Match) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BatchNormalization as ``y = (x - mean) * factor + offset`` per channel (float64): factor, mean, offset."""
    scale, offset, mean, var_ = (m.value(k).astype(np.float64) for k in ("scale", "bias", "mean", "var"))
    return scale / np.sqrt(var_ + float(m.root.attrs.get("epsilon", 1e-5))), mean, offset


def _fold_bn(m: Match) -> list[Node] | None:
    conv, graph = m["conv"], m.graph
    bias_name = conv.input(2)
    if bias_name and not graph.is_constant(bias_name):
        return None
    w = m.value("w").astype(np.float64)
    factor, mean, offset = _bn_factor(m)
    bias = graph.constant(bias_name).astype(np.float64) if bias_name else np.zeros(w.shape[0])
    dtype = m.value("w").dtype
    new_w = graph.add_constant(f"{conv.name}/weight_bn", (w * factor.reshape(-1, *([1] * (w.ndim - 1)))).astype(dtype))
    new_b = graph.add_constant(f"{conv.name}/bias_bn", ((bias - mean) * factor + offset).astype(dtype))
    return [m.node("Conv", [m["x"], new_w, new_b], conv.attrs, name=conv.name)]


def _bn_as_affine(m: Match) -> list[Node]:
    """A BatchNormalization no convolution absorbs (after an activation, on the input) is a per-channel
    ``x * factor + shift``: two elementwise ops with constants, which the quantizer and the DPU handle."""
    graph, x = m.graph, m["x"]
    factor, mean, offset = _bn_factor(m)
    rank = len(graph.tensors[x].shape)
    dtype = graph.tensors[x].dtype
    per_channel = (1, -1, *([1] * (rank - 2)))
    name = m.root.name
    k = graph.add_constant(f"{name}/factor", factor.reshape(per_channel).astype(dtype))
    b = graph.add_constant(f"{name}/shift", (offset - mean * factor).reshape(per_channel).astype(dtype))
    scaled = graph.add_tensor(f"{name}/scaled", graph.tensors[x].shape, dtype)
    return [m.node("Mul", [x, k], {}, name=f"{name}/mul", outputs=[scaled]),
            m.node("Add", [scaled, b], {}, name=f"{name}/add")]


_INFERENCE_BN = dict(where=lambda n: len([o for o in n.outputs if o]) == 1 and not n.attrs.get("training_mode", 0))

FOLD_BATCHNORM_RULES = [
    Rule("conv_batchnorm",
         op("BatchNormalization", op("Conv", var("x"), const("w"), name="conv"),
            const("scale"), const("bias"), const("mean"), const("var"), **_INFERENCE_BN),
         _fold_bn),
    Rule("batchnorm_affine",
         op("BatchNormalization", var("x"), const("scale"), const("bias"), const("mean"), const("var"),
            **_INFERENCE_BN),
         _bn_as_affine),
]


def _equals(value: float):  # noqa: ANN202 - a predicate on constant arrays
    return lambda data: data.size == 1 and abs(float(data.reshape(-1)[0]) - value) < 1e-6


def _hard_swish(m: Match) -> list[Node]:
    return [m.node("HardSwish", [m["x"]])]


def _is_hard_swish_sigmoid(node: Node) -> bool:
    return abs(node.attrs.get("alpha", 0.2) - 1 / 6) < 1e-6 and abs(node.attrs.get("beta", 0.5) - 0.5) < 1e-6


_clip6 = op("Clip", op("Add", var("x"), const(where=_equals(3.0))), const(where=_equals(0.0)),
            const(where=_equals(6.0)))

FUSE_ACTIVATION_RULES = [
    Rule("silu", op("Mul", var("x"), op("Sigmoid", var("x"))),
         lambda m: [m.node("SiLU", [m["x"]], domain=AXDRIVE_DOMAIN)]),
    Rule("hardswish_hardsigmoid", op("Mul", var("x"), op("HardSigmoid", var("x"), where=_is_hard_swish_sigmoid)),
         _hard_swish),
    Rule("hardswish_mul_div", op("Div", op("Mul", var("x"), _clip6), const(where=_equals(6.0))), _hard_swish),
    Rule("hardswish_div_mul", op("Mul", var("x"), op("Div", _clip6, const(where=_equals(6.0)))), _hard_swish),
    Rule("hardswish_mul_mul", op("Mul", op("Mul", var("x"), _clip6), const(where=_equals(1 / 6))), _hard_swish),
]

# Applied after FUSE_ACTIVATION_RULES, so the Clip inside a HardSwish is gone first.
RELU6_RULES = [
    Rule("relu6", op("Clip", var("x"), const(where=_equals(0.0)), const(where=_equals(6.0))),
         lambda m: [m.node("Relu6", [m["x"]], domain=AXDRIVE_DOMAIN)]),
]
