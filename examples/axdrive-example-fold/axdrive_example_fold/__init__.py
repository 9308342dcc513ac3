"""Fold a constant Add or Mul that follows a Conv into the Conv: an out-of-tree graph rewrite.

``y = Conv(x, W, b) + c``  becomes  ``Conv(x, W, b + c)``;
``y = Conv(x, W, b) * s``  becomes  ``Conv(x, W * s, b * s)``,

for ``c`` / ``s`` a scalar or one value per output channel (shape ``[C]``,
``[C, 1, 1]`` or ``[1, C, 1, 1]``), when the Conv's output has no other reader.
The float function is the same up to float rounding; the quantizer then sees
one layer where there were two, so one requantization and one int8 grid fewer.

The pass uses the pieces a plugin author has (``docs/writing-a-pass-plugin.md``):

- the rewrite engine (``axdrive.ir.rewrite``): a rule is a pattern and a
  function, applied to a fixed point, with per-rule counts as statistics;
- ``before=`` / ``after=`` ordering: on the optimized float graph, before the
  graph cleaner places nodes;
- a plugin option, ``fold.mul`` (fold the Mul rule too; default true).
"""

from __future__ import annotations

__all__ = ["fold_conv_affine", "RULES", "axdrive_passes", "axdrive_addoption"]

from typing import Any

import numpy as np

from axdrive.ir.rewrite import Match, Rule, const, op, rewrite, var
from axdrive.passes import PassContext, PluginOption, compiler_pass, hookimpl


def _per_channel(m: Match, key: str) -> np.ndarray | None:
    """The constant ``key`` as one value per output channel of the matched Conv, or None if it is not one."""
    conv = m["conv"]
    if len(conv.inputs) > 2 and conv.inputs[2] and not m.graph.is_constant(conv.inputs[2]):
        return None  # a bias computed at run time: nothing to fold into
    channels = int(m.value("w").shape[0])
    c = np.asarray(m.value(key), np.float32)
    if c.size == 1:
        return np.full(channels, c.reshape(()), np.float32)
    if c.shape in ((channels,), (channels, 1, 1), (1, channels, 1, 1)):
        return c.reshape(channels)
    return None


def _bias(m: Match) -> np.ndarray:
    conv = m["conv"]
    if len(conv.inputs) > 2 and conv.inputs[2]:
        return np.asarray(m.graph.constant(conv.inputs[2]), np.float32)
    return np.zeros(int(m.graph.constant(conv.inputs[1]).shape[0]), np.float32)


def _fold_add(m: Match) -> list | None:
    c = _per_channel(m, "c")
    if c is None:
        return None
    conv = m["conv"]
    bias = m.graph.add_constant(f"{conv.name}/folded_bias", _bias(m) + c)
    return [m.node("Conv", [conv.inputs[0], conv.inputs[1], bias], dict(conv.attrs), name=conv.name)]


def _fold_mul(m: Match) -> list | None:
    s = _per_channel(m, "s")
    if s is None:
        return None
    conv = m["conv"]
    w = np.asarray(m.value("w"), np.float32)
    weight = m.graph.add_constant(f"{conv.name}/folded_weight", w * s.reshape((-1,) + (1,) * (w.ndim - 1)))
    bias = m.graph.add_constant(f"{conv.name}/folded_bias", _bias(m) * s)
    return [m.node("Conv", [conv.inputs[0], weight, bias], dict(conv.attrs), name=conv.name)]


_CONV = op("Conv", var("x"), const("w"), name="conv")  # the first inputs: a bias, if any, is not matched

#: The two rewrites, by name (their hit counts are the pass's statistics).
RULES = [
    Rule("conv_add", op("Add", _CONV, const("c")), _fold_add),
    Rule("conv_mul", op("Mul", _CONV, const("s")), _fold_mul),
]


@compiler_pass("fold.conv_affine", requires=("graph_optimized",), provides=("conv_affine_folded",),
               before=("graph_cleaned",))
def fold_conv_affine(ctx: PassContext) -> dict[str, Any]:
    """Fold a constant per-channel Add or Mul after a Conv into the Conv's bias and weights.

    Runs on the optimized float graph, before the graph cleaner places nodes, so the quantizer and the
    placement see one layer. Statistics: how often each rule fired."""
    rules = RULES if ctx.options["fold.mul"] else RULES[:1]
    counts = rewrite(ctx.graph, rules)
    ctx.log.info("folded constant affine ops into convolutions", **counts)
    return counts


@hookimpl
def axdrive_passes() -> list:
    return [fold_conv_affine]


@hookimpl
def axdrive_addoption() -> list[PluginOption]:
    # namespace given: the option is fold.mul whether the plugin is found by its entry point or loaded by -p
    return [PluginOption("mul", "bool", True, "also fold a constant Mul after a Conv into its weights",
                         namespace="fold")]
