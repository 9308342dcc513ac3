"""Softmax on the AIPU: the integer semantics with channel padding, the DPU program, and what
``softmax_neutral_value`` does.

The toy classifier (tests/_toy_models.py) ends in a 5-class Softmax that the graph cleaner now keeps on the
device; its 5 channels are padded to 64 lanes, the 59 padded lanes read ``softmax_neutral_value`` on the
input grid. The default is neutral (the real lanes are exactly the unpadded softmax, for every input); a value
inside the input grid is not (a warning, and different probabilities). PP-OCR end to end is in
test_lowering_end_to_end.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from _toy_models import classifier
from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.numerics import softmax, softmax_exp_table, softmax_pad_value
from axdrive.reference import run_integer


@given(st.lists(st.integers(-128, 127), min_size=1, max_size=70), st.integers(0, 130), st.floats(0.001, 1.0),
       st.booleans())
def test_a_neutral_padding_value_leaves_every_real_lane_as_the_unpadded_softmax(row, extra, scale, bottom):
    x = np.array([row], np.int8)
    if bottom:  # every real lane at -128: a padding value clamped to -128 would take a share here
        x[:] = -128
    table = softmax_exp_table(scale)
    padded = np.concatenate([x, np.zeros((1, extra), np.int8)], axis=1)  # whatever the padded lanes held
    pad = softmax_pad_value(-100000.0, scale, 3)
    assert pad <= -128 - 256
    got = softmax(padded, table, channels=x.shape[1], pad_value=pad)
    np.testing.assert_array_equal(got[:, :x.shape[1]], softmax(x, table))


def test_a_padding_value_inside_the_grid_takes_a_share_of_the_probability():
    x = np.array([[10, 0, -5]], np.int8)
    table = softmax_exp_table(0.1)
    padded = np.concatenate([x, np.full((1, 61), -77, np.int8)], axis=1)
    inside = softmax(padded, table, channels=3, pad_value=softmax_pad_value(-1.0, 0.1, 0))  # q = -10
    assert inside[0, :3].astype(int).sum() < softmax(x, table)[0].astype(int).sum()
    # 10 steps below the real minimum is still on the table: not neutral either, only smaller
    assert not np.array_equal(inside[:, :3], softmax(x, table))


def _toy(tmp_path, **settings):
    """The toy classifier with its last layer's weights x4: logits within about +-2, so -1.0 is inside their grid."""
    from onnx import numpy_helper

    model = classifier()
    for i, init in enumerate(model.graph.initializer):
        if init.name == "fc2":
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 4, "fc2"))
    cal = {"x": np.random.default_rng(0).random((4, 3, 8, 8), dtype=np.float32)}
    return driver.compile(model, CompilerConfig(**settings), output_dir=tmp_path, calibration=cal)


@pytest.fixture(scope="module")
def toy_default(tmp_path_factory):
    return _toy(tmp_path_factory.mktemp("default"))


def _device_and_reference(result, x):
    """Device outputs (``axdrive run``) and ``run_integer`` on the unpadded quantized core, both dequantized."""
    from axdrive_quantizer import QUANTIZED_CORE

    import axdrive

    from axdrive.runner import dequantize, quantize

    core = result.session.stash[QUANTIZED_CORE]
    grid = {k: {"scale": float(core.tensors[k].qparams.scale), "zero_point": int(core.tensors[k].qparams.zero_point)}
            for k in ("x", "prob")}
    device = axdrive.run(result.output_dir, {"x": x})
    reference = run_integer(core, {"x": quantize(x, grid["x"])})
    return device["prob"], dequantize(reference["prob"], grid["prob"])


def test_the_toy_classifier_runs_its_softmax_on_the_dpu_bit_exactly(toy_default):
    r = toy_default
    assert r.report["graph_cleaner"]["final_softmax_on_device"] == ["softmax"]
    assert not (r.output_dir / "host_postprocess.onnx").exists()
    node = next(n for n in r.graph.nodes if n.op == "Softmax")
    assert node.attrs["softmax_channels"] == 5 and node.attrs["softmax_pad_value"] <= -128 - 256
    ops = {i.op for i in node.attrs["dpu_program"].instrs}
    assert {"rmax", "rsum", "lutw", "divr", "select"} <= ops
    assert not [w for w in r.report["warnings"] if "softmax_neutral_value" in w]
    for seed in range(3):
        x = np.random.default_rng(10 + seed).random((1, 3, 8, 8), dtype=np.float32)
        device, reference = _device_and_reference(r, x)
        np.testing.assert_array_equal(device, reference)
        assert abs(float(device.sum()) - 1.0) <= 5 / 255  # five probabilities, each rounded to 1/255


def test_a_non_neutral_softmax_neutral_value_warns_and_changes_the_outputs(toy_default, tmp_path):
    flipped = _toy(tmp_path / "flipped", softmax_neutral_value=-1.0)
    warning = [w for w in flipped.report["warnings"] if "softmax_neutral_value=-1" in w]
    assert len(warning) == 1 and "'softmax'" in warning[0] and "59 padded lanes" in warning[0]
    assert (flipped.output_dir / "program.bin").read_bytes() != (toy_default.output_dir / "program.bin").read_bytes()
    x = np.random.default_rng(10).random((1, 3, 8, 8), dtype=np.float32)
    base_device, reference = _device_and_reference(toy_default, x)
    flipped_device, _ = _device_and_reference(flipped, x)
    np.testing.assert_array_equal(base_device, reference)
    assert not np.array_equal(flipped_device, reference)
    assert float(flipped_device.sum()) < float(base_device.sum()) - 0.1  # the padded lanes took their share
