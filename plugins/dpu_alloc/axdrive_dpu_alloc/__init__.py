"""axdrive pass plugin: DPU register allocation.

Element-wise tails fused after MVM/DWPU tasks are DPU programs over virtual
registers (:class:`axdrive.ir.dpu.VProgram`, attached by the lowering as
``node.attrs["dpu_program"]``). This plugin maps each onto the DPU's vector
registers (16 on ``aipu_v1``) and L1 spill slots (64) and stores the
hardware's ``(n, 6)`` int32 program as ``node.attrs["dpu_code"]``.

Algorithms (``dpu_allocation_algorithm``): ``graph`` (Chaitin/Briggs colouring
with conservative coalescing), ``lazy`` (one greedy pass, evicting the value
needed furthest away), ``backjump_recursive`` (the fewest spilled values, by
backtracking search with conflict-directed backjumping, within a budget) and
``try_all`` (those three in turn until one succeeds). Every result passes an
independent verifier before it is used. See ``docs/dpu-register-allocation.md``.

The pass requires ``dpu_programs_built``, which ``lowering.build_dpu_programs``
(``axdrive-lowering``) provides.
"""

from __future__ import annotations

__all__ = ["ALGORITHMS", "Allocation", "AllocationVerifyError", "Attempt", "DpuAllocationError", "TRY_ALL_ORDER",
           "allocate", "allocate_registers", "axdrive_passes", "dpu_cycles", "target_dpu_limits",
           "verify_allocation"]

from collections import Counter
from typing import Any, Mapping

import numpy as np

from axdrive.ir.dpu import VProgram
from axdrive.passes import Phase, compiler_pass, hookimpl

from ._api import ALGORITHMS, Allocation, DpuAllocationError, allocate
from ._emit import cycles
from ._try_all import TRY_ALL_ORDER, Attempt
from ._verify import AllocationVerifyError, verify_allocation


def target_dpu_limits(target: Any) -> tuple[int, int]:
    """``(registers, spill_slots)`` of the DPU of ``target`` (the compile's, from ``aipu.target``)."""
    return int(target.dpu.registers), int(target.dpu.spill_slots)


def dpu_cycles(code: np.ndarray, instruction_cycles: Mapping[str, int] | None = None) -> int:
    """Cycles of one chunk of ``code`` (the target's ``[dpu.instruction_cycles]``; ``aipu_v1`` by default)."""
    if instruction_cycles is None:
        from axdrive_hw.target import load_target

        instruction_cycles = load_target("aipu_v1").dpu.instruction_cycles
    return cycles(code, instruction_cycles)


@compiler_pass(
    "dpu_alloc.allocate_registers",
    requires=("dpu_programs_built", "target_loaded"),
    provides=("registers_allocated",),
    phase=Phase.CODEGEN,
    config_keys=("dpu_allocation_algorithm",),
)
def allocate_registers(ctx: Any) -> dict[str, Any]:
    """Map every node's virtual DPU program onto the DPU's registers and spill slots.

    Reads ``node.attrs["dpu_program"]`` (a VProgram), writes
    ``node.attrs["dpu_code"]`` (the ``(n, 6)`` int32 program) and
    ``node.attrs["dpu_allocation"]`` (algorithm, spills, reloads, registers
    used, every attempt). Statistics: programs, spills, reloads, and how many
    programs each algorithm allocated.
    """
    algorithm = str(ctx.config.dpu_allocation_algorithm)
    from axdrive_hw.plugin import TARGET

    registers, spill_slots = target_dpu_limits(ctx.stash[TARGET])
    stats: Counter[str] = Counter()
    by_algorithm: Counter[str] = Counter()
    for node in ctx.graph.nodes:
        program = node.attrs.get("dpu_program")
        if program is None:
            continue
        if not isinstance(program, VProgram):
            raise DpuAllocationError(f"node {node.name!r}: attrs['dpu_program'] is {type(program).__name__}, "
                                     "expected axdrive.ir.dpu.VProgram")
        result = allocate(program, algorithm, registers=registers, spill_slots=spill_slots, node=node.name)
        node.attrs["dpu_code"] = result.code
        node.attrs["dpu_allocation"] = result.summary()
        stats["programs"] += 1
        stats["spills"] += result.spills
        stats["reloads"] += result.reloads
        stats["copies_removed"] += result.copies_removed
        by_algorithm[result.algorithm] += 1
        for attempt in result.attempts:
            if not attempt.ok:
                ctx.log.debug("DPU allocator failed", node=node.name, algorithm=attempt.algorithm,
                              reason=attempt.reason)
    out: dict[str, Any] = {"algorithm": algorithm, "programs": stats["programs"], "spills": stats["spills"],
                           "reloads": stats["reloads"], "copies_removed": stats["copies_removed"]}
    out.update({f"allocated_by_{name}": by_algorithm[name] for name in TRY_ALL_ORDER})
    return out


@hookimpl
def axdrive_passes() -> list[Any]:
    """``allocate_registers``: runs between ``lowering.build_dpu_programs`` and ``lowering.emit_program``."""
    return [allocate_registers]
