"""The compiled program on the simulated AIPU against float, next to onnxruntime on the same quantized model.

For each real model: a default ``quantize_and_lower`` compile calibrated on
the 8 ``CALIBRATION_PHOTOS`` (the quantization benchmark's preprocessing),
then, on each of the 4 ``EVALUATION_PHOTOS``, the output SQNR against the
float model in onnxruntime of

* the device: ``axdrive.runner.execute`` (host parts + the program on the
  simulator), checked equal to the integer reference by the tests;
* onnxruntime on ``quantized_model.onnx`` (+ the host parts) at its default
  graph optimizations, which fuse the QDQ patterns into its integer kernels
  (QLinearConv, QLinearSoftmax, ...);
* the same at ``ORT_ENABLE_BASIC``: the QDQ operators as ONNX defines them
  (DequantizeLinear -> float op -> QuantizeLinear).

Per photo, and pooled (all photos' outputs as one signal).

Why both onnxruntime levels: they differ from each other by rounding (float32
requantization, the fused softmax's own exponent table), and which one the
device is closer to says where a difference comes from.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _common import report
from bench_quantization import MODELS, _sqnr

from axdrive import driver
from axdrive.calibration import load_images
from axdrive.models import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, fetch_model, fetch_photos
from axdrive.runner import execute

LEVELS = {"default": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}


def sqnr(x: np.ndarray, ref: np.ndarray) -> float:
    """Output SQNR in dB of ``x`` against ``ref``: the quantization benchmark's measure, on one signal."""
    return _sqnr([[ref]], [[x]])


def ort_quantized(out: Path, feeds: dict[str, np.ndarray], level: ort.GraphOptimizationLevel) -> dict[str, np.ndarray]:
    """onnxruntime on host pre-processing, quantized_model.onnx and host post-processing, chained by name."""
    env = dict(feeds)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    for part in ("host_preprocess.onnx", "quantized_model.onnx", "host_postprocess.onnx"):
        if (out / part).is_file():
            sess = ort.InferenceSession(str(out / part), opts, providers=["CPUExecutionProvider"])
            env.update(zip([o.name for o in sess.get_outputs()],
                           sess.run(None, {i.name: env[i.name] for i in sess.get_inputs()})))
    return env


def main(models: list[str]) -> None:
    rows = []
    for key in models:
        name, shape, pre, _ = MODELS[key]
        model = fetch_model(key)
        calib = load_images(fetch_photos(CALIBRATION_PHOTOS), shape, pre).astype(np.float32)
        photos = load_images(fetch_photos(EVALUATION_PHOTOS), shape, pre).astype(np.float32)
        float_sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        out_name = float_sess.get_outputs()[0].name
        pooled: dict[str, list[np.ndarray]] = {"ref": [], "device": [], "default": [], "basic": []}
        with tempfile.TemporaryDirectory(prefix="bench_device_quality_") as tmp:
            out = Path(tmp) / key
            np.save(Path(tmp) / "calibration.npy", calib)
            driver.compile(str(model), output_dir=out, input_shapes={name: shape},
                           calibration=str(Path(tmp) / "calibration.npy"))
            for photo, x in zip(EVALUATION_PHOTOS, photos):
                x = x[None]
                ref = float_sess.run(None, {name: x})[0]
                device = execute(out, {name: x})[out_name]
                got = {lvl: ort_quantized(out, {name: x}, level)[out_name] for lvl, level in LEVELS.items()}
                steps = {lvl: float(np.max(np.abs(np.asarray(device, np.float64) - g))) for lvl, g in got.items()}
                rows.append([key, photo, round(sqnr(device, ref), 2), round(sqnr(got["default"], ref), 2),
                             round(sqnr(got["basic"], ref), 2), f"{steps['default']:.4g}", f"{steps['basic']:.4g}"])
                for k, v in (("ref", ref), ("device", device), *got.items()):
                    pooled[k].append(np.asarray(v, np.float64).ravel())
        # all photos' outputs as one signal: the figure the quantization benchmark calls "pooled"
        ref_all = np.concatenate(pooled["ref"])
        rows.append([key, "pooled", *(round(sqnr(np.concatenate(pooled[k]), ref_all), 2)
                                      for k in ("device", "default", "basic")), "", ""])
    report("device_quality", "python benchmarks/bench_device_quality.py " + " ".join(models),
           ["model", "photo", "device SQNR dB", "ORT default dB", "ORT basic dB", "max |device - ORT default|",
            "max |device - ORT basic|"], rows)


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
