"""``apply_arithmetic_simplification`` and ``simplify_mac_before_after_lut``.

Why: every element-wise node is a DPU pass over a whole tensor (or a DPU
program longer by a few instructions); a node that computes nothing, or one
whose work a table already next to it can absorb, is removed.

Exact rules (run by the passes):

* ``identity_requant``: an add/sub with a constant operand of real value 0
  whose requantizations are all the identity, a single-input Concat with
  the identity requantization, a Reshape/Identity to the same shape: the
  output is the input.
* ``lut_after_scalar_op`` / ``lut_after_lut`` / ``scalar_op_after_lut``
  (``simplify_mac_before_after_lut``): an int8 -> int8 function of a single
  int8 input next to a lookup table composes with it into one table. The
  composition is tabulated over all 256 inputs, so it is bit-identical
  (measured deviation: 0 LSB).

Rounding rule (not run by the pipeline, which promises bit-exactness with
the quantized graph; :data:`ROUNDING_RULES`, measured in
``tests/test_lowering_simplify.py`` and ``docs/lowering.md``):

* ``bias_add_into_mac``: a per-channel constant Add after a convolution read
  by nothing else folds into the convolution's int32 bias and requantizes
  straight to the Add's grid, removing one rounding to int8 in between.
"""

from __future__ import annotations

__all__ = ["SIMPLIFY_RULES", "LUT_RULES", "ROUNDING_RULES", "elementwise_table"]

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.ir.rewrite import Match, Rule, const, op, var
from axdrive.numerics import INT32_MAX, INT32_MIN, QMAX, QMIN, quantize_multiplier, requantize
from axdrive.reference.integer import lut_source

from ._nodes import is_identity_requant

_Q = np.arange(QMIN, QMAX + 1, dtype=np.int64)


def _scalar_const(g: Graph, n: Node) -> bool:
    """An add/sub/mul whose second operand is a scalar constant and first a live tensor."""
    return (n.attrs.get("integer_op") in ("add", "sub", "mul") and len(n.inputs) == 2
            and not g.is_constant(n.inputs[0]) and g.is_constant(n.inputs[1]) and g.constant(n.inputs[1]).size == 1)


def elementwise_table(g: Graph, n: Node) -> np.ndarray:
    """The int8 result of node ``n`` (a LUT, or an add/sub/mul by a scalar constant) for every int8 input."""
    kind = n.attrs["integer_op"]
    if kind == "lut":
        return np.asarray(n.attrs["lut"], np.int8)
    c = int(np.asarray(g.constant(n.inputs[1])).reshape(-1)[0])
    za, zb = (int(z) for z in n.attrs["in_zero_points"])
    if kind == "mul":
        acc = (_Q - za) * (c - zb)
    else:
        ra = requantize(_Q - za, n.attrs["in_multipliers"][0], n.attrs["in_shifts"][0], 0, INT32_MIN, INT32_MAX)
        rb = requantize(np.array([c - zb]), n.attrs["in_multipliers"][1], n.attrs["in_shifts"][1], 0, INT32_MIN,
                        INT32_MAX)
        acc = ra.astype(np.int64) - rb if kind == "sub" else ra.astype(np.int64) + rb
    acc = np.clip(acc, INT32_MIN, INT32_MAX)
    y = requantize(acc, n.attrs["requant_multiplier"], n.attrs["requant_shift"], 0, INT32_MIN, INT32_MAX)
    lo = max(int(n.attrs.get("clamp_min", QMIN)), QMIN)
    hi = min(int(n.attrs.get("clamp_max", QMAX)), QMAX)
    return np.clip(y.astype(np.int64) + int(n.attrs["out_zero_point"]), lo, hi).astype(np.int8)


def _lut_node(m: Match, x: str, table: np.ndarray) -> list[Node]:
    """The root's operator, now reading ``x`` through the composed table (only ``lut`` is read)."""
    attrs = {k: v for k, v in m.root.attrs.items() if k != "lut_input"}  # one input now: the table's
    return [m.node(m.root.op, [x], {**attrs, "integer_op": "lut", "lut": table.astype(np.int8)},
                   domain=m.root.domain)]


def _compose_after(m: Match) -> list[Node] | None:
    """LUT(f(x)) -> LUT'(x) where f is a scalar op or another LUT."""
    inner = m["inner"]
    if inner.attrs.get("integer_op") != "lut" and not _scalar_const(m.graph, inner):
        return None
    source = lut_source(inner) if inner.attrs.get("integer_op") == "lut" else inner.inputs[0]
    if m.root.inputs[int(m.root.attrs.get("lut_input", 0))] != inner.outputs[0]:
        return None  # the root's table reads another input
    if m.graph.tensors[source].qparams is None or m.graph.tensors[source].qparams.axis is not None:
        return None
    outer = np.asarray(m.root.attrs["lut"], np.int8)
    return _lut_node(m, source, outer[elementwise_table(m.graph, inner).astype(np.int16) + 128])


def _compose_before(m: Match) -> list[Node] | None:
    """f(LUT(x)) -> LUT'(x) where f is a scalar op."""
    if not _scalar_const(m.graph, m.root) or m.root.inputs[0] != m["lut"].outputs[0]:
        return None
    first = np.asarray(m["lut"].attrs["lut"], np.int8)
    return _lut_node(m, lut_source(m["lut"]), elementwise_table(m.graph, m.root)[first.astype(np.int16) + 128])


def _is_lut(n: Node) -> bool:
    return n.attrs.get("integer_op") == "lut"


LUT_RULES = [
    Rule("lut_after_elementwise", op(None, op(None, var("x"), name="inner", any_inputs=True), any_inputs=False,
                                     where=_is_lut), _compose_after),
    Rule("scalar_op_after_lut", op(("Add", "Sub", "Mul"), op(None, var("x"), name="lut", where=_is_lut), const("c"),
                                   where=lambda n: n.attrs.get("integer_op") in ("add", "sub", "mul")),
         _compose_before),
]


def _zero_add(m: Match) -> str | None:
    n, g = m.root, m.graph
    if not _scalar_const(g, n) or n.attrs["integer_op"] == "mul":
        return None
    zb = int(n.attrs["in_zero_points"][1])
    c = int(np.asarray(g.constant(n.inputs[1])).reshape(-1)[0])
    requants = [(n.attrs["in_multipliers"][0], n.attrs["in_shifts"][0]),
                (n.attrs["requant_multiplier"], n.attrs["requant_shift"])]
    same_grid = int(n.attrs["in_zero_points"][0]) == int(n.attrs["out_zero_point"])
    clamp_free = int(n.attrs.get("clamp_min", QMIN)) <= QMIN and int(n.attrs.get("clamp_max", QMAX)) >= QMAX
    if c == zb and same_grid and clamp_free and all(is_identity_requant(mm, ss) for mm, ss in requants):
        return n.inputs[0]
    return None


def _single_concat(m: Match) -> str | None:
    n = m.root
    if len(n.inputs) != 1 or int(n.attrs["in_zero_points"][0]) != int(n.attrs["out_zero_point"]):
        return None
    return n.inputs[0] if is_identity_requant(n.attrs["in_multipliers"][0], n.attrs["in_shifts"][0]) else None


def _same_shape(m: Match) -> str | None:
    g, n = m.graph, m.root
    return n.inputs[0] if g.tensors[n.inputs[0]].shape == g.tensors[n.outputs[0]].shape else None


SIMPLIFY_RULES = [
    Rule("identity_add", op(("Add", "Sub"), var("x"), const("c"), where=lambda n: n.attrs.get("integer_op") in
                            ("add", "sub")), _zero_add),
    Rule("single_input_concat", op("Concat", any_inputs=True, where=lambda n: n.attrs.get("integer_op") == "concat"),
         _single_concat),
    Rule("identity_reshape", op(("Reshape", "Identity", "Flatten", "Squeeze", "Unsqueeze"), any_inputs=True,
                                where=lambda n: n.attrs.get("integer_op") == "move"), _same_shape),
]


def _bias_into_mac(m: Match) -> list[Node] | None:
    g, add, conv = m.graph, m.root, m["mac"]
    if add.attrs.get("integer_op") != "add" or conv.attrs.get("integer_op") != "mac" or conv.op != "Conv":
        return None
    c = np.asarray(g.constant(m["c"]), np.int64).reshape(-1)
    o = g.tensors[conv.outputs[0]].shape[1]
    if c.size not in (1, o) or g.tensors[m["c"]].qparams is None:
        return None
    wq, xq = g.tensors[conv.inputs[1]].qparams, g.tensors[conv.inputs[0]].qparams
    cq, yq = g.tensors[m["c"]].qparams, g.tensors[add.outputs[0]].qparams
    acc_scale = np.broadcast_to(wq.scale * float(xq.scale), (o,))
    real_c = (np.broadcast_to(c, (o,)) - int(cq.zero_point)) * float(cq.scale)
    bias = np.asarray(g.constant(conv.inputs[2]), np.int64) if conv.input(2) else np.zeros(o, np.int64)
    bias = np.clip(bias + np.round(real_c / acc_scale).astype(np.int64), INT32_MIN, INT32_MAX).astype(np.int32)
    mult, shift = quantize_multiplier(acc_scale / float(yq.scale))
    attrs = dict(conv.attrs)
    attrs.update({"requant_multiplier": np.asarray(mult, np.int64), "requant_shift": np.asarray(shift, np.int64),
                  "out_zero_point": int(add.attrs["out_zero_point"]), "clamp_min": add.attrs.get("clamp_min", QMIN),
                  "clamp_max": add.attrs.get("clamp_max", QMAX)})
    b = g.add_constant(f"{conv.name}/bias_folded_int32", bias)
    return [m.node("Conv", [conv.inputs[0], conv.inputs[1], b], attrs, name=conv.name)]


ROUNDING_RULES = [
    Rule("bias_add_into_mac", op("Add", op("Conv", var("x"), any_inputs=True, name="mac"), const("c")), _bias_into_mac),
]
