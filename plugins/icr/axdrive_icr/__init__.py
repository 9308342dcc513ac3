"""axdrive pass plugin: in-core replication (ICR) and sub-word ICR (SWICR).

One pass, ``icr.choose_factors``: for every dense convolution that runs on
the MVM it decides, from the target's IMC geometry (``aipu_v1``: 4 blocks of
512 rows x 128 columns), how many output x positions one pass of the array
computes (ICR: a layer with few output channels is copied into the idle
columns and blocks) and whether a first layer with few input channels packs
several pixels into one PWORD (SWICR). The decision goes into the node
attribute ``icr``; the code generator (``lowering.emit_program``) turns it
into MVM task parameters and the cycle model charges them. No computed
number changes, so the program's outputs stay bit-exact. See ``docs/icr.md``.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "choose_factors", "conv_shape", "ICR_DECISIONS", "choose", "ConvShape", "IcrOptions", "IcrDecision"]

from statistics import mean
from typing import Any

from axdrive.ir import Graph, Node
from axdrive.passes import Enablement, Phase, StashKey, compiler_pass, hookimpl

from ._choose import ConvShape, IcrDecision, IcrOptions, choose

#: The decision per MVM convolution, by node name, for later passes and tests.
ICR_DECISIONS: StashKey[dict[str, IcrDecision]] = StashKey("icr.decisions")

_LOWERING_MODES = ("quantize_and_lower", "lower_only")
_IO_EDGE = "io_edge"  # the attribute apply_pword_padding puts on the Pad after a model input
_CONFIG_KEYS = ("enable_icr", "enable_swicr", "icrx_force", "icrx_parallel_block_threshold", "icrx_max_factor")


def _enabled(config: Any) -> Enablement:
    mode = str(getattr(config.compiler_mode, "value", config.compiler_mode))
    if mode not in _LOWERING_MODES:
        return Enablement(False, f"compiler_mode={mode}")
    icr, swicr = bool(config.enable_icr), bool(config.enable_swicr)
    reason = f"enable_icr={'true' if icr else 'false'}, enable_swicr={'true' if swicr else 'false'}"
    return Enablement(icr or swicr, reason)


def _real_input_channels(g: Graph, x: str, producers: dict[str, Node]) -> int | None:
    """The real channel count of a model input a convolution reads (directly or through its padding),
    else ``None``: only a first layer's input can be packed, by the DMA that brings it in."""
    p = producers.get(x)
    if p is not None and p.attrs.get(_IO_EDGE) == "input":
        return int(g.tensors[p.inputs[0]].shape[1])
    if x in g.inputs:
        return int(g.tensors[x].shape[1])
    return None


def conv_shape(g: Graph, node: Node, producers: dict[str, Node]) -> ConvShape | None:
    """The shape of a dense MVM convolution, ``None`` for any other node."""
    if node.op != "Conv" or node.attrs.get("integer_op") != "mac" or int(node.attrs.get("group", 1)) != 1:
        return None
    w = g.constant(node.inputs[1])
    y = g.tensors[node.outputs[0]].shape
    if w is None or w.ndim != 4 or len(y) != 4:
        return None
    stride = [int(v) for v in node.attrs.get("strides", [1, 1])]
    dil = [int(v) for v in node.attrs.get("dilations", [1, 1])]
    return ConvShape(kh=int(w.shape[2]), kw=int(w.shape[3]), channels=int(w.shape[1]), out_channels=int(w.shape[0]),
                     stride_w=stride[1], out_width=int(y[3]), out_height=int(y[0]) * int(y[2]), dilation_w=dil[1],
                     real_channels=_real_input_channels(g, node.inputs[0], producers))


@compiler_pass("icr.choose_factors", requires=("legalized", "target_loaded"), provides=("icr_applied",), enabled=_enabled,
               phase=int(Phase.CODEGEN) - 2, config_keys=_CONFIG_KEYS)
def choose_factors(ctx: Any) -> dict[str, Any]:
    """Choose each MVM convolution's ICR factor (x positions per pass of the IMC array) and SWICR packing
    from the target's IMC geometry; record them in ``attrs["icr"]`` for the code generator.

    Runs after the channel padding (same requirement, earlier phase) and before the DPU programs are
    built, so the shapes it reads are the ones the array will hold. Exact: only how the MVM is used
    changes. Statistics: mvm_layers, icr_layers, mean_factor, max_factor, swicr_layers,
    threshold_skipped, force_unmet."""
    from axdrive_hw.plugin import TARGET

    target = ctx.stash[TARGET]  # the compile's target (aipu.target): device_dir and overrides included
    options = IcrOptions.from_config(ctx.config)
    g = ctx.graph
    producers = g.producers()
    decisions: dict[str, IcrDecision] = {}
    for node in g.nodes:
        shape = conv_shape(g, node, producers)
        if shape is None:
            continue
        decision = choose(shape, target.mvm, target.pword, options)
        decisions[node.name] = decision
        if decision.applied:
            node.attrs["icr"] = decision.attrs()
        else:
            node.attrs.pop("icr", None)
    ctx.stash[ICR_DECISIONS] = decisions
    factors = [d.factor for d in decisions.values() if d.factor > 1]
    unmet = sum(1 for d in decisions.values() if options.force > 1 and d.factor < options.force)
    if unmet:
        ctx.warn(f"icrx_force={options.force} does not fit the IMC array in {unmet} of {len(decisions)} MVM layers; "
                 "they use the largest factor that fits")
    ctx.report["icr"] = {name: d.attrs() for name, d in decisions.items()}
    return {"mvm_layers": len(decisions), "icr_layers": len(factors),
            "mean_factor": round(mean(factors), 3) if factors else 0.0, "max_factor": max(factors, default=1),
            "swicr_layers": sum(1 for d in decisions.values() if d.swicr_pack > 1),
            "threshold_skipped": sum(1 for d in decisions.values() if "threshold" in d.reason),
            "force_unmet": unmet}


@hookimpl
def axdrive_passes() -> list[Any]:
    return [choose_factors]
