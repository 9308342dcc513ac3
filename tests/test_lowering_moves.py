"""Data movement with constant indices lowered as DMA copies: multi-axis and strided Slice, the H/W Transpose,
Gather along rows, columns and channels.

Each toy model is quantized through the driver, lowered, run on the simulated AIPU and compared bit for bit
with ``run_integer`` on the quantized core (``tests/test_lowering_codegen.py``'s ``assert_bit_exact``), under
the default configuration and the options that change the tensors these copies read and write (channel
padding off, device-side I/O layout, a tight L1, a pipeline over two cores). The copy planners are also checked
on their own against numpy indexing, and what stays rejected is checked by name and reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from _toy_models import onnx_model, value_info
from _support import unsupported_message
from axdrive_lowering._codegen import pixel_copies, transpose_copies
from _codegen_support import assert_bit_exact, lower

RNG = np.random.default_rng(17)


def _w(*shape: int, scale: float = 0.3) -> np.ndarray:
    return RNG.normal(0, scale, shape).astype(np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _toy(nodes: list, x_shape: list[int], outputs: dict[str, list], inits: dict) -> object:
    return onnx_model(nodes, [value_info("x", x_shape)], [value_info(n, s) for n, s in outputs.items()], inits)


def strided_slices():
    """conv (8 channels) -> four Slices: rows and columns with steps 2 and 3; every other row reversed and the
    columns reversed (negative steps, no ``axes`` input: all four axes given, batch and channels whole); rows,
    columns and every other channel at once (split into a DMA move and a selection convolution); rows with the
    whole channel range named (``0..8``: stale once the channels are padded to 64, so rewritten over H only)."""
    big = 2**62
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Slice", ["a", "s1", "e1", "ax1", "st1"], ["p"], name="steps"),
             helper.make_node("Relu", ["p"], ["y1"]),
             helper.make_node("Slice", ["a", "s2", "e2", "", "st2"], ["y2"], name="reversed"),
             helper.make_node("Slice", ["a", "s3", "e3", "ax3", "st3"], ["q"], name="channels_too"),
             helper.make_node("Conv", ["q", "w4"], ["y3"], pads=[1, 1, 1, 1]),
             helper.make_node("Slice", ["a", "s5", "e5", "ax5"], ["y4"], name="whole_channels")]
    inits = {"w1": _w(8, 3, 3, 3), "s1": _i64(1, 0), "e1": _i64(8, 10), "ax1": _i64(2, 3), "st1": _i64(2, 3),
             "s2": _i64(0, 0, -1, -1), "e2": _i64(1, big, -big, -big), "st2": _i64(1, 1, -2, -1),
             "s3": _i64(1, 2, 1), "e3": _i64(8, -1, 9), "ax3": _i64(1, 2, -1), "st3": _i64(2, 1, 2),
             "w4": _w(5, 4, 3, 3), "s5": _i64(0, 1), "e5": _i64(8, 5), "ax5": _i64(1, 2)}
    return _toy(nodes, [1, 3, 9, 10], {"y1": [1, 8, 4, 4], "y2": [1, 8, 5, 10], "y3": [1, 5, 6, 4],
                                         "y4": [1, 8, 4, 10]}, inits)


def channel_step_only():
    """A Slice of every third channel, nothing else: one selection convolution, no DMA move."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Slice", ["a", "s", "e", "ax", "st"], ["y"], name="every_third")],
                [1, 3, 6, 5], {"y": [1, 3, 6, 5]},
                {"w1": _w(9, 3, 3, 3), "s": _i64(0), "e": _i64(9), "ax": _i64(1), "st": _i64(3)})


def hw_transpose(h: int, w: int):
    """conv -> Transpose [0, 1, 3, 2] -> conv, and the transposed map is also a model output."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Transpose", ["a"], ["t"], perm=[0, 1, 3, 2], name="swap_hw"),
                 helper.make_node("Conv", ["t", "w2"], ["y"], pads=[1, 1, 1, 1])],
                [1, 3, h, w], {"y": [1, 4, w, h], "t": [1, 8, w, h]}, {"w1": _w(8, 3, 3, 3), "w2": _w(4, 8, 3, 3)})


def gathers():
    """Gather of rows (repeated, descending), of columns (negative indices) and of channels (repeats, any order)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Gather", ["a", "rows"], ["g1"], axis=2, name="pick_rows"),
             helper.make_node("Relu", ["g1"], ["y1"]),
             helper.make_node("Gather", ["a", "cols"], ["y2"], axis=3, name="pick_columns"),
             helper.make_node("Gather", ["a", "chans"], ["g3"], axis=1, name="pick_channels"),
             helper.make_node("Conv", ["g3", "w3"], ["y3"])]
    inits = {"w1": _w(8, 3, 3, 3), "rows": _i64(5, 0, 0, 3, 4), "cols": _i64(-1, 2, -3), "chans": _i64(7, 1, 1, 4),
             "w3": _w(3, 4, 1, 1)}
    return _toy(nodes, [1, 3, 6, 7], {"y1": [1, 8, 5, 7], "y2": [1, 8, 6, 3], "y3": [1, 3, 6, 7]}, inits)


def _stats(result, name: str) -> dict:
    return next(p["stats"] for p in result.report["passes"] if p["name"] == name)


def _tasks(result, node: str) -> list[dict]:
    program = json.loads((result.output_dir / "program.json").read_text())
    return [t for core in program["tasks"] for t in core if t["stage"].split(" <- ")[0] == node]


OPTIONS = [{}, {"remove_io_padding_and_layout_transform": False}, {"apply_pword_padding": False},
           {"l1_constraint": 55_000}, {"aipu_cores_used": 2, "multicore_mode": "pipeline"}]
OPTION_IDS = ["default", "device_io_layout", "unpadded", "tight_l1", "pipeline"]


# -- Slice ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("props", OPTIONS, ids=OPTION_IDS)
def test_strided_and_multi_axis_slices_are_dma_copies(tmp_path, props):
    model = strided_slices()
    result = lower(model, tmp_path, **props)
    assert_bit_exact(result, model)
    # "reversed" and "whole_channels" name the batch/channel axes (rewritten over H/W only), "channels_too" picks
    assert _stats(result, "lowering.legalize_channels")["slice_to_pixels_and_channels"] == 3
    for name in ("steps", "reversed", "channels_too/rows_columns"):
        tasks = _tasks(result, name)
        assert tasks and {t["kind"] for t in tasks} == {"dma"}, name
    assert {t["kind"] for t in _tasks(result, "whole_channels")} == {"dma"}
    # rows step 2 x columns step 3 of 4 x 4 outputs: one strided copy per output row (or column)
    frames = 2 if props.get("multicore_mode") == "pipeline" else 1  # a pipeline emits two frames per run
    assert len(_tasks(result, "steps")) == 4 * frames
    # the channel step runs on the MVM (a selection convolution), not as one-byte copies
    assert {t["kind"] for t in _tasks(result, "channels_too")} >= {"mvm"}


def test_a_channel_step_alone_is_one_selection_convolution(tmp_path):
    model = channel_step_only()
    result = lower(model, tmp_path)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["slice_to_pixels_and_channels"] == 1
    assert {t["kind"] for t in _tasks(result, "every_third")} >= {"mvm"}


# -- Transpose -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw", [(5, 7), (9, 4)], ids=["wide", "tall"])
def test_the_hw_transpose_is_one_strided_copy_per_short_side(tmp_path, hw):
    model = hw_transpose(*hw)
    result = lower(model, tmp_path)
    assert_bit_exact(result, model)
    tasks = _tasks(result, "swap_hw")
    assert {t["kind"] for t in tasks} == {"dma"} and len(tasks) == min(hw)


@pytest.mark.parametrize("props", OPTIONS[1:], ids=OPTION_IDS[1:])
def test_the_hw_transpose_stays_bit_exact_under_the_lowering_options(tmp_path, props):
    model = hw_transpose(6, 5)
    assert_bit_exact(lower(model, tmp_path, **props), model)


# -- Gather --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("props", OPTIONS, ids=OPTION_IDS)
def test_gathers_of_rows_columns_and_channels(tmp_path, props):
    model = gathers()
    result = lower(model, tmp_path, **props)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["gather_channels_to_selection"] == 1
    for name in ("pick_rows", "pick_columns"):
        assert {t["kind"] for t in _tasks(result, name)} == {"dma"}, name
    assert {t["kind"] for t in _tasks(result, "pick_channels")} >= {"mvm"}


# -- the copy planners on their own --------------------------------------------------------------------------
def _run_plan(plan, src: np.ndarray, out_bytes: int) -> np.ndarray:
    out = np.full(out_bytes, -1, np.int64)
    for s_at, d_at, rows, row_bytes, s_stride, d_stride in plan:
        assert s_stride >= row_bytes and d_stride >= row_bytes and rows >= 1
        for r in range(rows):
            d, s = d_at + r * d_stride, s_at + r * s_stride
            out[d:d + row_bytes] = src[s:s + row_bytes]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_pixel_copies_equal_numpy_indexing(seed):
    rng = np.random.default_rng(seed)
    h, w, c = (int(v) for v in rng.integers(1, 9, 3))
    x = np.arange(h * w * c).reshape(h, w, c)
    choices = [np.arange(h), np.arange(h)[::-1], np.arange(0, h, 2), rng.integers(0, h, rng.integers(1, 6))]
    rows = choices[seed % 4]
    cols = [np.arange(w), np.arange(w)[::-2], rng.integers(0, w, rng.integers(1, 6)), np.arange(1, w, 3)][seed % 4]
    if len(cols) == 0:
        cols = np.arange(w)
    want = x[rows][:, cols]
    got = _run_plan(pixel_copies(rows, cols, w, c), x.reshape(-1), want.size)
    np.testing.assert_array_equal(got, want.reshape(-1))


@pytest.mark.parametrize("hw", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_transpose_copies_equal_numpy(hw):
    h, w, c = *hw, 3
    x = np.arange(h * w * c).reshape(h, w, c)
    plan = transpose_copies(h, w, c)
    assert len(plan) == min(h, w)
    np.testing.assert_array_equal(_run_plan(plan, x.reshape(-1), x.size), x.transpose(1, 0, 2).reshape(-1))


def test_a_plain_row_range_is_one_copy_and_reversed_columns_one_per_pixel_column():
    assert len(pixel_copies(np.arange(2, 6), np.arange(7), 7, 64)) == 1
    assert len(pixel_copies(np.arange(5), np.arange(7)[::-1], 7, 64)) == 7


# -- what stays rejected -------------------------------------------------------------------------------------
def _rejected_model():
    """Lowered: a strided Slice, the H/W Transpose, a Gather of rows. Rejected: a Transpose moving the channels
    and a Gather with a scalar index (it removes an axis: rank 3)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Slice", ["a", "s", "e", "ax", "st"], ["b"], name="strided"),
             helper.make_node("Transpose", ["b"], ["c"], perm=[0, 1, 3, 2], name="swap_hw"),
             helper.make_node("Gather", ["c", "rows"], ["d"], axis=2, name="pick_rows"),
             helper.make_node("Transpose", ["d"], ["y"], perm=[0, 2, 3, 1], name="to_nhwc"),
             helper.make_node("Gather", ["d", "one"], ["y2"], axis=3, name="one_column")]
    inits = {"w1": _w(8, 3, 3, 3), "s": _i64(0, 0), "e": _i64(8, 8), "ax": _i64(2, 3), "st": _i64(2, 2),
             "rows": _i64(0, 2), "one": np.array(1, np.int64)}
    return _toy(nodes, [1, 3, 8, 8], {"y": [1, 2, 4, 8], "y2": [1, 8, 2]}, inits)


def test_what_does_not_lower_is_named_with_its_reason(tmp_path):
    message = unsupported_message(_rejected_model(), tmp_path / "out")
    assert "2 nodes cannot run on the AIPU" in message
    assert "'to_nhwc' (Transpose: Transpose perm [0, 2, 3, 1] moves the channels out of the innermost" in message
    assert "'one_column' (Gather: a scalar index removes the gathered axis: output " in message
    assert "has rank 3; the AIPU stores NCHW (rank 4) or NC (rank 2) tensors)" in message
    for lowered in ("'strided'", "'swap_hw'", "'pick_rows'"):
        assert lowered not in message
