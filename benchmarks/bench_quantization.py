"""Our three quantization schemes against onnxruntime's ``quantize_static``, on the whole corpus.

Models: the visible corpus (YOLOv8n, the PP-OCR classifier, the PicoDet layout
detector) and the PP-OCRv4 text detector and recognizer (public models the
compiler was not built with), each with its own preprocessing. Both quantizers
calibrate on the same 8 photos (``CALIBRATION_PHOTOS``) and are evaluated on 8
others (:data:`EVALUATION`: the 4 ``EVALUATION_PHOTOS``, the 2 photos neither
list uses, and crops of 2 of them) against the float model in onnxruntime:
output SQNR (all outputs, all photos pooled; the mean and the worst of each
photo's SQNR), top-1 agreement with float for the models that classify (the
classifier's class; the recognizer's character at every time step), and
quantization wall time (median of ``--repeat`` runs, the first run of each
quantizer included, interleaved so that machine load hits all alike). Ours: ``compiler_mode=quantize_only``
(the QDQ core, followed by the float ``host_postprocess.onnx`` the graph
cleaner split off). onnxruntime: ``quant_pre_process`` then ``quantize_static``
(QDQ, per-channel, int8 activations and weights) with MinMax, Entropy and
Percentile calibration. Ours runs as ``quantized_full_model.onnx`` (host parts
and the QDQ core in one model), so a model split into several parts is
measured whole.

    python benchmarks/bench_quantization.py [--models yolov8n,ppocr_cls,...] [--schemes ...] [--ort-methods ...] [--repeat 3]

Wall time, ours: the whole ``quantize_only`` compile (frontend, cleaner,
calibration, quantization, QDQ export and the onnxruntime agreement check) and,
separately, the calibrate + quantize passes (their ``wall_ms`` in the compile
report). onnxruntime: ``quant_pre_process`` + ``quantize_static``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
from _common import report
from bench_placement import REAL

from axdrive import driver
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, fetch_model, fetch_photos

#: The models whose outputs classify along the last axis (top-1 agreement is measured for them).
CLASSIFIERS = frozenset({"ppocr_cls", "ppocrv4_rec"})
#: model -> (input name, shape, preprocessing, whether it classifies): bench_placement's corpus table.
MODELS: dict[str, tuple[str, tuple[int, ...], ImagePreprocessing, bool]] = {
    key: (*spec, key in CLASSIFIERS) for key, spec in REAL.items()}
#: The 8 evaluation images: ``(photo, crop box or None)``; none of them is a calibration photo.
EVALUATION: list[tuple[str, tuple[float, float, float, float] | None]] = [
    *((p, None) for p in EVALUATION_PHOTOS), ("coins.png", None), ("horse.png", None),
    ("motorcycle_right.png", (0.25, 0.2, 0.75, 0.8)), ("page.png", (0.0, 0.0, 0.5, 0.5)),
]
SCHEMES = ("per_tensor_histogram", "per_tensor_min_max", "hybrid_per_tensor_per_channel")
ORT_METHODS = ("MinMax", "Entropy", "Percentile")

Runner = Callable[[np.ndarray], list[np.ndarray]]


def _session(path: str | Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _runner(path: str | Path, name: str) -> Runner:
    s = _session(path)
    return lambda x: s.run(None, {name: x})


#: Passes whose wall time is our "calibration + quantization" (no frontend, no export, no agreement check).
QUANTIZER_PASSES = ("quantizer.calibrate", "quantizer.quantize")


def ours(model: Path, name: str, shape: tuple[int, ...], calib: np.ndarray, scheme: str,
         out: Path) -> tuple[Runner, float, float]:
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    cfg.quantization_scheme = scheme
    t0 = time.perf_counter()
    result = driver.compile(model, cfg, output_dir=out, input_shapes={name: shape}, calibration={name: calib},
                            verify=False)
    wall = time.perf_counter() - t0
    passes = sum(p["wall_ms"] for p in result.report["passes"] if p["name"] in QUANTIZER_PASSES) / 1000.0
    return _runner(result.artifacts["quantized_full_model.onnx"], name), wall, passes


def onnxruntime_static(model: Path, name: str, shape: tuple[int, ...], calib: np.ndarray, method: str,
                       out: Path) -> tuple[Runner, float, float]:
    import onnx
    import onnx.version_converter
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fixed = onnx.load(str(model))
    for dim, size in zip(fixed.graph.input[0].type.tensor_type.shape.dim, shape):
        dim.ClearField("dim_param")
        dim.dim_value = size
    if fixed.opset_import[0].version < 13:  # per-channel DequantizeLinear needs opset 13 (PP-OCR is opset 11)
        fixed = onnx.version_converter.convert_version(fixed, 13)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(fixed, str(out / "fixed.onnx"))
    batches = iter([{name: s[None]} for s in calib])

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    t0 = time.perf_counter()
    # shapes are fixed above, so ONNX shape inference suffices (symbolic inference would need sympy)
    quant_pre_process(str(out / "fixed.onnx"), str(out / "pre.onnx"), skip_symbolic_shape=True)
    quantize_static(str(out / "pre.onnx"), str(out / "qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))
    wall = time.perf_counter() - t0
    return _runner(out / "qdq.onnx", name), wall, wall


def _sqnr(reference: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    ref = np.concatenate([np.ravel(o) for outs in reference for o in outs]).astype(np.float64)
    approx = np.concatenate([np.ravel(o) for outs in got for o in outs]).astype(np.float64)
    return float(10 * np.log10((ref ** 2).sum() / max(((ref - approx) ** 2).sum(), 1e-30)))


def _metrics(reference: list[list[np.ndarray]], got: list[list[np.ndarray]],
             classifier: bool) -> tuple[float, float, float, Any]:
    """(pooled SQNR, mean and worst of the per-photo SQNRs, top-1 agreement or "-")."""
    pooled = _sqnr(reference, got)
    per_photo = [_sqnr([r], [g]) for r, g in zip(reference, got)]
    if not classifier:
        return pooled, float(np.mean(per_photo)), float(np.min(per_photo)), "-"
    same = [np.argmax(r[0], axis=-1) == np.argmax(g[0], axis=-1) for r, g in zip(reference, got)]
    return pooled, float(np.mean(per_photo)), float(np.min(per_photo)), float(np.mean(np.concatenate(
        [s.reshape(-1) for s in same])))


def evaluation_images(shape: tuple[int, ...], pre: ImagePreprocessing, folder: Path) -> np.ndarray:
    """The :data:`EVALUATION` images as model inputs (crops saved as PNGs first, then the model's pipeline)."""
    from PIL import Image

    paths = []
    for i, (photo, box) in enumerate(EVALUATION):
        (path,) = fetch_photos([photo])
        if box is not None:
            with Image.open(path) as im:
                w, h = im.size
                crop = im.convert("RGB").crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
                path = folder / f"eval{i}_{Path(photo).stem}_crop.png"
                crop.save(path)
        paths.append(path)
    return load_images(paths, shape, pre)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--ort-methods", default=",".join(ORT_METHODS), help="empty for none")
    parser.add_argument("--repeat", type=int, default=3, help="quantizations per method (median wall time)")
    args = parser.parse_args()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            name, shape, pre, classifier = MODELS[key]
            model = fetch_model(key)
            calib = load_images(fetch_photos(CALIBRATION_PHOTOS), shape, pre)
            evals = evaluation_images(shape, pre, Path(tmp))
            float_run = _runner(model, name)
            reference = [float_run(x[None]) for x in evals]
            candidates: list[tuple[str, Callable[[int], tuple[Runner, float, float]]]] = []
            for scheme in filter(None, args.schemes.split(",")):
                candidates.append((f"axdrive {scheme}", lambda i, s=scheme: ours(
                    model, name, shape, calib, s, Path(tmp) / key / f"{s}{i}")))
            for method in filter(None, args.ort_methods.split(",")):
                candidates.append((f"onnxruntime {method}", lambda i, m=method: onnxruntime_static(
                    model, name, shape, calib, m, Path(tmp) / key / f"{m}{i}")))
            walls: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in candidates}
            runners: dict[str, Runner] = {}
            for i in range(max(1, args.repeat)):  # interleaved rounds: load changes hit every method alike
                for label, make in candidates:
                    run, wall, passes = make(i)
                    walls[label].append((wall, passes))
                    runners[label] = run
            for label, _ in candidates:
                pooled, mean, worst, top1 = _metrics(reference, [runners[label](x[None]) for x in evals],
                                                     classifier)
                wall = float(np.median([w for w, _ in walls[label]]))
                passes = float(np.median([p for _, p in walls[label]]))
                rows.append([key, label, round(pooled, 2), round(mean, 2), round(worst, 2),
                             top1 if top1 == "-" else round(top1, 4), round(wall, 2), round(passes, 2)])
    report("quantization", "python benchmarks/bench_quantization.py",
           ["model", "quantizer", "SQNR dB pooled", "mean per-photo SQNR dB", "worst photo SQNR dB",
            "top-1 agreement", "wall s (whole compile)", "wall s (calibrate+quantize)"], rows,
           {"calibration_photos": list(CALIBRATION_PHOTOS),
            "evaluation": [[p, list(b) if b else None] for p, b in EVALUATION], "repeat": args.repeat})


if __name__ == "__main__":
    main()
