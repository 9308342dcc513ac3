"""``lowering.build_dpu_programs``: element-wise tails become virtual DPU programs.

Why fuse: on a layer-by-layer machine every tensor that leaves L1 costs two
DMA transfers. An element-wise node (requantizing add/sub/mul, LUT, the adds
of a rewritten Concat) whose input is the only use of the previous node's
output runs on the DPU right after that node, on the data still in L1. A
*layer* is therefore a head (an MVM or DWPU node, or an element-wise node
that starts its own DPU task) plus a chain of such tails.

Each layer with element-wise work gets one :class:`~axdrive.ir.dpu.VProgram`
on its head node (``attrs["dpu_program"]``), over virtual registers; the
register allocator (``axdrive-dpu-alloc``) turns it into hardware code
(``attrs["dpu_code"]``). Also on the head: ``dpu_streams`` (the tensors the
program loads, in stream order; stream 0 of an MVM/DWPU head is the unit's
int8 output), ``dpu_consts`` (per-channel int32 rows for ``loadc``),
``dpu_luts`` (int8 tables), ``dpu_output`` and ``dpu_tail`` (the fused nodes,
each of which gets ``attrs["fused_into"]``).

The instructions are the integer semantics of :mod:`axdrive.reference.integer`
spelled in the DPU ISA: ``r = mulq(x - zp, M, s)`` is ``requantize(..., 0)``
with int32 saturation, ``addi zp`` then ``clamp`` the output step. Softmax
(:func:`axdrive.numerics.softmax`) uses the pixel reductions ``rmax``/``rsum``,
the 32-bit table lookup ``lutw`` (the exponent table as four byte tables) and
the rounded division ``divr``; see :func:`_softmax`.
"""

from __future__ import annotations

__all__ = ["build_dpu_programs", "ELEMENTWISE", "exp_table_bytes"]

from typing import Any

import numpy as np

from axdrive.ir import Graph, Node, VInstr, VProgram
from axdrive.operators import OperatorRegistry
from axdrive.numerics import INT32_MAX, INT32_MIN, QMAX, QMIN, SOFTMAX_LEVELS, requantize
from axdrive.reference.integer import lut_source


ELEMENTWISE = frozenset({"add", "sub", "mul", "lut", "softmax"})


class _Writer:
    """Appends SSA instructions; loads each input tensor once."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.instrs: list[VInstr] = []
        self.streams: list[str] = []
        self.values: dict[str, int] = {}
        self.consts: list[np.ndarray] = []
        self.luts: list[np.ndarray] = []
        self.next = 0

    def emit(self, op: str, srcs: tuple[int, ...] = (), imms: tuple[int, ...] = ()) -> int:
        v = self.next
        self.next += 1
        self.instrs.append(VInstr(op, v, srcs, imms))
        return v

    def tensor(self, name: str) -> int:
        if name not in self.values:
            self.streams.append(name)
            self.values[name] = self.emit("load", imms=(len(self.streams) - 1,))
        return self.values[name]

    def per_channel(self, row: np.ndarray) -> int:
        self.consts.append(np.asarray(row, np.int64).reshape(-1))
        return self.emit("loadc", imms=(len(self.consts) - 1,))

    def constant(self, value: np.ndarray) -> int:
        """A constant operand: ``movi`` for a scalar, a per-channel row otherwise."""
        v = np.asarray(value, np.int64).reshape(-1)
        return self.emit("movi", imms=(int(v[0]),)) if v.size == 1 else self.per_channel(v)

    def requant(self, value: int, multiplier: Any, shift: Any) -> int:
        m = self.emit("movi", imms=(int(np.asarray(multiplier).reshape(-1)[0]),))
        s = self.emit("movi", imms=(int(np.asarray(shift).reshape(-1)[0]),))
        return self.emit("mulq", (value, m, s))

    def output_step(self, acc: int, node: Node) -> int:
        q = self.requant(acc, node.attrs["requant_multiplier"], node.attrs["requant_shift"])
        q = self.emit("addi", (q,), (int(node.attrs.get("out_zero_point", 0)),))
        lo = max(int(node.attrs.get("clamp_min", QMIN)), QMIN)
        hi = min(int(node.attrs.get("clamp_max", QMAX)), QMAX)
        return self.emit("clamp", (q,), (lo, hi))


def _operand(w: _Writer, node: Node, k: int, *, rescale: bool) -> int:
    g = w.graph
    name = node.inputs[k]
    zp = int(node.attrs["in_zero_points"][k])
    data = g.constant(name)
    if data is not None:  # constant operand: its centred (and rescaled) value is computed here, exactly
        centred = np.asarray(data, np.int64).reshape(-1) - zp
        if rescale:
            centred = requantize(centred, node.attrs["in_multipliers"][k], node.attrs["in_shifts"][k], 0, INT32_MIN,
                                 INT32_MAX).astype(np.int64)
        return w.constant(centred)
    v = w.emit("addi", (w.tensor(name),), (-zp,))
    if rescale:
        v = w.requant(v, node.attrs["in_multipliers"][k], node.attrs["in_shifts"][k])
    return v


def exp_table_bytes(table: np.ndarray) -> np.ndarray:
    """The softmax exponent table (``< 2**31``) as the four int8 byte tables ``lutw`` reads, least significant first."""
    t = np.asarray(table, np.int64)
    return np.stack([((t >> (8 * k)) & 0xFF).astype(np.uint8).view(np.int8) for k in range(4)])


def _softmax(w: _Writer, node: Node) -> int:
    """:func:`axdrive.numerics.softmax` in DPU instructions, one pixel's channels per reduction::

        x  = load                       ; x = select(mask, x, pad)   (channel padding only)
        d  = rmax(x) - x                ; e = lutw(d - 128)          (EXP[min(d, 255)])
        e  = select(d > 255, 0, e)      (channel padding only: beyond the table)
        y  = divr(e * 255, rsum(e)) + out_zero_point
    """
    x = w.tensor(node.inputs[0])
    channels = node.attrs.get("softmax_channels")
    if channels is not None:
        c = int(w.graph.tensors[node.inputs[0]].shape[1])
        mask = w.per_channel((np.arange(c) < int(channels)).astype(np.int64))
        pad = w.emit("movi", imms=(int(node.attrs["softmax_pad_value"]),))
        x = w.emit("select", (x, pad, mask))
    d = w.emit("sub", (w.emit("rmax", (x,)), x))
    table = len(w.luts)
    w.luts.extend(exp_table_bytes(node.attrs["exp_table"]))
    e = w.emit("lutw", (w.emit("addi", (d,), (-128,)),), (table,))
    if channels is not None:
        beyond = w.emit("cmpgt", (d, w.emit("movi", imms=(255,))))
        e = w.emit("select", (w.emit("movi", imms=(0,)), e, beyond))
    q = w.emit("divr", (w.emit("muli", (e,), (SOFTMAX_LEVELS,)), w.emit("rsum", (e,))))
    return w.emit("addi", (q,), (int(node.attrs.get("out_zero_point", -128)),))


def _node(w: _Writer, node: Node) -> int:
    kind = node.attrs["integer_op"]
    if kind == "softmax":
        return _softmax(w, node)
    if kind == "lut":
        w.luts.append(np.asarray(node.attrs["lut"], np.int8))
        return w.emit("lut", (w.tensor(lut_source(node)),), (len(w.luts) - 1,))
    if kind == "mul":
        a, b = _operand(w, node, 0, rescale=False), _operand(w, node, 1, rescale=False)
        return w.output_step(w.emit("mul", (a, b)), node)
    a, b = _operand(w, node, 0, rescale=True), _operand(w, node, 1, rescale=True)
    return w.output_step(w.emit("sub" if kind == "sub" else "add", (a, b)), node)


def _layer_program(graph: Graph, head: Node, members: list[Node], unit_head: bool) -> VProgram:
    w = _Writer(graph)
    if unit_head:
        w.tensor(head.outputs[0])
    result = -1
    for node in members:
        result = _node(w, node)
        w.values[node.outputs[0]] = result
    w.instrs.append(VInstr("store", None, (result,), (0, 1)))
    channels = int(graph.tensors[members[-1].outputs[0]].shape[1])
    consts = np.stack([np.broadcast_to(r, (channels,)) for r in w.consts]).astype(np.int32) if w.consts else None
    head.attrs["dpu_streams"] = list(w.streams)
    head.attrs["dpu_consts"] = consts
    head.attrs["dpu_luts"] = np.stack(w.luts) if w.luts else None
    head.attrs["dpu_output"] = members[-1].outputs[0]
    return VProgram(tuple(w.instrs), n_inputs=len(w.streams), n_outputs=1, n_luts=len(w.luts),
                    n_consts=len(w.consts), name=head.name)


def _fusable(graph: Graph, users: dict[str, list[Node]], tensor: str, claimed: set[str]) -> Node | None:
    """The element-wise node that may run right after the producer of ``tensor``, if any."""
    readers = users.get(tensor, [])
    if tensor in graph.outputs or len(readers) != 1:
        return None
    nxt = readers[0]
    if nxt.attrs.get("integer_op") not in ELEMENTWISE or nxt.name in claimed:
        return None
    if graph.tensors[nxt.outputs[0]].shape != graph.tensors[tensor].shape:
        return None
    return nxt


def build_dpu_programs(graph: Graph, operators: OperatorRegistry | None = None) -> dict[str, Any]:
    """Group nodes into layers and attach a virtual DPU program to each head with element-wise work
    (``operators``, default the installed plugins' registry, says which nodes run on the MVM or the DWPU)."""
    if operators is None:
        from axdrive.passes import default_operators

        operators = default_operators()
    users = graph.consumer_map()
    claimed: set[str] = set()
    stats = {"programs": 0, "fused_tail_nodes": 0, "standalone_dpu_nodes": 0, "instructions": 0}
    for node in graph.nodes:
        for key in ("dpu_program", "dpu_code", "fused_into", "dpu_tail"):
            node.attrs.pop(key, None)
    for node in graph.nodes:
        if node.name in claimed:
            continue
        kind = node.attrs.get("integer_op")
        head = operators.is_unit_head(node)  # the MVM or the DWPU: a layer of its own
        if not head and kind not in ELEMENTWISE:
            continue
        members: list[Node] = [] if head else [node]
        claimed.add(node.name)
        last = node
        while (nxt := _fusable(graph, users, last.outputs[0], claimed)) is not None:
            members.append(nxt)
            claimed.add(nxt.name)
            last = nxt
        if not members:
            continue
        program = _layer_program(graph, node, members, head)
        node.attrs["dpu_program"] = program
        node.attrs["dpu_tail"] = [m.name for m in members if m is not node]
        for m in members:
            if m is not node:
                m.attrs["fused_into"] = node.name
        stats["programs"] += 1
        stats["instructions"] += len(program)
        stats["fused_tail_nodes"] += len(node.attrs["dpu_tail"])
        stats["standalone_dpu_nodes"] += int(not head)
    return stats
