"""A quantized model you can run anywhere: ``quantized_full_model.onnx`` (the chain of host parts and
quantized cores joined into one file) and ``axdrive run`` on a ``quantize_only`` directory (the quantized
cores in onnxruntime on the CPU, host parts chained, the original outputs by name)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from _support import run_cli
from test_partition import _hardmax_in_the_middle


@pytest.fixture()
def compiled(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    model = _hardmax_in_the_middle(tmp_path)
    rng = np.random.default_rng(5)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32))
    x = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "q"
    proc = run_cli("compile", str(model), "-o", str(out), "--calibration", str(tmp_path / "cal.npy"),
                   "--set", "compiler_mode=quantize_only")
    assert proc.returncode == 0, proc.stderr
    return model, out, x


def test_the_full_model_joins_every_part_and_runs_in_onnxruntime_as_the_chain_does(compiled) -> None:
    model, out, x = compiled
    full = onnx.load(out / "quantized_full_model.onnx")
    onnx.checker.check_model(full)
    assert [i.name for i in full.graph.input] == ["x"] and [o.name for o in full.graph.output] == ["y"]
    ops = [n.op_type for n in full.graph.node]
    assert "Hardmax" in ops and ops.count("Conv") == 2 and "QuantizeLinear" in ops  # host part + both cores
    (y,) = ort.InferenceSession(str(out / "quantized_full_model.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})
    env = {"x": x}  # the chain, part by part, as separate files
    for name in ("quantized_model.onnx", "host_part1.onnx", "device2.quantized_model.onnx"):
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        env.update(zip([o.name for o in sess.get_outputs()],
                       sess.run(None, {i.name: env[i.name] for i in sess.get_inputs()})))
    np.testing.assert_array_equal(y, env["y"])


def test_axdrive_run_on_a_quantize_only_directory_runs_the_chain_on_the_cpu_and_compares(compiled, tmp_path) -> None:
    model, out, x = compiled
    proc = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--compare", "-o", str(tmp_path / "y.npz"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ran {out} on the CPU: 1 frame(s) through quantized_model.onnx, "
                                  "device2.quantized_model.onnx in onnxruntime"), proc.stdout
    assert "onnxruntime float m.onnx" in proc.stdout and "integer reference" in proc.stdout
    (y,) = ort.InferenceSession(str(out / "quantized_full_model.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["y"], y)
    proc = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--profile", "1")
    assert proc.returncode == 2 and "runs on the CPU in onnxruntime, which has no profile" in proc.stderr


def test_a_lowering_compile_writes_the_full_model_too(tmp_path: Path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(_hardmax_in_the_middle(tmp_path), CompilerConfig(), output_dir=tmp_path / "out",
                         calibration=cal)
    assert "quantized_full_model.onnx" in {a["name"] for a in res.manifest["artifacts"]}


def test_joining_refuses_parts_at_two_opsets_and_names_a_tensor_no_part_has() -> None:
    from onnx import TensorProto, helper

    from axdrive.errors import ModelError
    from axdrive.onnx_io import chain_models

    def relu(src: str, dst: str, opset: int):
        graph = helper.make_graph([helper.make_node("Relu", [src], [dst])], "g",
                                  [helper.make_tensor_value_info(src, TensorProto.FLOAT, [1])],
                                  [helper.make_tensor_value_info(dst, TensorProto.FLOAT, [1])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])

    joined = chain_models([("a", relu("x", "h", 17)), ("b", relu("h", "y", 17))], None, ["y"])
    assert [i.name for i in joined.graph.input] == ["x"] and [o.name for o in joined.graph.output] == ["y"]
    with pytest.raises(ModelError, match="the parts import domain 'ai.onnx' at opsets 17 and 13 \\(b\\)"):
        chain_models([("a", relu("x", "h", 17)), ("b", relu("h", "y", 13))], None, ["y"])
    with pytest.raises(ModelError, match="no part reads or computes tensor 'z'"):
        chain_models([("a", relu("x", "h", 17))], None, ["z"])
