"""Operators lowered since issue 7: grouped convolutions, Split/Slice along H and W, ConvTranspose.

Each toy model is quantized through the driver, lowered, run on the simulated AIPU and compared bit for bit
with ``run_integer`` on the quantized core (``tests/test_lowering_codegen.py``'s ``assert_bit_exact``), under
the default configuration and the options that change how the operator is lowered (channel padding off,
device-side I/O layout, depth-first tiling, several cores). What stays rejected is checked by name and reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import helper

from _toy_models import onnx_model, value_info
from _support import unsupported_message
from axdrive import driver
from axdrive.config import CompilerConfig
from _codegen_support import assert_bit_exact, lower

RNG = np.random.default_rng(11)


def _w(*shape: int, scale: float = 0.3) -> np.ndarray:
    return RNG.normal(0, scale, shape).astype(np.float32)


def _toy(nodes: list, x_shape: list[int], outputs: dict[str, list[int]], inits: dict) -> object:
    return onnx_model(nodes, [value_info("x", x_shape)], [value_info(n, s) for n, s in outputs.items()], inits)


def grouped_unaligned():
    """A 4-group 3x3 convolution, 24 -> 16 channels: padding to 64 lanes would move the groups."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Conv", ["a", "w2", "b2"], ["g"], pads=[1, 1, 1, 1], group=4, name="grouped"),
                 helper.make_node("Relu", ["g"], ["y"])], [1, 3, 10, 10], {"y": [1, 16, 10, 10]},
                {"w1": _w(24, 3, 3, 3), "w2": _w(16, 6, 3, 3), "b2": _w(16, scale=0.1)})


def grouped_aligned():
    """A 2-group convolution, 128 -> 128 channels (64 per group): the groups survive padding."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Conv", ["a", "w2", "b2"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2], group=2,
                                  name="grouped")], [1, 3, 7, 6], {"y": [1, 128, 4, 3]},
                {"w1": _w(128, 3, 3, 3, scale=0.2), "w2": _w(128, 64, 3, 3, scale=0.05), "b2": _w(128, scale=0.1)})


def channel_multiplier():
    """A depthwise convolution with two filters per channel (8 -> 16): grouped, not DWPU depthwise."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Conv", ["a", "w2"], ["y"], pads=[1, 1, 1, 1], group=8, name="grouped")],
                [1, 3, 6, 6], {"y": [1, 16, 6, 6]}, {"w1": _w(8, 3, 3, 3), "w2": _w(16, 1, 3, 3)})


def spatial_slices():
    """A Slice of rows (with a negative end) and a Split of columns, read by a DPU add and a Relu; one of the
    Split's outputs is also a model output."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("Slice", ["a", "starts", "ends", "axes"], ["rows"], name="rows"),
                 helper.make_node("Split", ["a", "split"], ["left", "right"], axis=3, name="columns"),
                 helper.make_node("Add", ["left", "right"], ["y"]),
                 helper.make_node("Relu", ["rows"], ["y2"])], [1, 3, 8, 10], {"y": [1, 8, 8, 5], "y2": [1, 8, 5, 10], "right": [1, 8, 8, 5]},
                {"w1": _w(8, 3, 3, 3), "starts": np.array([2], np.int64), "ends": np.array([-1], np.int64),
                 "axes": np.array([2], np.int64), "split": np.array([5, 5], np.int64)})


def conv_transpose(kernel: int = 4, stride: int = 2, pad: int = 1, out_pad: int = 0):
    """conv -> ConvTranspose (with bias) -> Relu -> conv: an upsampling decoder block."""
    return _toy([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                 helper.make_node("ConvTranspose", ["a", "w2", "b2"], ["t"], strides=[stride, stride],
                                  pads=[pad] * 4, output_padding=[out_pad] * 2, name="up"),
                 helper.make_node("Relu", ["t"], ["r"]),
                 helper.make_node("Conv", ["r", "w3"], ["y"], pads=[1, 1, 1, 1])], [1, 3, 5, 6], {"y": [1, 4, None, None]},
                {"w1": _w(8, 3, 3, 3), "w2": _w(8, 6, kernel, kernel), "b2": _w(6, scale=0.1), "w3": _w(4, 6, 3, 3)})


def _mvm_params(result, node: str | None = None) -> list[dict]:
    """The parameters of every MVM task (of ``node``'s layer only, when given)."""
    program = json.loads((result.output_dir / "program.json").read_text())
    return [t["params"] for core in program["tasks"] for t in core
            if t["kind"] == "mvm" and (node is None or t["stage"].split(" <- ")[0] == node)]


def _stats(result, name: str) -> dict:
    return next(p["stats"] for p in result.report["passes"] if p["name"] == name)


# -- grouped convolutions ------------------------------------------------------------------------------------
def test_an_unaligned_grouped_convolution_runs_as_a_block_diagonal_dense_one(tmp_path):
    model = grouped_unaligned()
    result = lower(model, tmp_path)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["grouped_conv_to_dense"] == 1
    assert [int(p["groups"]) for p in _mvm_params(result, "grouped")] == [1]


def test_without_channel_padding_a_grouped_convolution_is_one_mvm_task_with_groups(tmp_path):
    model = grouped_unaligned()
    result = lower(model, tmp_path, apply_pword_padding=False)
    assert_bit_exact(result, model)
    grouped = _mvm_params(result, "grouped")
    assert len(grouped) == 1 and grouped[0]["groups"] == 4 and grouped[0]["weight_sets"] == 4


@pytest.mark.parametrize("props", [{}, {"aipu_cores_used": 2, "multicore_mode": "cooperative"}],
                         ids=["one_core", "cooperative"])
def test_a_grouped_convolution_of_whole_pwords_keeps_its_groups(tmp_path, props):
    model = grouped_aligned()
    result = lower(model, tmp_path, **props)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["grouped_conv_to_dense"] == 0
    grouped = _mvm_params(result, "grouped")
    assert grouped and all(int(p["groups"]) == 2 and int(p["weight_sets"]) == 2 for p in grouped)


@pytest.mark.parametrize("props", [{}, {"apply_pword_padding": False}], ids=["padded", "unpadded"])
def test_a_channel_multiplier_runs_on_the_mvm_bit_exactly(tmp_path, props):
    model = channel_multiplier()
    assert_bit_exact(lower(model, tmp_path, **props), model)


# -- Split / Slice along H and W -----------------------------------------------------------------------------
@pytest.mark.parametrize("props", [{}, {"remove_io_padding_and_layout_transform": False},
                                   {"apply_pword_padding": False},
                                   {"aipu_cores_used": 2, "multicore_mode": "pipeline"}],
                         ids=["default", "device_io_layout", "unpadded", "pipeline"])
def test_spatial_split_and_slice_are_dma_copies(tmp_path, props):
    model = spatial_slices()
    result = lower(model, tmp_path, **props)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["channel_slice_to_selection"] == 0
    program = json.loads((result.output_dir / "program.json").read_text())
    stages = {t["stage"].split(" <- ")[0] for core in program["tasks"] for t in core}
    assert {"rows", "columns"} <= stages
    units = {t["stage"].split(" <- ")[0] for core in program["tasks"] for t in core if t["kind"] != "dma"}
    assert not {"rows", "columns"} & units


# -- ConvTranspose -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("geometry", [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0), (3, 1, 1, 0)],
                         ids=["k4s2p1", "k3s2p1_outpad", "k2s2", "k3s1"])
def test_conv_transpose_is_a_zero_insertion_and_a_convolution(tmp_path, geometry):
    model = conv_transpose(*geometry)
    result = lower(model, tmp_path)
    assert_bit_exact(result, model)
    assert _stats(result, "lowering.legalize_channels")["conv_transpose_to_conv"] == 1
    assert _stats(result, "lowering.apply_pword_padding")["pad_zero_insertion"] == int(geometry[1] > 1)
    up = _mvm_params(result, "up")
    assert up and all(list(p["stride"]) == [1, 1] and int(p["groups"]) == 1 for p in up)


@pytest.mark.parametrize("props", [{"apply_pword_padding": False}, {"tiling_depth": 3, "l1_constraint": 150_000},
                                   {"l1_constraint": 75_000},
                                   {"aipu_cores_used": 2, "multicore_mode": "batch"}],
                         ids=["unpadded", "depth_first", "height_tiles", "batch"])
def test_conv_transpose_stays_bit_exact_under_the_lowering_options(tmp_path, props):
    model = conv_transpose()
    assert_bit_exact(lower(model, tmp_path, **props), model)


# -- what stays rejected -------------------------------------------------------------------------------------
def _rejected_model():
    """Three nodes lowered since issue 7 (a grouped conv, a row Slice, the H/W Transpose) and two that are not: a
    ConvTranspose cropping more than its kernel reaches, a product of two run-time tensors."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Conv", ["a", "w2"], ["g"], pads=[1, 1, 1, 1], group=2, name="grouped"),
             helper.make_node("Slice", ["g", "starts", "ends", "axes"], ["s"], name="rows"),
             helper.make_node("ConvTranspose", ["s", "w3"], ["t"], strides=[2, 2], pads=[3, 3, 3, 3], name="crop"),
             helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 1, 3, 2], name="swap_hw"),
             helper.make_node("MatMul", ["t", "tt"], ["y"], name="gram")]
    inits = {"w1": _w(8, 3, 3, 3), "w2": _w(8, 4, 3, 3), "starts": np.array([0], np.int64),
             "ends": np.array([6], np.int64), "axes": np.array([2], np.int64), "w3": _w(8, 4, 3, 3)}
    return _toy(nodes, [1, 3, 8, 8], {"y": [1, 4, None, None]}, inits)


def test_what_does_not_lower_is_still_named_with_its_reason(tmp_path):
    message = unsupported_message(_rejected_model(), tmp_path / "out")
    assert "2 nodes cannot run on the AIPU" in message
    assert "'crop' (ConvTranspose: transposed convolution whose pads exceed dilation x (kernel - 1)" in message
    assert "'gram' (MatMul: a product of two run-time tensors has no MVM mapping" in message
    assert "'grouped'" not in message and "'rows'" not in message and "'swap_hw'" not in message


def test_conv_transpose_integer_semantics_match_onnxruntime_on_the_dequantized_values(tmp_path):
    """``run_integer``'s ConvTranspose (the quantizer's ``mac``, weights per output channel on axis 1) is
    onnxruntime's float ConvTranspose of the dequantized input, weights and bias, rounded onto the output
    grid: at most one output step apart (float32 rounding next to a tie)."""
    import onnxruntime as ort
    from axdrive_quantizer import QUANTIZED_CORE

    from axdrive.reference import run_integer

    model = _toy([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                                   output_padding=[1, 1], name="up")], [1, 4, 5, 6], {"y": [1, 3, 10, 12]},
                 {"w": _w(4, 3, 3, 3), "b": _w(3, scale=0.1)})
    cfg = CompilerConfig()
    cfg.run_graph_cleaner = False
    cfg.compiler_mode = "quantize_only"
    cal = {"x": np.random.default_rng(3).uniform(-1, 1, (2, 4, 5, 6)).astype(np.float32)}
    core = driver.compile(model, cfg, output_dir=tmp_path / "q", calibration=cal).session.stash[QUANTIZED_CORE]
    node = next(n for n in core.nodes if n.op == "ConvTranspose")
    xq_, wq_ = core.tensors[node.inputs[0]].qparams, core.tensors[node.inputs[1]].qparams
    yq_ = core.tensors[node.outputs[0]].qparams
    xq = np.random.default_rng(4).integers(-128, 128, (1, 4, 5, 6)).astype(np.int8)
    got = run_integer(core, {core.inputs[0]: xq})[node.outputs[0]]
    x = ((xq.astype(np.float64) - int(xq_.zero_point)) * float(xq_.scale)).astype(np.float32)
    w_scale = np.asarray(wq_.scale, np.float64).reshape(1, -1, 1, 1)
    w = (core.constant(node.inputs[1]).astype(np.float64) * w_scale).astype(np.float32)
    b = (core.constant(node.inputs[2]).astype(np.float64) * float(xq_.scale) * w_scale.reshape(-1)).astype(np.float32)
    float_model = _toy([helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1],
                                         output_padding=[1, 1])], [1, 4, 5, 6], {"y": [1, 3, 10, 12]}, {"w": w, "b": b})
    want = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    expect = np.clip(np.rint(want / float(yq_.scale)) + int(yq_.zero_point), -128, 127)
    assert np.abs(got.astype(np.int64) - expect).max() <= 1
    assert np.mean(got == expect) > 0.95
