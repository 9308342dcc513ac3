from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.numerics import (apply_lut, apply_lut_nb, make_lut, quantize_multiplier, requantize, requantize_nb,
                                 requantize_scalar_nb)

scales = st.floats(min_value=1e-9, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(scales)
def test_quantize_multiplier_is_a_normalised_int32_and_reconstructs_the_scale(scale):
    m, s = quantize_multiplier(scale)
    assert 2**30 <= m < 2**31 and 1 <= s <= 62
    assert abs(m * 2.0**-s - scale) <= scale * 2.0**-30


def test_quantize_multiplier_rejects_non_positive_and_too_large_scales():
    for bad in (0.0, -1.0, float("nan"), 2.0**31):
        with pytest.raises(ValueError):
            quantize_multiplier(bad)


def test_quantize_multiplier_is_per_channel_on_arrays():
    m, s = quantize_multiplier(np.array([0.5, 0.25, 3e-3]))
    assert m.shape == (3,) and s.tolist()[:2] == [31, 32] and m.tolist()[:2] == [2**30, 2**30]


def test_requantize_rounds_half_up():
    # scale 0.5: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1, 1 * 0.5 -> 1, -1 * 0.5 -> 0
    m, s = quantize_multiplier(0.5)
    out = requantize(np.array([3, -3, 1, -1], dtype=np.int32), m, s, 0)
    assert out.tolist() == [2, -1, 1, 0]


def test_requantize_adds_zero_point_then_clamps():
    m, s = quantize_multiplier(1.0 / 64)
    out = requantize(np.array([64 * 200, -64 * 200, 64 * 5], dtype=np.int32), m, s, 10)
    assert out.dtype == np.int8 and out.tolist() == [127, -128, 15]


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=40), st.lists(scales, min_size=1, max_size=5),
       st.integers(-128, 127))
def test_numpy_and_numba_requantize_agree_bit_exactly_per_channel(accs, chan_scales, zp):
    c = len(chan_scales)
    acc = np.array((accs * c)[: (len(accs) * c)], dtype=np.int32).reshape(len(accs), c)
    m, s = quantize_multiplier(np.array(chan_scales))
    ref = requantize(acc, m, s, zp)
    assert np.array_equal(requantize_nb(acc, m, s, zp, -128, 127), ref)
    j = len(accs) // 2
    assert requantize_scalar_nb(int(acc[j, 0]), int(m[0]), int(s[0]), zp, -128, 127) == ref[j, 0]


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=20), scales, st.integers(-128, 127))
def test_requantize_matches_exact_rational_rounding(accs, scale, zp):
    m, s = quantize_multiplier(scale)
    out = requantize(np.array(accs, dtype=np.int32), m, s, zp)
    for a, y in zip(accs, out.tolist()):
        num = a * m  # exact python ints: floor((a*m)/2^s + 1/2)
        expect = (2 * num + (1 << s)) // (1 << (s + 1))
        assert y == max(-128, min(127, expect + zp))


def test_apply_lut_indexes_by_value_plus_128_and_numba_agrees():
    x = np.arange(-128, 128, dtype=np.int8)
    lut = make_lut(lambda r: 1 / (1 + np.exp(-r)), 0.1, 0, 1 / 256, -128)
    y = apply_lut(x, lut)
    assert np.array_equal(y, lut) and y[0] == -128 + 0 and y[-1] == 127
    assert np.array_equal(apply_lut_nb(x, lut), y)
    with pytest.raises(ValueError):
        apply_lut(x, lut[:10])


@given(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=30), st.integers(1, 6),
       st.lists(st.integers(1, 62), min_size=1, max_size=6), st.integers(-128, 127), st.booleans())
def test_numba_requantize_per_tensor_and_per_channel_equal_the_rule(accs, c, shifts, zp, per_tensor):
    """The branch-free row loop (every shift in the rule's 1..62) with one or C multipliers and shifts."""
    k = 1 if per_tensor else c
    s = np.array((shifts * k)[:k], dtype=np.int64)
    m = np.array([(2**30 + 12345 * i) % (2**31 - 1) for i in range(k)], dtype=np.int64)
    acc = np.array((accs * c)[: len(accs) * c], dtype=np.int32).reshape(len(accs), c)
    ref = requantize(acc, np.broadcast_to(m, (c,)).copy(), np.broadcast_to(s, (c,)).copy(), zp)
    assert np.array_equal(requantize_nb(acc, m, s, zp, -128, 127), ref)
