"""axdrive pass plugin: tiling.

``tiling.choose_tiles`` (provides ``tiled``) decides, per layer (a unit head
plus its fused DPU tail), ``attrs["tiling"] = {"h_tiles", "oc_tiles",
"depth_group", "l1_estimate", "attempts"}``: the fewest height tiles (and,
for MVM layers whose weights count, output-channel tiles) whose working set
fits L1, and which consecutive layers run depth-first with their
intermediate results kept in L1 (``tiling_depth``, ``dfs_search_constraint``).
The code generator consumes the decision; the numbers never depend on it.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "choose_tiles", "l1_budget"]

from typing import Any

from axdrive.errors import MemoryPlanError
from axdrive.ir import Graph, Node
from axdrive.passes import Phase, compiler_pass, hookimpl, when_mode

from ._footprint import Layer, footprint, is_unit_head, layer_of
from ._groups import segment_chain

_COMPILE_TIME_MODES = ("batch", "cooperative", "pipeline")


def l1_budget(cfg: Any) -> int:
    """L1 bytes per core a layer may stage: usable L1, times ``resources_used``, at most ``l1_constraint``."""
    budget = int((cfg.l1_size_used - cfg.l1_size_reserved) * cfg.resources_used)
    if cfg.l1_constraint is not None:
        budget = min(budget, int(cfg.l1_constraint))
    return budget


def _layer_items(g: Graph) -> list[Node | None]:
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
        if is_unit_head(node) or node.attrs.get("dpu_program") is not None:
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


@compiler_pass("tiling.choose_tiles", requires=("registers_allocated",), provides=("tiled",),
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
    Writes ``attrs["tiling"]``. Statistics: layers, tiled_layers, oc_tiled_layers, depth_groups."""
    g, cfg = ctx.graph, ctx.config
    budget = l1_budget(cfg)
    cooperative = cfg.multicore_mode == "cooperative" and cfg.aipu_cores_used > 1
    min_h = int(cfg.aipu_cores_used) if cooperative else 1
    items = _layer_items(g)
    layers: dict[str, Layer] = {}
    stats = {"layers": 0, "tiled_layers": 0, "oc_tiled_layers": 0, "depth_groups": 0}
    for head in items:
        if head is None:
            continue
        layer = layer_of(g, head)
        layers[head.name] = layer
        h, o, need, attempts = _choose(layer, cfg, budget, min_h)
        head.attrs["tiling"] = {"h_tiles": h, "oc_tiles": o, "depth_group": None, "l1_estimate": need,
                                "attempts": attempts}
        stats["layers"] += 1
        stats["tiled_layers"] += int(h > 1)
        stats["oc_tiled_layers"] += int(o > 1)
    if cfg.tiling_depth > 1 and cfg.multicore_mode != "cooperative":
        stats["depth_groups"] = _group(g, items, layers, int(cfg.tiling_depth), budget, cfg.dfs_search_constraint)
        members: dict[int, list[Node]] = {}
        for head in items:
            if head is not None and head.attrs["tiling"]["depth_group"] is not None:
                members.setdefault(head.attrs["tiling"]["depth_group"], []).append(head)
        for heads in members.values():
            # a group's layers are live together, next to the intermediates it keeps: split what is left
            held = sum(_bytes(layers[h.name]) for h in heads[:-1])
            share = max(1, (budget - held) // len(heads))
            for h in heads:
                try:
                    th, to, need, attempts = _choose(layers[h.name], cfg, share, min_h)
                except MemoryPlanError:
                    for x in heads:
                        x.attrs["tiling"]["depth_group"] = None
                    break
                h.attrs["tiling"].update(h_tiles=th, oc_tiles=to, l1_estimate=need, attempts=attempts)
        stats["depth_groups"] = len({h.attrs["tiling"]["depth_group"] for h in items
                                     if h is not None and h.attrs["tiling"]["depth_group"] is not None})
    return stats


def _group(g: Graph, items: list[Node | None], layers: dict[str, Layer], depth: int, budget: int,
           candidates: int | None) -> int:
    users = g.consumer_map()
    outputs = set(g.outputs)
    groups = 0
    run: list[Node] = []

    def linked(a: Node, b: Node) -> bool:
        la, lb = layers[a.name], layers[b.name]
        return (lb.x == la.output and lb.in_shape is not None and la.output not in outputs
                and len(users.get(la.output, [])) == 1 and lb.window != (0, 0, 0))

    def flush() -> None:
        nonlocal groups
        if len(run) < 2:
            run.clear()
            return
        sizes = [_bytes(layers[n.name]) for n in run]
        links = [linked(a, b) for a, b in zip(run, run[1:])]
        at = 0
        for length in segment_chain(sizes, links, depth, budget // 4, candidates):
            if length > 1:
                for n in run[at: at + length]:
                    n.attrs["tiling"]["depth_group"] = groups
                groups += 1
            at += length
        run.clear()

    for item in items:
        if item is None:
            flush()
            continue
        run.append(item)
    flush()
    return groups


def _bytes(layer: Layer) -> int:
    n, h, w, c = layer.out_shape
    return n * h * w * c


@hookimpl
def axdrive_passes() -> list[Any]:
    return [choose_tiles]
