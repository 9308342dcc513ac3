"""Bring your own model: the common shapes of real exports that the visible corpus does not have, each
compiled, run on the simulated AIPU and compared (bit-exact against the integer reference).

Toy models stand in for the public models they were seen in: a standalone BatchNormalization early in a
PP-OCRv4-style text detector (after an activation, where no convolution absorbs it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from _toy_models import toy_model
from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.runner import execute


def _compile_and_compare(model: onnx.ModelProto, tmp_path: Path) -> dict:
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    cal = {"x": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "m.onnx", CompilerConfig(), output_dir=tmp_path / "out", calibration=cal)
    x = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    run = execute(tmp_path / "out", {"x": x}, compare=True, float_model=tmp_path / "m.onnx")
    by_ref = {c.reference.split(" ")[0] + (" float" if "float" in c.reference else ""): c for c in run.comparisons}
    assert by_ref["integer"].max_abs_error == 0.0, run.comparisons  # the device is bit-exact
    return {"result": res, "run": run, "float_sqnr_db": by_ref["onnxruntime float"].sqnr_db}


def test_a_standalone_batchnorm_after_an_activation_compiles_and_runs_bit_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             "s": rng.uniform(0.5, 1.5, 8).astype(np.float32), "b": rng.standard_normal(8).astype(np.float32) * 0.1,
             "m": rng.standard_normal(8).astype(np.float32) * 0.1, "v": rng.uniform(0.5, 1.5, 8).astype(np.float32),
             "w2": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Conv", ["n", "w2"], ["y"], name="conv2")]
    got = _compile_and_compare(toy_model(nodes, inits), tmp_path)
    assert "BatchNormalization" not in {n.op for n in got["result"].graph.nodes}
    assert got["float_sqnr_db"] > 25
