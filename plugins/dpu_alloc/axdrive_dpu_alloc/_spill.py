"""Spill everywhere: the program rewrite behind the graph and backjump allocators.

Spilling a value ``%v`` stores it to an L1 spill slot right after its
definition and reloads it into a fresh short-lived value right before every
instruction that reads it. The rewritten program is again straight-line SSA,
so the same liveness and colouring apply to it; the reload temporaries live
for one instruction and are never spilled again, which makes the
spill-and-retry loop terminate.

Slots are assigned by interval colouring over the spilled values' ranges
(store after the definition, last reload before the last use), which uses
the fewest slots possible.
"""

from __future__ import annotations

__all__ = ["SpillRewrite", "spill_everywhere", "colour_intervals"]

from dataclasses import dataclass
from typing import Collection, Mapping

from axdrive.ir.dpu import LiveInterval, VInstr, VProgram, live_intervals

from ._emit import SPILL_ORIGIN
from ._failure import AllocationFailed


@dataclass(frozen=True)
class SpillRewrite:
    """A program with spill code, the virtual instruction each instruction
    comes from, the values that must not be spilled again, and the slots used."""

    program: VProgram
    origin: tuple[int, ...]
    unspillable: frozenset[int]
    slots_used: int


def _assign_slots(intervals: Mapping[int, LiveInterval], spilled: Collection[int], spill_slots: int) -> dict[int, int]:
    slot_of: dict[int, int] = {}
    busy: list[tuple[int, int]] = []  # (end, slot)
    free: list[int] = []
    next_slot = 0
    for v in sorted(spilled, key=lambda v: (intervals[v].start, v)):
        it = intervals[v]
        busy.sort()
        while busy and busy[0][0] <= it.start:
            free.append(busy.pop(0)[1])
        if free:
            free.sort()
            slot = free.pop(0)
        else:
            slot, next_slot = next_slot, next_slot + 1
        if slot >= spill_slots:
            raise AllocationFailed(f"needs more than {spill_slots} spill slots at instruction {it.start}")
        slot_of[v] = slot
        busy.append((it.end, slot))
    return slot_of


def spill_everywhere(program: VProgram, spilled: Collection[int], spill_slots: int) -> SpillRewrite:
    """Rewrite ``program`` so that every value in ``spilled`` lives in a spill
    slot instead of a register. Values nobody reads are never stored."""
    iv = live_intervals(program)
    spilled = {v for v in spilled if iv[v].uses}
    slot_of = _assign_slots(iv, spilled, spill_slots)
    fresh = program.next_value()
    out: list[VInstr] = []
    origin: list[int] = []
    temps: set[int] = set()
    for i, ins in enumerate(program.instrs):
        rename: dict[int, int] = {}
        for v in ins.uses:
            if v in spilled:
                rename[v] = fresh
                temps.add(fresh)
                out.append(VInstr("spill_load", fresh, (), (slot_of[v],)))
                origin.append(SPILL_ORIGIN)
                fresh += 1
        dst = ins.dst
        if dst is not None and dst in spilled:
            dst = fresh
            temps.add(fresh)
            fresh += 1
        out.append(VInstr(ins.op, dst, tuple(rename.get(s, s) for s in ins.srcs), ins.imms))
        origin.append(i)
        if ins.dst is not None and ins.dst in spilled:
            out.append(VInstr("spill_store", None, (dst,), (slot_of[ins.dst],)))
            origin.append(SPILL_ORIGIN)
    rewritten = VProgram(tuple(out), program.n_inputs, program.n_outputs, program.n_luts, program.n_consts,
                         program.name)
    return SpillRewrite(rewritten, tuple(origin), frozenset(temps), len(set(slot_of.values())))


def colour_intervals(program: VProgram, registers: int) -> dict[int, int]:
    """Registers for every value by a sweep in program order: optimal for the
    interval graph of straight-line SSA code (succeeds iff the pressure is at
    most ``registers``). A copy takes its source's register when the source
    dies at the copy, so :func:`~axdrive_dpu_alloc._emit.rename` drops it."""
    iv = live_intervals(program)
    free = list(range(registers))
    ending: dict[int, list[int]] = {}
    reg: dict[int, int] = {}
    for i, ins in enumerate(program.instrs):
        for v in ending.pop(i, ()):
            free.append(reg[v])
        if ins.dst is None:
            continue
        if not free:
            raise AllocationFailed(f"more than {registers} values live at instruction {i}")
        want = reg[ins.srcs[0]] if ins.is_copy else None
        r = want if want in free else min(free)
        free.remove(r)
        reg[ins.dst] = r
        ending.setdefault(iv[ins.dst].end, []).append(ins.dst)
    return reg
