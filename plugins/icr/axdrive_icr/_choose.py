"""The ICR/SWICR decision for one convolution, from the IMC geometry alone.

Why apart from the pass: the decision is a pure function of a layer's shape,
the target's MVM geometry and five config values, so it is tested on
hand-made shapes without compiling anything. The geometry itself (what a
replicated or packed matrix occupies) is :mod:`axdrive_hw.imc`, shared with
the cycle model that charges the result.
"""

from __future__ import annotations

__all__ = ["ConvShape", "IcrOptions", "IcrDecision", "choose"]

import math
from dataclasses import dataclass

from axdrive_hw.imc import ConvMapping, conv_mapping, output_channel_groups
from axdrive_hw.imc import plan_weight_sets
from axdrive_hw.target import MvmSpec


@dataclass(frozen=True)
class ConvShape:
    """What the decision needs of a dense convolution (channels as stored, i.e. PWORD-padded)."""

    kh: int
    kw: int
    channels: int
    out_channels: int
    stride_w: int
    out_width: int
    out_height: int = 1
    dilation_w: int = 1
    real_channels: int | None = None  # set for a first layer (reads a model input): SWICR candidate


@dataclass(frozen=True)
class IcrOptions:
    """The five config properties, as the decision reads them."""

    enable_icr: bool = True
    enable_swicr: bool = True
    force: int = -1               # icrx_force: -1 automatic, 1 no replication, n exactly n where it fits
    parallel_block_threshold: int = 4
    max_factor: int = 8

    @classmethod
    def from_config(cls, config: object) -> "IcrOptions":
        return cls(bool(getattr(config, "enable_icr")), bool(getattr(config, "enable_swicr")),
                   int(getattr(config, "icrx_force")), int(getattr(config, "icrx_parallel_block_threshold")),
                   int(getattr(config, "icrx_max_factor")))


@dataclass(frozen=True)
class IcrDecision:
    """How one layer uses the array: ``factor`` x positions per pass (``window`` side by side in one block
    group, ``factor / window`` block groups), ``swicr_pack`` pixels per PWORD, and why."""

    factor: int
    window: int
    swicr_pack: int
    swicr_channels: int
    blocks: int         # IMC blocks the layer occupies without replication ("parallel blocks")
    blocks_used: int    # IMC blocks with the chosen replication
    weight_sets: int
    load_bytes: int     # weight bytes loaded into the array per weight-set load
    reason: str

    @property
    def applied(self) -> bool:
        return self.factor > 1 or self.swicr_pack > 1

    def attrs(self) -> dict[str, int | str]:
        """The node attribute ``icr`` the code generator turns into MVM task parameters."""
        return {"icr_factor": self.factor, "icr_window": self.window, "swicr_pack": self.swicr_pack,
                "swicr_channels": self.swicr_channels, "blocks": self.blocks, "blocks_used": self.blocks_used,
                "weight_sets": self.weight_sets, "reason": self.reason}


def _mapping(shape: ConvShape, spec: MvmSpec, pword: int, window: int, copies: int, pack: int) -> ConvMapping:
    return conv_mapping(spec, pword, kh=shape.kh, kw=shape.kw, channels=shape.channels,
                        out_channels=shape.out_channels, stride_w=shape.stride_w, window=window, copies=copies,
                        pack=pack, real_channels=shape.real_channels)


def _cycles(shape: ConvShape, spec: MvmSpec, m: ConvMapping) -> float:
    """The layer's MVM cycles with mapping ``m``, as the cycle model charges them (weights loaded once,
    resident over the layer's height tiles)."""
    passes = shape.out_height * math.ceil(shape.out_width / m.factor)
    return m.load_bytes / spec.weight_load_bandwidth + passes * spec.activation_bits


def _unreplicated(shape: ConvShape, spec: MvmSpec, reason: str) -> IcrDecision:
    k = shape.kh * shape.kw * shape.channels
    sets = sum(len(plan_weight_sets(k, o1 - o0, spec.rows, spec.columns, spec.imc_blocks))
               for o0, o1 in output_channel_groups(k, shape.out_channels, spec))
    rt, ct = math.ceil(k / spec.rows), math.ceil(shape.out_channels / spec.columns)
    blocks = min(rt * ct, spec.imc_blocks)
    return IcrDecision(1, 1, 1, shape.channels, blocks, blocks, sets, k * shape.out_channels, reason)


def choose(shape: ConvShape, spec: MvmSpec, pword: int, options: IcrOptions) -> IcrDecision:
    """The replication of one dense convolution.

    Candidates are every (window, block copies, SWICR pack) whose replicated matrix fits one weight set.
    Replication is not free: every replica is loaded into the array, so the best candidate has the
    fewest estimated cycles (weight load at ``weight_load_bandwidth`` plus ``activation_bits`` cycles
    per pass), then the most x positions per pass, then the fewest blocks. A forced factor
    (``force > 1``) skips the estimate: the largest factor up to it that fits. ICR is considered
    only when the unreplicated layer fits one weight set on at most ``parallel_block_threshold``
    blocks, and with at most ``max_factor`` x positions per pass.
    """
    packs = [1]
    if (options.enable_swicr and shape.real_channels is not None and shape.dilation_w == 1
            and 2 * shape.real_channels <= pword):
        packs.append(pword // shape.real_channels)
    base = _mapping(shape, spec, pword, 1, 1, 1)
    if not base.fits and len(packs) == 1:
        return _unreplicated(shape, spec, f"needs {base.tiles} IMC blocks: several weight sets, no replication")
    if options.force > 0:
        cap = options.force
    elif options.enable_icr:
        cap = options.max_factor
    else:
        cap = 1
    cap = max(1, min(cap, shape.out_width))
    if shape.dilation_w != 1:
        cap = 1  # the sliding-window layout assumes adjacent taps
    best: tuple[tuple[int, int, int, int], ConvMapping] | None = None
    gated = False
    for pack in packs:
        single = _mapping(shape, spec, pword, 1, 1, pack)
        if not single.fits:
            continue
        layer_cap = cap
        if single.tiles > options.parallel_block_threshold:
            layer_cap, gated = 1, True
        for window in range(1, layer_cap + 1):
            for copies in range(1, layer_cap // window + 1):
                m = _mapping(shape, spec, pword, window, copies, pack)
                if not m.fits:
                    continue
                if options.force > 1:
                    key = (m.factor, -m.load_bytes, -m.tiles, m.window)
                else:
                    key = (-_cycles(shape, spec, m), m.factor, -m.tiles, m.window)
                if best is None or key > best[0]:
                    best = (key, m)
    if best is None:
        return _unreplicated(shape, spec, f"needs {base.tiles} IMC blocks: several weight sets, no replication")
    m = best[1]
    if m.factor == 1 and m.pack == 1:
        if gated:
            why = f"uses {base.tiles} blocks > icrx_parallel_block_threshold={options.parallel_block_threshold}"
        elif shape.out_width == 1:
            why = "output width 1: no x positions to replicate"
        elif cap == 1:
            why = "ICR off (enable_icr=false or icrx_force=1)"
        else:
            why = "no replication pays for its weight loads"
        return _unreplicated(shape, spec, why)
    parts = []
    if m.factor > 1:
        parts.append(f"{m.factor} x positions per pass ({m.window} side by side x {m.copies} block groups)")
        if options.force > 1 and m.factor < options.force:
            parts.append(f"icrx_force={options.force} does not fit the array")
    if m.pack > 1:
        parts.append(f"SWICR {m.pack} pixels of {shape.real_channels} channels per PWORD")
    return IcrDecision(m.factor, m.window, m.pack, shape.real_channels or shape.channels,
                       min(base.tiles, spec.imc_blocks), m.tiles, 1, m.load_bytes, "; ".join(parts))
