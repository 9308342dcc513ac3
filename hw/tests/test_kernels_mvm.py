from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.kernels import mvm
from axdrive_hw.kernels.mvm import (ConvPlanCache, ConvWeightPlan, conv2d_acc, conv2d_acc_planned, conv2d_requant,
                                    conv2d_requant_planned_into,
                                    matmul_acc, matmul_weight_sets_acc, plan_conv_weights, plan_weight_sets)
from axdrive_hw.numerics import quantize_multiplier, requantize
from axdrive_hw.reference import conv2d_ref, matmul_ref


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 5))
    og = draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(dil[0] * (kh - 1) + 1, 7))
    w = draw(st.integers(dil[1] * (kw - 1) + 1, 7))
    n = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (n, h, w, cg * groups), dtype=np.int8)
    wt = rng.integers(-127, 128, (og * groups, kh, kw, cg), dtype=np.int8)
    bias = rng.integers(-(2**20), 2**20, og * groups).astype(np.int32)
    zp = draw(st.integers(-128, 127))
    return x, zp, wt, bias, stride, pads, dil, groups


@given(conv_cases())
def test_conv2d_matches_im2col_reference_bit_exactly(case):
    x, zp, w, bias, stride, pads, dil, groups = case
    got = conv2d_acc(x, zp, w, bias, stride[0], stride[1], *pads, dil[0], dil[1], groups)
    assert np.array_equal(got, conv2d_ref(x, zp, w, bias, stride, pads, dil, groups))


@given(st.integers(1, 5), st.integers(1, 150), st.integers(1, 70), st.integers(-128, 127), st.integers(0, 2**31))
def test_matmul_matches_int64_reference_for_channel_counts_not_multiple_of_pword(m, k, o, zp, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-127, 128, (o, k), dtype=np.int8)
    bias = rng.integers(-1000, 1000, o).astype(np.int32)
    assert np.array_equal(matmul_acc(a, zp, w, bias), matmul_ref(a, zp, w, bias))


def test_accumulators_saturate_to_int32_instead_of_wrapping():
    a = np.full((1, 4), -128, dtype=np.int8)
    w = np.full((1, 4), -127, dtype=np.int8)
    bias = np.array([2**31 - 100], dtype=np.int32)
    assert matmul_acc(a, 0, w, bias)[0, 0] == 2**31 - 1
    assert matmul_ref(a, 0, w, bias)[0, 0] == 2**31 - 1


def test_padding_contributes_the_zero_point_so_adds_nothing():
    x = np.full((1, 1, 1, 1), 5, dtype=np.int8)
    w = np.ones((1, 3, 3, 1), dtype=np.int8)
    out = conv2d_acc(x, 5, w, np.zeros(1, np.int32), 1, 1, 1, 1, 1, 1, 1, 1, 1)
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == 0


@given(conv_cases(), st.integers(-128, 127))
def test_fused_requantize_equals_conv_then_numerics_requantize(case, out_zp):
    x, zp, w, bias, stride, pads, dil, groups = case
    m, s = quantize_multiplier(np.linspace(1e-4, 3e-2, w.shape[0]))
    got = conv2d_requant(x, zp, w, bias, m, s, out_zp, stride=stride, pads=pads, dilation=dil, groups=groups)
    expect = requantize(conv2d_ref(x, zp, w, bias, stride, pads, dil, groups), m, s, out_zp)
    assert got.dtype == np.int8 and np.array_equal(got, expect)


@given(st.integers(65, 140), st.integers(1, 3), st.integers(1, 2), st.integers(-128, 127), st.integers(0, 2**31))
def test_conv2d_with_channel_counts_past_one_pword_matches_reference(c, k, stride, zp, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (1, 4, 5, c), dtype=np.int8)
    w = rng.integers(-127, 128, (c % 7 + 1, k, k, c), dtype=np.int8)
    bias = rng.integers(-1000, 1000, w.shape[0]).astype(np.int32)
    got = conv2d_acc(x, zp, w, bias, stride, stride, 1, 0, 0, 1, 1, 1, 1)
    assert np.array_equal(got, conv2d_ref(x, zp, w, bias, (stride, stride), (1, 0, 0, 1), (1, 1), 1))


@given(st.integers(1, 4), st.integers(1, 300), st.integers(1, 300), st.integers(-128, 127), st.integers(0, 2**31))
def test_weight_set_tiling_is_bit_exact_and_covers_the_matrix_once(m, k, o, zp, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-127, 128, (o, k), dtype=np.int8)
    bias = rng.integers(-(2**31), 2**31, o).astype(np.int32)  # large biases: saturation only at the end
    sets = plan_weight_sets(k, o, rows=64, columns=32, blocks=2)  # small array so several sets occur
    tiles = np.array([t for s in sets for t in s], dtype=np.int64)
    assert sum((k1 - k0) * (o1 - o0) for k0, k1, o0, o1 in tiles.tolist()) == k * o
    assert all(len(s) <= 2 for s in sets)
    assert np.array_equal(matmul_weight_sets_acc(a, zp, w, bias, tiles), matmul_ref(a, zp, w, bias))


def test_a_full_array_weight_set_is_four_blocks_of_512_by_128():
    sets = plan_weight_sets(2048, 256, rows=512, columns=128, blocks=4)
    assert len(sets) == 2 and sets[0] == [(0, 512, 0, 128), (512, 1024, 0, 128), (1024, 1536, 0, 128),
                                          (1536, 2048, 0, 128)]


def test_long_rows_and_zero_points_outside_int8_take_the_int64_loops_and_stay_exact():
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (2, 20000), dtype=np.int8)  # K past the int32 fast path's bound
    w = rng.integers(-127, 128, (3, 20000), dtype=np.int8)
    bias = rng.integers(-1000, 1000, 3).astype(np.int32)
    assert np.array_equal(matmul_acc(a, 5, w, bias), matmul_ref(a, 5, w, bias))
    assert np.array_equal(matmul_acc(a[:, :40], 300, w[:, :40], bias), matmul_ref(a[:, :40], 300, w[:, :40], bias))
    x = rng.integers(-128, 128, (1, 4, 4, 3), dtype=np.int8)
    wt = rng.integers(-127, 128, (2, 3, 3, 3), dtype=np.int8)
    got = conv2d_acc(x, -200, wt, bias[:2], 1, 1, 1, 1, 1, 1, 1, 1, 1)
    assert np.array_equal(got, conv2d_ref(x, -200, wt, bias[:2], (1, 1), (1, 1, 1, 1), (1, 1), 1))


@st.composite
def padded_conv_cases(draw):
    """Convolutions whose weights have whole input channels and output channels of zeros (PWORD padding)."""
    c, o = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    pads = tuple(draw(st.integers(0, 1)) for _ in range(4))
    h, w = draw(st.integers(kh, 6)), draw(st.integers(kw, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.integers(-128, 128, (draw(st.integers(1, 2)), h, w, c), dtype=np.int8)
    wt = rng.integers(-127, 128, (o, kh, kw, c), dtype=np.int8)
    # zero a random subset of input channels (often a trailing slice, as padding is) and of output channels
    if draw(st.booleans()):
        wt[:, :, :, draw(st.integers(0, c)):] = 0
    else:
        wt[:, :, :, rng.random(c) < draw(st.floats(0, 1))] = 0
    wt[rng.random(o) < draw(st.floats(0, 1))] = 0
    bias = rng.integers(-(2**31), 2**31, o).astype(np.int32)  # any bias: a zero output channel is its bias
    return x, draw(st.integers(-128, 127)), wt, bias, stride, pads


@given(padded_conv_cases())
def test_skipping_zero_channels_gives_the_reference_accumulators_bit_for_bit(case):
    x, zp, w, bias, stride, pads = case
    expect = conv2d_ref(x, zp, w, bias, stride, pads, (1, 1), 1)
    plan = plan_conv_weights(w)
    if plan is not None:
        assert set(plan.cidx.tolist()) == set(np.flatnonzero(w.any(axis=(0, 1, 2))).tolist())
        assert set(plan.ocidx.tolist()) == set(np.flatnonzero(w.any(axis=(1, 2, 3))).tolist())
    for p in (plan, _forced_plan(w)):
        got = conv2d_acc_planned(p, x, zp, w, bias, *stride, *pads, 1, 1, 1)
        assert got.dtype == np.int32 and np.array_equal(got, expect)


def _forced_plan(w):
    """The compact plan even when it would not pay (so every case exercises the compact kernel)."""
    o, kh, kw, c = w.shape
    nz = w.reshape(o, -1, c) != 0
    cidx = np.flatnonzero(nz.any(axis=(0, 1))).astype(np.int64)
    ocidx = np.flatnonzero(nz.any(axis=(1, 2))).astype(np.int64)
    wc = np.ascontiguousarray(w[ocidx][:, :, :, cidx].astype(np.int16).reshape(ocidx.size, kh * kw * cidx.size))
    return ConvWeightPlan(w.shape, cidx, ocidx, wc, 0.0)


def test_plans_are_made_once_per_weight_tensor_and_remade_when_the_bytes_change():
    w = np.zeros((64, 3, 3, 64), np.int8)
    w[:16, :, :, :3] = np.random.default_rng(0).integers(-127, 128, (16, 3, 3, 3))
    cache = ConvPlanCache()
    first = cache.get("task 7", w)
    assert first is not None and first.cidx.tolist() == [0, 1, 2] and first.ocidx.tolist() == list(range(16))
    assert cache.get("task 7", w.copy()) is first  # same bytes: the cached plan
    w2 = w.copy()
    w2[40, 1, 1, 50] = 1
    second = cache.get("task 7", w2)
    assert second is not first and 50 in second.cidx.tolist() and 40 in second.ocidx.tolist()
    assert plan_conv_weights(np.ones((8, 1, 1, 8), np.int8)) is None  # dense: the plain kernel


def test_a_convolution_with_no_nonzero_weight_is_its_bias():
    x = np.random.default_rng(1).integers(-128, 128, (1, 5, 5, 8), dtype=np.int8)
    w = np.zeros((4, 3, 3, 8), np.int8)
    bias = np.array([7, -2**31, 2**31 - 1, 0], np.int32)
    got = conv2d_acc_planned(plan_conv_weights(w), x, 3, w, bias, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    assert np.array_equal(got, np.broadcast_to(bias, (1, 5, 5, 4)))


@given(conv_cases(), st.booleans(), st.booleans(), st.integers(0, 3), st.integers(0, 2**31))
def test_fused_requantization_equals_accumulate_then_requantize(case, per_channel, forced_plan, lane0, seed):
    """The MVM output stage in the kernel (into a channel slice of a wider int8 tensor, as an output-channel
    group of a layer is written) equals the int32 accumulators requantized by the numpy rule."""
    x, zp, w, bias, stride, pads, dil, groups = case
    rng = np.random.default_rng(seed)
    o = w.shape[0]
    m, s = quantize_multiplier(rng.uniform(1e-4, 0.5, o if per_channel else 1))
    out_zp, qmin, qmax = int(rng.integers(-128, 128)), int(rng.integers(-128, 0)), int(rng.integers(0, 128))
    acc = conv2d_ref(x, zp, w, bias, stride, pads, dil, groups)
    want = requantize(acc, m, s, out_zp, qmin, qmax)
    wide = np.full((*acc.shape[:-1], lane0 + o + 2), 99, dtype=np.int8)
    plan = _forced_plan(w) if forced_plan and groups == 1 else None
    done = conv2d_requant_planned_into(plan, x, zp, w, bias, *stride, *pads, *dil, groups, m, s, out_zp, qmin, qmax,
                                       wide[..., lane0:lane0 + o])
    assert done and np.array_equal(wide[..., lane0:lane0 + o], want)
    assert (wide[..., :lane0] == 99).all() and (wide[..., lane0 + o:] == 99).all()  # nothing else written


@st.composite
def byte_path_cases(draw):
    """Convolutions shaped to reach every branch of the byte (VNNI) kernel: more pixels than one block
    (96) with a partial last block, K not a multiple of 4 and input runs longer than 64 bytes, output
    channel counts that leave 1-3 blocks of 16 after the groups of 4 and are not multiples of 16, zero
    channels at either end and inside, 1x1 stride-1 convolutions (operands read in place), uint8
    activations, and a channel slice of a wider output."""
    n = draw(st.integers(1, 2))
    c = draw(st.sampled_from([1, 3, 4, 16, 20, 64, 67, 80]))
    o = draw(st.sampled_from([1, 5, 16, 18, 33, 48, 64, 70, 100]))
    if draw(st.booleans()):
        kh = kw = 1
        stride, pads, dil = (1, 1), (0, 0, 0, 0), (1, 1)
    else:
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        pads = tuple(draw(st.integers(0, 2)) for _ in range(4))
        dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    h = draw(st.integers(dil[0] * (kh - 1) + 1, 14))
    w = draw(st.integers(dil[1] * (kw - 1) + 1, 14))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    unsigned = draw(st.booleans())
    x = rng.integers(0 if unsigned else -128, 256 if unsigned else 128, (n, h, w, c),
                     dtype=np.uint8 if unsigned else np.int8)
    wt = rng.integers(-128, 128, (o, kh, kw, c), dtype=np.int8)
    zero_in = draw(st.sampled_from(["none", "head", "tail", "inside", "random", "all"]))
    if zero_in == "head":
        wt[..., :draw(st.integers(0, c))] = 0
    elif zero_in == "tail":
        wt[..., draw(st.integers(0, c)):] = 0
    elif zero_in == "inside":
        wt[..., c // 3:(2 * c) // 3] = 0
    elif zero_in == "random":
        wt[..., rng.random(c) < 0.5] = 0
    elif zero_in == "all":
        wt[:] = 0
    wt[rng.random(o) < draw(st.floats(0, 1))] = 0
    bias = rng.integers(-(2**31), 2**31, o).astype(np.int32) if draw(st.booleans()) else \
        rng.integers(-5000, 5000, o).astype(np.int32)
    zp = draw(st.integers(0, 127)) if unsigned else draw(st.integers(-128, 127))
    return x, zp, wt, bias, stride, pads, dil


@pytest.mark.parametrize("byte_path", [True, False])
@given(byte_path_cases(), st.integers(0, 3), st.integers(0, 2**31))
def test_planned_kernels_match_the_reference_on_the_byte_path_and_off_it(byte_path, case, lane0, seed):
    """Both fast paths (the VNNI byte kernel where the target has it, and the int16 kernels) give the int64
    reference bit for bit: requantized into a channel slice of a wider tensor, and as accumulators."""
    x, zp, w, bias, stride, pads, dil = case
    rng = np.random.default_rng(seed)
    o = w.shape[0]
    m, s = quantize_multiplier(rng.uniform(1e-5, 0.9, o))
    out_zp, qmin, qmax = int(rng.integers(-128, 128)), int(rng.integers(-128, 0)), int(rng.integers(0, 128))
    acc = conv2d_ref(x, zp, w, bias, stride, pads, dil, 1)
    want = requantize(acc, m, s, out_zp, qmin, qmax)
    saved = mvm._VNNI
    mvm._VNNI = byte_path and saved
    try:
        for plan in (ConvPlanCache().get(0, w), _forced_plan(w), None):
            wide = np.full((*acc.shape[:-1], lane0 + o + 2), 99, dtype=np.int8)
            done = conv2d_requant_planned_into(plan, x, zp, w, bias, *stride, *pads, *dil, 1, m, s, out_zp, qmin,
                                               qmax, wide[..., lane0:lane0 + o])
            assert done and np.array_equal(wide[..., lane0:lane0 + o], want)
            assert (wide[..., :lane0] == 99).all() and (wide[..., lane0 + o:] == 99).all()
            if plan is not None:
                assert np.array_equal(conv2d_acc_planned(plan, x, zp, w, bias, *stride, *pads, *dil, 1), acc)
    finally:
        mvm._VNNI = saved


def test_threads_writing_neighbouring_rows_of_shared_buffers_give_the_reference():
    """Wide rows and several threads (the stem's shape: 3 real channels of 64, stride 2): the per-thread
    parts of the kernel write buffers that other threads read or write next to, which must not race."""
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (1, 41, 320, 64), dtype=np.int8)
    w = np.zeros((64, 3, 3, 64), np.int8)
    w[:16, :, :, :3] = rng.integers(-128, 128, (16, 3, 3, 3))
    bias = rng.integers(-5000, 5000, 64).astype(np.int32)
    m, s = quantize_multiplier(rng.uniform(1e-3, 0.1, 64))
    want = requantize(conv2d_ref(x, -128, w, bias, (2, 2), (0, 1, 0, 1), (1, 1), 1), m, s, -7)
    threads = numba.get_num_threads()
    try:
        for n in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            for _ in range(5):
                got = np.zeros_like(want)
                assert conv2d_requant_planned_into(ConvPlanCache().get(0, w), x, -128, w, bias, 2, 2, 0, 1, 0, 1, 1, 1,
                                                   1, m, s, -7, -128, 127, got)
                assert np.array_equal(got, want)
    finally:
        numba.set_num_threads(threads)


def test_strided_activations_read_only_operands_and_an_output_of_any_strides():
    """Operands as the simulator may hand them over: read-only, ``x`` a strided view, ``out`` a view whose
    pixels are not at one stride (the kernels then copy ``x`` and write through a temporary)."""
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (2, 9, 22, 20), dtype=np.int8)[:, :, ::2]
    w = rng.integers(-128, 128, (33, 3, 3, 20), dtype=np.int8)
    bias = rng.integers(-1000, 1000, 33).astype(np.int32)
    for a in (x, w, bias):
        a.flags.writeable = False
    m, s = quantize_multiplier(rng.uniform(1e-3, 0.1, 33))
    want = requantize(conv2d_ref(x, 5, w, bias, (1, 1), (1, 1, 1, 1)), m, s, 3)
    for plan in (ConvPlanCache().get(0, w), None):
        big = np.zeros((2, 11, 9, 40), np.int8)
        out = big.transpose(0, 2, 1, 3)[..., 3:36]
        assert conv2d_requant_planned_into(plan, x, 5, w, bias, 1, 1, 1, 1, 1, 1, 1, 1, 1, m, s, 3, -128, 127, out)
        assert np.array_equal(out, want) and not big[..., :3].any() and not big[..., 36:].any()
