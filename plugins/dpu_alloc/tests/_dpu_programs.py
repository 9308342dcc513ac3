"""Shared test helpers: random high-pressure programs, a reference interpreter
over virtual registers, and running an allocation on the hardware interpreter.

A uniquely named module (not conftest) so test files import it by name.
"""

from __future__ import annotations

__all__ = ["programs", "interpret", "run_physical", "stimulus", "LANES"]

import numpy as np
from axdrive_hw.kernels.dpu import run_dpu_program
from hypothesis import strategies as st

from axdrive.ir.dpu import VProgram
from axdrive_dpu_alloc.examples import random_program

LANES = 8  # a narrow DPU keeps NUMBA_DISABLE_JIT runs fast; 13 elements = two chunks, one partial
ELEMENTS = 13
CHANNELS = 3
_I32 = (-(2**31), 2**31 - 1)


def programs(min_sources: int = 17, max_sources: int = 26, max_extra_ops: int = 20) -> st.SearchStrategy[VProgram]:
    """Random straight-line programs; with >= 17 sources more than 16 values are live at once. Half of
    them mix in the Softmax instructions (pixel reductions, divr, lutw)."""
    return st.builds(lambda seed, n, extra, sm: random_program(np.random.default_rng(seed), n, n + extra,
                                                               softmax_ops=sm),
                     st.integers(0, 2**32 - 1), st.integers(min_sources, max_sources), st.integers(0, max_extra_ops),
                     st.booleans())


def stimulus(program: VProgram, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-2000, 2000, (program.n_inputs, ELEMENTS), dtype=np.int32)
    inputs[:, 0] = _I32[1]  # saturation paths
    consts = rng.integers(-(2**20), 2**20, (max(program.n_consts, 1), CHANNELS), dtype=np.int32)
    luts = rng.integers(-128, 128, (max(program.n_luts, 1), 256), dtype=np.int8)
    return inputs, consts, luts


def _sat(x: np.ndarray) -> np.ndarray:
    return np.clip(x, *_I32)


def _shift(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = np.clip(s, -31, 62)
    left = _sat(x) << np.maximum(-s, 0)
    right = (x + (np.int64(1) << np.maximum(s - 1, 0))) >> np.maximum(s, 0)
    return np.where(s <= 0, left, right)


def _per_pixel(x: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` over each pixel of CHANNELS consecutive elements (the last may be short), broadcast back."""
    out = np.empty_like(x)
    for g in range(0, len(x), CHANNELS):
        out[g:g + CHANNELS] = reduce(x[g:g + CHANNELS])
    return out


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b rounded half up with Python integers (0 for b == 0): the ISA table's ``divr``."""
    return np.array([0 if y == 0 else (2 * x + y) // (2 * y) for x, y in zip(a.tolist(), b.tolist())], np.int64)


def _wide(planes: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Four byte tables, least significant first, as one int32 table entry."""
    u = sum(int(1 << (8 * k)) * planes[k].astype(np.uint8).astype(np.int64)[idx] for k in range(4))
    return np.where(u >= 2**31, u - 2**32, u)


def interpret(program: VProgram, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """What the program computes, over virtual registers (written from the ISA
    table, independently of the hardware kernel)."""
    e = inputs.shape[1]
    channel = np.arange(e) % CHANNELS
    val: dict[int, np.ndarray] = {}
    out = np.zeros((program.n_outputs, e), dtype=np.int32)
    for ins in program.instrs:
        s = [val[x] for x in ins.srcs]
        i = ins.imms
        op = ins.op
        if op == "store":
            out[i[0]] = np.clip(s[0], -128, 127) if i[1] == 1 else s[0]
            continue
        r = {
            "load": lambda: inputs[i[0]].astype(np.int64),
            "loadc": lambda: consts[i[0]][channel].astype(np.int64),
            "movi": lambda: _sat(np.full(e, i[0], dtype=np.int64)),
            "add": lambda: _sat(s[0] + s[1]), "sub": lambda: _sat(s[0] - s[1]), "mul": lambda: _sat(s[0] * s[1]),
            "addi": lambda: _sat(s[0] + i[0]), "muli": lambda: _sat(s[0] * i[0]),
            "shift_round": lambda: _sat(_shift(s[0], np.full(e, i[0], dtype=np.int64))),
            "clamp": lambda: np.clip(s[0], i[0], i[1]), "min": lambda: np.minimum(s[0], s[1]),
            "max": lambda: np.maximum(s[0], s[1]), "select": lambda: np.where(s[2] != 0, s[0], s[1]),
            "cmpgt": lambda: (s[0] > s[1]).astype(np.int64),
            "lut": lambda: luts[i[0]][np.clip(s[0], -128, 127) + 128].astype(np.int64),
            "mulq": lambda: _sat(_shift(s[0] * s[1], s[2])),
            "rmax": lambda: _per_pixel(s[0], np.max),
            "rsum": lambda: _sat(_per_pixel(s[0], np.sum)),
            "divr": lambda: _sat(_divide(s[0], s[1])),
            "lutw": lambda: _wide(luts[i[0]:i[0] + 4], np.clip(s[0], -128, 127) + 128),
        }[op]()
        val[ins.dst] = r
    return out


def run_physical(program: VProgram, code: np.ndarray, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray,
                 *, registers: int = 16, spill_slots: int = 64) -> np.ndarray:
    return run_dpu_program(code, inputs, consts, luts, CHANNELS, program.n_outputs, registers, LANES, spill_slots)
