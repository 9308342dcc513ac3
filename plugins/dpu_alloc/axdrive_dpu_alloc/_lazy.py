"""``lazy``: one pass in program order, evicting the value needed furthest away.

Registers are handed out as instructions need them. When none is free, the
value whose next read is furthest in the future is evicted (Belady's rule,
optimal for a cache with free write-backs); it is stored to a spill slot the
first time it is evicted (a value already in a slot is simply dropped) and
reloaded into whatever register is free when it is read again. A result
reuses the register of an operand read for the last time, so copies whose
source dies vanish.

Fast (linear in the program, times the register count) and never needs a
second round, but it decides locally: it may store a value that an
exhaustive search would keep. It gives up, so that ``try_all`` moves on, when
more than ``spill_slots`` values would sit in slots at once or an
instruction reads more distinct values than there are registers.
"""

from __future__ import annotations

__all__ = ["allocate_lazy"]

from axdrive.ir.dpu import VProgram, live_intervals

from ._emit import SPILL_ORIGIN, PInstr
from ._failure import AllocationFailed


def allocate_lazy(program: VProgram, registers: int, spill_slots: int) -> list[PInstr]:
    iv = live_intervals(program)
    cursor = {v: 0 for v in iv}  # index into iv[v].uses of the next read
    holder: list[int | None] = [None] * registers  # register -> value
    where: dict[int, int] = {}  # value -> register
    slot: dict[int, int] = {}  # value -> spill slot holding it
    free_slots = list(range(spill_slots - 1, -1, -1))
    out: list[PInstr] = []

    def next_use(v: int) -> int:
        uses = iv[v].uses
        return uses[cursor[v]] if cursor[v] < len(uses) else len(program.instrs) + 1

    def release_slot(v: int) -> None:
        if v in slot:
            free_slots.append(slot.pop(v))

    def take_register(i: int, pinned: set[int]) -> int:
        for r, v in enumerate(holder):
            if v is None:
                return r
        candidates = [r for r, v in enumerate(holder) if v not in pinned]
        if not candidates:
            raise AllocationFailed(f"instruction {i} ({program.instrs[i]}) reads more values than {registers} registers")
        victim_reg = max(candidates, key=lambda r: (next_use(holder[r]), -r))
        victim = holder[victim_reg]
        assert victim is not None
        if victim not in slot:
            if not free_slots:
                raise AllocationFailed(f"all {spill_slots} spill slots in use at instruction {i}")
            slot[victim] = free_slots.pop()
            out.append(PInstr("spill_store", None, (victim_reg,), (slot[victim],), SPILL_ORIGIN))
        del where[victim]
        holder[victim_reg] = None
        return victim_reg

    for i, ins in enumerate(program.instrs):
        pinned = set(ins.uses)
        for v in ins.uses:
            if v not in where:
                r = take_register(i, pinned)
                out.append(PInstr("spill_load", r, (), (slot[v],), SPILL_ORIGIN))
                holder[r], where[v] = v, r
        srcs = tuple(where[s] for s in ins.srcs)
        dying = []
        for v in ins.uses:
            cursor[v] += 1
            if cursor[v] == len(iv[v].uses):
                dying.append(v)
        for v in dying:  # read for the last time: the result may take the register
            holder[where.pop(v)] = None
            release_slot(v)
        dst = None
        if ins.dst is not None:
            reuse = [where_r for where_r in srcs if holder[where_r] is None]
            dst = reuse[0] if reuse else take_register(i, set())
            holder[dst], where[ins.dst] = ins.dst, dst
        if not (ins.is_copy and dst == srcs[0]):
            out.append(PInstr(ins.op, dst, srcs, ins.imms, i))
        if ins.dst is not None and not iv[ins.dst].uses:  # written, never read
            holder[where.pop(ins.dst)] = None
    return out
