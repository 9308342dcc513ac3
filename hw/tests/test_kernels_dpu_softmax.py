"""The DPU instructions Softmax needs (rmax, rsum, divr, lutw), bit-exact against the numpy reference and
against the one integer definition, :func:`axdrive.numerics.softmax`.

The random-program test in ``test_kernels_dpu.py`` mixes these opcodes with all others; here each is checked
on its own edge cases (pixels spanning several PWORDs or interpreter passes, a short last pixel, saturation,
negative and zero divisors) and the whole softmax program against the semantics, padded lanes included.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.kernels.dpu import DpuProgramBuilder, run_dpu_program, validate_dpu_program
from axdrive_hw.numerics import round_divide, softmax, softmax_exp_table, softmax_pad_value
from axdrive_hw.reference import dpu_ref

REGS, LANES, SLOTS = 16, 64, 8


def _run_both(code: np.ndarray, inputs: np.ndarray, consts: np.ndarray, luts: np.ndarray, channels: int):
    validate_dpu_program(code, registers=REGS, n_inputs=inputs.shape[0], n_outputs=1, n_luts=luts.shape[0],
                         n_consts=consts.shape[0], spill_slots=SLOTS)
    got = run_dpu_program(code, inputs, consts, luts, channels, 1, REGS, LANES, SLOTS)
    return got, dpu_ref(code, inputs, consts, luts, channels, 1, REGS)


@given(st.integers(1, 700), st.integers(1, 3000), st.integers(0, 2**31), st.booleans())
def test_pixel_reductions_match_the_reference_and_numpy(channels, e, seed, narrow_values):
    rng = np.random.default_rng(seed)
    lo, hi = (-128, 128) if narrow_values else (-(2**31), 2**31)
    x = rng.integers(lo, hi, (1, e)).astype(np.int32)
    b = DpuProgramBuilder()
    b.load(0, 0); b.rmax(1, 0); b.rsum(0, 0); b.sub(2, 0, 1); b.store(2, 0, int8=False)  # rsum in place (dst == a)
    consts, luts = np.zeros((1, channels), np.int32), np.zeros((1, 256), np.int8)
    got, ref = _run_both(b.build(), x, consts, luts, channels)
    assert np.array_equal(got, ref)
    starts = np.arange(0, e, channels)
    v = x[0].astype(np.int64)
    sums = np.clip(np.add.reduceat(v, starts), -(2**31), 2**31 - 1)
    want = np.clip(sums - np.maximum.reduceat(v, starts), -(2**31), 2**31 - 1)
    assert np.array_equal(got[0], np.repeat(want, np.diff(np.append(starts, e))))


@given(st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1)), min_size=1,
                max_size=300), st.integers(0, 5))
def test_divr_is_round_divide_with_zero_for_a_zero_divisor(pairs, zeros):
    a = np.array([p[0] for p in pairs], np.int64)
    d = np.array([p[1] for p in pairs], np.int64)
    d[:zeros] = 0
    b = DpuProgramBuilder()
    b.load(0, 0); b.load(1, 1); b.divr(2, 0, 1); b.store(2, 0, int8=False)
    inputs = np.stack([a, d]).astype(np.int32)
    got, ref = _run_both(b.build(), inputs, np.zeros((1, 1), np.int32), np.zeros((1, 256), np.int8), 1)
    assert np.array_equal(got, ref)
    assert np.array_equal(got[0], np.clip(round_divide(a, d), -(2**31), 2**31 - 1))
    for ai, di, q in zip(a[:50].tolist(), d[:50].tolist(), got[0][:50].tolist()):  # half up, exactly
        want = 0 if di == 0 else math.floor(Fraction(ai, di) + Fraction(1, 2))
        assert q == max(min(want, 2**31 - 1), -(2**31))


@given(st.integers(0, 2**31), st.integers(1, 600))
def test_lutw_assembles_four_byte_tables_into_int32(seed, e):
    rng = np.random.default_rng(seed)
    table = rng.integers(-(2**31), 2**31, 256).astype(np.int64)
    planes = np.stack([((table >> (8 * k)) & 0xFF).astype(np.uint8).view(np.int8) for k in range(4)])
    luts = np.concatenate([rng.integers(-128, 128, (1, 256)).astype(np.int8), planes])  # the table starts at 1
    x = rng.integers(-300, 300, (1, e)).astype(np.int32)
    b = DpuProgramBuilder()
    b.load(0, 0); b.lutw(1, 0, table=1); b.store(1, 0, int8=False)
    got, ref = _run_both(b.build(), x, np.zeros((1, 1), np.int32), luts, 1)
    assert np.array_equal(got, ref)
    assert np.array_equal(got[0], table[np.clip(x[0], -128, 127) + 128].astype(np.int32))


def _softmax_program(pad: int | None) -> np.ndarray:
    """The program ``lowering.build_dpu_programs`` writes for a Softmax (physical registers)."""
    b = DpuProgramBuilder()
    b.load(0, 0)
    if pad is not None:
        b.loadc(1, 0); b.movi(2, pad); b.select(0, 1, 0, 2)
    b.rmax(3, 0); b.sub(3, 3, 0); b.addi(4, 3, -128); b.lutw(4, 4, table=0)
    if pad is not None:
        b.movi(5, 255); b.cmpgt(5, 3, 5); b.movi(6, 0); b.select(4, 5, 6, 4)
    b.rsum(7, 4); b.muli(4, 4, 255); b.divr(4, 4, 7); b.addi(4, 4, -128); b.store(4, 0)
    return b.build()


@given(st.integers(1, 200), st.integers(0, 3), st.integers(1, 9), st.floats(0.001, 2.0),
       st.sampled_from([-100000.0, 0.0, -3.0, 1e9, -1e30]), st.integers(0, 2**31))
def test_the_softmax_program_is_numerics_softmax_padding_included(real, extra_pwords, pixels, scale, neutral, seed):
    rng = np.random.default_rng(seed)
    channels = -(-real // LANES) * LANES + extra_pwords * LANES
    x = rng.integers(-128, 128, (pixels, channels)).astype(np.int8)
    if seed % 3 == 0:  # every real lane at the bottom of the grid: the case a -128 fill would not be neutral for
        x[:, :real] = -128
    table = softmax_exp_table(scale)
    planes = np.stack([((table >> (8 * k)) & 0xFF).astype(np.uint8).view(np.int8) for k in range(4)])
    pad = softmax_pad_value(neutral, scale, -3)
    mask = (np.arange(channels) < real).astype(np.int32)[None]
    got, ref = _run_both(_softmax_program(pad), x.astype(np.int32).reshape(1, -1), mask, planes, channels)
    assert np.array_equal(got, ref)
    want = softmax(x, table, channels=real, pad_value=pad)
    assert np.array_equal(got.reshape(pixels, channels)[:, :real], want[:, :real].astype(np.int32))
    if pad <= -128 - 256:  # a neutral fill: the real lanes are exactly the unpadded softmax
        assert np.array_equal(want[:, :real], softmax(x[:, :real], table))
    # without padding the short program is the plain semantics
    got, ref = _run_both(_softmax_program(None), x.astype(np.int32).reshape(1, -1), np.zeros((1, channels), np.int32),
                         planes, channels)
    assert np.array_equal(got, ref) and np.array_equal(got.reshape(pixels, channels), softmax(x, table).astype(np.int32))
