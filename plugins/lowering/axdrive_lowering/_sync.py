"""Dependencies from the bytes tasks touch, and the tokens that enforce them.

Why from bytes: once buffers share addresses (lifetime-aware packing) and
tasks overlap (asynchronous layers, pipelined tiles, several cores), the only
safe rule is the hardware's own: a task that reads bytes waits for their last
writer (RAW), a task that writes bytes waits for every earlier reader and
writer of them (WAR, WAW). Everything else may run concurrently, which is
what the scheduling properties exploit. Dependencies implied by a unit's
in-order queue (one channel: the previous task on it has ended) are dropped,
and the rest become counting tokens: a task signals its token once per
dependant, each dependant waits on it once.
"""

from __future__ import annotations

__all__ = ["Access", "task_accesses", "dependencies", "engine_of", "tokens"]

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from axdrive.ir.program_plan import Placement

from ._recorder import BufferDecl, Recorder, TaskRec


@dataclass(frozen=True)
class Access:
    """Bytes a task touches (``start..end``) inside buffer ``buffer`` (``lo..hi`` in its space)."""

    space: tuple[str, int]
    start: int
    end: int
    write: bool
    buffer: int = 0
    lo: int = 0
    hi: int = 0


def _where(decls: dict[str, BufferDecl], placements: dict[str, Placement], name: str) -> tuple[tuple[str, int], int]:
    d = decls[name]
    p = placements[d.arena] if d.arena is not None else placements[name]
    base = p.address + (d.arena_offset if d.arena is not None else 0)
    return (p.level, p.core if p.level == "l1" else 0), base


def task_accesses(t: TaskRec, decls: dict[str, BufferDecl], placements: dict[str, Placement]) -> list[Access]:
    out = []
    for role, ref in [*((r, x) for r, x in t.inputs.items()), *((r, x) for r, x in t.outputs.items())]:
        if decls[ref.buffer].kind == "constant":
            continue  # nothing ever writes a constant, and nothing else shares its bytes
        space, base = _where(decls, placements, ref.buffer)
        start = base + ref.offset
        if t.kind == "dma":
            p = t.params
            stride = int(p["src_stride"] if role == "src" else p["dst_stride"])
            end = start + (int(p["rows"]) - 1) * stride + int(p["row_bytes"])
        else:
            end = start + ref.nbytes
        d = decls[ref.buffer]
        out.append(Access(space, start, end, role in t.outputs, id(d), base, base + d.size))
    return out


def dependencies(rec: Recorder, placements: dict[str, Placement], barriers: bool) -> list[set[int]]:
    """Per task (program order), the earlier tasks it must follow."""
    decls = rec.buffers
    # per space, columns: access start, end, task, write, buffer id, buffer lo, buffer hi
    spaces: dict[tuple[str, int], list[list[int]]] = {}
    deps: list[set[int]] = []
    by_item: dict[int, list[int]] = {}
    for i, t in enumerate(rec.tasks):
        mine: set[int] = set()
        if barriers:
            earlier = [k for k in by_item if k < t.item]
            if earlier:
                mine.update(by_item[max(earlier)])
        accesses = task_accesses(t, decls, placements)
        for a in accesses:
            cols = spaces.get(a.space)
            if not cols or not cols[0]:
                continue
            c = [np.asarray(col) for col in cols]
            same = c[4] == a.buffer
            # within one buffer the bytes decide; across buffers sharing addresses the whole buffers do, because
            # the simulator frees a buffer only when the last task using it ends
            hit = np.where(same, (c[0] < a.end) & (c[1] > a.start), (c[5] < a.hi) & (c[6] > a.lo))
            if not a.write:
                hit &= c[3].astype(bool)
            mine.update(int(o) for o in c[2][hit])
        for a in accesses:
            cols = spaces.setdefault(a.space, [[], [], [], [], [], [], []])
            if a.write:  # records of this buffer fully covered by this write are implied by it from now on
                # (and records of other buffers inside this one's bytes: this write waited for them, so they
                # are freed for good)
                keep = [k for k in range(len(cols[0]))
                        if not ((cols[4][k] == a.buffer and cols[0][k] >= a.start and cols[1][k] <= a.end)
                                or (cols[4][k] != a.buffer and cols[5][k] >= a.lo and cols[6][k] <= a.hi))]
                if len(keep) != len(cols[0]):
                    for col in range(7):
                        cols[col] = [cols[col][k] for k in keep]
                    spaces[a.space] = cols
            for col, v in enumerate((a.start, a.end, i, int(a.write), a.buffer, a.lo, a.hi)):
                cols[col].append(v)
        mine.discard(i)
        deps.append(mine)
        by_item.setdefault(t.item, []).append(i)
    return deps


def engine_of(t: TaskRec, decls: dict[str, BufferDecl], placements: dict[str, Placement], use_sysdma: bool,
              dual: bool) -> tuple[tuple[str, int], int]:
    """``((engine, queue), channels)`` as the cycle model routes the task."""
    if t.kind != "dma":
        return (t.kind, t.core), 1
    touched = {_where(decls, placements, r.buffer)[0][0] for r in (t.inputs["src"], t.outputs["dst"])}
    if use_sysdma and "ddr" in touched:
        return ("sysdma", t.core), 1
    return ("dma", t.core), 2 if dual else 1


def tokens(order: Sequence[int], deps: Sequence[set[int]], engines: Sequence[tuple[tuple[str, int], int]]
           ) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]], int]:
    """``(waits, signals, edges)`` per task index, after dropping dependencies the in-order queues imply."""
    pos_in_queue: dict[int, int] = {}
    counters: dict[tuple[str, int], int] = {}
    for i in order:
        q = engines[i][0]
        pos_in_queue[i] = counters.get(q, 0)
        counters[q] = pos_in_queue[i] + 1
    token_of = {i: k + 1 for k, i in enumerate(order)}
    waits: dict[int, tuple[int, ...]] = {}
    count: dict[int, int] = {}
    edges = 0
    for i in order:
        q, _ch = engines[i]
        latest: dict[tuple[str, int], int] = {}
        keep: list[int] = []
        for d in sorted(deps[i]):
            dq, dch = engines[d]
            if dch == 1:
                if dq == q:
                    continue  # the same single-channel queue runs d before i
                if pos_in_queue[d] > latest.get(dq, -1):
                    latest[dq] = pos_in_queue[d]
            else:
                keep.append(d)
        by_pos = {(engines[d][0], pos_in_queue[d]): d for d in deps[i] if engines[d][1] == 1}
        keep += [by_pos[(dq, p)] for dq, p in latest.items()]
        waits[i] = tuple(sorted(token_of[d] for d in keep))
        for d in keep:
            count[d] = count.get(d, 0) + 1
        edges += len(keep)
    signals = {i: (token_of[i],) * count[i] for i in count}
    return waits, signals, edges
