from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from axdrive_hw.kernels.dma import copy2d
from axdrive_hw.reference import copy2d_ref


@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 30), st.integers(0, 30), st.integers(0, 20),
       st.integers(0, 20), st.integers(0, 2**31))
def test_copy2d_matches_fancy_index_reference(rows, row_bytes, sgap, dgap, soff, doff, seed):
    rng = np.random.default_rng(seed)
    ss, ds = row_bytes + sgap, row_bytes + dgap
    src = rng.integers(0, 256, soff + rows * ss, dtype=np.uint8)
    dst1 = rng.integers(0, 256, doff + rows * ds, dtype=np.uint8)
    dst2 = dst1.copy()
    copy2d(src, soff, ss, dst1, doff, ds, rows, row_bytes)
    copy2d_ref(src, soff, ss, dst2, doff, ds, rows, row_bytes)
    assert np.array_equal(dst1, dst2)


def test_copy2d_places_a_channel_slice_for_concat():
    a = np.arange(6, dtype=np.uint8)  # 3 pixels x 2 channels
    out = np.zeros(15, dtype=np.uint8)  # 3 pixels x 5 channels
    copy2d(a, 0, 2, out, 3, 5, 3, 2)
    assert out.reshape(3, 5)[:, 3:].ravel().tolist() == list(range(6)) and out.reshape(3, 5)[:, :3].sum() == 0
