"""Does the clipping weight of the MSE range search generalize? The default scheme on the whole corpus under
four rules, against ``per_tensor_min_max``:

- ``current``: clipping weighted 6x for tensors read only by SiLU (``CLIP_WEIGHTS``), 1 elsewhere;
- ``flat 1``: plain MSE everywhere (no SiLU weight);
- ``global 4`` / ``global 16``: every tensor weighted at least 4 (16), SiLU inputs keeping 6 if larger.

Same photos and metrics as ``bench_quantization.py`` (8 calibration photos, 8 evaluation images; SQNR pooled,
mean and worst image). Writes ``results/clip_weight.json``; docs/quantization.md, "Why SiLU inputs clip less",
quotes it.

    python benchmarks/bench_clip_weight.py [MODEL,...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import axdrive_quantizer
import bench_quantization as bq
from _common import report
from axdrive_quantizer import _ranges

from axdrive.calibration import load_images
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos

RULES: list[tuple[str, float]] = [("current", 0.0), ("flat", 1.0), ("global", 4.0), ("global", 16.0), ("minmax", 0.0)]


def _rule(kind: str, weight: float) -> Callable[..., float]:
    original = _ranges.clip_weight

    def clip_weight(graph: Any, name: str, readers: Any = None) -> float:
        base = original(graph, name, readers)
        return {"current": base, "flat": weight, "global": max(base, weight)}.get(kind, base)

    return clip_weight


def main() -> None:
    models = sys.argv[1].split(",") if len(sys.argv) > 1 else list(bq.MODELS)
    rows: list[list[Any]] = []
    original = axdrive_quantizer.clip_weight
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for key in models:
                name, shape, pre, classifier = bq.MODELS[key]
                model = fetch_model(key)
                calib = load_images(fetch_photos(CALIBRATION_PHOTOS), shape, pre)
                evals = bq.evaluation_images(shape, pre, Path(tmp))
                float_run = bq._runner(model, name)
                reference = [float_run(x[None]) for x in evals]
                for kind, weight in RULES:
                    axdrive_quantizer.clip_weight = _rule(kind, weight)  # what calibrate() calls
                    scheme = "per_tensor_min_max" if kind == "minmax" else "per_tensor_histogram"
                    run, _, _ = bq.ours(model, name, shape, calib, scheme, Path(tmp) / key / f"{kind}{weight:g}")
                    pooled, mean, worst, top1 = bq._metrics(reference, [run(x[None]) for x in evals], classifier)
                    label = kind if kind in ("current", "minmax") else f"{kind} {weight:g}"
                    rows.append([key, label, round(pooled, 2), round(mean, 2), round(worst, 2),
                                 top1 if top1 == "-" else round(top1, 4)])
    finally:
        axdrive_quantizer.clip_weight = original
    report("clip_weight", "python benchmarks/bench_clip_weight.py",
           ["model", "rule", "SQNR dB pooled", "mean per-image dB", "worst image dB", "top-1"], rows,
           {"rules": [list(r) for r in RULES]})


if __name__ == "__main__":
    main()
