"""An independent check of an allocation: does the physical program compute
what the virtual one says?

The verifier trusts nothing the allocator computed except ``origin`` (which
virtual instruction each physical row implements). It

1. checks that the physical rows implement the virtual instructions in
   order, with the same mnemonic and immediates, and that only copies
   (``addi %d, %s, 0``, coalesced away) are missing;
2. executes the program symbolically: each register and spill slot holds the
   name of a virtual value. Every operand register must hold the value the
   virtual instruction reads (so a spilled value must have been stored and
   reloaded before the use), and no write may destroy the last copy of a value
   that is still to be read (two live values sharing a register);
3. runs the hardware's own static checks (:func:`axdrive_hw.kernels.dpu.validate_dpu_program`):
   opcodes, register and slot ranges (``spill_slots``), no read of a register or
   slot before it was written.

A copy's destination is the same value as its source, so both names are
mapped to one canonical value before comparing.
"""

from __future__ import annotations

__all__ = ["AllocationVerifyError", "verify_allocation"]

from typing import Sequence

import numpy as np
from axdrive_hw.isa import validate_dpu_program

from axdrive.ir.dpu import VProgram

from ._emit import SPILL_ORIGIN, decode


class AllocationVerifyError(ValueError):
    """The physical program does not implement the virtual one; names the row."""


def verify_allocation(program: VProgram, code: np.ndarray, origin: Sequence[int] | np.ndarray, *, registers: int,
                      spill_slots: int) -> None:
    """Raise :class:`AllocationVerifyError` (one line) at the first problem."""
    where = f"DPU program {program.name!r}" if program.name else "DPU program"
    code = np.asarray(code)
    if len(origin) != len(code):
        raise AllocationVerifyError(f"{where}: {len(origin)} origins for {len(code)} instructions")
    try:
        rows = decode(code, origin)
    except ValueError as exc:
        raise AllocationVerifyError(f"{where}: {exc}") from None
    for i, row in enumerate(rows):
        bad = [r for r in (*row.srcs, *((row.dst,) if row.dst is not None else ())) if not 0 <= r < registers]
        if bad:
            raise AllocationVerifyError(f"{where}, instruction {i} ({row.op}): register r{bad[0]} outside "
                                        f"0..{registers - 1}")

    canon: dict[int, int] = {}
    for ins in program.instrs:
        if ins.dst is not None:
            canon[ins.dst] = canon[ins.srcs[0]] if ins.is_copy else ins.dst
    reads: dict[int, list[int]] = {}  # canonical value -> virtual instructions reading it, in order
    for k, ins in enumerate(program.instrs):
        for v in {canon[s] for s in ins.uses}:
            reads.setdefault(v, []).append(k)

    def still_needed(value: int, after: int) -> int | None:
        return next((k for k in reads.get(value, ()) if k > after), None)

    reg: list[int | None] = [None] * registers
    slot: dict[int, int] = {}
    expect = 0  # next virtual instruction to be implemented
    done = -1  # last virtual instruction implemented

    def write(i: int, r: int, value: int, name: str) -> None:
        old = reg[r]
        if old is not None and old != value:
            k = still_needed(old, done)
            saved = old in slot.values() or reg.count(old) > 1
            if k is not None and not saved:
                raise AllocationVerifyError(
                    f"{where}, instruction {i} ({name}): overwrites r{r} holding %{old}, which virtual instruction "
                    f"{k} still reads and which is in no other register or spill slot (two live values share r{r})")
        reg[r] = value

    for i, row in enumerate(rows):
        if row.origin == SPILL_ORIGIN:
            if row.op == "spill_store":
                v = reg[row.srcs[0]]
                if v is None:
                    raise AllocationVerifyError(f"{where}, instruction {i} (spill_store): r{row.srcs[0]} holds no value")
                slot[row.imms[0]] = v
            elif row.op == "spill_load":
                if row.imms[0] not in slot:
                    raise AllocationVerifyError(f"{where}, instruction {i} (spill_load): slot {row.imms[0]} is empty")
                write(i, row.dst, slot[row.imms[0]], "spill_load")
            else:
                raise AllocationVerifyError(f"{where}, instruction {i} ({row.op}): marked as spill code but is not a "
                                            "spill_store or spill_load")
            continue
        k = row.origin
        if not expect <= k < len(program.instrs):
            raise AllocationVerifyError(f"{where}, instruction {i} ({row.op}): implements virtual instruction {k}, "
                                        f"expected one from {expect} on (out of order or repeated)")
        skipped = [j for j in range(expect, k) if not program.instrs[j].is_copy]
        if skipped:
            raise AllocationVerifyError(f"{where}: virtual instruction {skipped[0]} ({program.instrs[skipped[0]]}) "
                                        "is missing from the physical program")
        ins = program.instrs[k]
        if row.op != ins.op or row.imms != ins.imms:
            raise AllocationVerifyError(f"{where}, instruction {i} ({row.op} {row.imms}): does not match virtual "
                                        f"instruction {k} ({ins})")
        for r, v in zip(row.srcs, ins.srcs):
            if reg[r] != canon[v]:
                held = "no value" if reg[r] is None else f"%{reg[r]}"
                holders = [f"r{x}" for x, held_value in enumerate(reg) if held_value == canon[v]]
                state = (f"in {', '.join(holders)}" if holders else
                         "in a spill slot, not reloaded" if canon[v] in slot.values() else "in no register or slot")
                raise AllocationVerifyError(f"{where}, instruction {i} ({ins}): reads %{v} from r{r}, which holds "
                                            f"{held}; %{v} is {state}")
        done = k
        if ins.dst is not None:
            write(i, row.dst, canon[ins.dst], ins.op)
        expect = k + 1
    missing = [j for j in range(expect, len(program.instrs)) if not program.instrs[j].is_copy]
    if missing:
        raise AllocationVerifyError(f"{where}: virtual instruction {missing[0]} ({program.instrs[missing[0]]}) is "
                                    "missing from the physical program")
    # Last, the hardware's own static checks (slot and table ranges, def before use).
    try:
        validate_dpu_program(code, registers=registers, n_inputs=program.n_inputs, n_outputs=program.n_outputs,
                             n_luts=program.n_luts, n_consts=program.n_consts, spill_slots=spill_slots)
    except ValueError as exc:
        raise AllocationVerifyError(f"{where}: {exc}") from None
