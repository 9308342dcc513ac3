"""Virtual DPU programs: what the lowering attaches to a node before registers exist.

An element-wise tail fused after an MVM or DWPU task (requantization, residual
add, activation through a lookup table, concat rewritten as shift+add) becomes
a straight-line program for the DPU, run once per chunk of PWORD lanes. The
lowering writes it over *virtual* registers, an unbounded supply of values;
the register allocator (``axdrive-dpu-alloc``) maps them onto the DPU's 16
vector registers and L1 spill slots and produces the hardware's ``(n, 6)``
instruction array.

Why a separate, hardware-free type: the core must not import ``axdrive_hw``,
and the lowering, the allocator, the IR dump and tests all need the same
program text and the same liveness. Mnemonics are those of the DPU ISA in
``axdrive_hw.kernels.dpu``; the opcode numbers stay there.

Values are in SSA form: every virtual register is defined by exactly one
instruction and every use comes after its definition. Straight-line SSA code
makes each value's live range a single interval, so liveness is one pass and
interference is interval overlap.

Operand order follows the hardware row ``[op, dst, a, b, imm0, imm1]``:
``srcs`` are the register operands in the order ``a, b`` and then, for
``select`` and ``mulq``, the register the hardware reads through ``imm0``
(the condition, the shift). ``imms`` are the remaining immediates.
"""

from __future__ import annotations

__all__ = ["DPU_SIGNATURES", "VInstr", "VProgram", "LiveInterval", "live_intervals", "max_pressure",
           "pressure_at", "DpuProgramError"]

from dataclasses import dataclass, field
from typing import Iterator, Mapping


class DpuProgramError(ValueError):
    """A malformed virtual DPU program; the message names the instruction."""


@dataclass(frozen=True)
class _Signature:
    has_dst: bool
    n_srcs: int
    n_imms: int


#: Operand shape of every mnemonic: (writes a register, register sources, immediates).
#: ``spill_store``/``spill_load`` appear only in programs the allocator rewrote.
DPU_SIGNATURES: Mapping[str, _Signature] = {
    "nop": _Signature(False, 0, 0),
    "load": _Signature(True, 0, 1),          # imm: input stream
    "store": _Signature(False, 1, 2),        # imms: output stream, saturate to int8 (0/1)
    "add": _Signature(True, 2, 0),
    "sub": _Signature(True, 2, 0),
    "mul": _Signature(True, 2, 0),
    "addi": _Signature(True, 1, 1),
    "muli": _Signature(True, 1, 1),
    "shift_round": _Signature(True, 1, 1),
    "clamp": _Signature(True, 1, 2),
    "min": _Signature(True, 2, 0),
    "max": _Signature(True, 2, 0),
    "select": _Signature(True, 3, 0),        # srcs: if-true, if-false, condition
    "cmpgt": _Signature(True, 2, 0),
    "lut": _Signature(True, 1, 1),           # imm: table
    "movi": _Signature(True, 0, 1),
    "loadc": _Signature(True, 0, 1),         # imm: constant row
    "mulq": _Signature(True, 3, 0),          # srcs: value, multiplier, shift
    "rmax": _Signature(True, 1, 0),          # max over the pixel's lanes, broadcast (Softmax)
    "rsum": _Signature(True, 1, 0),          # int32-saturated sum over the pixel's lanes, broadcast
    "divr": _Signature(True, 2, 0),          # srcs: dividend, divisor; rounded half up
    "lutw": _Signature(True, 1, 1),          # imm: first of four byte tables of a 32-bit table
    "spill_store": _Signature(False, 1, 1),  # imm: slot
    "spill_load": _Signature(True, 0, 1),    # imm: slot
}


@dataclass(frozen=True)
class VInstr:
    """One instruction over virtual registers (non-negative ints)."""

    op: str
    dst: int | None = None
    srcs: tuple[int, ...] = ()
    imms: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        sig = DPU_SIGNATURES.get(self.op)
        if sig is None:
            raise DpuProgramError(f"unknown DPU mnemonic {self.op!r} (known: {', '.join(DPU_SIGNATURES)})")
        object.__setattr__(self, "srcs", tuple(int(s) for s in self.srcs))
        object.__setattr__(self, "imms", tuple(int(i) for i in self.imms))
        if sig.has_dst != (self.dst is not None):
            raise DpuProgramError(f"{self.op}: {'needs' if sig.has_dst else 'takes no'} destination register")
        if len(self.srcs) != sig.n_srcs or len(self.imms) != sig.n_imms:
            raise DpuProgramError(f"{self.op}: expects {sig.n_srcs} register operand(s) and {sig.n_imms} "
                                  f"immediate(s), got {len(self.srcs)} and {len(self.imms)}")
        if any(r < 0 for r in (*self.srcs, *self.defs)):
            raise DpuProgramError(f"{self.op}: virtual registers are non-negative, got {self}")

    @property
    def uses(self) -> tuple[int, ...]:
        """Registers read, without repeats (``add %1, %1`` reads one value)."""
        return tuple(dict.fromkeys(self.srcs))

    @property
    def defs(self) -> tuple[int, ...]:
        """Registers written (zero or one)."""
        return () if self.dst is None else (self.dst,)

    @property
    def is_copy(self) -> bool:
        """``addi %d, %s, 0``: the DPU has no move, and a register allocator may
        give both values one register and drop the instruction (coalescing).
        Every DPU register value is already int32, so the saturating add of 0
        is the identity."""
        return self.op == "addi" and self.imms == (0,)

    def __str__(self) -> str:
        operands = [f"%{s}" for s in self.srcs] + [str(i) for i in self.imms]
        text = f"{self.op} {', '.join(operands)}".rstrip()
        return f"%{self.dst} = {text}" if self.dst is not None else text


@dataclass(frozen=True)
class VProgram:
    """A straight-line DPU program over virtual registers, with the sizes of
    the tables it indexes (input/output streams, lookup tables, constant rows)."""

    instrs: tuple[VInstr, ...]
    n_inputs: int = 1
    n_outputs: int = 1
    n_luts: int = 0
    n_consts: int = 0
    name: str = ""
    _defined_at: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "instrs", tuple(self.instrs))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`DpuProgramError` naming the first instruction that breaks
        SSA (a second definition, a use before definition) or indexes a table
        out of range (``lutw`` reads four consecutive tables)."""
        limits = {"load": self.n_inputs, "store": self.n_outputs, "lut": self.n_luts, "loadc": self.n_consts,
                  "lutw": self.n_luts - 3}
        defined = self._defined_at
        defined.clear()
        where = f"DPU program {self.name!r}" if self.name else "DPU program"
        for i, ins in enumerate(self.instrs):
            for v in ins.uses:
                if v not in defined:
                    raise DpuProgramError(f"{where}, instruction {i} ({ins}): %{v} is used before it is defined")
            limit = limits.get(ins.op)
            if limit is not None and not 0 <= ins.imms[0] < limit:
                raise DpuProgramError(f"{where}, instruction {i} ({ins}): index {ins.imms[0]} outside 0..{limit - 1}")
            for v in ins.defs:
                if v in defined:
                    raise DpuProgramError(f"{where}, instruction {i} ({ins}): %{v} is already defined by "
                                          f"instruction {defined[v]} (values are SSA)")
                defined[v] = i

    def __len__(self) -> int:
        return len(self.instrs)

    def __iter__(self) -> Iterator[VInstr]:
        return iter(self.instrs)

    @property
    def values(self) -> tuple[int, ...]:
        """Every virtual register, in order of definition."""
        return tuple(self._defined_at)

    def definition(self, value: int) -> int:
        """Index of the instruction that defines ``value``."""
        return self._defined_at[value]

    def next_value(self) -> int:
        """A virtual register number not used yet (for rewrites that add values)."""
        return max(self._defined_at, default=-1) + 1

    def dump(self) -> str:
        """The program as text, one instruction per line, e.g.::

            dpu.program "silu" inputs=1 outputs=1 luts=1 consts=0 {
              0: %0 = load 0
              1: %1 = lut %0, 0
              ...
            }
        """
        name = f' "{self.name}"' if self.name else ""
        head = (f"dpu.program{name} inputs={self.n_inputs} outputs={self.n_outputs} luts={self.n_luts} "
                f"consts={self.n_consts} {{")
        width = len(str(max(len(self.instrs) - 1, 0)))
        body = [f"  {i:>{width}}: {ins}" for i, ins in enumerate(self.instrs)]
        return "\n".join([head, *body, "}"])

    def __str__(self) -> str:
        return self.dump()


@dataclass(frozen=True)
class LiveInterval:
    """Where a value occupies a register: the half-open instruction range
    ``[start, end)``. ``start`` is its definition; ``end`` its last use (an
    instruction may write its result into the register of an operand it reads
    for the last time, so a value dies *at* its last use) or ``start + 1`` for
    a value nobody reads, which still needs a register while it is written."""

    value: int
    start: int
    end: int
    uses: tuple[int, ...]

    def overlaps(self, other: "LiveInterval") -> bool:
        return self.start < other.end and other.start < self.end

    @property
    def length(self) -> int:
        return self.end - self.start


def live_intervals(program: VProgram) -> dict[int, LiveInterval]:
    """Live interval of every value, in order of definition."""
    uses: dict[int, list[int]] = {v: [] for v in program.values}
    for i, ins in enumerate(program.instrs):
        for v in ins.uses:
            uses[v].append(i)
    out: dict[int, LiveInterval] = {}
    for v, at in uses.items():
        start = program.definition(v)
        out[v] = LiveInterval(v, start, at[-1] if at else start + 1, tuple(at))
    return out


def pressure_at(program: VProgram, intervals: Mapping[int, LiveInterval] | None = None) -> list[int]:
    """Number of values occupying a register at each instruction ``i``: those
    with ``start <= i < end``. The values an instruction reads are all counted
    at ``i - 1`` (they were live after it), so this is also the register
    demand of reading the operands."""
    iv = intervals if intervals is not None else live_intervals(program)
    delta = [0] * (len(program.instrs) + 1)
    for it in iv.values():
        delta[it.start] += 1
        delta[it.end] -= 1
    out, running = [], 0
    for d in delta[:-1]:
        running += d
        out.append(running)
    return out


def max_pressure(program: VProgram, intervals: Mapping[int, LiveInterval] | None = None) -> int:
    """The most values that must be in registers at once: with this many
    registers the program needs no spill (straight-line SSA: interval graph)."""
    return max(pressure_at(program, intervals), default=0)

