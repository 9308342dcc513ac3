"""The memory planner: initial homes, promotion, paging, limits.

Why this order: every buffer starts in the pool the config names for its kind
(``io_memory_pool``, ``constant_memory_pool``, ``workspace_memory_pool``);
layer working sets (``staging``) are pinned to their core's L1, and the
buffers the code generator pins (DPU code and tables, DWPU coefficients:
their home is a config property) stay where they start. With
``enable_buffer_promotion`` the hottest buffers (DMA bytes per byte of
buffer) then move inward, to L1 and else L2, wherever the lifetime-aware
packing still fits the level's limit. Each level is finally packed from
scratch, largest first, and checked against its limit; a level that does not
fit raises :class:`~axdrive.ir.program_plan.InfeasiblePlan` naming the layer
whose buffer crosses the limit, so the code generator can re-tile it and try
again (``max_memplan_attempts``).
"""

from __future__ import annotations

__all__ = ["LifetimePlanner", "PlannerSettings", "PAGE_BYTES", "ALIGN_BYTES", "FRAME_PARALLEL_MODES"]

from dataclasses import dataclass
from typing import Any, Sequence

from axdrive.ir.program_plan import BufferRequest, InfeasiblePlan, LevelUsage, MemoryPlan, Placement

from ._packing import Item, align, first_fit, live_bound, pack, peak_of

PAGE_BYTES = 4096
"""Page of L2/DDR with ``page_memory``: freed activation space is reused in whole pages."""
ALIGN_BYTES = 64
"""PWORD: every buffer starts on a PWORD boundary."""
FRAME_PARALLEL_MODES = ("batch", "pipeline")
"""``multicore_mode`` values whose cores run different frames at the same time (``cooperative`` cores share
one frame, so task positions order all of them)."""


@dataclass(frozen=True)
class PlannerSettings:
    """The config properties the planner reads."""

    resources_used: float = 1.0
    l1_constraint: int | None = None
    l2_constraint: int | None = None
    ddr_constraint: int | None = None
    ddr_size_max: int | None = None
    ddr_size_reserved: int = 0
    page_memory: bool = True
    enable_buffer_promotion: bool = True
    split_buffer_promotion: bool = False
    max_memplan_attempts: int = 5
    frame_parallel: bool = False
    """The program's cores work on different frames at once (``multicore_mode`` ``batch`` or ``pipeline`` on
    several cores): a buffer only one core uses never shares bytes with another core's (see
    :mod:`._packing`), so no core waits on another's bytes; what does not fit L2 so stays in its pool (DDR)."""

    @classmethod
    def from_config(cls, cfg: Any) -> "PlannerSettings":
        derived = {"frame_parallel"}
        values = {k: getattr(cfg, k) for k in cls.__dataclass_fields__ if k not in derived}
        parallel = str(cfg.multicore_mode) in FRAME_PARALLEL_MODES and int(cfg.aipu_cores_used) > 1
        return cls(**values, frame_parallel=parallel)


_SIZE_PROP = {"l1": "l1_size_used", "l2": "l2_size_used", "ddr": "ddr_size_used"}


class LifetimePlanner:
    """:class:`~axdrive.ir.program_plan.MemoryPlanner` by lifetime-aware packing (see module docstring)."""

    def __init__(self, settings: PlannerSettings) -> None:
        self.s = settings
        self.max_attempts = settings.max_memplan_attempts

    # -- limits ----------------------------------------------------------------------------------------
    def limits(self, usable: dict[str, int]) -> dict[str, tuple[int, str]]:
        """Bytes each level may use, and the property that bounds it."""
        s = self.s
        out: dict[str, tuple[int, str]] = {}
        for level in ("l1", "l2", "ddr"):
            cap, prop = int(usable[level]), _SIZE_PROP[level]
            if level == "ddr" and s.ddr_size_max is not None and s.ddr_size_max - s.ddr_size_reserved < cap:
                cap, prop = s.ddr_size_max - s.ddr_size_reserved, "ddr_size_max"
            if s.resources_used < 1.0:
                cap, prop = int(cap * s.resources_used), "resources_used"
            limit = getattr(s, f"{level}_constraint")
            if limit is not None and limit < cap:
                cap, prop = int(limit), f"{level}_constraint"
            out[level] = (cap, prop)
        return out

    # -- planning --------------------------------------------------------------------------------------
    def plan(self, requests: Sequence[BufferRequest], *, end: int, usable: dict[str, int]) -> MemoryPlan:
        limits = self.limits(usable)
        req = {r.name: r for r in requests}
        items = {r.name: self._item(r, end, self.s.frame_parallel) for r in requests}
        level = {r.name: ("l1" if r.kind == "staging" else r.pool) for r in requests}
        for r in requests:
            if level[r.name] == "l1" and r.shared:
                level[r.name] = "l2"  # a buffer several cores touch cannot live in one core's L1

        def space(name: str) -> tuple[str, int]:
            lv = level[name]
            return (lv, req[name].core if lv == "l1" else 0)

        def granule(lv: str, r: BufferRequest) -> int:
            return PAGE_BYTES if self.s.page_memory and lv != "l1" and not r.whole_run else ALIGN_BYTES

        # what is placed so far, per space: (item, offset)
        placed: dict[tuple[str, int], list[tuple[Item, int]]] = {}
        for name in sorted(items, key=lambda n: (-items[n].size, items[n].first, n)):
            if level[name] == "l1":
                sp = space(name)
                g = granule("l1", req[name])
                placed.setdefault(sp, []).append((items[name], first_fit(items[name], placed.get(sp, []), g)))
        for sp, lst in placed.items():
            self._check(sp[0], lst, limits, req)

        promoted: dict[str, str] = {}
        l2_trial: list[tuple[Item, int]] = []
        if self.s.enable_buffer_promotion:
            cands = [r for r in requests if not r.pinned and r.kind != "staging" and r.traffic > 0
                     and level[r.name] != "l1"]
            density = sorted(cands, key=lambda r: (-r.traffic / max(r.size, 1), r.name))
            rounds: list[tuple[list[BufferRequest], tuple[str, ...]]]
            if self.s.split_buffer_promotion:
                # L1 by density first; then L2 by total bytes saved (L2 is large next to one buffer, so the
                # traffic a buffer carries matters more than how densely it carries it)
                by_total = sorted(cands, key=lambda r: (-r.traffic, r.name))
                rounds = [(density, ("l1",)), (by_total, ("l2",))]
            else:
                rounds = [(density, ("l1", "l2"))]
            for order, targets in rounds:
                for r in order:
                    if r.name in promoted:
                        continue
                    for lv in targets:
                        if lv == "l1" and r.shared:
                            continue
                        if lv == "l2" and level[r.name] == "l2":
                            continue
                        sp = (lv, r.core if lv == "l1" else 0)
                        lst = placed.setdefault(sp, []) if lv == "l1" else l2_trial
                        if lv == "l2" and not l2_trial:
                            l2_trial.extend(self._seed_l2(requests, level, items, granule))
                        g = granule(lv, r)
                        at = first_fit(items[r.name], lst, g)
                        if at + align(items[r.name].size, g) <= limits[lv][0]:
                            lst.append((items[r.name], at))
                            level[r.name] = lv
                            promoted[r.name] = lv
                            break

        # final packing per space: from scratch, largest first; keep the incremental one if it was tighter
        spaces: dict[tuple[str, int], list[str]] = {}
        for name in items:
            spaces.setdefault(space(name), []).append(name)
        placements: dict[str, Placement] = {}
        usage: dict[str, LevelUsage] = {}
        for sp, names in sorted(spaces.items()):
            lv, core = sp
            whole = [items[n] for n in names if req[n].whole_run]
            parts = [items[n] for n in names if not req[n].whole_run]
            g_parts = PAGE_BYTES if self.s.page_memory and lv != "l1" else ALIGN_BYTES
            offsets = pack(whole, ALIGN_BYTES)
            fixed = [(it, offsets[it.name]) for it in whole]
            offsets.update(pack(parts, g_parts, fixed))
            peak = max(peak_of(whole, offsets, ALIGN_BYTES), peak_of(parts, offsets, g_parts))
            incremental = placed.get(sp) if lv == "l1" else (l2_trial if lv == "l2" else None)
            if incremental:
                inc = {it.name: at for it, at in incremental}
                if set(inc) == set(names):
                    inc_peak = max((at + align(it.size, ALIGN_BYTES) for it, at in incremental), default=0)
                    if inc_peak < peak:
                        offsets, peak = inc, inc_peak
            self._check(lv, [(items[n], offsets[n]) for n in names], limits, req)
            key = lv if lv != "l1" else f"l1.core{core}"
            usage[key] = LevelUsage(key, peak, live_bound([items[n] for n in names], ALIGN_BYTES), limits[lv][0],
                                    len(names), limits[lv][1])
            for n in names:
                placements[n] = Placement(lv, offsets[n], core)
        # every level is reported, empty ones too: what the plan may use is part of the answer
        for key in ("ddr", "l2", "l1.core0"):
            lv = key.split(".")[0]
            if lv != "l1" or not any(k.startswith("l1.") for k in usage):
                usage.setdefault(key, LevelUsage(key, 0, 0, limits[lv][0], 0, limits[lv][1]))
        return MemoryPlan(placements, usage, promoted, PAGE_BYTES if self.s.page_memory else 0)

    # -- helpers ---------------------------------------------------------------------------------------
    @staticmethod
    def _item(r: BufferRequest, end: int, frame_parallel: bool) -> Item:
        owner = r.core if frame_parallel and not r.shared else -1
        if r.whole_run:
            return Item(r.name, max(r.size, 1), 0, end, owner)
        return Item(r.name, max(r.size, 1), r.first, r.last, owner)

    @staticmethod
    def _seed_l2(requests: Sequence[BufferRequest], level: dict[str, str], items: dict[str, Item],
                 granule: Any) -> list[tuple[Item, int]]:
        """The buffers whose pool already is L2, placed, so promotion into L2 sees the space they take."""
        out: list[tuple[Item, int]] = []
        for r in sorted(requests, key=lambda r: (-r.size, r.name)):
            if level[r.name] == "l2":
                out.append((items[r.name], first_fit(items[r.name], out, granule("l2", r))))
        return out

    def _check(self, lv: str, placed: list[tuple[Item, int]], limits: dict[str, tuple[int, str]],
               req: dict[str, BufferRequest]) -> None:
        cap, prop = limits[lv]
        over = [(at + it.size, it) for it, at in placed if at + it.size > cap]
        if over:
            top, it = max(over, key=lambda p: (p[0], p[1].name))
            # the layer to blame (and to re-tile) is the one with the most bytes live at that moment
            live = [o for o, _at in placed if o.first <= it.last and it.first <= o.last]
            big = max(live, key=lambda o: (req[o.name].kind == "staging", o.size, o.name))
            r = req[big.name]
            raise InfeasiblePlan(r.layer or r.name, lv, top, cap, prop)
