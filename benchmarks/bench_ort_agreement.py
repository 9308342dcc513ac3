"""How often onnxruntime on quantized_model.onnx and the integer reference agree, photo by photo.

Each real model is quantized (``quantize_only``, default scheme) on the 8
``CALIBRATION_PHOTOS`` with the quantization benchmark's preprocessing; then
for each of the 12 photos of ``CALIBRATION_PHOTOS + EVALUATION_PHOTOS`` the
input is put on the model's input grid and both run on the same int8 values:
onnxruntime (CPU, default graph optimizations) on ``quantized_model.onnx`` and
:func:`axdrive.reference.run_integer` on the quantized graph (what the device
computes, bit for bit). The table gives, per photo, the fraction of output
elements within 1 LSB and exactly equal, and the largest difference; the last
row per model pools all photos' output elements.

This is the compile report's ``ort_agreement_*`` figure (which a compile
measures on its first calibration sample) over a set of photos.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from _common import report
from axdrive_quantizer import QUANTIZED_CORE
from axdrive_quantizer._agreement import ort_agreement, quantize_feeds
from axdrive_quantizer._qdq import to_qdq_model
from bench_quantization import MODELS

from axdrive import driver
from axdrive.calibration import load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, fetch_model, fetch_photos


def main(models: list[str]) -> None:
    rows = []
    for key in models:
        name, shape, pre, _ = MODELS[key]
        photos = CALIBRATION_PHOTOS + EVALUATION_PHOTOS
        images = load_images(fetch_photos(photos), shape, pre).astype(np.float32)
        cfg = CompilerConfig()
        cfg.compiler_mode = "quantize_only"
        with tempfile.TemporaryDirectory(prefix="bench_ort_agreement_") as tmp:
            result = driver.compile(str(fetch_model(key)), cfg, output_dir=tmp, input_shapes={name: shape},
                                    calibration={name: images[: len(CALIBRATION_PHOTOS)]})
            qgraph = result.session.stash[QUANTIZED_CORE]
            # the core on int8 I/O, as the compile's own agreement check builds it
            qdq = to_qdq_model(qgraph, onnx.load(str(Path(tmp) / "quantized_model.onnx")).opset_import[0].version)
            within = exact = total = 0
            worst = 0
            for photo, x in zip(photos, images):
                got = ort_agreement(qgraph, qdq, quantize_feeds(qgraph, {name: x[None]}))
                n = got["ort_compared_elements"]
                within += round(got["ort_agreement_1lsb"] * n)
                exact += round(got["ort_agreement_exact"] * n)
                total += n
                worst = max(worst, got["ort_max_abs_diff_lsb"])
                rows.append([key, photo, f"{100 * got['ort_agreement_1lsb']:.2f} %",
                             f"{100 * got['ort_agreement_exact']:.2f} %", got["ort_max_abs_diff_lsb"], n])
            rows.append([key, "pooled", f"{100 * within / total:.2f} %", f"{100 * exact / total:.2f} %", worst, total])
    report("ort_agreement", "python benchmarks/bench_ort_agreement.py " + " ".join(models),
           ["model", "photo", "within 1 LSB", "exact", "max diff LSB", "elements"], rows)


if __name__ == "__main__":
    main(sys.argv[1:] or list(MODELS))
