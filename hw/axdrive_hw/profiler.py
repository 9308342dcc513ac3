"""Profiling of simulated runs: trace lines, a Chrome trace, summaries of repeated runs.

Trace lines are ``[TAG] <cycle> core<N> <track> <text>``, one per event,
sorted by cycle (then core, then task), with these levels (``profiling_levels``):

====  ==========================================================================
tag   level
====  ==========================================================================
B     begin and end of the program on each core (first task start, last end)
PB    a task (pipeline step) begins: task index, kind/op, stage label
PE    a task (pipeline step) ends: duration in cycles
K     a compute kernel ran (MVM, DWPU, DPU): cycles, MACs, MACs/cycle
M     a memory transfer (DMA): bytes, route, achieved bytes/cycle
T     a token was waited on (consumed) or signalled, with its count after
?     everything else: weight loads into the IMC array that were not hidden
      by double buffering, and the time a task spent waiting for its tokens
====  ==========================================================================
"""

from __future__ import annotations

__all__ = ["LEVELS", "parse_levels", "trace_lines", "chrome_trace", "write_chrome_trace", "summarize_runs",
           "profile_runs"]

import json
import math
import statistics
import time
from typing import Any, Iterable, Mapping

import numpy as np

from axdrive_hw.cycle_model import Timeline
from axdrive_hw.program.model import Program

LEVELS: tuple[str, ...] = ("B", "PB", "PE", "K", "M", "T", "?")


def parse_levels(levels: str | Iterable[str]) -> tuple[str, ...]:
    """``"all"``, ``"B,K,M"`` or an iterable of tags -> the tags, in :data:`LEVELS` order."""
    items = [s.strip() for s in (levels.split(",") if isinstance(levels, str) else levels) if s.strip()]
    if items == ["all"]:
        return LEVELS
    wanted = {s.strip("[]") for s in items}
    unknown = sorted(wanted - set(LEVELS))
    if unknown:
        raise ValueError(f"profiling level {unknown[0]!r} is not one of {', '.join(LEVELS)} or 'all'")
    return tuple(lvl for lvl in LEVELS if lvl in wanted)


def _line(tag: str, cycle: float, core: int | str, track: str, text: str) -> tuple[float, str]:
    who = f"core{core}" if isinstance(core, int) else core
    return cycle, f"[{tag}]{' ' * (3 - len(tag))}{int(cycle):>12} {who:<6} {track:<7} {text}"


def trace_lines(timeline: Timeline, program: Program, levels: str | Iterable[str] = "all") -> list[str]:
    """The trace of one run at the selected levels (deterministic order)."""
    want = set(parse_levels(levels))
    events: list[tuple[float, int, int, int, str]] = []  # (cycle, core, task, order, text)

    def add(tag: str, cycle: float, core: int, index: int, order: int, track: str, text: str) -> None:
        if tag in want:
            events.append((cycle, core, index, order, _line(tag, cycle, core, track, text)[1]))

    buffers = {b.name: b for b in program.buffers}
    firsts: dict[int, float] = {}
    for r in timeline.records:
        task = program.tasks[r.core][r.index]
        firsts[r.core] = min(firsts.get(r.core, math.inf), r.issue)
        label = f" stage={r.stage}" if r.stage else ""
        dur = int(r.end - r.start)
        add("PB", r.start, r.core, r.index, 2, r.unit, f"task {r.index} {r.kind}/{r.op}{label}")
        add("PE", r.end, r.core, r.index, 6, r.unit, f"task {r.index} {r.kind}/{r.op}{label} cycles={dur}")
        if r.start > r.issue:
            add("?", r.issue, r.core, r.index, 1, r.unit, f"task {r.index} token wait cost "
                f"{int(r.start - r.issue)} cycles")
        if r.kind == "dma":
            src, dst = task.inputs["src"], task.outputs["dst"]
            route = f"{buffers[src.buffer].level}:{src.buffer} -> {buffers[dst.buffer].level}:{dst.buffer}"
            rate = r.nbytes / dur if dur else 0.0
            add("M", r.start, r.core, r.index, 3, r.unit, f"task {r.index} {route} bytes={r.nbytes} "
                f"cycles={dur} bytes/cycle={rate:.2f}")
        else:
            rate = r.macs / dur if dur else 0.0
            add("K", r.start, r.core, r.index, 3, r.unit, f"task {r.index} {r.kind}/{r.op} cycles={dur} "
                f"macs={r.macs} macs/cycle={rate:.1f}")
            if r.weight_load_cycles > 0:
                add("?", r.start, r.core, r.index, 4, r.unit, f"task {r.index} weight load not hidden "
                    f"{int(math.ceil(r.weight_load_cycles))} cycles")
    for ev in timeline.tokens:
        order = 0 if ev.action == "wait" else 7
        add("T", ev.cycle, ev.core, ev.index, order, "token", f"task {ev.index} {ev.action} token {ev.token} "
            f"count={ev.count}")
    for core in range(timeline.cores):
        if core in firsts:
            add("B", firsts[core], core, -1, -1, "program", f"begin tasks={len(program.tasks[core])}")
            end = timeline.core_end[core]
            add("B", end, core, 1 << 30, 9, "program", f"end cycles={int(end)} "
                f"seconds={end / timeline.frequency_hz:.9f}")
    events.sort(key=lambda e: e[:4])
    return [e[4] for e in events]


def chrome_trace(timeline: Timeline, program: Program) -> dict[str, Any]:
    """A Chrome/Perfetto trace (``chrome://tracing``): one process per core, one thread per unit.

    Timestamps are microseconds at the run's frequency; ``args`` carry the
    cycles. The system DMA is the process ``chip``.
    """
    us = 1e6 / timeline.frequency_hz
    tracks: dict[tuple[int, str], int] = {}
    events: list[dict[str, Any]] = []
    chip = timeline.cores  # pid of the chip-wide tracks

    def tid(pid: int, unit: str) -> int:
        if (pid, unit) not in tracks:
            tracks[(pid, unit)] = 1 + sum(1 for p, _ in tracks if p == pid)
        return tracks[(pid, unit)]

    order = ("mvm", "dwpu", "dpu", "dma0", "dma1")
    for c in range(timeline.cores):
        for u in order:
            if any(r.core == c and r.unit == u for r in timeline.records):
                tid(c, u)
    for r in timeline.records:
        pid = chip if r.unit == "sysdma" else r.core
        args: dict[str, Any] = {"core": r.core, "task": r.index, "start_cycle": int(r.start), "end_cycle": int(r.end)}
        if r.nbytes:
            args["bytes"] = r.nbytes
        if r.macs:
            args["macs"] = r.macs
        if r.stage:
            args["stage"] = r.stage
        events.append({"name": f"{r.kind}/{r.op} #{r.index}", "cat": r.kind, "ph": "X", "pid": pid,
                       "tid": tid(pid, r.unit), "ts": round(r.start * us, 6),
                       "dur": round((r.end - r.start) * us, 6), "args": args})
    for ev in timeline.tokens:
        events.append({"name": f"token {ev.token} {ev.action}", "cat": "token", "ph": "i", "s": "t", "pid": ev.core,
                       "tid": tid(ev.core, "tokens"), "ts": round(ev.cycle * us, 6),
                       "args": {"task": ev.index, "count": ev.count}})
    meta: list[dict[str, Any]] = []
    for pid in sorted({p for p, _ in tracks}):
        meta.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                     "args": {"name": "chip" if pid == chip else f"core{pid}"}})
    for (pid, unit), t in sorted(tracks.items(), key=lambda kv: (kv[0][0], kv[1])):
        meta.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": t, "args": {"name": unit}})
    return {"traceEvents": meta + events, "displayTimeUnit": "ns",
            "otherData": {"cycles": int(timeline.cycles), "frequency_hz": timeline.frequency_hz}}


def summarize_runs(samples: Iterable[float], drop_percentile: float = 0.0) -> dict[str, float]:
    """Mean/median/min/max of ``samples`` after dropping the top and bottom ``drop_percentile`` %.

    ``floor(n * p / 100)`` samples are dropped at each end, but at least one
    sample is always kept.
    """
    xs = sorted(float(s) for s in samples)
    if not xs:
        raise ValueError("summarize_runs needs at least one sample")
    if not 0.0 <= drop_percentile < 50.0:
        raise ValueError(f"profiling_drop_percentile={drop_percentile} must be in [0, 50)")
    k = min(int(len(xs) * drop_percentile // 100), (len(xs) - 1) // 2)
    kept = xs[k: len(xs) - k]
    return {"runs": len(xs), "kept": len(kept), "mean": statistics.fmean(kept), "median": statistics.median(kept),
            "min": kept[0], "max": kept[-1]}


def profile_runs(simulator: Any, inputs: Mapping[str, np.ndarray] | None, runs: int,
                 drop_percentile: float = 0.0) -> dict[str, Any]:
    """Run ``simulator`` ``runs`` times; summaries of host wall time and simulated cycles/seconds."""
    if runs < 1:
        raise ValueError(f"runs={runs} must be at least 1")
    wall, cycles = [], []
    result = None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = simulator.run(inputs)
        wall.append(time.perf_counter() - t0)
        cycles.append(result.cycles)
    assert result is not None
    return {"host_seconds": summarize_runs(wall, drop_percentile), "cycles": summarize_runs(cycles, drop_percentile),
            "simulated_seconds": result.seconds, "drop_percentile": drop_percentile}


def write_chrome_trace(path: str, timeline: Timeline, program: Program) -> None:
    """Write :func:`chrome_trace` as JSON to ``path``."""
    with open(path, "w") as f:
        json.dump(chrome_trace(timeline, program), f, indent=None, separators=(",", ":"))
        f.write("\n")
