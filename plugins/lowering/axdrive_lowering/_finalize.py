"""From recorded tasks to a program: memory plan (with re-tiling retries), dependencies, order, tokens.

Why here: the code generator alone knows which buffers and tasks a tiling
produces; the memory planner and the scheduler (other distributions) decide
where buffers live and in which order tasks run. This module describes the
recording to them as :class:`~axdrive.ir.program_plan.BufferRequest` and
:class:`~axdrive.ir.program_plan.PlanTask`, applies their answers, and when a
layer's L1 working set does not fit, records again with more tiles for that
layer (or without its depth-first group), up to ``max_memplan_attempts``.
"""

from __future__ import annotations

__all__ = ["Finalized", "finalize", "buffer_requests"]

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from axdrive.errors import MemoryPlanError
from axdrive.ir.program_plan import BufferRequest, InfeasiblePlan, MemoryPlan, MemoryPlanner, PlanTask, \
    SchedulePolicy, TaskScheduler
from axdrive_hw.program.model import Program, Task
from axdrive_hw.target import Target

from ._recorder import Recorder, TaskRec, materialize
from ._sync import dependencies, engine_of, tokens


@dataclass
class Finalized:
    """The program and what the report says about how it was planned."""

    program: Program
    plan: MemoryPlan
    emitted: Any
    attempts: int
    edges: int
    phases: dict[str, float] = field(default_factory=dict)


def buffer_requests(rec: Recorder, policy: SchedulePolicy, l1_bytes: int) -> list[BufferRequest]:
    """Every buffer the recording declares, with its lifetime (task positions), traffic and owning layer."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    traffic: dict[str, int] = {}
    cores: dict[str, set[int]] = {}
    item_last: dict[int, int] = {}
    for i, t in enumerate(rec.tasks):
        item_last[t.item] = i
        moved = int(t.params["rows"]) * int(t.params["row_bytes"]) if t.kind == "dma" else 0
        for ref in (*t.inputs.values(), *t.outputs.values()):
            d = rec.buffers[ref.buffer]
            key = d.arena or d.name
            first.setdefault(key, i)
            last[key] = i
            cores.setdefault(key, set()).add(t.core)
            traffic[key] = traffic.get(key, 0) + moved
    items = sorted(item_last)
    next_item = {k: items[n + 1] for n, k in enumerate(items[:-1])}
    arena_bytes: dict[tuple[int, int], int] = {}
    for d in rec.buffers.values():
        # an item's L1 working set: its arenas and the L1 buffers it starts (a depth-first group's rolling ones)
        if (d.kind == "staging" or (d.level == "l1" and d.arena is None)) and d.name in first:
            key = (rec.tasks[first[d.name]].item, d.core)
            arena_bytes[key] = arena_bytes.get(key, 0) + d.size
    out = []
    for d in rec.buffers.values():
        if d.arena is not None:
            continue
        f, la = first.get(d.name, 0), last.get(d.name, 0)
        if d.kind == "staging" and policy.inter_operator_async and d.name in first:
            item = rec.tasks[f].item
            nxt = next_item.get(item)
            if nxt is not None and arena_bytes.get((item, d.core), 0) + arena_bytes.get((nxt, d.core), 0) <= l1_bytes:
                # keep the next layer's working set apart from this one so the two can overlap in time (all of
                # this item's working set counts: a depth-first group's layers and rolling buffers are live
                # together)
                la = max(la, item_last[nxt])
        touching = cores.get(d.name, {d.core})
        core = d.core if d.level == "l1" or d.kind == "staging" else min(touching)
        layer = rec.tasks[f].layer if d.name in first else d.name
        # a buffer several cores use lives for the whole run: each core frees it only by its own tasks
        whole = d.kind in ("input", "output", "constant") or (len(touching) > 1 and d.kind != "staging")
        out.append(BufferRequest(d.name, d.kind, d.size, d.level, f, la, core, whole,
                                 traffic.get(d.name, 0), layer, d.pinned or d.kind == "staging", len(touching) > 1))
    return out


def _estimate(t: TaskRec, target: Target, model: Any) -> float:
    """Rough cycles of a task for the list scheduler (the cycle model gives the real ones)."""
    if t.kind == "dma":
        return 64 + int(t.params["rows"]) * int(t.params["row_bytes"]) / 48
    task = Task(t.kind, t.op, t.inputs, t.outputs, t.params)
    try:
        if t.kind == "mvm":
            return float(model.mvm_cycles(task, None)[0])
        if t.kind == "dwpu":
            return float(model.dwpu_cycles(task))
    except (KeyError, ValueError, TypeError, IndexError):
        pass
    elements = sum(int(np.prod(r.shape)) for n, r in t.inputs.items() if n.startswith("in"))
    return 16 + elements / target.dpu.lanes * 12


def finalize(record: Callable[[dict[str, int], frozenset[str]], Any], target: Target, planner: MemoryPlanner,
             scheduler: TaskScheduler, *, l1_bytes: int, use_sysdma: bool, dual: bool) -> Finalized:
    """Record (``record(extra_tiles, ungrouped)`` runs the code generator), plan, order, build."""
    from axdrive_hw.cycle_model import CycleModel

    policy = scheduler.policy
    extra: dict[str, int] = {}
    ungrouped: set[str] = set()
    phases = {"record": 0.0, "memory_plan": 0.0, "dependencies": 0.0, "schedule": 0.0, "materialize": 0.0}
    usable = {lv: target.usable(lv) for lv in ("ddr", "l2", "l1")}
    error: InfeasiblePlan | None = None
    attempts = 0
    for attempts in range(1, planner.max_attempts + 1):
        t0 = time.perf_counter()
        emitted = record(dict(extra), frozenset(ungrouped))
        rec: Recorder = emitted.recorder
        t1 = time.perf_counter()
        phases["record"] += t1 - t0
        try:
            plan = planner.plan(buffer_requests(rec, policy, l1_bytes), end=len(rec.tasks), usable=usable)
            phases["memory_plan"] += time.perf_counter() - t1
            error = None
            break
        except InfeasiblePlan as exc:
            phases["memory_plan"] += time.perf_counter() - t1
            error = exc
            if exc.level != "l1":
                break  # only L1 working sets shrink with more tiles
            group = _group_of(emitted, exc.layer)
            if group and not ungrouped.issuperset(group):
                ungrouped.update(group)
            else:
                extra[exc.layer] = extra.get(exc.layer, 0) + 1
    if error is not None:
        raise MemoryPlanError(error.message(attempts))
    t2 = time.perf_counter()
    deps = dependencies(rec, plan.placements, barriers=not policy.inter_operator_async)
    engines = [engine_of(t, rec.buffers, plan.placements, use_sysdma, dual) for t in rec.tasks]
    t3 = time.perf_counter()
    model = CycleModel(target)
    plan_tasks = [PlanTask(i, -1 if e[0][0] == "sysdma" else t.core, "dma" if t.kind == "dma" and e[0][0] == "dma"
                           else e[0][0] if t.kind == "dma" else t.kind, _estimate(t, target, model),
                           tuple(sorted(deps[i])), t.item)
                  for i, (t, e) in enumerate(zip(rec.tasks, engines))]
    order = scheduler.order(plan_tasks)
    waits, signals, edges = tokens(order, deps, engines)
    t4 = time.perf_counter()
    program = materialize(rec, plan.placements, order, waits, signals)
    t5 = time.perf_counter()
    phases["dependencies"] += t3 - t2
    phases["schedule"] += t4 - t3
    phases["materialize"] += t5 - t4
    return Finalized(program, plan, emitted, attempts, edges, phases)


def _group_of(emitted: Any, layer: str) -> set[str]:
    """The heads of the depth-first group ``layer`` belongs to (empty when it is not grouped)."""
    info = {d["node"]: d.get("depth_group") for d in emitted.layers}
    gid = info.get(layer)
    return {n for n, g in info.items() if g is not None and g == gid} if gid is not None else set()
