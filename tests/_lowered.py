"""Helpers for the tiling, memory-planning, scheduling and multi-core tests: quantize a real model once,
then lower its QDQ model under many configurations (``lower_only`` skips calibration) and run it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from axdrive import driver, run
from axdrive.config import CompilerConfig

MODELS = {"ppocr": ("ppocr_cls", "x", (1, 3, 48, 192), "bilinear"),
          "yolo": ("yolov8n", "images", (1, 3, 320, 320), "letterbox")}


def quantized(which: str, root: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """``(quantized_model.onnx, {input: one photo})`` of a real model, quantized on two photos."""
    from axdrive.calibration import ImagePreprocessing, load_images
    from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos

    key, name, shape, resize = MODELS[which]
    photos = load_images(fetch_photos(CALIBRATION_PHOTOS[:2]), shape, ImagePreprocessing(resize=resize))
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    driver.compile(str(fetch_model(key)), cfg, output_dir=root / "q", input_shapes={name: shape},
                   calibration={name: photos})
    return root / "q" / "quantized_model.onnx", {name: photos[1:2]}


def lower(qdq: Path, out: Path, feeds: dict[str, np.ndarray], **sets) -> tuple[dict, dict[str, np.ndarray]]:
    """Lower ``qdq`` with ``sets`` into ``out``; returns (compile report, outputs of one run)."""
    cfg = CompilerConfig()
    cfg.compiler_mode = "lower_only"
    for k, v in sets.items():
        setattr(cfg, k, v)
    name, x = next(iter(feeds.items()))
    driver.compile(str(qdq), cfg, output_dir=out, input_shapes={name: tuple(x.shape)})
    return json.loads((out / "compile_report.json").read_text()), run(out, feeds)
