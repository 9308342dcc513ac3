from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.kernels.dwpu import avg_pool2d, depthwise_conv2d_acc, max_pool2d, resize_nearest
from axdrive_hw.reference import avg_pool2d_ref, depthwise_conv2d_ref, max_pool2d_ref, resize_nearest_ref


@st.composite
def spatial(draw, dilation=True):
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dil = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilation else (1, 1)
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = tuple(draw(st.integers(0, min(kh, kw) - 1 if not dilation else 2)) for _ in range(4))
    h = draw(st.integers(dil[0] * (kh - 1) + 1, 8))
    w = draw(st.integers(dil[1] * (kw - 1) + 1, 8))
    c = draw(st.integers(1, 70))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    x = rng.integers(-128, 128, (draw(st.integers(1, 2)), h, w, c), dtype=np.int8)
    return x, (kh, kw), stride, pads, dil, rng


@given(spatial(), st.integers(-128, 127))
def test_depthwise_conv_matches_reference(case, zp):
    x, (kh, kw), stride, pads, dil, rng = case
    c = x.shape[3]
    w = rng.integers(-127, 128, (kh, kw, c), dtype=np.int8)
    bias = rng.integers(-5000, 5000, c).astype(np.int32)
    got = depthwise_conv2d_acc(x, zp, w, bias, stride[0], stride[1], *pads, dil[0], dil[1])
    assert np.array_equal(got, depthwise_conv2d_ref(x, zp, w, bias, stride, pads, dil))


@given(spatial(dilation=False))
def test_max_pool_ignores_padding_and_matches_reference(case):
    x, k, stride, pads, _, _ = case
    assert np.array_equal(max_pool2d(x, k[0], k[1], stride[0], stride[1], *pads), max_pool2d_ref(x, k, stride, pads))


@given(spatial(dilation=False), st.integers(-128, 127), st.booleans())
def test_avg_pool_rounds_half_up_and_matches_reference(case, zp, include_pad):
    x, k, stride, pads, _, _ = case
    got = avg_pool2d(x, zp, k[0], k[1], stride[0], stride[1], *pads, include_pad)
    assert np.array_equal(got, avg_pool2d_ref(x, zp, k, stride, pads, include_pad))


def test_avg_pool_of_minus_one_and_zero_rounds_to_zero_and_one_and_two_to_two():
    x = np.array([-1, 0, 1, 2], dtype=np.int8).reshape(1, 1, 4, 1)
    out = avg_pool2d(x, 0, 1, 2, 1, 2, 0, 0, 0, 0, False)
    assert out.ravel().tolist() == [0, 2]  # -0.5 -> 0, 1.5 -> 2


@given(spatial(dilation=False), st.integers(1, 12), st.integers(1, 12))
def test_resize_nearest_matches_reference(case, oh, ow):
    x = case[0]
    assert np.array_equal(resize_nearest(x, oh, ow), resize_nearest_ref(x, oh, ow))
