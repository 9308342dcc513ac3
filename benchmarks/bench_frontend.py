"""Frontend cost on the real models: import + optimisation + cleaning, and the
float reference executor's latency, each against onnxruntime in the same run.

* compile up to the cleaned float core (quantizer blocked): per-pass wall time
  from the compile report, total against creating an onnxruntime session for
  the same file (what any tool pays to load a model);
* one inference with ``axdrive.reference.run_float`` on the cleaned-up graph
  against onnxruntime's float model, single thread, same input.
"""

from __future__ import annotations

import tempfile

import numpy as np
from _common import report, timeit

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.models import fetch_model
from axdrive.onnx_io import load_model
from axdrive.reference import run_float

MODELS = [("yolov8n", "images", (1, 3, 320, 320)), ("ppocr_cls", "x", (1, 3, 48, 192))]


def main() -> None:
    import onnxruntime as ort

    rows = []
    extra: dict = {}
    for name, inp, shape in MODELS:
        path = fetch_model(name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session_t = timeit(lambda: ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]), repeat=5)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = CompilerConfig(remove_output_dir=True, compiler_mode="quantize_only")
            compile_t = timeit(lambda: driver.compile(path, cfg, output_dir=f"{tmp}/o", input_shapes={inp: shape},
                                                      plugins=["no:quantizer", "no:example"], verify=False), repeat=3)
            res = driver.compile(path, cfg, output_dir=f"{tmp}/o", input_shapes={inp: shape},
                                 plugins=["no:quantizer", "no:example"], verify=False)
        phases = {p["name"]: p["wall_ms"] for p in res.report["passes"] if p["parent"] is None}
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        ort_t = timeit(lambda: sess.run(None, {inp: x}), repeat=10, warmup=2)
        graph = load_model(path, input_shapes={inp: shape})
        ref_t = timeit(lambda: run_float(graph, {inp: x}), repeat=5, warmup=1)
        rows.append([name, "import+optimise+clean (ms)", compile_t["median_s"] * 1e3,
                     "ort session create (ms)", session_t["median_s"] * 1e3,
                     compile_t["median_s"] / session_t["median_s"]])
        rows.append([name, "float executor (ms)", ref_t["median_s"] * 1e3, "ort float, 1 thread (ms)",
                     ort_t["median_s"] * 1e3, ref_t["median_s"] / ort_t["median_s"]])
        extra[name] = {"pass_wall_ms": phases}
    report("frontend", "python benchmarks/bench_frontend.py",
           ["model", "what", "axdrive", "reference", "reference value", "ratio"], rows, {"passes": extra})


if __name__ == "__main__":
    main()
