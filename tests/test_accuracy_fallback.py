"""Per-layer sensitivity in graph order, collapsed layers found with their cause, and accuracy-controlled
fallback (``--target-sqnr``) on models with a planted sensitive layer.

The planted layer: ``Sin(60 x)``. Its table reads an input grid whose step is about 0.24 rad, so quantizing it
alone costs much of its signal (its *own* SQNR, about 23 dB, is the lowest of the model and caps the outputs);
in float, on the host, it costs nothing, and the convolutions after it quantize well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from _support import run_cli
from _toy_models import toy_model


def _sensitive_model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    inits = {"k": np.asarray(60.0, np.float32), "w": (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32),
             "w2": (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)}
    nodes = [helper.make_node("Mul", ["x", "k"], ["m"], name="scale"), helper.make_node("Sin", ["m"], ["s"], name="sin"),
             helper.make_node("Conv", ["s", "w"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    onnx.save(toy_model(nodes, inits, x_shape=(1, 3, 16, 16)), tmp_path / "sens.onnx")
    return tmp_path / "sens.onnx"


def _calibration() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).uniform(0, 1, (4, 3, 16, 16)).astype(np.float32)}


def test_the_sensitivity_report_is_in_graph_order_with_own_and_cumulative_sqnr(tmp_path) -> None:
    import json

    from axdrive import driver
    from axdrive.config import CompilerConfig

    res = driver.compile(_sensitive_model(tmp_path), CompilerConfig(quantization_debug=True),
                         output_dir=tmp_path / "out", calibration=_calibration())
    doc = json.loads((tmp_path / "out" / "quantization_debug.json").read_text())
    rows = doc["sensitivity"]
    assert [r["order"] for r in rows] == list(range(len(rows)))
    by = {r["node"]: r for r in rows}
    assert set(by) == {"sin", "conv1", "conv2"}  # the Mul by a constant at the input is host pre-processing
    assert min(rows, key=lambda r: r["own_db"])["node"] == "sin" and by["sin"]["own_db"] < 25
    # the cumulative SQNR carries the table's loss downstream; each layer's own figure does not
    assert by["conv2"]["cumulative_db"] < by["conv2"]["own_db"] - 10
    assert doc["output_sqnr_db"] == by["conv2"]["cumulative_db"] == res.report["quantization"]["output_sqnr_db"]
    assert sum(r["macs"] for r in rows) == res.report["placement"]["device_macs"]
    assert by["sin"]["source"] == ["sin"] and by["conv1"]["source"] == ["conv1"]  # the ONNX node it came from
    shown = res.report["quantization"]["most_sensitive"]
    assert [r["order"] for r in shown] == sorted(r["order"] for r in shown)


def test_target_sqnr_moves_the_fewest_most_sensitive_layers_to_the_host_and_says_what_it_cost(tmp_path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.runner import execute

    model = _sensitive_model(tmp_path)
    res = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "out", calibration=_calibration(),
                         target_sqnr=25)
    acc = res.report["accuracy_fallback"]
    assert acc["met"] and acc["output_sqnr_db"] >= 25 and acc["host_nodes_added"] == ["sin"]
    assert [r["host_nodes_added"] for r in acc["rounds"]] == [[], ["sin"]]
    assert acc["rounds"][0]["output_sqnr_db"] < 25 <= acc["rounds"][1]["output_sqnr_db"]
    assert acc["device_macs_given_up"] == 0  # the table had no MACs: the convolutions stay on the AIPU
    host = {h["node"] for h in res.report["placement"]["host"]}
    assert {"sin", "scale"} <= host  # with the input's scaling, in host pre-processing
    assert res.manifest["config"]["quantization_debug"] is True
    run = execute(tmp_path / "out", {"x": _calibration()["x"][:1]}, compare=True, float_model=model)
    floats = [c for c in run.comparisons if c.reference.startswith("onnxruntime float")]
    assert floats and floats[0].sqnr_db >= 25


def test_an_unreachable_target_stops_after_the_last_round_with_a_warning(tmp_path, monkeypatch) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    monkeypatch.setattr(driver, "ACCURACY_ROUNDS", 2)
    res = driver.compile(_sensitive_model(tmp_path), CompilerConfig(), output_dir=tmp_path / "out",
                         calibration=_calibration(), target_sqnr=150)
    acc = res.report["accuracy_fallback"]
    assert not acc["met"] and len(acc["rounds"]) == 3 and len(acc["host_nodes_added"]) >= 2
    assert acc["device_macs_given_up"] > 0  # by then a convolution went too
    assert any(w.startswith("target_sqnr 150 dB not met: the outputs reach") for w in res.report["warnings"])


@pytest.mark.parametrize("args, message", [
    (["--target-sqnr", "-3"], "target_sqnr -3 dB is out of range"),
    (["--target-sqnr", "25", "--no-host-fallback"], "cannot be combined with host_fallback=False"),
    (["--target-sqnr", "25", "--set", "compiler_mode=lower_only"], "target_sqnr needs a quantizing compiler_mode"),
])
def test_a_target_that_cannot_work_is_one_line(tmp_path, args, message) -> None:
    proc = run_cli("compile", str(_sensitive_model(tmp_path)), "-o", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_cli_prints_the_sensitive_layers_and_the_rounds(tmp_path) -> None:
    np.save(tmp_path / "cal.npy", _calibration()["x"])
    proc = run_cli("compile", str(_sensitive_model(tmp_path)), "-o", str(tmp_path / "out"), "--calibration",
                   str(tmp_path / "cal.npy"), "--target-sqnr", "25")
    assert proc.returncode == 0, proc.stderr
    assert "most sensitive layers (outputs at " in proc.stdout
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("accuracy:")]
    assert "target 25 dB met" in line and "after 2 compile(s); moved to the host: sin" in line


def test_a_layer_whose_output_collapses_is_named_with_its_cause(tmp_path) -> None:
    """``x + 1000``: its grid must hold 0 and 1001, so a step of about 4 maps every value to one code."""
    from axdrive import driver
    from axdrive.config import CompilerConfig

    rng = np.random.default_rng(0)
    inits = {"big": np.asarray(1000.0, np.float32), "w": (rng.standard_normal((4, 3, 1, 1))).astype(np.float32),
             "w0": np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1)}
    nodes = [helper.make_node("Conv", ["x", "w0"], ["x0"], name="first"),  # input scaling would go to the host
             helper.make_node("Add", ["x0", "big"], ["a"], name="shift"),
             helper.make_node("Sub", ["a", "big"], ["b"], name="unshift"),
             helper.make_node("Conv", ["b", "w"], ["y"], name="conv")]
    onnx.save(toy_model(nodes, inits, x_shape=(1, 3, 8, 8)), tmp_path / "m.onnx")
    cal = {"x": rng.uniform(0, 1, (4, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "m.onnx", CompilerConfig(quantization_debug=True), output_dir=tmp_path / "out",
                         calibration=cal)
    said = [w for w in res.report["warnings"] if "layer 'shift' (Add) collapses when quantized" in w]
    assert len(said) == 1 and "its int8 output is always" in said[0] and "spans [1000, 1001]" in said[0]
