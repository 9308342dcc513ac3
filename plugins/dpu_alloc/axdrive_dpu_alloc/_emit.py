"""From allocated instructions to the hardware's ``(n, 6)`` int32 rows, and back.

Every allocator produces a list of :class:`PInstr`: the virtual instruction's
mnemonic and immediates with *physical* registers, plus spill code, each row
tagged with the virtual instruction it implements (``origin``; ``-1`` for
spill code). Only this module knows the row layout ``[op, dst, a, b, imm0,
imm1]`` and the opcode numbers (from ``axdrive_hw``), so the core's
:mod:`axdrive.ir.dpu` stays hardware-free.
"""

from __future__ import annotations

__all__ = ["PInstr", "encode", "decode", "rename", "cycles", "SPILL_ORIGIN"]

from typing import Mapping, NamedTuple, Sequence

import numpy as np
from axdrive_hw.isa import OPCODES

from axdrive.ir.dpu import DPU_SIGNATURES, VProgram

_NAMES = {code: name for name, code in OPCODES.items()}

#: ``origin`` of an instruction the allocator added (spill_store / spill_load).
SPILL_ORIGIN = -1


class PInstr(NamedTuple):
    """One physical instruction: registers are DPU register numbers."""

    op: str
    dst: int | None
    srcs: tuple[int, ...]
    imms: tuple[int, ...]
    origin: int


def _row(ins: PInstr) -> list[int]:
    # Register operands fill a, b and then imm0 (select's condition, mulq's
    # shift); the remaining immediates fill what is left of imm0, imm1.
    regs = list(ins.srcs)
    a = regs[0] if len(regs) > 0 else 0
    b = regs[1] if len(regs) > 1 else 0
    imms = regs[2:] + list(ins.imms)
    imms += [0] * (2 - len(imms))
    return [OPCODES[ins.op], 0 if ins.dst is None else ins.dst, a, b, imms[0], imms[1]]


def encode(instrs: Sequence[PInstr]) -> tuple[np.ndarray, np.ndarray]:
    """The ``(n, 6)`` int32 program and the ``(n,)`` int32 origin of each row."""
    code = np.array([_row(i) for i in instrs], dtype=np.int32).reshape(-1, 6)
    origin = np.array([i.origin for i in instrs], dtype=np.int32)
    return code, origin


def decode(code: np.ndarray, origin: Sequence[int] | np.ndarray | None = None) -> list[PInstr]:
    """The inverse of :func:`encode`; raises ``ValueError`` naming an unknown opcode's row."""
    out = []
    for i, (op, dst, a, b, imm0, imm1) in enumerate(np.asarray(code).tolist()):
        name = _NAMES.get(op)
        if name is None:
            raise ValueError(f"DPU instruction {i}: unknown opcode {op}")
        sig = DPU_SIGNATURES[name]
        fields = [a, b, imm0, imm1]
        if sig.n_srcs <= 2:
            srcs, rest = fields[:sig.n_srcs], fields[2:]
        else:
            srcs, rest = fields[:3], fields[3:]
        out.append(PInstr(name, dst if sig.has_dst else None, tuple(srcs), tuple(rest[:sig.n_imms]),
                          int(origin[i]) if origin is not None else SPILL_ORIGIN))
    return out


def rename(program: VProgram, origin: Sequence[int], register: Mapping[int, int]) -> list[PInstr]:
    """Physical instructions of a program whose every value got one register
    (graph colouring, backjump). A copy whose source and destination got the
    same register is dropped: that is what coalescing buys."""
    out = []
    for ins, o in zip(program.instrs, origin):
        dst = None if ins.dst is None else register[ins.dst]
        srcs = tuple(register[s] for s in ins.srcs)
        if ins.is_copy and dst == srcs[0]:
            continue
        out.append(PInstr(ins.op, dst, srcs, ins.imms, o))
    return out


def cycles(code: np.ndarray, instruction_cycles: Mapping[str, int]) -> int:
    """DPU cycles of one chunk: the sum of the target's per-instruction cycles."""
    return int(sum(instruction_cycles[_NAMES[int(op)]] for op in np.asarray(code)[:, 0]))
