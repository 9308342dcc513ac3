"""``apply_pword_padding``: every channel count a whole number of PWORDs.

Why: the memories and the vector unit work on PWORD rows of 64 int8 lanes;
a tensor with 18 channels still occupies 64 lanes per pixel, and every unit
computes all of them. Making that explicit in the IR (rather than in the
code generator) keeps :func:`~axdrive.reference.run_integer` the definition
of what each lane holds, so the padding is checked like any other rewrite.

What it does: model inputs get a ``Pad`` (with the zero point) and outputs a
``Slice`` back to their real channels (the I/O edges: the host does them when
``remove_io_padding_and_layout_transform``); every other activation's
channel count is rounded up; then one rule per operator kind pads its
constants so that padded lanes never reach a real lane: zero weight rows and
columns, zero biases, the identity requantization, constants that equal the
operand's zero point. Padded lanes hold whatever the padded operators compute
from them (the zero point after a convolution); no real lane reads them.
A grouped convolution keeps its groups only because ``legalize_channels``
already made dense every one whose channels this pass would grow (appended
lanes cannot keep a group's channels together); a lowered ConvTranspose's
zero insertion gets a unit weight per padded lane.

The one exception is Softmax, whose sum runs over every lane of a pixel: its
padded input lanes must not count. The node gets ``softmax_channels`` (the
real count) and ``softmax_pad_value`` (``softmax_neutral_value`` on its
input grid, see :func:`axdrive.numerics.softmax_pad_value`), and its
semantics (:func:`axdrive.numerics.softmax`) read that value in the padded
lanes: neutral for the default, a visible change for a value inside the grid.
"""

from __future__ import annotations

__all__ = ["pad_graph", "PADDING_RULES", "IO_EDGE", "softmax_is_neutral"]

import numpy as np

from axdrive.errors import UnsupportedOperatorError
from axdrive.ir import Graph, Node, Tensor
from axdrive.numerics import QMIN, softmax_pad_value
from axdrive.ir.rewrite import Match, Rule, op, rewrite

from ._layout import padded
from ._nodes import IDENTITY_MULTIPLIER, IDENTITY_SHIFT
from ._rules_spatial import ZERO_INSERTION

#: attrs key marking the Pad/Slice nodes at the model's inputs and outputs.
IO_EDGE = "io_edge"


def _c(g: Graph, name: str) -> int:
    return int(g.tensors[name].shape[1])


def _pad_vec(v: object, n: int, fill: int) -> np.ndarray:
    a = np.asarray(v, np.int64)
    if a.ndim == 0:
        return a
    out = np.full(n, fill, np.int64)
    out[: a.size] = a
    return out


def _conv(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    x, y = node.inputs[0], node.outputs[0]
    w = g.constant(node.inputs[1])
    o, i = _c(g, y), _c(g, x)
    groups = int(node.attrs.get("group", 1))
    depthwise = groups > 1 and w.shape[1] == 1 and groups == w.shape[0]
    if groups > 1 and not depthwise:
        # lowering.legalize_channels made every grouped convolution whose channels grow dense
        # (grouped_conv_to_dense), so an aligned one keeps its weights and its groups
        if w.shape[:2] != (o, i // groups):
            raise UnsupportedOperatorError(f"grouped convolution {node.name!r} reached channel padding with "
                                           f"unaligned channels ({i} -> {o}); legalize_channels must run first",
                                           node=node.name)
        return None
    want = (o, 1) if depthwise else (o, i)
    if w.shape[:2] == want:
        return None
    wide = np.zeros((*want, *w.shape[2:]), w.dtype)
    wide[: w.shape[0], : w.shape[1]] = w
    bias = np.zeros(o, np.int32)
    if node.input(2):
        b = g.constant(node.inputs[2])
        bias[: b.size] = b
    attrs = dict(node.attrs)
    attrs["requant_multiplier"] = _pad_vec(attrs["requant_multiplier"], o, IDENTITY_MULTIPLIER)
    attrs["requant_shift"] = _pad_vec(attrs["requant_shift"], o, IDENTITY_SHIFT)
    if depthwise:
        attrs["group"] = o
    inputs = [x, g.add_constant(f"{node.name}/weight_padded_int8", wide),
              g.add_constant(f"{node.name}/bias_padded_int32", bias)]
    return [m.node("Conv", inputs, attrs)]


def _zero_insertion(m: Match) -> list[Node] | None:
    """A lowered ConvTranspose's zero insertion: one unit weight per (padded) channel."""
    g, node = m.graph, m.root
    c = _c(g, node.outputs[0])
    if g.constant(node.inputs[1]).shape[0] == c:
        return None
    attrs = dict(node.attrs)
    attrs["group"] = c
    ones = g.add_constant(f"{node.name}/unit_padded_int8", np.ones((c, 1, 1, 1), np.int8))
    return [m.node("ConvTranspose", [node.inputs[0], ones], attrs)]


def _dense(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    x, y = node.inputs[0], node.outputs[0]
    w = g.constant(node.inputs[1])
    k, o = _c(g, x), _c(g, y)
    trans = node.op == "Gemm" and bool(node.attrs.get("transB", 0))
    want = (o, k) if trans else (k, o)
    if w.shape == want:
        return None
    wide = np.zeros(want, w.dtype)
    wide[: w.shape[0], : w.shape[1]] = w
    inputs = [x, g.add_constant(f"{node.name}/weight_padded_int8", wide)]
    if node.input(2):
        b = g.constant(node.inputs[2])
        bias = np.zeros(o, b.dtype)
        bias[: b.size] = b.reshape(-1)
        inputs.append(g.add_constant(f"{node.name}/bias_padded_int32", bias))
    attrs = dict(node.attrs)
    attrs["requant_multiplier"] = _pad_vec(attrs["requant_multiplier"], o, IDENTITY_MULTIPLIER)
    attrs["requant_shift"] = _pad_vec(attrs["requant_shift"], o, IDENTITY_SHIFT)
    return [m.node(node.op, inputs, attrs)]


def _elementwise(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    c = _c(g, node.outputs[0])
    inputs, changed = list(node.inputs), False
    for k, name in enumerate(node.inputs[:2]):
        data = g.constant(name)
        if data is None or data.size <= 1 or data.size == c:
            continue
        fill = int(node.attrs["in_zero_points"][k])
        flat = np.full(c, fill, data.dtype)
        flat[: data.size] = data.reshape(-1)
        shape = [1] * len(g.tensors[node.outputs[0]].shape)
        shape[1] = c
        if data.ndim < len(shape):  # an ONNX-broadcast (C,) constant of a 2-D tensor
            shape = [c]
        inputs[k] = g.add_constant(f"{name}/padded", flat.reshape(shape))
        changed = True
    return [m.node(node.op, inputs, dict(node.attrs))] if changed else None


def _shape_input(m: Match) -> list[Node] | None:
    """Reshape/Expand carry the target shape as a constant: use the padded one."""
    g, node = m.graph, m.root
    want = np.array(g.tensors[node.outputs[0]].shape, np.int64)
    have = g.constant(node.inputs[1])
    if have is not None and have.shape == want.shape and np.array_equal(have, want):
        return None
    inputs = [node.inputs[0], g.add_constant(f"{node.name}/shape_padded", want)]
    return [m.node(node.op, inputs, dict(node.attrs))]


def _kind(*kinds: str):
    return lambda n: n.attrs.get("integer_op") in kinds and not n.attrs.get(IO_EDGE)


PADDING_RULES = [
    Rule("pad_conv", op("Conv", any_inputs=True, where=_kind("mac")), _conv),
    Rule("pad_zero_insertion", op("ConvTranspose", any_inputs=True,
                                  where=lambda n: _kind("mac")(n) and bool(n.attrs.get(ZERO_INSERTION))),
         _zero_insertion),
    Rule("pad_dense", op(("Gemm", "MatMul"), any_inputs=True, where=_kind("mac")), _dense),
    Rule("pad_elementwise_constants", op(("Add", "Sub", "Mul"), any_inputs=True, where=_kind("add", "sub", "mul")),
         _elementwise),
    Rule("pad_shape_constants", op(("Reshape", "Expand"), any_inputs=True, where=_kind("move")), _shape_input),
]


def _edge_in(g: Graph, name: str, pword: int) -> Node | None:
    t = g.tensors[name]
    c = int(t.shape[1])
    if padded(c, pword) == c:
        return None
    inner = g.unique_name(f"{name}/padded")
    shape = list(t.shape)
    shape[1] = padded(c, pword)
    g.tensors[inner] = Tensor(inner, tuple(shape), t.dtype, None, t.qparams)
    pads = [0] * (2 * len(shape))
    pads[len(shape) + 1] = shape[1] - c
    zp = int(t.qparams.zero_point) if t.qparams is not None else 0
    for node in g.nodes:
        node.inputs = [inner if x == name else x for x in node.inputs]
    p = g.add_constant(f"{name}/pads", np.array(pads, np.int64))
    v = g.add_constant(f"{name}/pad_value", np.array(zp, np.int8))
    return Node(g.unique_name(f"{name}/pad_channels"), "Pad", [name, p, v], [inner],
                {"integer_op": "move", "mode": "constant", IO_EDGE: "input"}, "", ())


def _edge_out(g: Graph, name: str, pword: int) -> Node | None:
    t = g.tensors[name]
    c = int(t.shape[1])
    if padded(c, pword) == c or g.producer(name) is None:
        return None
    inner = g.unique_name(f"{name}/padded")
    shape = list(t.shape)
    shape[1] = padded(c, pword)
    g.tensors[inner] = Tensor(inner, tuple(shape), t.dtype, None, t.qparams)
    for node in g.nodes:
        node.inputs = [inner if x == name else x for x in node.inputs]
        node.outputs = [inner if x == name else x for x in node.outputs]
    consts = [g.add_constant(f"{name}/{k}", np.array(v, np.int64)) for k, v in
              (("starts", [0]), ("ends", [c]), ("axes", [1]))]
    return Node(g.unique_name(f"{name}/unpad_channels"), "Slice", [inner, *consts], [name],
                {"integer_op": "move", IO_EDGE: "output"}, "", ())


def softmax_is_neutral(pad_value: int) -> bool:
    """Whether padding lanes holding ``pad_value`` leave every real lane's softmax unchanged, for any input.

    A real int8 maximum is at least -128, so ``d = max - pad >= 256`` for every
    input exactly when ``pad <= -128 - 256``; then the exponent of a padding
    lane is 0 (beyond the table) and it is never the maximum.
    """
    return pad_value <= QMIN - 256


def _pad_softmax(graph: Graph, pword: int, neutral: float) -> int:
    """Mark every Softmax whose channels get padded (before the shapes grow); returns how many."""
    count = 0
    for node in graph.nodes:
        if node.attrs.get("integer_op") != "softmax":
            continue
        t = graph.tensors[node.inputs[0]]
        c = int(t.shape[1])
        if padded(c, pword) == c or t.qparams is None:
            continue
        pad = softmax_pad_value(neutral, float(t.qparams.scale), int(t.qparams.zero_point))
        node.attrs["softmax_channels"] = c
        node.attrs["softmax_pad_value"] = pad
        count += 1
    return count


def pad_graph(graph: Graph, pword: int, softmax_neutral_value: float = -100000.0) -> dict[str, int]:
    """Pad ``graph`` in place (see the module docstring); returns statistics.

    ``softmax_neutral_value`` (the config property) fills the padded lanes of
    every Softmax input (:func:`softmax_is_neutral` tells whether it is)."""
    softmax_padded = _pad_softmax(graph, pword, softmax_neutral_value)
    edges_in = [e for e in (_edge_in(graph, n, pword) for n in graph.inputs) if e is not None]
    edges_out = [e for e in (_edge_out(graph, n, pword) for n in dict.fromkeys(graph.outputs)) if e is not None]
    io_names = set(graph.inputs) | set(graph.outputs)
    grown = 0
    for node in graph.nodes:
        for name in node.outputs:
            t = graph.tensors[name]
            if name in io_names or t.data is not None or len(t.shape) < 2:
                continue
            c = int(t.shape[1])
            if padded(c, pword) != c:
                shape = list(t.shape)
                shape[1] = padded(c, pword)
                t.shape = tuple(shape)
                grown += 1
    graph.nodes = edges_in + graph.nodes + edges_out
    hits = rewrite(graph, PADDING_RULES)
    return {"tensors_padded": grown, "io_edges": len(edges_in) + len(edges_out), **hits,
            "pad_softmax": softmax_padded}
