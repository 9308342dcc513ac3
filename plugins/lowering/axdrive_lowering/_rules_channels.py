"""Channel data movement as computation: Split/Slice, Concat, broadcasts.

Why: in a channels-innermost, PWORD-padded layout a channel slice is a
strided gather whose padded lanes somebody must fill, and a Concat of
unaligned inputs cannot just be appended. Both become the operations the
units already do exactly:

* ``channel_slice_to_selection`` (always): Split/Slice along channels ->
  one 1x1 selection convolution per output (weights 0/1, identity
  requantization). Bit-identical.
* ``concat_to_resadd`` (``rewrite_concat_to_resadd``): ``Concat(x1..xn)`` ->
  each input shifted to its channel offset by a selection convolution that
  also does the Concat's requantization, then identity-requantized adds
  (every lane has one non-zero term, so the sum is the concatenation).
  When an input comes from a convolution read by nothing else and already
  on the output grid, the shift folds into that convolution's weights.
  Bit-identical.
* ``concat_unaligned_to_resadd`` (always): a Concat whose inputs do not all
  fill whole PWORDs cannot be DMA-copied into channel slices, so it takes
  the same form even when ``rewrite_concat_to_resadd`` is off.
* ``broadcast_to_expand`` (always): an element-wise operand that is a 1x1
  map (a squeeze-excite scale) is materialised with Expand, which the DWPU
  runs as nearest resize, because DPU streams pair elements one to one.
"""

from __future__ import annotations

__all__ = ["SLICE_RULES", "CONCAT_RULES", "UNALIGNED_CONCAT_RULES", "BROADCAST_RULES", "concat_to_resadd",
           "mark_unaligned_concats"]

import numpy as np

from axdrive.ir import Graph, Node
from axdrive.ir.rewrite import Match, Rule, op

from ._layout import PWORD
from ._nodes import IDENTITY_MULTIPLIER, IDENTITY_SHIFT, activation, identity_add, is_identity_requant, \
    selection_conv, zp_of
from ._rules_spatial import spatial_axis


def _split(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    x = node.inputs[0]
    qp = g.tensors[x].qparams
    zp = zp_of(g, x)
    out, first = [], 0
    for k, name in enumerate(node.outputs):
        count = int(g.tensors[name].shape[1])
        if name:
            out.append(selection_conv(g, node.name if k == 0 else g.unique_name(f"{node.name}/{k}"), x, name,
                                      c_out=count, offset=0, first=first, count=count, in_zp=zp,
                                      multiplier=IDENTITY_MULTIPLIER, shift=IDENTITY_SHIFT, out_zp=zp,
                                      source=node.source))
            g.tensors[name].qparams = qp
        first += count
    return out


def _slice(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    if spatial_axis(g, node) is not None:
        return None  # rows or columns: a DMA copy in the code generator, not a selection
    axes = g.constant(node.inputs[3])
    steps = g.constant(node.inputs[4]) if node.input(4) else None
    if axes is None or axes.size != 1 or int(axes.reshape(-1)[0]) % 4 != 1 \
            or (steps is not None and np.any(steps != 1)):
        return None  # several axes or a step: slice_to_pixels_and_channels splits it, or it is a DMA move
    x, y = node.inputs[0], node.outputs[0]
    c_in = int(g.tensors[x].shape[1])
    start = int(g.constant(node.inputs[1]).reshape(-1)[0])
    start = min(max(start + c_in if start < 0 else start, 0), c_in)
    zp = zp_of(g, x)
    return [selection_conv(g, node.name, x, y, c_out=int(g.tensors[y].shape[1]), offset=0, first=start,
                           count=int(g.tensors[y].shape[1]), in_zp=zp, multiplier=IDENTITY_MULTIPLIER,
                           shift=IDENTITY_SHIFT, out_zp=zp, source=node.source)]


def _channel_axis(n: Node) -> bool:
    return int(n.attrs.get("axis", 0)) % 4 == 1


def _slice_on_channels(n: Node) -> bool:
    return n.op == "Split" or (len(n.inputs) > 3 and n.inputs[3] != "")


def _fold_into_producer(m: Match, x: str, offset: int, c_out: int, zp_out: int) -> bool:
    """Widen the convolution producing ``x`` so it writes its channels at ``offset`` of ``c_out``."""
    g = m.graph
    prod = g.producer(x)
    if prod is None or prod.op != "Conv" or prod.attrs.get("integer_op") != "mac" or int(prod.attrs.get("group", 1)) != 1:
        return False
    if len(g.consumers(x)) != 1 or x in g.outputs or int(prod.attrs["out_zero_point"]) != zp_out:
        return False
    w = g.constant(prod.inputs[1])
    c = w.shape[0]
    wide = np.zeros((c_out, *w.shape[1:]), w.dtype)
    wide[offset:offset + c] = w
    bias = np.zeros(c_out, np.int32)
    if prod.input(2):
        bias[offset:offset + c] = g.constant(prod.inputs[2])
    if any(np.ndim(prod.attrs.get(key, 0)) for key in ("clamp_min", "clamp_max")):
        return False  # a per-channel clamp would need widening too; keep the selection conv
    for key in ("requant_multiplier", "requant_shift"):
        v = np.broadcast_to(np.asarray(prod.attrs[key], np.int64), (c,))
        full = np.full(c_out, IDENTITY_MULTIPLIER if key == "requant_multiplier" else IDENTITY_SHIFT, np.int64)
        full[offset:offset + c] = v
        prod.attrs[key] = full
    prod.inputs = [prod.inputs[0], g.add_constant(f"{prod.name}/weight_shifted_int8", wide),
                   g.add_constant(f"{prod.name}/bias_shifted_int32", bias)]
    shape = list(g.tensors[x].shape)
    shape[1] = c_out
    g.tensors[x].shape = tuple(shape)
    return True


def concat_to_resadd(m: Match) -> list[Node] | None:
    """The rewrite of one channel Concat (see the module docstring)."""
    g, node = m.graph, m.root
    y = node.outputs[0]
    yq = g.tensors[y].qparams
    zp_out = int(node.attrs["out_zero_point"])
    c_out = int(g.tensors[y].shape[1])
    shape = list(g.tensors[y].shape)
    nodes: list[Node] = []
    shifted: list[str] = []
    offset = 0
    for i, x in enumerate(node.inputs):
        c = int(g.tensors[x].shape[1])
        zi, mi, si = node.attrs["in_zero_points"][i], node.attrs["in_multipliers"][i], node.attrs["in_shifts"][i]
        exact_copy = is_identity_requant(mi, si) and int(zi) == zp_out
        if exact_copy and _fold_into_producer(m, x, offset, c_out, zp_out):
            g.tensors[x].qparams = yq
            shifted.append(x)
        else:
            s = activation(g, f"{y}/part{i}", shape, yq)
            nodes.append(selection_conv(g, g.unique_name(f"{node.name}/shift{i}"), x, s, c_out=c_out,
                                        offset=offset, in_zp=int(zi), multiplier=int(mi), shift=int(si),
                                        out_zp=zp_out, source=node.source))
            shifted.append(s)
        offset += c
    acc = shifted[0]
    for k, part in enumerate(shifted[1:], start=1):
        last = k == len(shifted) - 1
        out = y if last else activation(g, f"{y}/sum{k}", shape, yq)
        nodes.append(identity_add(node.name if last else g.unique_name(f"{node.name}/add{k}"), acc, part, out,
                                  zp_out, node.source))
        acc = out
    if len(shifted) == 1:
        return shifted[0] if shifted[0] != y else None
    return nodes


def _unaligned(n: Node) -> bool:
    return _channel_axis(n) and n.attrs.get("integer_op") == "concat" and bool(n.attrs.get("_unaligned"))


def _broadcast(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    out_shape = g.tensors[node.outputs[0]].shape
    if len(out_shape) != 4 or out_shape[2:] == (1, 1):
        return None
    inputs = list(node.inputs)
    added = []
    for i, x in enumerate(inputs[:2]):
        if g.is_constant(x) or g.tensors[x].shape == out_shape:
            continue
        wide = activation(g, f"{x}/expanded", out_shape, g.tensors[x].qparams)
        shape = g.add_constant(f"{x}/expand_shape", np.array(out_shape, np.int64))
        added.append(Node(g.unique_name(f"{node.name}/expand{i}"), "Expand", [x, shape], [wide],
                          {"integer_op": "move"}, "", node.source))
        inputs[i] = wide
    if not added:
        return None
    return [*added, m.node(node.op, inputs, dict(node.attrs))]


SLICE_RULES = [Rule("channel_slice_to_selection", op(("Split", "Slice"), any_inputs=True,
                                                        where=lambda n: n.attrs.get("integer_op") == "move"
                                                        and _slice_on_channels(n) and (n.op == "Slice" or _channel_axis(n))),
                    lambda m: _split(m) if m.root.op == "Split" else _slice(m))]
CONCAT_RULES = [Rule("concat_to_resadd", op("Concat", any_inputs=True, where=lambda n: _channel_axis(n)
                                            and n.attrs.get("integer_op") == "concat"), concat_to_resadd)]
UNALIGNED_CONCAT_RULES = [Rule("concat_unaligned_to_resadd", op("Concat", any_inputs=True, where=_unaligned),
                               concat_to_resadd)]
BROADCAST_RULES = [Rule("broadcast_to_expand", op(("Add", "Sub", "Mul"), any_inputs=True,
                                                  where=lambda n: n.attrs.get("integer_op") in ("add", "sub", "mul")),
                        _broadcast)]


def mark_unaligned_concats(graph: Graph, pword: int = PWORD) -> None:
    """Tag the channel Concats DMA copies cannot do: an input that does not fill whole PWORDs
    (its padded lanes would land inside the next input's channels) or that needs requantizing."""
    for node in graph.nodes:
        if node.op == "Concat" and node.attrs.get("integer_op") == "concat":
            node.attrs.pop("_unaligned", None)
            zp = int(node.attrs["out_zero_point"])
            aligned = all(int(graph.tensors[x].shape[1]) % pword == 0 for x in node.inputs)
            copies = all(int(z) == zp and is_identity_requant(m, s) for z, m, s in
                         zip(node.attrs["in_zero_points"], node.attrs["in_multipliers"], node.attrs["in_shifts"]))
            if not (aligned and copies):
                node.attrs["_unaligned"] = True

