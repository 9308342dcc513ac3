"""The simulator's entry to the DPU interpreter: int8 streams in, int8 or int32 out, parts run on threads.

``run_dpu_program_into`` must compute what ``run_dpu_program`` computes
(followed by the simulator's int8 saturation of an int8 output) whatever the
stream dtypes and however many parallel parts the elements are split into.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from axdrive_hw.kernels.dpu import DpuProgramBuilder, run_dpu_program, run_dpu_program_into

from _programs import draw_dpu_body

REGS, LANES, SLOTS = 16, 64, 8
LANE_OPS = ("add", "sub", "mul", "addi", "muli", "shift_round", "clamp", "min", "max", "cmpgt", "lut", "loadc",
            "select", "spill_store", "spill_load")


@st.composite
def cases(draw):
    """A random lane-wise program over int8 streams long enough to be split into several parts."""
    n_in = draw(st.integers(1, 2))
    b = DpuProgramBuilder()
    for i in range(n_in):
        b.load(i, i)
    def imm_of(draw, op, c, stored):
        return {"lut": lambda: 0, "loadc": lambda: 0, "select": lambda: c,
                "spill_store": lambda: draw(st.integers(0, SLOTS - 1)),
                "spill_load": lambda: draw(st.sampled_from(sorted(stored))),
                "shift_round": lambda: draw(st.integers(-4, 20))}.get(op, lambda: draw(st.integers(-300, 300)))()

    written = draw_dpu_body(draw, b, n_in, list(LANE_OPS), draw(st.integers(1, 8)), REGS, imm_of,
                            lambda draw: draw(st.integers(-300, 300)))
    b.store(draw(st.sampled_from(sorted(written))), 0, int8=draw(st.booleans()))
    chans = draw(st.sampled_from([1, 3, 64, 70, 128]))
    # 32+ blocks of 8 PWORDs: at least two parts of 16 blocks, so the parallel path runs
    e = draw(st.integers(32 * 8 * LANES, 32 * 8 * LANES + 3 * LANES))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    inputs = rng.integers(-128, 128, (n_in, e)).astype(np.int8)
    consts = rng.integers(-1000, 1000, (1, chans)).astype(np.int32)
    luts = rng.integers(-128, 128, (1, 256)).astype(np.int8)
    return b.build(), inputs, consts, luts, chans


@settings(max_examples=15, deadline=None)
@given(cases(), st.integers(1, 3))
def test_into_equals_the_interpreter_for_int8_streams_and_any_thread_count(case, threads):
    code, inputs, consts, luts, chans = case
    want = run_dpu_program(code, inputs.astype(np.int32), consts, luts, chans, 1, REGS, LANES, SLOTS)
    wide = np.empty_like(want)
    run_dpu_program_into(code, inputs, consts, luts, chans, REGS, LANES, SLOTS, wide, threads)
    assert np.array_equal(wide, want)
    narrow = np.empty(want.shape, np.int8)
    run_dpu_program_into(code, inputs, consts, luts, chans, REGS, LANES, SLOTS, narrow, threads)
    assert np.array_equal(narrow, np.clip(want, -128, 127).astype(np.int8))
