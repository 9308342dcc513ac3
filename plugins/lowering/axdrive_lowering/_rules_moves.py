"""Data movement with constant indices: Slice (several axes, steps), Gather, the H/W Transpose.

Why one module: the three operators are the same thing on the device, a
choice of input pixels (and, for the channels, of lanes) for every output
position, and the validator, the channel rewrite and the code generator must
agree on exactly which. The indices are computed here once, by running the
reference kernel on coordinate grids, so they are ``run_integer``'s by
construction (ONNX's clamping of Slice bounds, negative steps and negative
Gather indices included).

Channels are innermost in the device's NHWC layout, so a choice of pixels is
a DMA copy of whole pixels (rows of ``C`` bytes with strides), but a choice
of lanes is not: it would take one-byte copies. A Slice or Gather that picks
channels is therefore split (``slice_to_pixels_and_channels``,
``gather_channels_to_selection``, always, in ``lowering.legalize_channels``):
the spatial part stays a move (DMA), the channel part becomes a 1x1 selection
convolution (weights 0/1, identity requantization, bit-identical, as for a
channel Split) that may pick any lanes in any order, repeats included. A
Slice that names the batch or the whole channel range among its axes is
rewritten over H and W only: after channel padding a range ``0..C`` would no
longer be the whole tensor.
"""

from __future__ import annotations

__all__ = ["MOVE_RULES", "slice_indices", "pixel_indices", "is_hw_transpose", "move_reason"]

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.ir.rewrite import Match, Rule, op
from axdrive.reference import run_node

from ._nodes import IDENTITY_MULTIPLIER, IDENTITY_SHIFT, activation, selection_conv, zp_of

_SLICE_INPUTS = ("starts", "ends", "axes", "steps")


def _constant_inputs(graph: Graph, node: Node) -> list[np.ndarray | None] | None:
    """A Slice's starts/ends/axes/steps (None for an absent optional one); None when one is computed at run time."""
    out: list[np.ndarray | None] = []
    for k in range(1, 5):
        name = node.input(k)
        if not name:
            out.append(None)
            continue
        value = graph.constant(name)
        if value is None:
            return None
        out.append(np.asarray(value))
    return out


def slice_indices(graph: Graph, node: Node) -> list[np.ndarray] | None:
    """Per axis of a Slice's input, the input index of every output position along it (``run_integer``'s
    own Slice kernel on a broadcast coordinate grid: no copy of the tensor); None for run-time bounds."""
    consts = _constant_inputs(graph, node)
    if consts is None or consts[0] is None or consts[1] is None:
        return None
    shape = tuple(int(d) for d in graph.tensors[node.inputs[0]].shape)
    plain = Node(node.name, "Slice", list(node.inputs), list(node.outputs[:1]), {}, "", ())
    out = []
    for axis, dim in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = dim
        grid = np.broadcast_to(np.arange(dim, dtype=np.int64).reshape(view), shape)
        y = run_node(plain, [grid, *consts], graph.opset)[0]
        if y.size == 0:
            return [np.zeros(0, np.int64)] * len(shape)
        out.append(np.asarray(y[tuple(slice(None) if a == axis else 0 for a in range(len(shape)))], np.int64))
    return out


def _gather_indices(graph: Graph, node: Node) -> tuple[int, np.ndarray] | None:
    """``(axis, indices)`` of a Gather with a constant 1-D (or scalar) index tensor, negatives resolved."""
    idx = graph.constant(node.inputs[1])
    if idx is None:
        return None
    x = graph.tensors[node.inputs[0]].shape
    axis = int(node.attrs.get("axis", 0)) % len(x)
    flat = np.asarray(idx, np.int64).reshape(-1)
    return axis, np.where(flat < 0, flat + int(x[axis]), flat)


def is_hw_transpose(graph: Graph, node: Node) -> bool:
    """A rank-4 Transpose swapping H and W (``perm = [0, 1, 3, 2]``): pixels move, each pixel's lanes do not."""
    return node.op == "Transpose" and len(graph.tensors[node.inputs[0]].shape) == 4 and \
        [int(p) for p in node.attrs.get("perm", [3, 2, 1, 0])] == [0, 1, 3, 2]


def pixel_indices(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """For a Slice/Gather (or identity Transpose) of a rank-4 tensor that keeps every channel: the input row
    of every output row and the input column of every output column; None for anything else (a Split, an
    H/W transpose, a choice of channels: those have their own lowerings)."""
    x = graph.tensors[node.inputs[0]].shape
    if len(x) != 4:
        return None
    _n, c, h, w = (int(d) for d in x)
    if node.op == "Slice":
        idx = slice_indices(graph, node)
        if idx is None or not np.array_equal(idx[1], np.arange(c)) or not np.array_equal(idx[0], [0]):
            return None
        return idx[2], idx[3]
    if node.op == "Gather":
        got = _gather_indices(graph, node)
        if got is None or got[0] not in (2, 3) or np.ndim(graph.constant(node.inputs[1])) != 1:
            return None
        axis, picked = got
        return (picked, np.arange(w)) if axis == 2 else (np.arange(h), picked)
    if node.op == "Transpose" and [int(p) for p in node.attrs.get("perm", [3, 2, 1, 0])] == [0, 1, 2, 3]:
        return np.arange(h), np.arange(w)
    return None


def move_reason(graph: Graph, node: Node) -> str | None:
    """Why a Slice, Gather or Transpose does not lower (None: it does), for ``lowering.validate_operators``."""
    x = tuple(int(d) for d in graph.tensors[node.inputs[0]].shape)
    if node.op == "Transpose":
        perm = [int(p) for p in node.attrs.get("perm", list(range(len(x)))[::-1])]
        if perm == list(range(len(x))) or (len(x) == 4 and perm == [0, 1, 3, 2]):
            return None
        if len(x) == 4 and perm[0] == 0:
            return (f"Transpose perm {perm} moves the channels out of the innermost position of the device's NHWC "
                    "layout (a layout change of every element); only the H/W swap [0, 1, 3, 2] is lowered")
        return f"Transpose perm {perm} of a rank-{len(x)} tensor moves the batch axis; only [0, 1, 3, 2] is lowered"
    if len(x) != 4:
        return f"{node.op} of a rank-{len(x)} tensor (only channels, rows or columns of NCHW tensors are lowered)"
    if node.op == "Slice":
        idx = slice_indices(graph, node)
        if idx is None:
            return f"Slice with run-time {'/'.join(_SLICE_INPUTS)} is not lowered (they must be constants)"
        if any(len(i) == 0 for i in idx):
            return "Slice selects no element"
        return None if np.array_equal(idx[0], [0]) else "Slice along the batch axis"
    got = _gather_indices(graph, node)
    if got is None:
        return "Gather with run-time indices is not lowered (the index tensor must be a constant)"
    axis, picked = got
    if axis == 0:
        return "Gather along the batch axis"
    if np.ndim(graph.constant(node.inputs[1])) != 1:
        return "Gather with a multi-dimensional index tensor changes the rank (only 1-D indices are lowered)"
    if picked.size == 0:
        return "Gather selects no element"
    if picked.min() < 0 or picked.max() >= x[axis]:
        return f"Gather index out of range for axis {axis} of size {x[axis]}"
    return None


def _channel_selection(m: Match, x: str, channels: np.ndarray) -> Node:
    """The 1x1 selection convolution writing ``x``'s channels ``channels`` (in that order) to the root's output."""
    g, node = m.graph, m.root
    zp = zp_of(g, x)
    y = node.outputs[0]
    return selection_conv(g, node.name, x, y, c_out=len(channels), offset=0, in_zp=zp, multiplier=IDENTITY_MULTIPLIER,
                          shift=IDENTITY_SHIFT, out_zp=zp, source=m.source, index=[int(c) for c in channels])


def _slice_apart(m: Match) -> list[Node] | None:
    """A Slice that is not already a move of pixels (its axes not all H/W) nor one step-1 channel range: its
    rows/columns as a Slice over H and W only (a DMA move; batch and whole-channel entries dropped, since
    channel padding would make a channel range stale) and its channels, when it picks some, as a selection
    convolution after it (fewer pixels for the MVM)."""
    g, node = m.graph, m.root
    x, y = node.inputs[0], node.outputs[0]
    shape = tuple(int(d) for d in g.tensors[x].shape)
    consts = _constant_inputs(g, node)
    if len(shape) != 4 or consts is None or consts[0] is None or consts[1] is None:
        return None
    starts, ends = consts[0].reshape(-1), consts[1].reshape(-1)
    axes = np.arange(len(starts)) if consts[2] is None else consts[2].reshape(-1) % 4
    steps = np.ones(len(axes), np.int64) if consts[3] is None else consts[3].reshape(-1)
    if len(axes) == 1 and axes[0] == 1 and steps[0] == 1 and consts[2] is not None:
        return None  # one step-1 channel range: channel_slice_to_selection
    idx = slice_indices(g, node)
    if idx is None or any(len(i) == 0 for i in idx):
        return None
    whole_channels = np.array_equal(idx[1], np.arange(shape[1]))
    if whole_channels and all(int(a) in (2, 3) for a in axes):
        return None  # already a move of whole pixels
    nodes: list[Node] = []
    src = x
    whole_pixels = np.array_equal(idx[2], np.arange(shape[2])) and np.array_equal(idx[3], np.arange(shape[3]))
    if whole_channels or not whole_pixels:
        keep = [k for k, a in enumerate(axes) if int(a) in (2, 3)]
        parts = [np.asarray(v)[keep] for v in (starts, ends, axes, steps)] if keep else \
            [np.array([0]), np.array([shape[2]]), np.array([2]), np.array([1])]
        inputs = [x] + [g.add_constant(f"{node.name}/spatial_{name}", v.astype(np.int64))
                        for name, v in zip(_SLICE_INPUTS, parts)]
        if whole_channels:
            return [m.node("Slice", inputs, {"integer_op": "move"})]
        src = activation(g, f"{y}/rows_columns", (shape[0], shape[1], len(idx[2]), len(idx[3])), g.tensors[x].qparams)
        nodes.append(Node(g.unique_name(f"{node.name}/rows_columns"), "Slice", inputs, [src],
                          {"integer_op": "move"}, "", m.source))
    nodes.append(_channel_selection(m, src, idx[1]))
    g.tensors[y].qparams = g.tensors[x].qparams
    return nodes


def _gather_channels(m: Match) -> list[Node] | None:
    """A Gather along the channels of an NCHW tensor: a selection convolution (lanes in index order)."""
    g, node = m.graph, m.root
    got = _gather_indices(g, node)
    if len(g.tensors[node.inputs[0]].shape) != 4 or got is None or got[0] != 1:
        return None
    g.tensors[node.outputs[0]].qparams = g.tensors[node.inputs[0]].qparams
    return [_channel_selection(m, node.inputs[0], got[1])]


def _is_move(n: Node) -> bool:
    return n.attrs.get("integer_op") == "move"


MOVE_RULES = [
    Rule("slice_to_pixels_and_channels", op("Slice", any_inputs=True, where=_is_move), _slice_apart),
    Rule("gather_channels_to_selection", op("Gather", any_inputs=True, where=_is_move), _gather_channels),
]
