"""`axdrive compile` on hostile models, calibration data and configs: one error line naming what is wrong and
where (or, for suspicious calibration data, a warning naming the statistic), never an internal error, never a
process that grows until the OOM killer ends it.

Models are the toy classifier of tests/_toy_models.py (a compile takes well under a second); the oversized one
runs the CLI in a child process under an address-space limit (``_support.run_cli_limited``).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _support import one_error_line, run_cli_limited
from _toy_models import classifier, toy_model
from onnx import helper, numpy_helper

from axdrive import driver
from axdrive.calibration import load_calibration
from axdrive.cli import main
from axdrive.config import CompilerConfig
from axdrive.errors import CalibrationError, MemoryPlanError, ModelError

SHAPE = (1, 3, 8, 8)


def _cal(tmp_path, values, name="cal.npy"):
    np.save(tmp_path / name, np.asarray(values, np.float32))
    return tmp_path / name


def _compile(capsys, model_path, out, *argv) -> tuple[int, str, str]:
    code = main(["compile", str(model_path), "-o", str(out), *map(str, argv)])
    stdout, err = capsys.readouterr()
    return code, stdout, err


def _with_initializer(model, name, edit):
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            a = numpy_helper.to_array(init).copy()
            edit(a)
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, name))
    return model


# -- NaN / Inf weights ------------------------------------------------------------------------------------------
def test_nan_and_inf_weights_are_refused_naming_the_initializer_and_counts(tmp_path, capsys):
    def poison(a):
        a.flat[:3] = np.nan
        a.flat[5] = np.inf

    onnx.save(_with_initializer(classifier(), "w", poison), tmp_path / "nanw.onnx")
    cal = _cal(tmp_path, np.random.default_rng(0).random((4, *SHAPE[1:])))
    code, _out, err = _compile(capsys, tmp_path / "nanw.onnx", tmp_path / "out", "--calibration", cal)
    assert code == 1  # was: internal OverflowError in quantizer.calibrate
    one_error_line(err, "frontend.check", "nanw.onnx", "initializer 'w' holds 3 NaN and 1 Inf value(s) among its 216")


def test_a_nan_constant_node_is_named_as_such(tmp_path):
    inits = {"w": np.ones((4, 3, 1, 1), np.float32)}
    nodes = [helper.make_node("Constant", [], ["k"], name="scale_const",
                              value=numpy_helper.from_array(np.array([np.nan], np.float32), "k")),
             helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Mul", ["c", "k"], ["y"], name="mul")]
    model = toy_model(nodes, inits)
    with pytest.raises(ModelError, match=r"Constant node 'scale_const' \(output 'k'\) holds 1 NaN and 0 Inf"):
        driver.compile(model, CompilerConfig(), output_dir=tmp_path / "o",
                       calibration={"x": np.random.default_rng(0).random((2, *SHAPE[1:]), dtype=np.float32)})


def test_inf_as_a_clip_bound_is_an_open_side_and_compiles(tmp_path):
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "lo": np.array(0, np.float32),
             "hi": np.array(np.inf, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"])]
    result = driver.compile(toy_model(nodes, inits), CompilerConfig(), output_dir=tmp_path / "o",
                            calibration={"x": rng.random((2, *SHAPE[1:]), dtype=np.float32)})
    assert result.report["status"] == "ok"


# -- suspicious calibration data: warnings ------------------------------------------------------------------------
def test_all_zero_calibration_data_is_a_warning_naming_the_statistic(tmp_path, capsys):
    onnx.save(classifier(), tmp_path / "m.onnx")
    cal = _cal(tmp_path, np.zeros((8, *SHAPE[1:])))
    code, out, err = _compile(capsys, tmp_path / "m.onnx", tmp_path / "out", "--calibration", cal)
    assert code == 0, err
    want = "calibration input 'x': all 8 samples are exactly zero"
    assert any(want in w for w in json.loads((tmp_path / "out" / "compile_report.json").read_text())["warnings"])
    assert f"warning: quantizer.calibrate: {want}" in out


def test_integer_pixel_calibration_data_is_a_warning_naming_the_range(tmp_path, capsys):
    onnx.save(classifier(), tmp_path / "m.onnx")
    cal = _cal(tmp_path, np.random.default_rng(0).integers(0, 256, (8, *SHAPE[1:])))
    code, out, err = _compile(capsys, tmp_path / "m.onnx", tmp_path / "out", "--calibration", cal)
    assert code == 0, err
    want = "calibration input 'x': all values are integers in [0, 255]"
    report = json.loads((tmp_path / "out" / "compile_report.json").read_text())
    assert any(want in w and "pass the preprocessing" in w for w in report["warnings"])
    assert want in out


def test_representative_or_binary_calibration_data_gives_no_such_warning(tmp_path):
    rng = np.random.default_rng(0)
    for i, data in enumerate([rng.random((4, *SHAPE[1:]), dtype=np.float32),
                              rng.integers(0, 2, (4, *SHAPE[1:])).astype(np.float32)]):  # a {0, 1} mask
        result = driver.compile(classifier(), CompilerConfig(), output_dir=tmp_path / f"o{i}", calibration={"x": data})
        assert not [w for w in result.report["warnings"] if "calibration input" in w], result.report["warnings"]
        stats = next(p["stats"] for p in result.report["passes"] if p["name"] == "quantizer.calibrate")
        assert 0 < stats["estimated_peak_per_sample_bytes"] <= stats["estimated_memory_bytes"]


def test_a_forged_calibration_npy_header_is_one_calibration_error_line(tmp_path):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 3, 8, 8)})
    (tmp_path / "cal.npy").write_bytes(buf.getvalue() + bytes(16))
    with pytest.raises(CalibrationError, match=r"cal\.npy: cannot read array file: the \.npy header declares "
                                               r"float32\[1000000, 3, 8, 8\] \(732 MiB\) but the file holds 16 bytes"):
        load_calibration(tmp_path / "cal.npy", {"x": SHAPE})


# -- config ranges ------------------------------------------------------------------------------------------------
def test_ddr_size_max_beyond_the_address_space_is_refused_with_the_range(tmp_path, capsys):
    onnx.save(classifier(), tmp_path / "m.onnx")
    code, _out, err = _compile(capsys, tmp_path / "m.onnx", tmp_path / "out", "--set", f"ddr_size_max={10**21}")
    assert code == 2
    one_error_line(err, f"ddr_size_max={10**21} is invalid",
                   "must be an integer in [1,048,576, 1,099,511,627,776], in bytes")
    assert not (tmp_path / "out").exists()
    cfg = CompilerConfig()
    cfg.ddr_size_max = 2**40  # the top of the range is allowed
    assert cfg.ddr_size_max == 2**40


# -- memory ------------------------------------------------------------------------------------------------------
def _oversized(tmp_path, h, w):
    model = classifier()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = h, w
    onnx.save(model, tmp_path / f"big{h}.onnx")
    return tmp_path / f"big{h}.onnx"


def test_an_input_of_120_gb_is_refused_before_calibrating_under_a_memory_limit(tmp_path):
    model = _oversized(tmp_path, 100000, 100000)  # 1x3x100000x100000 float32: 120 GB per sample
    proc = run_cli_limited("compile", str(model), "-o", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 1, proc.stderr  # was: the OOM killer at 24 GB (a bare MemoryError under a limit)
    line = one_error_line(proc.stderr, "quantizer.calibrate", "calibrating needs about",
                          "of host memory, more than the", "the largest tensor is 'c' float32[1,8,100000,100000] "
                          "(298 GiB per sample)", "--input-shape")
    assert "MemoryError" not in line


def test_program_io_larger_than_the_device_ddr_is_refused_before_calibrating(tmp_path):
    model = _oversized(tmp_path, 2048, 2048)  # 12 MiB of int8 input
    cfg = CompilerConfig()
    cfg.ddr_size_used = 40 << 20  # minus the 32 MiB reserved: 8 MiB usable
    with pytest.raises(MemoryPlanError) as info:
        driver.compile(model, cfg, output_dir=tmp_path / "out")  # no calibration data: refused before the photos load
    message = str(info.value)
    assert "\n" not in message
    assert "need at least 12 MiB of device DDR as int8, more than the 8 MiB usable (ddr_size_used=41,943,040 minus " \
           "ddr_size_reserved=33,554,432); the largest is input 'x' [1, 3, 2048, 2048]" in message


def test_the_estimate_counts_the_convolution_im2col_and_scales_with_the_input(tmp_path):
    from axdrive.passes import CompileSession, PassContext
    from axdrive_quantizer._memory import estimate_calibration

    import axdrive_frontend as fe
    import structlog

    def graph_of(h):
        model = onnx.load(_oversized(tmp_path, h, h))
        session = CompileSession(config=CompilerConfig(), host=None, tracer=None, model=model, inputs={})
        for p in (fe.load, fe.check, fe.shape_infer):
            p.run(PassContext(session, p, structlog.get_logger()))
        return session.graph

    small, large = (estimate_calibration(graph_of(h), samples=1, input_bytes=4 * 3 * h * h, batch=1) for h in (64, 128))
    # x (48 KiB at 64x64) -> conv: im2col 64*64 positions x 3 channels x 9 taps x 4 bytes = 432 KiB
    assert small.peak_node == "conv" and small.largest == "c" and small.largest_bytes == 8 * 64 * 64 * 4
    assert small.peak_per_sample >= 64 * 64 * 27 * 4 + 4 * small.largest_bytes
    assert large.peak_per_sample == 4 * small.peak_per_sample  # every activation term is per pixel
    assert large.need - large.peak_per_sample - large.resident == small.need - small.peak_per_sample - small.resident


def test_running_a_huge_model_to_complete_shapes_is_refused_naming_the_largest_tensor(monkeypatch):
    """Shapes ONNX inference leaves open are found by running the model on zeros, before any pass can estimate
    memory: that run must refuse what its known tensors alone cannot fit, not meet the OOM killer."""
    from axdrive import inputs
    from axdrive.onnx_io import load_model
    from axdrive.onnx_io._shapes import complete_by_execution

    graph = load_model(toy_model([helper.make_node("Relu", ["x"], ["y"])], {}, x_shape=(1, 3, 100000, 100000)))
    graph.tensors["y"].shape = None  # as if inference had not resolved it
    monkeypatch.setattr(inputs, "available_memory_bytes", lambda: 8 << 30)
    with pytest.raises(ModelError, match=r"the largest, 'x' \[1, 3, 100000, 100000\], 112 GiB\) against 8 GiB"):
        complete_by_execution(graph)
