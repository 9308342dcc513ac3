from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.kernels.dpu import OPCODES, DpuProgramBuilder, run_dpu_program, validate_dpu_program
from axdrive_hw.numerics import quantize_multiplier, requantize
from axdrive_hw.reference import dpu_ref

from _programs import draw_dpu_body

REGS, LANES, SLOTS = 16, 64, 8


@st.composite
def dpu_programs(draw):
    """Random valid programs: every read refers to something written before."""
    n_in, n_out, n_lut, n_const = draw(st.integers(1, 3)), draw(st.integers(1, 2)), 5, 2
    b = DpuProgramBuilder()
    for i in range(n_in):
        b.load(i, i)
    def imm_of(draw, op, c, stored):
        return {"load": lambda: draw(st.integers(0, n_in - 1)), "lut": lambda: draw(st.integers(0, n_lut - 1)),
                "lutw": lambda: draw(st.integers(0, n_lut - 4)), "loadc": lambda: draw(st.integers(0, n_const - 1)),
                "spill_store": lambda: draw(st.integers(0, SLOTS - 1)),
                "spill_load": lambda: draw(st.sampled_from(sorted(stored))),
                "select": lambda: c, "mulq": lambda: c, "shift_round": lambda: draw(st.integers(-40, 70)),
                }.get(op, lambda: draw(st.integers(-(2**31), 2**31 - 1)))()

    ops = [o for o in OPCODES if o not in ("load", "store", "nop")] + ["load"]
    written = draw_dpu_body(draw, b, n_in, ops, draw(st.integers(1, 25)), REGS, imm_of,
                            lambda draw: draw(st.integers(-(2**31), 2**31 - 1)))
    for o in range(n_out):
        b.store(draw(st.sampled_from(sorted(written))), o, int8=draw(st.booleans()))
    e = draw(st.integers(1, 200))
    chans = draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    inputs = rng.integers(-(2**31), 2**31, (n_in, e)).astype(np.int32)
    if draw(st.booleans()):
        inputs = rng.integers(-128, 128, (n_in, e)).astype(np.int32)
    consts = rng.integers(-(2**31), 2**31, (n_const, chans)).astype(np.int32)
    luts = rng.integers(-128, 128, (n_lut, 256)).astype(np.int8)
    return b.build(), inputs, consts, luts, chans, n_out


@given(dpu_programs())
def test_dpu_interpreter_matches_vectorised_reference(case):
    code, inputs, consts, luts, chans, n_out = case
    validate_dpu_program(code, registers=REGS, n_inputs=inputs.shape[0], n_outputs=n_out, n_luts=5, n_consts=2,
                         spill_slots=SLOTS)
    got = run_dpu_program(code, inputs, consts, luts, chans, n_out, REGS, LANES, SLOTS)
    assert np.array_equal(got, dpu_ref(code, inputs, consts, luts, chans, n_out, REGS))


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=130), st.integers(1, 9),
       st.integers(-128, 127))
def test_dpu_requantize_sequence_equals_numerics_requantize_per_channel(accs, chans, zp):
    m, s = quantize_multiplier(np.linspace(1e-5, 0.9, chans))
    b = DpuProgramBuilder()
    b.load(0, 0); b.loadc(1, 0); b.loadc(2, 1); b.requantize(3, 0, 1, 2, zp); b.store(3, 0)
    consts = np.stack([m, s]).astype(np.int32)
    acc = np.array(accs, dtype=np.int32)
    pad = (-len(acc)) % chans
    acc2 = np.concatenate([acc, np.zeros(pad, np.int32)])
    got = run_dpu_program(b.build(), acc2[None], consts, np.zeros((1, 256), np.int8), chans, 1, REGS, LANES, SLOTS)
    assert np.array_equal(got[0], requantize(acc2.reshape(-1, chans), m, s, zp).ravel().astype(np.int32))


def test_validation_names_the_instruction_that_reads_an_unwritten_register():
    b = DpuProgramBuilder()
    b.load(0, 0); b.add(2, 0, 1)
    with pytest.raises(ValueError, match=r"instruction 1 \(add\): reads register 1"):
        validate_dpu_program(b.build(), registers=16, n_inputs=1, n_outputs=1, n_luts=0, n_consts=0, spill_slots=4)


def test_validation_rejects_unknown_opcodes_and_out_of_range_registers():
    with pytest.raises(ValueError, match="unknown opcode 99"):
        validate_dpu_program(np.array([[99, 0, 0, 0, 0, 0]]), registers=16, n_inputs=1, n_outputs=1, n_luts=0,
                             n_consts=0, spill_slots=4)
    with pytest.raises(ValueError, match="register dst=16"):
        validate_dpu_program(np.array([[15, 16, 0, 0, 0, 0]]), registers=16, n_inputs=1, n_outputs=1, n_luts=0,
                             n_consts=0, spill_slots=4)


@given(dpu_programs(), st.integers(300, 1500))
def test_passes_over_several_pwords_give_the_reference_values(case, e):
    code, inputs, consts, luts, chans, n_out = case
    rng = np.random.default_rng(e)
    inputs = rng.integers(-(2**31), 2**31, (inputs.shape[0], e)).astype(np.int32)  # past one interpreter pass
    got = run_dpu_program(code, inputs, consts, luts, chans, n_out, REGS, LANES, SLOTS)
    assert np.array_equal(got, dpu_ref(code, inputs, consts, luts, chans, n_out, REGS))


@given(st.integers(-(2**31), 2**31 - 1), st.integers(-40, 70), st.integers(1, 1200), st.integers(0, 2**31),
       st.booleans())
def test_mulq_with_movi_multiplier_and_shift_matches_the_reference(mult, shift, e, seed, overwrite):
    b = DpuProgramBuilder()
    b.load(0, 0); b.movi(1, mult); b.movi(2, shift); b.mulq(3, 0, 1, 2)
    if overwrite:  # the shift register stops being uniform: the general per-lane path
        b.load(2, 1); b.mulq(4, 3, 1, 2); b.store(4, 0)
    else:
        b.store(3, 0, int8=False)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(-(2**31), 2**31, (2, e)).astype(np.int32)
    inputs[1] = rng.integers(-40, 70, e)
    consts, luts = np.zeros((1, 1), np.int32), np.zeros((1, 256), np.int8)
    got = run_dpu_program(b.build(), inputs, consts, luts, 1, 1, REGS, LANES, SLOTS)
    assert np.array_equal(got, dpu_ref(b.build(), inputs, consts, luts, 1, 1, REGS))
