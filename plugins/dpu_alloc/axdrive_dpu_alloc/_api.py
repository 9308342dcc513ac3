"""One entry point for every algorithm: :func:`allocate`.

Whatever the algorithm, the result is encoded to the hardware's rows and
checked by the independent verifier before it is returned; an allocation
that fails verification counts as that algorithm failing (and is reported
as such), so ``try_all`` still returns a correct program if another
algorithm gets it right.
"""

from __future__ import annotations

__all__ = ["ALGORITHMS", "Allocation", "DpuAllocationError", "allocate"]

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from axdrive.errors import AxdriveError
from axdrive.ir.dpu import VProgram, max_pressure, pressure_at

from ._backjump import allocate_backjump
from ._emit import PInstr, encode
from ._failure import AllocationFailed
from ._graph import allocate_graph
from ._lazy import allocate_lazy
from ._try_all import TRY_ALL_ORDER, Attempt
from ._verify import AllocationVerifyError, verify_allocation

_ALLOCATORS: dict[str, Callable[[VProgram, int, int], list[PInstr]]] = {
    "graph": allocate_graph,
    "lazy": allocate_lazy,
    "backjump_recursive": allocate_backjump,
}

#: Every value ``dpu_allocation_algorithm`` accepts.
ALGORITHMS: tuple[str, ...] = ("try_all", *TRY_ALL_ORDER)


class DpuAllocationError(AxdriveError):
    """No algorithm mapped a DPU program onto the registers and spill slots."""


@dataclass(frozen=True)
class Allocation:
    """A verified physical DPU program and how it was obtained.

    ``code`` is the ``(n, 6)`` int32 program, ``origin[i]`` the virtual
    instruction row ``i`` implements (``-1`` for spill code). ``spills``
    counts spill stores, ``reloads`` spill loads; ``copies_removed`` the
    copies coalesced away. ``attempts`` lists every algorithm tried.
    """

    code: np.ndarray
    origin: np.ndarray
    algorithm: str
    spills: int
    reloads: int
    registers_used: int
    slots_used: int
    copies_removed: int
    seconds: float
    attempts: tuple[Attempt, ...] = field(default=())

    def summary(self) -> dict[str, object]:
        """JSON-friendly description (for node attributes and reports)."""
        return {"algorithm": self.algorithm, "instructions": int(len(self.code)), "spills": self.spills,
                "reloads": self.reloads, "registers_used": self.registers_used, "slots_used": self.slots_used,
                "copies_removed": self.copies_removed,
                "attempts": [{"algorithm": a.algorithm, "ok": a.ok, "reason": a.reason} for a in self.attempts]}


def _run_one(program: VProgram, algorithm: str, registers: int, spill_slots: int, budget: int) -> Allocation:
    t0 = time.perf_counter()
    if algorithm == "backjump_recursive":
        instrs = allocate_backjump(program, registers, spill_slots, budget=budget)
    else:
        instrs = _ALLOCATORS[algorithm](program, registers, spill_slots)
    seconds = time.perf_counter() - t0
    code, origin = encode(instrs)
    try:
        verify_allocation(program, code, origin, registers=registers, spill_slots=spill_slots)
    except AllocationVerifyError as exc:
        raise AllocationFailed(f"verifier rejected the result: {exc}") from None
    ops = [i.op for i in instrs]
    data_regs = {i.dst for i in instrs if i.dst is not None} | {r for i in instrs for r in i.srcs}
    slots = {i.imms[0] for i in instrs if i.op == "spill_store"}
    implemented = {i.origin for i in instrs}
    removed = sum(1 for k, ins in enumerate(program.instrs) if ins.is_copy and k not in implemented)
    return Allocation(code, origin, algorithm, ops.count("spill_store"), ops.count("spill_load"), len(data_regs),
                      len(slots), removed, seconds)


def allocate(program: VProgram, algorithm: str = "try_all", *, registers: int = 16, spill_slots: int = 64,
             node: str | None = None, budget: int = 50_000) -> Allocation:
    """Map ``program`` onto ``registers`` vector registers and ``spill_slots`` L1 slots.

    ``algorithm`` is one of :data:`ALGORITHMS`. Raises
    :class:`DpuAllocationError` naming ``node`` (or the program), the
    register and slot counts, the program's register pressure and each
    algorithm's reason when no allocation is found. ``budget`` caps the
    nodes ``backjump_recursive`` may visit (about 20 microseconds each).
    """
    algorithm = str(algorithm)
    if algorithm not in ALGORITHMS:
        raise DpuAllocationError(f"unknown DPU allocation algorithm {algorithm!r} (one of: {', '.join(ALGORITHMS)})")
    order = TRY_ALL_ORDER if algorithm == "try_all" else (algorithm,)
    attempts: list[Attempt] = []
    for name in order:
        try:
            result = _run_one(program, name, registers, spill_slots, budget)
        except AllocationFailed as exc:
            attempts.append(Attempt(name, False, str(exc)))
            continue
        attempts.append(Attempt(name, True, "ok"))
        return Allocation(**{**result.__dict__, "attempts": tuple(attempts)})
    pressure = pressure_at(program)
    peak = max_pressure(program)
    at = pressure.index(peak) if pressure else 0
    where = f"node {node!r}" if node else (f"DPU program {program.name!r}" if program.name else "DPU program")
    reasons = "; ".join(f"{a.algorithm}: {a.reason}" for a in attempts)
    raise DpuAllocationError(f"{where}: no DPU register allocation with {registers} registers and {spill_slots} "
                             f"spill slots ({len(program.values)} values, {peak} live at instruction {at}); {reasons}")
