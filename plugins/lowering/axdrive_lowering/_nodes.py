"""Building blocks of the legalization rewrites: quantized nodes with their integer attributes.

Why one module: every rewrite that adds a node (a channel-selection
convolution, an identity-requantizing add, a broadcast) must give it exactly
the attributes :mod:`axdrive.reference.integer` reads, or ``run_integer`` on
the rewritten graph stops meaning what the hardware computes. They are made
here, once.
"""

from __future__ import annotations

__all__ = ["shared_zp", "IDENTITY_MULTIPLIER", "IDENTITY_SHIFT", "is_identity_requant", "activation", "selection_conv",
           "identity_add", "zp_of", "channels_of"]

from typing import Any, Sequence

import numpy as np

from axdrive.ir import Graph, Node, QParams, Tensor

#: ``requantize(v, 2**30, 30) == v`` for every int32 ``v``: the multiplier/shift of a scale of exactly 1.
IDENTITY_MULTIPLIER = 1 << 30
IDENTITY_SHIFT = 30


def is_identity_requant(multiplier: Any, shift: Any) -> bool:
    """True when ``(multiplier, shift)`` is a real scale of exactly 1 (every entry)."""
    m, s = np.asarray(multiplier, np.int64), np.asarray(shift, np.int64)
    return bool(np.all(m.astype(np.float64) * np.exp2(-s.astype(np.float64)) == 1.0))


def shared_zp(value: object) -> int:
    """The one value of a grid parameter (zero point, clamp bound): a scalar, or a per-channel vector whose
    entries are all equal (the quantizer's per-channel activation grids share their zero point, so a fused
    Relu's bound is that zero point too; validate_operators rejects other per-channel grids)."""
    zps = np.unique(np.asarray(value, dtype=np.int64))
    if zps.size != 1:
        raise ValueError(f"per-channel values {zps.tolist()} differ; the AIPU's output stage takes one per tensor")
    return int(zps[0])


def zp_of(graph: Graph, name: str) -> int:
    """Zero point of an int8 activation (per tensor, or per channel with one shared zero point)."""
    qp = graph.tensors[name].qparams
    return shared_zp(qp.zero_point) if qp is not None else 0


def channels_of(graph: Graph, name: str) -> int:
    """Channel count (axis 1) of an activation."""
    return int(graph.tensors[name].shape[1])


def activation(graph: Graph, base: str, shape: Sequence[int], qparams: QParams) -> str:
    """A new int8 activation tensor with ``qparams``; returns its name."""
    name = graph.unique_name(base)
    graph.tensors[name] = Tensor(name, tuple(shape), np.int8, None, qparams)
    return name


def selection_conv(graph: Graph, name: str, x: str, out: str, *, c_out: int, offset: int, in_zp: int,
                   multiplier: int, shift: int, out_zp: int, source: tuple[str, ...],
                   first: int = 0, count: int | None = None, index: Sequence[int] | None = None) -> Node:
    """A 1x1 convolution copying channels ``first .. first+count`` of ``x`` (or the channels ``index``, in
    that order, repeats allowed: a strided Slice or a Gather of channels) to channels ``offset ..`` of
    ``out`` and requantizing them with ``(multiplier, shift)``.

    ``acc = x - in_zp`` exactly (weight 1, bias 0), so the output is
    ``requantize(x - in_zp, multiplier, shift, out_zp)``: the integer
    semantics of a Concat input, or an exact copy with the identity
    requantization. Channels it does not write hold ``out_zp``."""
    c_in = channels_of(graph, x)
    picked = np.arange(first, c_in if count is None else first + count) if index is None else np.asarray(index)
    w = np.zeros((c_out, c_in, 1, 1), np.int8)
    w[offset + np.arange(len(picked)), picked.astype(np.int64), 0, 0] = 1
    wname = graph.add_constant(f"{name}/select_int8", w)
    bname = graph.add_constant(f"{name}/bias_int32", np.zeros(c_out, np.int32))
    attrs = {"dilations": [1, 1], "group": 1, "kernel_shape": [1, 1], "pads": [0, 0, 0, 0], "strides": [1, 1],
             "integer_op": "mac", "in_zero_point": int(in_zp),
             "requant_multiplier": np.full(c_out, multiplier, np.int64),
             "requant_shift": np.full(c_out, shift, np.int64), "out_zero_point": int(out_zp), "channel_axis": 1,
             "clamp_min": -128, "clamp_max": 127}
    return Node(name, "Conv", [x, wname, bname], [out], attrs, "", source)


def identity_add(name: str, a: str, b: str, out: str, zp: int, source: tuple[str, ...]) -> Node:
    """``out = a + b - zp`` on one grid (both inputs and the output share zero point ``zp``):
    an ``add`` whose every requantization is the identity."""
    attrs = {"integer_op": "add", "in_zero_points": [zp, zp], "in_multipliers": [IDENTITY_MULTIPLIER] * 2,
             "in_shifts": [IDENTITY_SHIFT] * 2, "requant_multiplier": np.asarray(IDENTITY_MULTIPLIER, np.int64),
             "requant_shift": np.asarray(IDENTITY_SHIFT, np.int64), "out_zero_point": int(zp), "clamp_min": -128,
             "clamp_max": 127}
    return Node(name, "Add", [a, b], [out], attrs, "", source)
