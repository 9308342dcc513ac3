"""Depth-first groups (``tiling_depth``): a group's intermediate results roll through L1 buffers of only
the rows live at once, groups form where the whole intermediates do not fit L1, and whatever the grouping
the device's outputs are the same."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from _toy_models import toy_model

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.reference import run_integer
from axdrive.runner import dequantize, execute
from axdrive_lowering._codegen import depth_first_order, rolling_rows

RNG = np.random.default_rng(11)


# -- the ring, replayed ------------------------------------------------------------------------------------------
def _window(k: int, s: int, p: int, h_in: int):
    def rows(r0: int, r1: int) -> tuple[int, int]:
        return max(r0 * s - p, 0), min((r1 - 1) * s - p + k, h_in)
    return rows


def _upsample(f: int):
    return lambda r0, r1: (r0 // f, -(-r1 // f))


def _bounds(h: int, tiles: int) -> list[tuple[int, int]]:
    rows = -(-h // tiles)
    return [(r, min(r + rows, h)) for r in range(0, h, rows)]


def _replay(order, bounds, windows, rings):
    """Write every producer tile's rows into its ring slots and check each consumer tile finds its rows."""
    slots = [dict() for _ in rings]
    for k, t in order:
        r0, r1 = bounds[k][t]
        if k > 0:
            lo, hi = windows[k](r0, r1)
            for r in range(lo, hi):
                assert slots[k - 1].get(r % rings[k - 1]) == r, f"layer {k} tile {t} reads row {r}: overwritten"
        if k < len(rings):
            for r in range(r0, r1):
                slots[k][r % rings[k]] = r


@pytest.mark.parametrize("kernel, stride, t0, t1, t2", [
    (3, 1, 4, 4, 4), (3, 1, 5, 3, 7), (3, 2, 8, 3, 2), (1, 2, 6, 4, 3), (5, 1, 16, 2, 5), (3, 1, 1, 1, 1),
    (3, 2, 3, 16, 16),
])
def test_the_rolling_rows_hold_every_window_in_the_group_order(kernel, stride, t0, t1, t2):
    # layer 0: 64 rows; layer 1: a k x k conv (stride s) of it; layer 2: a x2 nearest resize of layer 1
    h0 = 64
    h1 = (h0 + 2 * (kernel // 2) - kernel) // stride + 1
    h2 = 2 * h1
    bounds = [_bounds(h0, t0), _bounds(h1, t1), _bounds(h2, t2)]
    windows = [None, _window(kernel, stride, kernel // 2, h0), _upsample(2)]
    order = depth_first_order(bounds, windows)
    assert sorted(order) == [(k, t) for k in range(3) for t in range(len(bounds[k]))]
    rings = [min(h0, rolling_rows(order, 0, bounds, windows[1])), min(h1, rolling_rows(order, 1, bounds, windows[2]))]
    _replay(order, bounds, windows, rings)
    if t1 > 2 and t0 > 2:
        assert rings[0] < h0  # tiled on both sides: fewer rows than the whole result


def test_a_ring_of_one_row_less_would_be_overwritten():
    bounds = [_bounds(64, 8), _bounds(64, 8)]
    windows = [None, _window(3, 1, 1, 64)]
    order = depth_first_order(bounds, windows)
    rows = rolling_rows(order, 0, bounds, windows[1])
    _replay(order, bounds, windows, [rows])
    with pytest.raises(AssertionError, match="overwritten"):
        _replay(order, bounds, windows, [rows - 1])


def test_the_search_keeps_its_semantics_with_a_fit_test_in_place_of_whole_sizes():
    from axdrive_tiling._groups import segment_chain

    sizes, linked = [10, 1000, 10, 5], [True, True, True]
    # nothing longer than 2 layers fits: greedy takes the longest from the start, the exact search cuts at
    # the small results
    assert segment_chain(sizes, linked, depth=4, budget=0, candidates=1, fits=lambda i, n: n <= 2) == [2, 2]
    assert segment_chain(sizes, linked, depth=4, budget=0, candidates=None, fits=lambda i, n: n <= 2) == [1, 2, 1]
    assert segment_chain(sizes, linked, depth=4, budget=0, candidates=None, fits=lambda i, n: True) == [4]
    assert segment_chain(sizes, linked, depth=4, budget=0, candidates=None, fits=lambda i, n: False) == [1] * 4


# -- a toy chain ----------------------------------------------------------------------------------------------
def _w(*shape, scale=0.3):
    return RNG.normal(0, scale, shape).astype(np.float32)


def chain():
    """conv 3x3 + Relu -> depthwise 3x3 -> conv 1x1 stride 2 (skips rows) -> MaxPool 3x3 -> Resize x2 ->
    conv 3x3: every kind of row window a rolling buffer serves, at 64 x 64 (each intermediate 256 KiB)."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Conv", ["ra", "w2", "b2"], ["d"], pads=[1, 1, 1, 1], group=16),
             helper.make_node("Conv", ["d", "w3", "b3"], ["e"], strides=[2, 2]),
             helper.make_node("MaxPool", ["e"], ["m"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Resize", ["m", "", "scales"], ["u"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Conv", ["u", "w4", "b4"], ["y"], pads=[1, 1, 1, 1])]
    inits = {"w1": _w(16, 8, 3, 3), "b1": _w(16, scale=0.1), "w2": _w(16, 1, 3, 3), "b2": _w(16, scale=0.1),
             "w3": _w(16, 16, 1, 1), "b3": _w(16, scale=0.1), "scales": np.array([1, 1, 2, 2], np.float32),
             "w4": _w(8, 16, 3, 3), "b4": _w(8, scale=0.1)}
    return toy_model(nodes, inits, x_shape=[1, 8, 64, 64], name="chain")


# L1 of 400 KB: every intermediate (64 x 64 x 64 lanes = 256 KiB) is far above the quarter of L1 the whole-tensor
# groups could keep, and two of them do not fit at all
TIGHT = {"l1_constraint": 400_000, "run_graph_cleaner": False}


def _calibration(n=2, seed=0):
    return {"x": np.random.default_rng(seed).uniform(-1, 1, (n, 8, 64, 64)).astype(np.float32)}


def _compile(model, out, **props):
    cfg = CompilerConfig()
    for k, v in {**TIGHT, **props}.items():
        setattr(cfg, k, v)
    return driver.compile(model, cfg, output_dir=out, calibration=_calibration())


def _device(result) -> dict[str, np.ndarray]:
    return execute(result.output_dir, {"x": _calibration(1, seed=3)["x"]}, core_only=True).core_outputs


def _groups(report, batch: bool = False) -> dict[tuple, list[dict]]:
    """The report's depth-first groups, per copy of the program (one per frame of a run: ``batch``, one per
    core; ``pipeline``, the even and the odd frame)."""
    out: dict[tuple, list[dict]] = {}
    for layer in report["lowering"]["layers_detail"]:
        if layer["depth_group"] is not None:
            out.setdefault((layer["depth_group"], layer["frame"]), []).append(layer)
    return out


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth_first")
    model = chain()
    base = _compile(model, root / "d1", tiling_depth=1)
    from axdrive_quantizer import QUANTIZED_CORE

    core = base.session.stash[QUANTIZED_CORE]
    x = _calibration(1, seed=3)["x"]
    qp = core.tensors["x"].qparams
    qx = np.clip(np.rint(x / float(qp.scale)) + int(qp.zero_point), -128, 127).astype(np.int8)
    ref = {k: dequantize(v, {"scale": float(core.tensors[k].qparams.scale),
                             "zero_point": int(core.tensors[k].qparams.zero_point)})
           for k, v in run_integer(core, {"x": qx}).items()}
    got = _device(base)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    return model, root, ref


@pytest.mark.parametrize("props", [
    {"tiling_depth": 4},
    {"tiling_depth": 6},
    {"tiling_depth": 6, "dfs_search_constraint": 1},
    {"tiling_depth": 3, "unroll_prologue_epilogue": True, "use_list_scheduler": True},
    {"tiling_depth": 6, "pipeline_spatial_tiles": False, "inter_operator_async": False},
    {"tiling_depth": 4, "group_ifdw_tasks": True},
    {"tiling_depth": 4, "aipu_cores_used": 2, "multicore_mode": "pipeline"},
    {"tiling_depth": 4, "aipu_cores_used": 2, "multicore_mode": "batch"},
], ids=["depth4", "depth6", "greedy", "unrolled_list", "one_slot_sync", "hoisted", "pipeline2", "batch2"])
def test_depth_first_groups_with_rolling_buffers_give_the_outputs_of_layer_by_layer(toy, props):
    model, root, ref = toy
    name = "-".join(f"{k}={v}" for k, v in props.items())
    result = _compile(model, root / name, **props)
    got = _device(result)
    for k in ref:
        np.testing.assert_array_equal(got[k], ref[k], err_msg=k)
    report = result.report
    groups = _groups(report, batch=props.get("multicore_mode") == "batch")
    assert groups and report["lowering"]["depth_groups"] == len(groups)
    rolled = [layer["rolling"] for members in groups.values() for layer in members[:-1]]
    assert all(r is not None for r in rolled)
    # whole intermediates (256 KiB each) could never be kept: every group holds less than one of them per link
    assert any(r["bytes"] < r["whole_bytes"] for r in rolled)
    assert sum(r["bytes"] for r in rolled) < 400_000
    for level, use in report["memory"]["levels"].items():
        if level.startswith("l1"):
            assert use["peak_bytes"] <= 400_000 and use["peak_over_bound"] <= 1.05, (level, use)


def test_without_rolling_buffers_the_toy_would_form_no_group(toy):
    """The old rule (whole intermediates, at most a quarter of L1) finds nothing to group here."""
    from axdrive_tiling._groups import segment_chain

    whole = 64 * 64 * 64
    assert segment_chain([whole] * 6, [True] * 5, depth=6, budget=400_000 // 4, candidates=None) == [1] * 6


# -- YOLOv8n ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    from _lowered import quantized

    root = tmp_path_factory.mktemp("depth_first_yolo")
    qdq, feeds = quantized("yolo", root)
    return qdq, feeds, root


@pytest.mark.slow
@pytest.mark.model
def test_yolov8n_depth_first_groups_roll_its_high_resolution_layers_bit_exactly(yolo):
    from _lowered import lower

    qdq, feeds, root = yolo
    base, ref = lower(qdq, root / "d1", feeds, tiling_depth=1)
    for depth in (2, 4):
        report, out = lower(qdq, root / f"d{depth}", feeds, tiling_depth=depth)
        for k in ref:
            np.testing.assert_array_equal(out[k], ref[k], err_msg=f"tiling_depth={depth}: {k}")
        groups = _groups(report)
        assert report["lowering"]["depth_groups"] == len(groups) > 0
        # the first convolution's result (160 x 160 x 64 lanes, 1.6 MB: more than the quarter of L1 whole
        # intermediates were allowed) now joins a group through a rolling buffer of a few rows
        first = next(m for m in groups.values() if m[0]["node"] == "/model.0/conv/Conv")
        ring = first[0]["rolling"]
        budget = report["memory"]["levels"]["l1.core0"]["capacity_bytes"]
        assert ring["whole_bytes"] == 160 * 160 * 64 > budget // 4
        assert ring["rows"] < ring["of_rows"] * 2 // 3 and ring["bytes"] < budget // 4
        for level, use in report["memory"]["levels"].items():
            assert use["peak_over_bound"] <= 1.05, (depth, level, use)
        assert all(2 <= len(m) <= depth for m in groups.values())
        for members in groups.values():
            assert all(layer["rolling"] for layer in members[:-1]) and members[-1]["rolling"] is None
