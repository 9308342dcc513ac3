"""Spatial lowering rewrites: transposed convolutions and grouped convolutions the padding cannot keep.

Why IR rewrites (and not code-generator special cases): like the channel
rewrites, each one leaves a graph :func:`~axdrive.reference.run_integer` still
executes, so "the same outputs before and after" checks it; the code
generator then only maps node kinds it already knows, plus one data movement
(the zero insertion, a DMA scatter).

* ``conv_transpose_to_conv`` (always): ``ConvTranspose(x, w)`` with strides
  ``s`` is a *zero insertion* (``s - 1`` zero-point pixels between the input
  pixels, a :data:`ZERO_INSERTION` node) followed by a stride-1 ``Conv`` with
  the kernel flipped in both spatial axes and its input/output axes swapped,
  padded by ``dilation * (kernel - 1) - pad`` on each side (plus
  ``output_padding`` at the end). Both compute the same integer sum of
  ``w * (x - in_zero_point)`` terms (the inserted pixels hold the zero point,
  so their ``x - zp`` is 0), hence the same accumulator, bias and
  requantization: bit-identical.
* ``grouped_conv_to_dense`` (always, when channel padding would move the
  groups): a grouped (not depthwise) convolution whose input or output
  channel count is not a whole number of PWORDs becomes a dense convolution
  with block-diagonal weights. Padding appends lanes at the end of the
  tensor, so it cannot keep the group boundaries of the real channels; zero
  weights outside a group's block add nothing to any accumulator, so the
  result is bit-identical. An aligned grouped convolution keeps its groups
  and runs as one MVM ``conv2d`` task with ``groups``.

The zero insertion itself is, for the integer semantics, a depthwise 1x1
``ConvTranspose`` with unit weights, identity requantization and the input's
zero point as output zero point (``y = (x - zp) * 1 + zp`` at the input
pixels, ``0 + zp`` between them), marked with :data:`ZERO_INSERTION` (its
strides); the code generator runs it as a zero-point fill and strided DMA
copies, no unit.
"""

from __future__ import annotations

__all__ = ["ZERO_INSERTION", "SPATIAL_RULES", "grouped_rules", "transpose_pads", "conv_pads_of_transpose",
           "is_plain_depthwise", "spatial_axis"]

from typing import Sequence

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.ir.rewrite import Match, Rule, op

from ._nodes import IDENTITY_MULTIPLIER, IDENTITY_SHIFT, activation, zp_of

#: attrs key of a zero-insertion node (a lowered ConvTranspose's upsampling); value: its ``[sh, sw]`` strides.
ZERO_INSERTION = "zero_insertion"

#: ConvTranspose attributes that have no meaning on the Conv it becomes.
_TRANSPOSE_ONLY = ("output_padding", "output_shape", "auto_pad", "strides", "pads", "kernel_shape", "group",
                   "dilations")


def transpose_pads(node: Node, in_hw: Sequence[int], w_hw: Sequence[int],
                   out_hw: Sequence[int]) -> tuple[list[int], list[int]]:
    """``(begin, end)`` crops, per spatial axis, of a 2-D ConvTranspose's full output (``output_padding``
    included), exactly as :mod:`axdrive.reference` computes them (explicit ``pads``, or ``output_shape`` /
    ``auto_pad`` SAME_* with the output shape the graph gives)."""
    strides = [int(v) for v in node.attrs.get("strides", [1, 1])]
    dil = [int(v) for v in node.attrs.get("dilations", [1, 1])]
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0, 0])]
    full = [(i - 1) * s + (k - 1) * d + 1 + p for i, s, k, d, p in zip(in_hw, strides, w_hw, dil, out_pad)]
    auto = node.attrs.get("auto_pad", "NOTSET")
    if "output_shape" in node.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [f - int(t) for f, t in zip(full, out_hw)]
        begin = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return begin, [t - b for t, b in zip(total, begin)]
    pads = [int(v) for v in node.attrs.get("pads", [0, 0, 0, 0])]
    return pads[:2], pads[2:]


def conv_pads_of_transpose(graph: Graph, node: Node) -> list[int]:
    """The ONNX ``pads`` (top, left, bottom, right) of the stride-1 Conv a ConvTranspose becomes; a negative
    entry means the transposed convolution crops more than ``dilation * (kernel - 1)`` on that side."""
    x, y = graph.tensors[node.inputs[0]].shape, graph.tensors[node.outputs[0]].shape
    w = graph.constant(node.inputs[1])
    dil = [int(v) for v in node.attrs.get("dilations", [1, 1])]
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0, 0])]
    begin, end = transpose_pads(node, x[2:], w.shape[2:], y[2:])
    reach = [d * (k - 1) for d, k in zip(dil, w.shape[2:])]
    head = [r - b for r, b in zip(reach, begin)]
    tail = [r - e + p for r, e, p in zip(reach, end, out_pad)]
    return [head[0], head[1], tail[0], tail[1]]


def _conv_transpose(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    x, y = node.inputs[0], node.outputs[0]
    w = g.constant(node.inputs[1])  # (C_in, C_out, kh, kw): group 1
    strides = [int(v) for v in node.attrs.get("strides", [1, 1])]
    nodes: list[Node] = []
    src = x
    if strides != [1, 1]:
        n, c, h, wd = g.tensors[x].shape
        src = activation(g, f"{x}/zero_inserted", (n, c, (h - 1) * strides[0] + 1, (wd - 1) * strides[1] + 1),
                         g.tensors[x].qparams)
        zp = zp_of(g, x)
        ones = g.add_constant(f"{node.name}/unit_int8", np.ones((c, 1, 1, 1), np.int8))
        attrs = {"group": int(c), "kernel_shape": [1, 1], "strides": strides, "pads": [0, 0, 0, 0],
                 "dilations": [1, 1], "integer_op": "mac", "in_zero_point": zp,
                 "requant_multiplier": np.asarray(IDENTITY_MULTIPLIER, np.int64),
                 "requant_shift": np.asarray(IDENTITY_SHIFT, np.int64), "out_zero_point": zp, "channel_axis": 1,
                 "clamp_min": -128, "clamp_max": 127, ZERO_INSERTION: strides}
        nodes.append(Node(g.unique_name(f"{node.name}/zero_insertion"), "ConvTranspose", [x, ones], [src], attrs, "",
                          node.source))
    flipped = np.ascontiguousarray(w.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    attrs = {k: v for k, v in node.attrs.items() if k not in _TRANSPOSE_ONLY}
    attrs.update(group=1, kernel_shape=[int(w.shape[2]), int(w.shape[3])], strides=[1, 1],
                 dilations=[int(v) for v in node.attrs.get("dilations", [1, 1])],
                 pads=conv_pads_of_transpose(g, node))
    inputs = [src, g.add_constant(f"{node.name}/weight_flipped_int8", flipped)]
    if node.input(2):
        inputs.append(node.inputs[2])
    nodes.append(Node(node.name, "Conv", inputs, [y], attrs, "", node.source))
    return nodes


def is_plain_depthwise(node: Node, weight_shape: Sequence[int], in_channels: int) -> bool:
    """A convolution the DWPU runs: one input channel per group and as many groups as input and output
    channels (a channel multiplier, ``C_out = k * C_in``, is a grouped convolution for the MVM)."""
    groups = int(node.attrs.get("group", 1))
    return groups > 1 and weight_shape[1] == 1 and groups == weight_shape[0] == in_channels


def _block_diagonal(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    w = g.constant(node.inputs[1])  # (C_out, C_in / groups, kh, kw)
    groups = int(node.attrs["group"])
    o, cg = w.shape[0], w.shape[1]
    og = o // groups
    dense = np.zeros((o, cg * groups, *w.shape[2:]), w.dtype)
    for k in range(groups):
        dense[k * og:(k + 1) * og, k * cg:(k + 1) * cg] = w[k * og:(k + 1) * og]
    attrs = dict(node.attrs)
    attrs["group"] = 1
    inputs = [node.inputs[0], g.add_constant(f"{node.name}/weight_dense_int8", dense), *node.inputs[2:]]
    return [m.node("Conv", inputs, attrs)]


def grouped_rules(pword: int) -> list[Rule]:
    """``grouped_conv_to_dense`` for the grouped convolutions whose channels padding to ``pword`` lanes
    would change (``pword`` 1: padding is off, every grouped convolution keeps its groups)."""

    def where(n: Node) -> bool:
        return n.attrs.get("integer_op") == "mac" and int(n.attrs.get("group", 1)) > 1 and \
            not n.attrs.get(ZERO_INSERTION)

    def rewrite(m: Match) -> list[Node] | None:
        g, node = m.graph, m.root
        w = g.constant(node.inputs[1])
        c_in = int(g.tensors[node.inputs[0]].shape[1])
        c_out = int(g.tensors[node.outputs[0]].shape[1])
        if w is None or is_plain_depthwise(node, w.shape, c_in) or (c_in % pword == 0 and c_out % pword == 0):
            return None
        return _block_diagonal(m)

    return [Rule("grouped_conv_to_dense", op("Conv", any_inputs=True, where=where), rewrite)]


def spatial_axis(graph: Graph, node: Node) -> int | None:
    """The axis (2: H, 3: W) a 4-D Split or single-axis, step-1 Slice cuts, when it is a spatial one, else None."""
    rank = len(graph.tensors[node.inputs[0]].shape)
    if rank != 4:
        return None
    if node.op == "Split":
        axis = int(node.attrs.get("axis", 0)) % 4
    elif node.op == "Slice" and node.input(3):
        axes = graph.constant(node.inputs[3])
        steps = graph.constant(node.inputs[4]) if node.input(4) else None
        if axes is None or axes.size != 1 or (steps is not None and np.any(steps != 1)):
            return None  # several axes or a step: see _rules_moves
        axis = int(axes.reshape(-1)[0]) % 4
    else:
        return None
    return axis if axis in (2, 3) else None


SPATIAL_RULES = [
    Rule("conv_transpose_to_conv", op("ConvTranspose", any_inputs=True, where=lambda n: n.attrs.get("integer_op")
                                      == "mac" and not n.attrs.get(ZERO_INSERTION)), _conv_transpose),
]
