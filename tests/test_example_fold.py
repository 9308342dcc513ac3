"""The second out-of-tree example plugin (examples/axdrive-example-fold): a graph rewrite written from the
docs alone, with the rewrite engine, before=/after= ordering and an option of its own. Loaded with ``-p`` as a
user would load a plugin they did not install; compiled on a real model and run bit-exactly."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from _support import REPO, run_cli
from _toy_models import toy_model

FOLD_DIR = REPO / "examples" / "axdrive-example-fold"
ENV = {"PYTHONPATH": str(FOLD_DIR)}


@pytest.fixture
def fold_host(monkeypatch):
    from axdrive.passes import PluginHost

    monkeypatch.syspath_prepend(str(FOLD_DIR))
    yield lambda *args: PluginHost.from_args(["axdrive_example_fold", *args])
    sys.modules.pop("axdrive_example_fold", None)


def _affine_model(tmp_path: Path) -> Path:
    """conv1 -> + c (per channel) -> relu -> conv2 -> * 0.5 (scalar)."""
    rng = np.random.default_rng(5)
    inits = {"w1": (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
             "b1": (rng.standard_normal(8) * 0.1).astype(np.float32),
             "c": (rng.standard_normal((1, 8, 1, 1)) * 0.2).astype(np.float32),
             "w2": (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32), "s": np.asarray(0.5, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Add", ["c1", "c"], ["a"], name="add"), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2"),
             helper.make_node("Mul", ["c2", "s"], ["y"], name="mul")]
    onnx.save(toy_model(nodes, inits), tmp_path / "affine.onnx")
    return tmp_path / "affine.onnx"


def test_the_fold_keeps_the_float_function_and_runs_where_it_says(tmp_path, fold_host) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.reference import run_float

    model = _affine_model(tmp_path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    plain = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "a", stop_after="graph_optimized")
    folded = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "b", stop_after="conv_affine_folded",
                            plugins=fold_host())
    assert {n.op for n in folded.graph.nodes} == {"Conv", "Relu"}
    np.testing.assert_allclose(run_float(folded.graph, {"x": x})["y"], run_float(plain.graph, {"x": x})["y"],
                               rtol=1e-5, atol=1e-6)
    names = folded.pipeline
    assert names.index("frontend.optimize") < names.index("fold.conv_affine") < names.index("graph_cleaner.split")
    without_mul = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "c", stop_after="conv_affine_folded",
                                 plugins=fold_host(), options={"fold.mul": False})
    assert [n.op for n in without_mul.graph.nodes].count("Mul") == 1


def test_the_fold_on_the_ppocr_classifier_runs_bit_exactly_from_the_cli(ppocr_model, tmp_path) -> None:
    """PP-OCR's classifier has 18 constant Adds after convolutions (its hard-sigmoids' + 3)."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (2, 3, 48, 192)).astype(np.float32))
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, (1, 3, 48, 192)).astype(np.float32))
    out = tmp_path / "out"
    proc = run_cli("compile", str(ppocr_model), "-o", str(out), "--input-shape", "x=1x3x48x192", "--calibration",
                   str(tmp_path / "cal.npy"), "-p", "axdrive_example_fold", "--set", "trace_tvm_passes=true", env=ENV)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "pass_dependency_graph.json").read_text())
    (fold,) = [p for p in doc["passes"] if p["name"] == "fold.conv_affine"]
    assert fold["stats"] == {"conv_add": 18, "conv_mul": 0} and fold["plugin"] == "axdrive_example_fold"
    assert json.loads((out / "manifest.json").read_text())["plugin_options"]["fold.mul"] is True
    proc = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--compare", "--float-model",
                   str(ppocr_model), env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert any("integer reference" in ln and "max-abs 0 " in ln for ln in proc.stdout.splitlines()), proc.stdout
