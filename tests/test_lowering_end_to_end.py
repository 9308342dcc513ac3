"""The real models from the command line: ``axdrive compile`` (default ``quantize_and_lower``) then
``axdrive run``: the device computes bit-exactly what run_integer computes on the quantized core, and
the model's output is as close to the float model as onnxruntime's quantized model is."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from _support import run_cli
from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.reference import run_integer
from axdrive.runner import dequantize, quantize


def _photos(shape, n, resize):
    from axdrive.calibration import ImagePreprocessing, load_images
    from axdrive.models import CALIBRATION_PHOTOS, fetch_photos

    return load_images(fetch_photos(CALIBRATION_PHOTOS[:n]), shape, ImagePreprocessing(resize=resize))


def _quantized_core(model, name, shape, calibration, tmp_path, **sets):
    """The quantized core graph of the same compile (the quantizer is deterministic); ``sets``: the
    configuration properties the compile was given."""
    from axdrive_quantizer import QUANTIZED_CORE

    cfg = CompilerConfig()
    for key, value in sets.items():
        setattr(cfg, key, value)
    cfg.compiler_mode = "quantize_only"
    r = driver.compile(str(model), cfg, output_dir=tmp_path / "quantize_only", input_shapes={name: shape},
                       calibration={name: calibration})
    return r.session.stash[QUANTIZED_CORE]


def _sqnr(ours, ref):
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((ours - ref) ** 2))


def _ort(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})


def _ort_quantized_model(out, feeds):
    """onnxruntime on the whole quantized model: host pre-processing, quantized_model.onnx, host
    post-processing, chained by tensor name as ``axdrive run`` chains them."""
    env = dict(feeds)
    for part in ("host_preprocess.onnx", "quantized_model.onnx", "host_postprocess.onnx"):
        if (out / part).is_file():
            sess = ort.InferenceSession(str(out / part), providers=["CPUExecutionProvider"])
            values = sess.run(None, {i.name: env[i.name] for i in sess.get_inputs()})
            env.update({o.name: v for o, v in zip(sess.get_outputs(), values)})
    return env


def check_model(model, name, shape, resize, tmp_path, *extra, **sets):
    """Compile and run through the CLI (``extra``: more CLI arguments; ``sets``: the configuration properties
    among them that change the quantization, for the reference); returns (device core outputs, reference core
    outputs, out dir, x)."""
    calibration = _photos(shape, 2, resize)
    cal_path, x_path = tmp_path / "cal.npy", tmp_path / "x.npy"
    np.save(cal_path, calibration)
    x = calibration[1:2]
    np.save(x_path, x)
    out = tmp_path / "out"
    spec = "x".join(str(d) for d in shape)
    done = run_cli("compile", str(model), "-o", str(out), "--input-shape", f"{name}={spec}", "--calibration",
                   str(cal_path), *extra)
    assert done.returncode == 0, done.stderr
    run = run_cli("run", str(out), "--input", str(x_path), "--core-only", "-o", str(tmp_path / "core.npz"))
    assert run.returncode == 0, run.stderr
    device = dict(np.load(tmp_path / "core.npz"))
    core = _quantized_core(model, name, shape, calibration, tmp_path, **sets)
    qp = core.tensors[name].qparams
    qx = quantize(x, {"scale": float(qp.scale), "zero_point": int(qp.zero_point)})
    ints = run_integer(core, {name: qx})
    reference = {k: dequantize(v, {"scale": float(core.tensors[k].qparams.scale),
                                   "zero_point": int(core.tensors[k].qparams.zero_point)}) for k, v in ints.items()}
    return device, reference, out, x


def test_ppocr_compiles_and_runs_bit_exactly_from_the_command_line(tmp_path, ppocr_model):
    device, reference, out, x = check_model(ppocr_model, "x", (1, 3, 48, 192), "bilinear", tmp_path)
    assert set(device) == set(reference)
    for k in reference:
        np.testing.assert_array_equal(device[k], reference[k], err_msg=k)
    report = json.loads((out / "compile_report.json").read_text())
    assert report["performance"]["estimated_cycles"] > 0 and report["target"] == "aipu_v1"
    # the final Softmax runs on the DPU (2 real of 64 lanes, the others neutral): no host part is left
    assert report["graph_cleaner"]["final_softmax_on_device"] == ["Softmax@0"]
    assert not (out / "host_postprocess.onnx").exists()
    assert '"t/softmax_0.tmp_0"' in (out / "program.json").read_text()  # fused after the bias Add's DPU task
    compared = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--compare")
    assert compared.returncode == 0, compared.stderr
    assert "onnxruntime quantized_model.onnx" in compared.stdout
    exact = [line for line in compared.stdout.splitlines() if "integer reference" in line]
    assert exact and all("max-abs 0 " in line for line in exact), compared.stdout  # bit-exact, softmax included
    # the whole model (softmax on the device): as close to float as onnxruntime's QDQ model. The output is two
    # probabilities on the grid 1/255, where one step of rounding moves the SQNR by about 1 dB, and onnxruntime's
    # fused QLinearSoftmax rounds its own way (docs/lowering.md, "Quality against float"): compare in steps
    full = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "full.npz"))
    assert full.returncode == 0, full.stderr
    ours = np.load(tmp_path / "full.npz")
    name = list(ours.keys())[0]
    float_out = _ort(ppocr_model, {"x": x})[0]
    qdq_out = _ort_quantized_model(out, {"x": x})[name]
    step = 1 / 255 + 1e-6
    assert np.max(np.abs(ours[name] - qdq_out)) <= step
    assert np.max(np.abs(ours[name] - float_out)) <= np.max(np.abs(qdq_out - float_out)) + step


ALLOCATORS = ["graph", "lazy", "backjump_recursive", "try_all"]


@pytest.mark.parametrize("algorithm", ALLOCATORS)
def test_every_dpu_allocation_algorithm_gives_identical_outputs(tmp_path, ppocr_model, algorithm):
    device, reference, _out, _x = check_model(ppocr_model, "x", (1, 3, 48, 192), "bilinear", tmp_path, "--set",
                                              f"dpu_allocation_algorithm={algorithm}")
    for k in reference:
        np.testing.assert_array_equal(device[k], reference[k], err_msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ALLOCATORS)
def test_yolov8n_runs_bit_exactly_with_every_dpu_allocation_algorithm(tmp_path, yolo_model, algorithm):
    device, reference, out, _x = check_model(yolo_model, "images", (1, 3, 320, 320), "letterbox", tmp_path, "--set",
                                             f"dpu_allocation_algorithm={algorithm}")
    assert set(device) == set(reference)
    for k in reference:
        np.testing.assert_array_equal(device[k], reference[k], err_msg=k)
    report = json.loads((out / "compile_report.json").read_text())
    stats = next(p["stats"] for p in report["passes"] if p["name"] == "dpu_alloc.allocate_registers")
    assert stats["algorithm"] == algorithm and stats["programs"] > 0
    assert sum(v for k, v in stats.items() if k.startswith("allocated_by_")) == stats["programs"]


@pytest.mark.slow
def test_yolov8n_compiles_and_runs_bit_exactly_from_the_command_line(tmp_path, yolo_model):
    device, reference, out, x = check_model(yolo_model, "images", (1, 3, 320, 320), "letterbox", tmp_path)
    assert set(device) == set(reference) and len(reference) == 3
    for k in reference:
        np.testing.assert_array_equal(device[k], reference[k], err_msg=k)
    full = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "full.npz"))
    assert full.returncode == 0, full.stderr
    ours = np.load(tmp_path / "full.npz")["output0"]
    float_out = _ort(yolo_model, {"images": x})[0]
    qdq_out = _ort_quantized_model(out, {"images": x})["output0"]
    assert ours.shape == float_out.shape
    assert abs(_sqnr(ours, float_out) - _sqnr(qdq_out, float_out)) <= 0.3


def test_ppocr_with_per_channel_depthwise_input_grids_lowers_bit_exactly(tmp_path, ppocr_model):
    """quantization_scheme=hybrid_per_tensor_per_channel gives PP-OCR's depthwise inputs per-channel scales
    with one shared zero point: the producer's and the consumers' per-channel requantization carry the
    scales, so the program still equals the integer reference of the same quantization."""
    scheme = "hybrid_per_tensor_per_channel"
    device, reference, out, _x = check_model(ppocr_model, "x", (1, 3, 48, 192), "bilinear", tmp_path, "--set",
                                             f"quantization_scheme={scheme}", quantization_scheme=scheme)
    core = _quantized_core(ppocr_model, "x", (1, 3, 48, 192), _photos((1, 3, 48, 192), 2, "bilinear"), tmp_path,
                           quantization_scheme=scheme)
    assert any(t.qparams is not None and t.qparams.axis is not None for t in core.tensors.values())
    for k in reference:
        np.testing.assert_array_equal(device[k], reference[k], err_msg=k)
    # --compare rebuilds the integer reference from quantized_model.onnx: the per-channel grids come back
    compared = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--compare")
    assert compared.returncode == 0, compared.stderr
    exact = [line for line in compared.stdout.splitlines() if "integer reference" in line]
    assert exact and all("max-abs 0 " in line for line in exact), compared.stdout
