"""axdrive pass plugin: tiling.

``tiling.choose_tiles`` (provides ``tiled``) decides, per layer (a unit head
plus its fused DPU tail), ``attrs["tiling"] = {"h_tiles", "oc_tiles",
"depth_group", "l1_estimate", "attempts"}``: the fewest height tiles (and,
for MVM layers whose weights count, output-channel tiles) whose working set
fits L1, and which consecutive layers run depth-first with their
intermediate results kept in L1 (``tiling_depth``, ``dfs_search_constraint``).
A group fits when its layers' working sets plus one rolling buffer per
intermediate (the rows live at once, not the whole tensor) fit the L1 budget
together; the layers of a group get more height tiles until they do, which
also shrinks the rolling buffers. The code generator consumes the decision;
the numbers never depend on it.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "choose_tiles", "group_fit", "l1_budget"]

from typing import Any

from axdrive.errors import MemoryPlanError
from axdrive.ir import Graph, Node
from axdrive.passes import Phase, compiler_pass, hookimpl, when_mode

from ._footprint import Layer, footprint, layer_of, rolling_bytes
from ._groups import segment_chain

_COMPILE_TIME_MODES = ("batch", "cooperative", "pipeline")


def l1_budget(target: Any, cfg: Any) -> int:
    """L1 bytes per core a layer may stage: the target's one budget (``axdrive_hw.target.l1_budget``), which
    code generation emits against too."""
    from axdrive_hw.target import l1_budget as budget_of

    return budget_of(target, cfg)


def _layer_items(g: Graph, operators: Any) -> list[Node | None]:
    """The layers in the code generator's emission order; ``None`` marks a non-layer item (alias, concat)."""
    heads = {n.name: n for n in g.nodes if n.attrs.get("dpu_tail")}
    items: list[Node | None] = []
    for node in g.nodes:
        if node.attrs.get("io_edge"):
            continue
        if node.attrs.get("fused_into"):
            head = heads[node.attrs["fused_into"]]
            if head.attrs["dpu_tail"][-1] == node.name:
                items.append(head)
            continue
        if node.attrs.get("dpu_tail"):
            continue
        if operators.is_unit_head(node) or node.attrs.get("dpu_program") is not None:
            items.append(node)
        else:
            items.append(None)
    return items


def _choose(layer: Layer, cfg: Any, budget: int, min_h: int) -> tuple[int, int, int, int]:
    """``(h_tiles, oc_tiles, estimate, attempts)`` for one layer."""
    slots = 2 if cfg.pipeline_spatial_tiles else 1
    cslots = 2 if cfg.pipeline_channel_tiles else 1
    ignore = bool(cfg.ignore_weight_buffers)
    oh, oc = layer.out_shape[1], layer.out_shape[3]
    max_oc = max(1, oc // 64) if layer.mvm else 1
    if cfg.force_h_tiling is not None:
        h = min(int(cfg.force_h_tiling), oh)
        o = min(int(cfg.force_oc_tiling or 1), max_oc)
        return h, o, footprint(layer, h, o, slots, cslots, ignore), 1
    o = 1
    if cfg.force_oc_tiling is not None:
        o = min(int(cfg.force_oc_tiling), max_oc)
    elif layer.mvm and not ignore and layer.weight_bytes > budget // 2:
        o = min(max_oc, -(-layer.weight_bytes * 4 // budget))
    attempts = 0
    h = max(1, min(min_h, oh))
    while attempts < cfg.max_tiling_attempts and h <= oh:
        attempts += 1
        need = footprint(layer, h, o, slots, cslots, ignore)
        if need <= budget:
            return h, o, need, attempts
        h = h + 1 if h < 4 else h * 2  # fine steps first, then doubling: few attempts reach one row per tile
        h = min(h, oh) if attempts < cfg.max_tiling_attempts and h > oh and oh > 1 else h
    need = footprint(layer, min(h, oh), o, slots, cslots, ignore)
    raise MemoryPlanError(f"layer {layer.head!r} needs {need} bytes of L1 but {budget} are available after "
                          f"{attempts} tiling attempt(s); raise max_tiling_attempts or l1_constraint")


@compiler_pass("tiling.choose_tiles", requires=("registers_allocated", "target_loaded"), provides=("tiled",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=int(Phase.CODEGEN) - 1,
               config_keys=("force_h_tiling", "force_oc_tiling", "max_tiling_attempts", "tiling_depth",
                            "dfs_search_constraint", "ignore_weight_buffers", "l1_size_used", "l1_size_reserved",
                            "l1_constraint", "resources_used", "pipeline_spatial_tiles", "pipeline_channel_tiles",
                            "aipu_cores_used", "multicore_mode"))
def choose_tiles(ctx: Any) -> dict[str, Any]:
    """Choose per layer the height tiles and output-channel tiles that fit its working set into L1
    (``max_tiling_attempts`` tile counts tried; ``force_h_tiling``/``force_oc_tiling`` override;
    weights left out with ``ignore_weight_buffers``), and the depth-first groups of consecutive layers
    whose intermediate results stay in L1 (``tiling_depth``; ``dfs_search_constraint`` bounds the search).
    Writes ``attrs["tiling"]`` (group members: ``rolling_estimate``, the bytes of the rolling buffer their
    result gets). Statistics: layers, tiled_layers, oc_tiled_layers, depth_groups, rolling_bytes (the groups'
    rolling buffers), kept_bytes (the whole intermediates they replace)."""
    g, cfg = ctx.graph, ctx.config
    from axdrive_hw.plugin import TARGET

    budget = l1_budget(ctx.stash[TARGET], cfg)
    cooperative = cfg.multicore_mode == "cooperative" and cfg.aipu_cores_used > 1
    min_h = int(cfg.aipu_cores_used) if cooperative else 1
    items = _layer_items(g, ctx.operators)
    layers: dict[str, Layer] = {}
    stats = {"layers": 0, "tiled_layers": 0, "oc_tiled_layers": 0, "depth_groups": 0, "rolling_bytes": 0,
             "kept_bytes": 0}
    for head in items:
        if head is None:
            continue
        layer = layer_of(g, head, ctx.operators)
        layers[head.name] = layer
        h, o, need, attempts = _choose(layer, cfg, budget, min_h)
        head.attrs["tiling"] = {"h_tiles": h, "oc_tiles": o, "depth_group": None, "l1_estimate": need,
                                "attempts": attempts}
        stats["layers"] += 1
        stats["tiled_layers"] += int(h > 1)
        stats["oc_tiled_layers"] += int(o > 1)
    if cfg.tiling_depth > 1 and cfg.multicore_mode != "cooperative":
        stats["depth_groups"], stats["rolling_bytes"], stats["kept_bytes"] = _group(
            g, items, layers, int(cfg.tiling_depth), budget, cfg.dfs_search_constraint, cfg, min_h)
        tilings = [h.attrs["tiling"] for h in items if h is not None]
        stats["tiled_layers"] = sum(int(t["h_tiles"] > 1) for t in tilings)
        stats["oc_tiled_layers"] = sum(int(t["oc_tiles"] > 1) for t in tilings)
    return stats


Choice = tuple[int, int, int, int]  # (h_tiles, oc_tiles, l1 estimate, attempts) of one layer


def group_fit(group: list[Layer], cfg: Any, budget: int, min_h: int) -> tuple[list[Choice], list[int]] | None:
    """The tiles of a depth-first group's layers and its rolling buffers' bytes (one per intermediate), such
    that the working sets and rolling buffers fit ``budget`` together; ``None`` when no tiling does.

    Why greedy on the biggest working set: every layer of a group is live at once, and every extra tile
    costs a task per unit (and an IMC weight reload), so each layer starts with the fewest tiles that fit
    it alone and, while the group does not fit, the layer needing the most bytes takes the next tile count
    (more tiles also mean fewer rows live in the rolling buffers)."""
    # the code generator stages a layer's weights in its arena even when the tile choice leaves them out
    # (``ignore_weight_buffers``), and a group's arenas are all live at once, so here they count
    staged = [layer.weight_bytes if cfg.ignore_weight_buffers else 0 for layer in group]
    try:
        choices = [_choose(layer, cfg, budget - w, min_h) for layer, w in zip(group, staged)]
    except MemoryPlanError:
        return None
    stuck: set[int] = set()
    while True:
        rings = [rolling_bytes(a, b, ca[0], cb[0]) for a, b, ca, cb in zip(group, group[1:], choices, choices[1:])]
        if sum(c[2] for c in choices) + sum(staged) + sum(rings) <= budget:
            return choices, rings
        free = [k for k in range(len(group)) if k not in stuck]
        if not free:
            return None
        k = max(free, key=lambda i: (choices[i][2] + staged[i], -i))
        try:
            smaller = _choose(group[k], cfg, choices[k][2] - 1, min_h)
        except MemoryPlanError:
            stuck.add(k)
            continue
        if smaller[2] >= choices[k][2]:
            stuck.add(k)  # forced tiling: the tile count does not move
            continue
        choices[k] = smaller


def _group(g: Graph, items: list[Node | None], layers: dict[str, Layer], depth: int, budget: int,
           candidates: int | None, cfg: Any, min_h: int) -> tuple[int, int, int]:
    """Mark ``attrs["tiling"]["depth_group"]`` and the group tiles; ``(groups, rolling bytes, kept bytes)``."""
    users = g.consumer_map()
    outputs = set(g.outputs)
    groups = rolling = kept = 0
    run: list[Node] = []

    def linked(a: Node, b: Node) -> bool:
        la, lb = layers[a.name], layers[b.name]
        return (lb.x == la.output and lb.in_shape is not None and la.output not in outputs
                and len(users.get(la.output, [])) == 1 and lb.window != (0, 0, 0))

    def flush() -> None:
        nonlocal groups, rolling, kept
        if len(run) < 2:
            run.clear()
            return
        sizes = [_bytes(layers[n.name]) for n in run]
        links = [linked(a, b) for a, b in zip(run, run[1:])]
        fitted: dict[tuple[int, int], tuple[list[Choice], list[int]] | None] = {}

        def fits(i: int, length: int) -> bool:
            if (i, length) not in fitted:
                fitted[i, length] = group_fit([layers[n.name] for n in run[i: i + length]], cfg, budget, min_h)
            return fitted[i, length] is not None

        at = 0
        for length in segment_chain(sizes, links, depth, budget, candidates, fits):
            if length > 1:
                choices, rings = fitted[at, length]
                for n, (th, to, need, attempts) in zip(run[at: at + length], choices):
                    n.attrs["tiling"].update(depth_group=groups, h_tiles=th, oc_tiles=to, l1_estimate=need,
                                             attempts=attempts)
                for n, ring in zip(run[at: at + length - 1], rings):
                    n.attrs["tiling"]["rolling_estimate"] = ring
                groups += 1
                rolling += sum(rings)
                kept += sum(sizes[at: at + length - 1])
            at += length
        run.clear()

    for item in items:
        if item is None:
            flush()
            continue
        run.append(item)
    flush()
    return groups, rolling, kept


def _bytes(layer: Layer) -> int:
    n, h, w, c = layer.out_shape
    return n * h * w * c


@hookimpl
def axdrive_passes() -> list[Any]:
    return [choose_tiles]
