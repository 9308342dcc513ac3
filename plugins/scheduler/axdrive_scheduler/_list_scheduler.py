"""Resource-aware list scheduling of a task graph over the units and DMA channels of each core.

Why: the cycle model runs each unit's tasks in task-list order, so the order
the code generator happens to emit (layer by layer, tile by tile) leaves
units idle whenever the next task of a unit waits on a slow neighbour. A list
scheduler simulates the machine coarsely (each unit one task at a time, the
core DMA on its channels) and repeatedly issues, among the tasks whose
dependencies are done, the one that can start earliest, breaking ties by the
longest remaining path to the end (critical path first). The result is a
topological order, so per-unit FIFO execution can never deadlock.
"""

from __future__ import annotations

__all__ = ["list_schedule", "critical_path"]

import heapq
from typing import Sequence

from axdrive.ir.program_plan import PlanTask


def critical_path(tasks: Sequence[PlanTask]) -> list[float]:
    """Per task, its cycles plus the longest chain of dependants after it."""
    users: list[list[int]] = [[] for _ in tasks]
    for t in tasks:
        for d in t.deps:
            users[d].append(t.index)
    tail = [0.0] * len(tasks)
    for t in reversed(tasks):
        tail[t.index] = t.cycles + max((tail[u] for u in users[t.index]), default=0.0)
    return tail


def list_schedule(tasks: Sequence[PlanTask], dma_channels: int) -> list[int]:
    """Task indices in issue order (see module docstring); ``tasks[i].index == i`` and deps point backwards."""
    n = len(tasks)
    prio = critical_path(tasks)
    users: list[list[int]] = [[] for _ in range(n)]
    missing = [len(set(t.deps)) for t in tasks]
    for t in tasks:
        for d in set(t.deps):
            users[d].append(t.index)
    finish = [0.0] * n
    ready_at = [0.0] * n
    unit_free: dict[tuple[int, str], list[float]] = {}
    ready: list[tuple[float, float, int]] = []  # (earliest start, -priority, index)

    def slots(t: PlanTask) -> list[float]:
        key = (t.core, t.unit)
        if key not in unit_free:
            unit_free[key] = [0.0] * (dma_channels if t.unit == "dma" else 1)
        return unit_free[key]

    def push(i: int) -> None:
        t = tasks[i]
        heapq.heappush(ready, (max(ready_at[i], min(slots(t))), -prio[i], i))

    for t in tasks:
        if missing[t.index] == 0:
            push(t.index)
    order: list[int] = []
    while ready:
        est, negp, i = heapq.heappop(ready)
        t = tasks[i]
        free = slots(t)
        now = max(ready_at[i], min(free))
        if now > est:  # the unit got busier since this entry was pushed: re-rank
            heapq.heappush(ready, (now, negp, i))
            continue
        ch = free.index(min(free))
        finish[i] = now + t.cycles
        free[ch] = finish[i]
        order.append(i)
        for u in users[i]:
            ready_at[u] = max(ready_at[u], finish[i])
            missing[u] -= 1
            if missing[u] == 0:
                push(u)
    if len(order) != n:
        raise ValueError("the task graph has a cycle")
    return order
