"""``rewrite_dense_to_conv2d``: a dense layer is a 1x1 convolution of a 1x1 map.

Why: on the device an ``(N, K)`` tensor already is an ``N x 1 x 1 x K`` map
(:mod:`._layout`), so a Gemm/MatMul with constant weights computes exactly
what a 1x1 Conv does on it, and dense layers then share the convolution path
(MVM conv2d task, tiling, weight-set planning). The two Reshapes around it
are free on the device. Exact: the accumulation and requantization are
untouched.
"""

from __future__ import annotations

__all__ = ["DENSE_RULES"]

import numpy as np

from axdrive.ir import Node, Tensor
from axdrive.ir.rewrite import Match, Rule, const, op, var

_INTEGER_KEYS = ("integer_op", "in_zero_point", "requant_multiplier", "requant_shift", "out_zero_point",
                 "clamp_min", "clamp_max", "fused_activation")


def _to_conv(m: Match) -> list[Node] | None:
    g, node = m.graph, m.root
    x, out = node.inputs[0], node.outputs[0]
    xs, ys = g.tensors[x].shape, g.tensors[out].shape
    if len(xs) != 2 or node.attrs.get("transA", 0):
        return None
    w = m.value("w").astype(np.int8)
    w = w if node.op == "Gemm" and node.attrs.get("transB", 0) else w.T  # -> (O, K)
    n, k = xs
    o = w.shape[0]
    x4 = g.unique_name(f"{x}/nchw")
    g.tensors[x4] = Tensor(x4, (n, k, 1, 1), np.int8, None, g.tensors[x].qparams)
    y4 = g.unique_name(f"{out}/nchw")
    g.tensors[y4] = Tensor(y4, (n, o, 1, 1), np.int8, None, g.tensors[out].qparams)
    w4 = g.add_constant(f"{node.name}/weight_1x1_int8", w.reshape(o, k, 1, 1))
    bias = node.input(2) if node.op == "Gemm" and node.input(2) and g.tensors[node.input(2)].size == o else ""
    if not bias:
        bias = g.add_constant(f"{node.name}/bias_int32", np.zeros(o, np.int32))
    attrs = {k_: node.attrs[k_] for k_ in _INTEGER_KEYS if k_ in node.attrs}
    attrs.update({"dilations": [1, 1], "group": 1, "kernel_shape": [1, 1], "pads": [0, 0, 0, 0],
                  "strides": [1, 1], "channel_axis": 1})
    to4 = g.add_constant(f"{node.name}/shape4", np.array([n, k, 1, 1], np.int64))
    to2 = g.add_constant(f"{node.name}/shape2", np.array(ys, np.int64))
    return [Node(g.unique_name(f"{node.name}/to_map"), "Reshape", [x, to4], [x4], {"integer_op": "move"}, "",
                 node.source),
            Node(node.name, "Conv", [x4, w4, bias], [y4], attrs, "", node.source),
            Node(g.unique_name(f"{node.name}/from_map"), "Reshape", [y4, to2], [out], {"integer_op": "move"}, "",
                 node.source)]


DENSE_RULES = [
    Rule("dense_to_conv2d", op(("MatMul", "Gemm"), var("x"), const("w"), any_inputs=False,
                               where=lambda n: n.attrs.get("integer_op") == "mac"), _to_conv),
]
