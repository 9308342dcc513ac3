"""How fast the simulated AIPU runs the real compiled YOLOv8n, against onnxruntime's float model, in one run.

The benchmark compiles YOLOv8n at 320x320 (``axdrive.driver.compile``, the
default ``quantize_and_lower`` mode, calibrated on two photos letterboxed to
1x3x320x320 and scaled by 1/255, from an ``.npy``) into a temporary output
directory, then times ``axdrive.runner.execute`` on that directory (what
``axdrive run`` does: host pre-processing, quantization, the program on the
simulator through the host runtime, dequantization, host post-processing)
against onnxruntime's float CPU latency on the original model with one
intra-op thread, on the same input in the same process. The simulator is
timed with Numba's default thread count and with one thread; the three are
timed in interleaved rounds and the median over the rounds is reported.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
import onnxruntime as ort
from _common import report, timeit

from axdrive import driver
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos
from axdrive.runner import execute

SIZE = 320
ROUNDS = 5
SHAPE = (1, 3, SIZE, SIZE)


def compile_yolo(model: Path, out: Path) -> None:
    """The real program: a default compile of YOLOv8n at 320x320, calibrated on two photos."""
    photos = load_images(fetch_photos(CALIBRATION_PHOTOS[:2]), SHAPE, ImagePreprocessing(resize="letterbox"))
    calib = out.parent / "calibration.npy"
    np.save(calib, np.ascontiguousarray(photos, dtype=np.float32))
    driver.compile(str(model), output_dir=out, input_shapes={"images": SHAPE}, calibration=str(calib))


def main() -> None:
    model = fetch_model("yolov8n")
    image = load_images(fetch_photos(CALIBRATION_PHOTOS[2:3]), SHAPE, ImagePreprocessing(resize="letterbox"))
    image = np.ascontiguousarray(image[:1], dtype=np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "yolov8n_320"
        t0 = time.perf_counter()
        compile_yolo(model, out)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = execute(out, {"images": image})  # loads, checks and records the schedule
        first_s = time.perf_counter() - t0
        ref = sess.run(None, {name: image})[0]
        default_threads = numba.get_num_threads()
        # ROUNDS interleaved rounds, each timing all three; the medians over rounds are reported, so a
        # change of load on the shared machine hits every row alike
        samples: dict[str, list[float]] = {"sim": [], "sim1": [], "ort": []}
        for _ in range(ROUNDS):
            samples["sim"].append(timeit(lambda: execute(out, {"images": image}), repeat=3)["median_s"])
            numba.set_num_threads(1)
            samples["sim1"].append(timeit(lambda: execute(out, {"images": image}), repeat=3)["median_s"])
            numba.set_num_threads(default_threads)
            samples["ort"].append(timeit(lambda: sess.run(None, {name: image}), repeat=10, warmup=2)["median_s"])
        again = execute(out, {"images": image})
    sim, sim1, ort_t = (statistics.median(samples[k]) for k in ("sim", "sim1", "ort"))
    ours = first["output0"]
    assert all(np.array_equal(again[k], first[k]) for k in first), "a replayed run differs from the first run"
    err = float(np.abs(ours.astype(np.float64) - ref).max())
    rep = first.report
    rows = [
        [f"axdrive run, simulated AIPU ({default_threads} Numba threads)", sim * 1e3, sim / ort_t],
        ["axdrive run, simulated AIPU (1 Numba thread)", sim1 * 1e3, sim1 / ort_t],
        ["onnxruntime float32 CPU, 1 thread", ort_t * 1e3, 1.0],
    ]
    report("bench_simulator", "python benchmarks/bench_simulator.py", ["what", "median ms", "x onnxruntime"], rows,
           extra={"input": "x".join(map(str, SHAPE)), "compile_s": round(compile_s, 2),
                  "first_run_s": round(first_s, 3), "inference_cycles": rep["inference_cycles"],
                  "simulated_ms": rep["inference_cycles"] / rep["frequency_hz"] * 1e3,
                  "output0_max_abs_diff_vs_float": err, "numba_threads": default_threads,
                  "rounds_ms": {k: [round(v * 1e3, 2) for v in vs] for k, vs in samples.items()}})
    print(f"compile {compile_s:.1f} s, first run {first_s:.2f} s; simulated {rep['inference_cycles']:,} cycles "
          f"= {rep['inference_cycles'] / rep['frequency_hz'] * 1e3:.3f} ms at "
          f"{rep['frequency_hz'] / 1e6:.0f} MHz; output0 max |sim - float| = {err:.3g}")


if __name__ == "__main__":
    sys.exit(main())
