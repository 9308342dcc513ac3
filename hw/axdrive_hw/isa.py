"""The DPU's instruction set as data: opcodes, a program builder, static checks.

Kept apart from the Numba interpreter in :mod:`axdrive_hw.kernels.dpu` so that
a compiler (the register allocator, the lowering) can emit and check DPU code
without importing Numba: plugin discovery, and so ``axdrive passes``, stays
fast. The semantics of each opcode are documented with the interpreter.
"""

from __future__ import annotations

__all__ = ["OPCODES", "OPCODE_NAMES", "DpuProgramBuilder", "validate_dpu_program"]

import numpy as np

# The DPU's opcodes, by name. The numbers are the instruction encoding (the first column of a program) and
# never change; the Numba kernels compare against these names, which Numba folds to constants.
OP_NOP, OP_LOAD, OP_STORE, OP_ADD, OP_SUB, OP_MUL, OP_ADDI, OP_MULI = 0, 1, 2, 3, 4, 5, 6, 7
OP_SHIFT_ROUND, OP_CLAMP, OP_MIN, OP_MAX, OP_SELECT, OP_CMPGT, OP_LUT, OP_MOVI = 8, 9, 10, 11, 12, 13, 14, 15
OP_SPILL_STORE, OP_SPILL_LOAD, OP_LOADC, OP_MULQ, OP_RMAX, OP_RSUM, OP_DIVR, OP_LUTW = 16, 17, 18, 19, 20, 21, 22, 23

OPCODES: dict[str, int] = {
    "nop": OP_NOP, "load": OP_LOAD, "store": OP_STORE, "add": OP_ADD, "sub": OP_SUB, "mul": OP_MUL,
    "addi": OP_ADDI, "muli": OP_MULI, "shift_round": OP_SHIFT_ROUND, "clamp": OP_CLAMP, "min": OP_MIN,
    "max": OP_MAX, "select": OP_SELECT, "cmpgt": OP_CMPGT, "lut": OP_LUT, "movi": OP_MOVI,
    "spill_store": OP_SPILL_STORE, "spill_load": OP_SPILL_LOAD, "loadc": OP_LOADC, "mulq": OP_MULQ,
    "rmax": OP_RMAX, "rsum": OP_RSUM, "divr": OP_DIVR, "lutw": OP_LUTW,
}
OPCODE_NAMES = {v: k for k, v in OPCODES.items()}
_NAMES = OPCODE_NAMES



class DpuProgramBuilder:
    """Builds the ``(n, 6)`` int32 instruction array, one method per mnemonic.

    >>> p = DpuProgramBuilder(); p.load(0, 0); p.lut(1, 0, table=0); p.store(1, 0, int8=True)
    >>> code = p.build()
    """

    def __init__(self) -> None:
        self._rows: list[list[int]] = []

    def emit(self, op: str, dst: int = 0, a: int = 0, b: int = 0, imm0: int = 0, imm1: int = 0) -> None:
        self._rows.append([OPCODES[op], dst, a, b, imm0, imm1])

    def load(self, dst: int, stream: int) -> None:
        self.emit("load", dst, imm0=stream)

    def store(self, src: int, stream: int, *, int8: bool = True) -> None:
        self.emit("store", a=src, imm0=stream, imm1=int(int8))

    def add(self, dst: int, a: int, b: int) -> None:
        self.emit("add", dst, a, b)

    def sub(self, dst: int, a: int, b: int) -> None:
        self.emit("sub", dst, a, b)

    def mul(self, dst: int, a: int, b: int) -> None:
        self.emit("mul", dst, a, b)

    def addi(self, dst: int, a: int, imm: int) -> None:
        self.emit("addi", dst, a, imm0=imm)

    def muli(self, dst: int, a: int, imm: int) -> None:
        self.emit("muli", dst, a, imm0=imm)

    def shift_round(self, dst: int, a: int, shift: int) -> None:
        self.emit("shift_round", dst, a, imm0=shift)

    def clamp(self, dst: int, a: int, lo: int, hi: int) -> None:
        self.emit("clamp", dst, a, imm0=lo, imm1=hi)

    def min(self, dst: int, a: int, b: int) -> None:
        self.emit("min", dst, a, b)

    def max(self, dst: int, a: int, b: int) -> None:
        self.emit("max", dst, a, b)

    def select(self, dst: int, cond: int, a: int, b: int) -> None:
        self.emit("select", dst, a, b, imm0=cond)

    def cmpgt(self, dst: int, a: int, b: int) -> None:
        self.emit("cmpgt", dst, a, b)

    def lut(self, dst: int, a: int, *, table: int) -> None:
        self.emit("lut", dst, a, imm0=table)

    def movi(self, dst: int, imm: int) -> None:
        self.emit("movi", dst, imm0=imm)

    def spill_store(self, src: int, slot: int) -> None:
        self.emit("spill_store", a=src, imm0=slot)

    def spill_load(self, dst: int, slot: int) -> None:
        self.emit("spill_load", dst, imm0=slot)

    def loadc(self, dst: int, const_row: int) -> None:
        self.emit("loadc", dst, imm0=const_row)

    def mulq(self, dst: int, a: int, mult_reg: int, shift_reg: int) -> None:
        self.emit("mulq", dst, a, mult_reg, imm0=shift_reg)

    def rmax(self, dst: int, a: int) -> None:
        """Max of ``r[a]`` over the lanes of each pixel (its ``channels`` elements), broadcast to them."""
        self.emit("rmax", dst, a)

    def rsum(self, dst: int, a: int) -> None:
        """Sum of ``r[a]`` over the lanes of each pixel (int64, saturated to int32), broadcast to them."""
        self.emit("rsum", dst, a)

    def divr(self, dst: int, a: int, b: int) -> None:
        """``r[a] / r[b]`` rounded half up (``axdrive.numerics.round_divide``); 0 where ``r[b] == 0``."""
        self.emit("divr", dst, a, b)

    def lutw(self, dst: int, a: int, *, table: int) -> None:
        """32-bit table lookup: tables ``table..table+3`` are the entry's bytes, least significant first."""
        self.emit("lutw", dst, a, imm0=table)

    def requantize(self, dst: int, src: int, mult_reg: int, shift_reg: int, zp: int, qmin: int = -128,
                   qmax: int = 127) -> None:
        """The numerics rule as three instructions: mulq, addi zp, clamp."""
        self.mulq(dst, src, mult_reg, shift_reg)
        self.addi(dst, dst, zp)
        self.clamp(dst, dst, qmin, qmax)

    def build(self) -> np.ndarray:
        return np.array(self._rows, dtype=np.int32).reshape(-1, 6)


def validate_dpu_program(code: np.ndarray, *, registers: int, n_inputs: int, n_outputs: int, n_luts: int,
                         n_consts: int, spill_slots: int) -> None:
    """Raise ``ValueError`` naming the first bad instruction (index and field)."""
    code = np.asarray(code)
    if code.ndim != 2 or code.shape[1] != 6:
        raise ValueError(f"DPU program must have shape (n, 6), got {code.shape}")
    written: set[int] = set()
    stored: set[int] = set()
    for i, (op, dst, a, b, imm0, _imm1) in enumerate(code.tolist()):
        name = _NAMES.get(op)
        if name is None:
            raise ValueError(f"DPU instruction {i}: unknown opcode {op}")
        for field, reg in (("dst", dst), ("a", a), ("b", b)):
            if not 0 <= reg < registers:
                raise ValueError(f"DPU instruction {i} ({name}): register {field}={reg} outside 0..{registers - 1}")
        limit = {"load": n_inputs, "store": n_outputs, "lut": n_luts, "loadc": n_consts, "spill_store": spill_slots,
                 "spill_load": spill_slots, "select": registers, "mulq": registers,
                 "lutw": n_luts - 3}.get(name)
        if limit is not None and not 0 <= imm0 < limit:
            raise ValueError(f"DPU instruction {i} ({name}): operand imm0={imm0} outside 0..{limit - 1}")
        # Static def-before-use: registers and spill slots carry no value into a
        # program, so reading one that was not written is a compiler bug.
        for reg in _reads(name, a, b, imm0):
            if reg not in written:
                raise ValueError(f"DPU instruction {i} ({name}): reads register {reg} before any write")
        if name == "spill_load" and imm0 not in stored:
            raise ValueError(f"DPU instruction {i} (spill_load): reads spill slot {imm0} before any spill_store")
        if name == "spill_store":
            stored.add(imm0)
        elif name not in ("store", "nop"):
            written.add(dst)


def _reads(name: str, a: int, b: int, imm0: int) -> tuple[int, ...]:
    if name in ("add", "sub", "mul", "min", "max", "cmpgt", "divr"):
        return (a, b)
    if name == "select":
        return (a, b, imm0)
    if name == "mulq":
        return (a, b, imm0)
    if name in ("store", "addi", "muli", "shift_round", "clamp", "lut", "spill_store", "rmax", "rsum", "lutw"):
        return (a,)
    return ()
