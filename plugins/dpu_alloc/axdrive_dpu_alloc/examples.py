"""Element-wise tails as virtual DPU programs, the way a lowering writes them.

The generated suite of the tests and the benchmark (which measures the real
models' programs, attached by the lowering, separately): programs of chosen
shape and register pressure that no real model reaches. Like a straightforward lowering, every
builder first loads all its input streams and per-channel constants, then
computes: that is what creates register pressure in wide tails (a concat of
eight inputs holds eight inputs and sixteen constant rows at once).

Requantization is the numerics rule as three instructions (``mulq`` by a
per-channel multiplier and shift, ``addi`` the zero point, ``clamp``), as in
``axdrive_hw.kernels.dpu.DpuProgramBuilder.requantize``.
"""

from __future__ import annotations

__all__ = ["TailBuilder", "requantize", "residual_add", "silu", "hardswish", "concat_add", "softmax",
           "random_program", "generated_suite"]

import numpy as np

from axdrive.ir.dpu import VInstr, VProgram


class TailBuilder:
    """Appends SSA instructions, numbering values as it goes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.instrs: list[VInstr] = []
        self.inputs = self.outputs = self.luts = self.consts = 0
        self._next = 0

    def op(self, op: str, *srcs: int, imms: tuple[int, ...] = ()) -> int:
        v = self._next
        self._next += 1
        self.instrs.append(VInstr(op, v, tuple(srcs), imms))
        return v

    def load(self) -> int:
        self.inputs += 1
        return self.op("load", imms=(self.inputs - 1,))

    def const(self) -> int:
        self.consts += 1
        return self.op("loadc", imms=(self.consts - 1,))

    def lut(self, x: int) -> int:
        self.luts += 1
        return self.op("lut", x, imms=(self.luts - 1,))

    def requant(self, x: int, mult: int, shift: int, zp: int = 0, lo: int = -128, hi: int = 127) -> int:
        y = self.op("mulq", x, mult, shift)
        if zp:  # adding zero would only be a copy
            y = self.op("addi", y, imms=(zp,))
        return self.op("clamp", y, imms=(lo, hi))

    def store(self, x: int) -> None:
        self.outputs += 1
        self.instrs.append(VInstr("store", None, (x,), (self.outputs - 1, 1)))

    def build(self) -> VProgram:
        return VProgram(tuple(self.instrs), max(self.inputs, 1), max(self.outputs, 1), self.luts, self.consts,
                        self.name)


def requantize(name: str = "requantize") -> VProgram:
    """int32 accumulator -> int8: the tail of every MVM task."""
    b = TailBuilder(name)
    acc, mult, shift = b.load(), b.const(), b.const()
    b.store(b.requant(acc, mult, shift, zp=3))
    return b.build()


def residual_add(name: str = "residual_add") -> VProgram:
    """Requantize the accumulator, add the skip branch at a common scale, requantize."""
    b = TailBuilder(name)
    acc, skip = b.load(), b.load()
    m0, s0, m1, s1, m2, s2 = (b.const() for _ in range(6))
    x = b.requant(acc, m0, s0, zp=-2)
    x = b.op("mulq", x, m1, s1)
    y = b.op("mulq", b.op("addi", skip, imms=(5,)), m2, s2)
    b.store(b.op("clamp", b.op("addi", b.op("add", x, y), imms=(-1,)), imms=(-128, 127)))
    return b.build()


def silu(name: str = "silu") -> VProgram:
    """Conv -> SiLU (YOLOv8's activation): requantize, then x * sigmoid(x) through one table."""
    b = TailBuilder(name)
    acc, mult, shift = b.load(), b.const(), b.const()
    b.store(b.lut(b.requant(acc, mult, shift, zp=-4)))
    return b.build()


def hardswish(name: str = "hardswish") -> VProgram:
    """Conv -> HardSwish (PP-OCR's activation) in integers: x * clamp(x + 3, 0, 6) / 6."""
    b = TailBuilder(name)
    acc, mult, shift, m6, s6 = b.load(), b.const(), b.const(), b.const(), b.const()
    x = b.requant(acc, mult, shift, zp=0)
    t = b.op("clamp", b.op("addi", x, imms=(48,)), imms=(0, 96))
    y = b.op("mulq", b.op("mul", x, t), m6, s6)
    b.store(b.op("clamp", b.op("addi", y, imms=(1,)), imms=(-128, 127)))
    return b.build()


def concat_add(fan_in: int, name: str | None = None) -> VProgram:
    """Channel concat rewritten as pad+shift+add: every input requantized to the
    output scale with per-channel constants that are zero outside its channels,
    then summed. All inputs and constants are loaded first."""
    b = TailBuilder(name or f"concat_add_{fan_in}")
    xs = [b.load() for _ in range(fan_in)]
    consts = [(b.const(), b.const()) for _ in range(fan_in)]
    parts = [b.op("mulq", b.op("addi", x, imms=(k - fan_in // 2 or 1,)), m, s) for k, (x, (m, s)) in
             enumerate(zip(xs, consts))]
    total = parts[0]
    for p in parts[1:]:
        total = b.op("add", total, p)
    b.store(b.op("clamp", total, imms=(-128, 127)))
    return b.build()


def softmax(name: str = "softmax", pad_value: int = -1_000_000) -> VProgram:
    """A channel-padded Softmax as ``lowering.build_dpu_programs`` writes it: padded lanes replaced by
    ``pad_value``, the pixel max (``rmax``), the exponent from four byte tables (``lutw``), zero beyond
    the table, the pixel sum (``rsum``) and the rounded division (``divr``)."""
    b = TailBuilder(name)
    x, mask = b.load(), b.const()
    x = b.op("select", x, b.op("movi", imms=(pad_value,)), mask)
    d = b.op("sub", b.op("rmax", x), x)
    b.luts = 4
    e = b.op("lutw", b.op("addi", d, imms=(-128,)), imms=(0,))
    beyond = b.op("cmpgt", d, b.op("movi", imms=(255,)))
    e = b.op("select", b.op("movi", imms=(0,)), e, beyond)
    q = b.op("divr", b.op("muli", e, imms=(255,)), b.op("rsum", e))
    b.store(b.op("addi", q, imms=(-128,)))
    return b.build()


_BINARY = ("add", "sub", "mul", "min", "max", "cmpgt")
#: the Softmax instructions, mixed in with ``random_program(..., softmax_ops=True)``
_SOFTMAX_BINARY = ("divr",)
_SOFTMAX_UNARY = ("rmax", "rsum", "lutw")
_UNARY = ("addi", "muli", "shift_round", "clamp", "lut", "copy")


def random_program(rng: np.random.Generator, n_sources: int, n_ops: int, *, n_outputs: int = 4,
                   name: str | None = None, softmax_ops: bool = False) -> VProgram:
    """``n_sources`` loads/constants, then ``n_ops`` operations on random earlier
    values (biased towards old ones, so many values stay live), then stores of
    every value nobody read. Pressure grows with ``n_sources``. ``softmax_ops``
    adds the Softmax instructions (``divr``, ``rmax``, ``rsum``, ``lutw``) to the
    mix; off, the programs (and the benchmark's) are those of before them."""
    b = TailBuilder(name or f"random_{n_sources}x{n_ops}")
    b.luts, b.consts = (5 if softmax_ops else 2), 4
    binary = _BINARY + (_SOFTMAX_BINARY if softmax_ops else ())
    unary = _UNARY + (_SOFTMAX_UNARY if softmax_ops else ())
    values = []
    for _ in range(n_sources):
        kind = rng.integers(3)
        values.append(b.load() if kind == 0 or b.inputs == 0 else
                      b.op("loadc", imms=(int(rng.integers(4)),)) if kind == 1 else
                      b.op("movi", imms=(int(rng.integers(-300, 300)),)))
    read: set[int] = set()

    def pick() -> int:
        v = values[int(len(values) * rng.random() ** 2)]
        read.add(v)
        return v

    for _ in range(n_ops):
        r = rng.random()
        if r < 0.45:
            v = b.op(str(rng.choice(binary)), pick(), pick())
        elif r < 0.85:
            op = str(rng.choice(unary))
            imms = {"addi": (int(rng.integers(-50, 50)),), "muli": (int(rng.integers(-5, 6)),),
                    "shift_round": (int(rng.integers(-3, 8)),), "clamp": (-100, 100),
                    "lut": (int(rng.integers(2)),), "copy": (0,), "rmax": (), "rsum": (), "lutw": (0,)}[op]
            v = b.op("addi" if op == "copy" else op, pick(), imms=imms)
        elif r < 0.93:
            v = b.op("select", pick(), pick(), pick())
        else:
            v = b.op("mulq", pick(), pick(), pick())
        values.append(v)
        if rng.random() < 0.1:
            b.instrs.append(VInstr("store", None, (pick(),), (int(rng.integers(n_outputs)), int(rng.integers(2)))))
    for v in values:
        if v not in read:
            b.instrs.append(VInstr("store", None, (v,), (int(rng.integers(n_outputs)), 1)))
    b.outputs = n_outputs
    return b.build()


def generated_suite(seed: int = 0) -> list[VProgram]:
    """The benchmark's programs: the tails above, concats of growing fan-in and
    random programs of growing pressure."""
    rng = np.random.default_rng(seed)
    progs = [requantize(), residual_add(), silu(), hardswish()]
    progs += [concat_add(k) for k in (2, 4, 6, 8, 12)]
    progs += [random_program(rng, n, 2 * n, name=f"random_{n}") for n in (8, 12, 16, 20, 24, 32, 48)]
    return progs
