"""The tiling plugin (axdrive-tiling): height and output-channel tiles fit L1, depth-first groups keep
intermediate results in L1, and whatever the tiling the outputs are the same."""

from __future__ import annotations

import numpy as np
import pytest

from _lowered import lower, quantized
from axdrive_tiling._groups import segment_chain


def test_greedy_grouping_takes_the_longest_group_and_the_search_cuts_at_small_results():
    sizes, linked = [10, 1000, 10, 5], [True, True, True]
    assert segment_chain(sizes, linked, depth=2, budget=10_000, candidates=1) == [2, 2]
    assert segment_chain(sizes, linked, depth=2, budget=10_000, candidates=None) == [1, 2, 1]


def test_a_group_never_holds_more_than_its_budget_nor_crosses_an_unlinked_layer():
    assert segment_chain([500, 500, 500], [True, False], depth=3, budget=600, candidates=None) == [2, 1]
    assert segment_chain([500, 500, 500], [True, True], depth=3, budget=400, candidates=None) == [1, 1, 1]


@pytest.fixture(scope="module")
def ppocr(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiling")
    qdq, feeds = quantized("ppocr", root)
    report, ref = lower(qdq, root / "default", feeds)
    return qdq, feeds, report, ref


@pytest.mark.parametrize("sets, check", [
    ({"force_h_tiling": 4}, lambda r: r["lowering"]["tiled_layers"] > 0),
    ({"force_oc_tiling": 2}, lambda r: r["lowering"]["oc_tiled_layers"] > 0),
    ({"tiling_depth": 3}, lambda r: r["lowering"]["depth_groups"] > 0),
    ({"l1_constraint": 300_000, "ignore_weight_buffers": False}, lambda r: r["lowering"]["tiled_layers"] > 0),
])
def test_every_tiling_gives_the_outputs_of_the_default_one(ppocr, tmp_path, sets, check):
    qdq, feeds, base, ref = ppocr
    report, out = lower(qdq, tmp_path / "o", feeds, **sets)
    assert check(report)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k], err_msg=k)


def test_too_few_tiling_attempts_fail_with_one_line_naming_the_layer(ppocr, tmp_path):
    from axdrive.errors import AxdriveError

    qdq, feeds, _b, _r = ppocr
    with pytest.raises(AxdriveError) as exc:
        lower(qdq, tmp_path / "o", feeds, l1_constraint=100_000, max_tiling_attempts=1)
    msg = str(exc.value)
    assert "\n" not in msg and "bytes of L1" in msg and "max_tiling_attempts" in msg and "layer '" in msg
