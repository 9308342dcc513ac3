"""The code generator (``lowering.emit_program``): small models of every operator kind, quantized
through the driver, lowered, and run on the simulated AIPU bit-exactly equal to the integer reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from _codegen_support import _model, _w, assert_bit_exact, lower

from axdrive.errors import MemoryPlanError


def conv_relu():
    """3x3 stride-2 convolution with a fused Relu (MVM, requantization and clamp fused)."""
    return _model([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
                   helper.make_node("Relu", ["c"], ["y"])], [1, 3, 16, 16], ["y"],
                  {"w": _w(24, 3, 3, 3), "b": _w(24, scale=0.1)})


def depthwise_hardswish_residual():
    """conv -> depthwise -> HardSwish (LUT), added back to the conv output (DPU residual add)."""
    return _model([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[0, 0, 0, 0]),
                   helper.make_node("Conv", ["a", "w2", "b2"], ["d"], pads=[1, 1, 1, 1], group=16),
                   helper.make_node("HardSwish", ["d"], ["h"]),
                   helper.make_node("Add", ["a", "h"], ["y"])], [1, 3, 12, 12], ["y"],
                  {"w1": _w(16, 3, 1, 1), "w2": _w(16, 1, 3, 3), "b2": _w(16, scale=0.1)})


def squeeze_excite_dense():
    """GlobalAveragePool -> 1x1 conv -> HardSigmoid -> Mul broadcast over the map, then AveragePool,
    GlobalAveragePool, Flatten and a MatMul + bias (dense on a 1x1 map)."""
    return _model([helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("GlobalAveragePool", ["a"], ["g"]),
                   helper.make_node("Conv", ["g", "w2", "b2"], ["s"]),
                   helper.make_node("HardSigmoid", ["s"], ["hs"]),
                   helper.make_node("Mul", ["a", "hs"], ["m"]),
                   helper.make_node("AveragePool", ["m"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                   helper.make_node("GlobalAveragePool", ["p"], ["gp"]),
                   helper.make_node("Flatten", ["gp"], ["f"]),
                   helper.make_node("MatMul", ["f", "fc"], ["mm"]),
                   helper.make_node("Add", ["mm", "fcb"], ["y"])], [1, 3, 8, 8], ["y"],
                  {"w1": _w(8, 3, 3, 3), "b1": _w(8, scale=0.1), "w2": _w(8, 8, 1, 1), "b2": _w(8, scale=0.1),
                   "fc": _w(8, 5), "fcb": _w(5, scale=0.1)})


def c2f_sppf():
    """YOLO-style: Split along channels, MaxPool 5x5, nearest Resize x2, unaligned Concats, SiLU."""
    return _model([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                   helper.make_node("Sigmoid", ["a"], ["sa"]),
                   helper.make_node("Mul", ["a", "sa"], ["silu"]),
                   helper.make_node("Split", ["silu", "split"], ["s0", "s1"], axis=1),
                   helper.make_node("Conv", ["s1", "w2"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Add", ["s1", "c"], ["r"]),
                   helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
                   helper.make_node("Concat", ["s0", "r", "mp"], ["cat"], axis=1),
                   helper.make_node("Resize", ["cat", "", "scales"], ["up"], mode="nearest",
                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                   helper.make_node("Conv", ["up", "w3", "b3"], ["y"])], [1, 3, 8, 8], ["y"],
                  {"w1": _w(20, 3, 3, 3), "split": np.array([8, 12], np.int64), "w2": _w(12, 12, 3, 3),
                   "scales": np.array([1, 1, 2, 2], np.float32), "w3": _w(6, 32, 1, 1), "b3": _w(6, scale=0.1)})


MODELS = {"conv_relu": conv_relu, "depthwise_hardswish_residual": depthwise_hardswish_residual,
          "squeeze_excite_dense": squeeze_excite_dense, "c2f_sppf": c2f_sppf}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_operator_kind_runs_bit_exactly_on_the_simulator(tmp_path, name):
    model = MODELS[name]()
    assert_bit_exact(lower(model, tmp_path), model)


@pytest.mark.parametrize("props", [
    {"apply_pword_padding": False},
    {"remove_io_padding_and_layout_transform": False},
    {"rewrite_concat_to_resadd": False, "rewrite_dense_to_conv2d": False},
    {"workspace_memory_pool": "global.l2", "constant_memory_pool": "global.l2", "dpu_constants_home": "global.ddr",
     "dpu_instructions_home": "l2", "dwpu_instructions_home": "l2"},
], ids=["unpadded", "device_io_layout", "dma_concat_and_matmul", "l2_homes"])
def test_lowering_options_keep_the_results_bit_exact(tmp_path, props):
    for name in ("c2f_sppf", "squeeze_excite_dense"):
        model = MODELS[name]()
        assert_bit_exact(lower(model, tmp_path, name, **props), model)


def test_a_layer_that_does_not_fit_l1_is_split_into_height_tiles(tmp_path):
    model = conv_relu()
    whole = lower(model, tmp_path, "whole")
    tiled = lower(model, tmp_path, "tiled", l1_constraint=50_000)
    assert whole.report["lowering"]["tiled_layers"] == 0
    assert tiled.report["lowering"]["tiled_layers"] >= 1 and tiled.report["lowering"]["tiles"] >= 2
    assert_bit_exact(tiled, model)


def test_a_layer_whose_weights_alone_exceed_l1_fails_naming_the_node(tmp_path):
    with pytest.raises(MemoryPlanError, match="node 'c'|L1"):
        lower(conv_relu(), tmp_path, l1_constraint=8192)


def test_buffers_live_in_the_configured_homes(tmp_path):
    # the pools are where buffers start; without promotion (axdrive-memplan) that is where they stay
    r = lower(squeeze_excite_dense(), tmp_path, workspace_memory_pool="global.l2", constant_memory_pool="global.ddr",
              dpu_instructions_home="l2", enable_buffer_promotion=False)
    program = json.loads((r.output_dir / "program.json").read_text())
    levels = {b["name"]: b["level"] for b in program["buffers"]}
    assert all(lvl == "l2" for n, lvl in levels.items() if n.startswith("t/"))
    kinds = {b["name"]: b["kind"] for b in program["buffers"]}
    assert all(lvl == "l2" for n, lvl in levels.items() if n.endswith("/dpu_code") and kinds[n] == "constant")
    assert any(lvl == "ddr" for n, lvl in levels.items() if n.endswith("/w") and kinds[n] == "constant")
    compute = [t for t in program["tasks"][0] if t["kind"] != "dma"]
    assert all(levels[ref["buffer"]] == "l1" for t in compute for ref in [*t["inputs"].values(), *t["outputs"].values()])


def test_tasks_are_labelled_with_their_onnx_nodes_and_the_report_has_performance(tmp_path):
    r = lower(conv_relu(), tmp_path)
    program = json.loads((r.output_dir / "program.json").read_text())
    mvm = [t for t in program["tasks"][0] if t["kind"] == "mvm"]
    assert mvm and all("<-" in t["stage"] for t in mvm)
    perf = r.report["performance"]
    assert perf["estimated_cycles"] > 0 and perf["frames_per_second"] > 0 and 0 < perf["mvm_utilization"] <= 1
    assert r.report["target"] == "aipu_v1"
    assert json.loads((r.output_dir / "host_io.json").read_text())["inputs"]["x"]["layout"] == "NHWC"


def test_the_program_files_round_trip_and_compiles_are_byte_identical(tmp_path):
    from axdrive_hw.program.binary import assemble

    model = c2f_sppf()
    a, b = lower(model, tmp_path, "a"), lower(model, tmp_path, "b")
    bin_a = (a.output_dir / "program.bin").read_bytes()
    assert bin_a == (b.output_dir / "program.bin").read_bytes()
    assert assemble((a.output_dir / "program.json").read_text()) == bin_a

