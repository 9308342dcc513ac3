"""How fast the simulated AIPU's Numba kernels are, against NumPy and onnxruntime, measured in one run.

Per kernel: int8 MACs per second of the Numba kernel (Numba's default thread
count and one thread), of NumPy's int32 matmul on the same shapes (im2col for
the convolutions; a windowed multiply-sum for depthwise, which has no matmul
form) and of onnxruntime's float32 kernel on the same shapes (a one-node
Conv model, MatMul for the dense case, one intra-op thread), and the
first-call time in a fresh process with an empty Numba cache (compile) and
with the cache the first run wrote (load).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile

import numba
import numpy as np
import onnxruntime as ort
from _common import report, timeit
from onnx import TensorProto, helper, numpy_helper

from axdrive_hw.kernels.dpu import DpuProgramBuilder, run_dpu_program_into
from axdrive_hw.kernels.dwpu import depthwise_conv2d_acc
from axdrive_hw.kernels.mvm import ConvPlanCache, conv2d_acc, conv2d_requant_planned_into, matmul_acc

# (name, kernel call for a first-call probe in a fresh process)
_PROBES = {
    "matmul_acc": ("from axdrive_hw.kernels.mvm import matmul_acc as k",
                   "k(np.zeros((2, 3), np.int8), 0, np.zeros((4, 3), np.int8), np.zeros(4, np.int32))"),
    "conv2d_acc": ("from axdrive_hw.kernels.mvm import conv2d_acc as k",
                   "k(np.zeros((1, 4, 4, 2), np.int8), 0, np.zeros((2, 3, 3, 2), np.int8), np.zeros(2, np.int32), "
                   "1, 1, 1, 1, 1, 1, 1, 1, 1)"),
    "conv2d_requant_planned_into": (
        "from axdrive_hw.kernels.mvm import ConvPlanCache, conv2d_requant_planned_into as k",
        "w = np.ones((2, 3, 3, 4), np.int8); k(ConvPlanCache().get(0, w), np.zeros((1, 4, 4, 4), np.int8), 0, w, "
        "np.zeros(2, np.int32), 1, 1, 1, 1, 1, 1, 1, 1, 1, np.ones(1, np.int64), np.full(1, 8, np.int64), 0, -128, 127, "
        "np.zeros((1, 4, 4, 2), np.int8))"),
    "run_dpu_program_into": (
        "from axdrive_hw.kernels.dpu import run_dpu_program_into as k",
        "k(np.array([[1, 0, 0, 0, 0, 0], [14, 1, 0, 0, 0, 0], [2, 0, 1, 0, 0, 1]], np.int32), "
        "np.zeros((1, 4096), np.int8), np.zeros((1, 64), np.int32), np.zeros((1, 256), np.int8), 64, 16, 512, 64, "
        "np.zeros((1, 4096), np.int8), 1)"),
    "depthwise_conv2d_acc": ("from axdrive_hw.kernels.dwpu import depthwise_conv2d_acc as k",
                             "k(np.zeros((1, 4, 4, 2), np.int8), 0, np.zeros((3, 3, 2), np.int8), "
                             "np.zeros(2, np.int32), 1, 1, 1, 1, 1, 1, 1, 1)"),
}


def first_call_seconds(kernel: str, cache_dir: str) -> float:
    """Seconds of the first call of ``kernel`` in a fresh interpreter using ``cache_dir``."""
    imp, call = _PROBES[kernel]
    code = (f"import time, numpy as np\n{imp}\nt0 = time.perf_counter()\n{call}\n"
            "print(time.perf_counter() - t0)\n")
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _im2col(x: np.ndarray, kh: int, kw: int) -> np.ndarray:
    n, h, w, c = x.shape
    cols = np.stack([x[:, i:i + h - kh + 1, j:j + w - kw + 1, :] for i in range(kh) for j in range(kw)], axis=3)
    return cols.reshape(n * (h - kh + 1) * (w - kw + 1), kh * kw * c)


def ort_session(op: str, x_shape: tuple[int, ...], w: np.ndarray, **attrs: object) -> ort.InferenceSession:
    """A one-node float32 model (``Conv`` or ``MatMul``, weight ``w`` as an initializer) on one intra-op thread."""
    node = helper.make_node(op, ["x", "w"], ["y"], **attrs)
    graph = helper.make_graph([node], op.lower(), [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w.astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []

    # dense: (M, K) x (K, O)
    m, k, o = 256, 1024, 256
    a = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = rng.integers(-127, 128, (o, k), dtype=np.int8)
    b = np.zeros(o, np.int32)
    a32, wt32 = a.astype(np.int32), w.T.astype(np.int32).copy()
    s_mm, af = ort_session("MatMul", (m, k), w.T.copy()), a.astype(np.float32)
    cases = [("matmul_acc", f"{m}x{k} . {k}x{o}", m * k * o, lambda: matmul_acc(a, 3, w, b),
              lambda: np.matmul(a32, wt32), "np.matmul int32", lambda: s_mm.run(None, {"x": af}), "MatMul")]

    # conv 3x3, 64 -> 64 channels, 32x32, valid padding (im2col for NumPy)
    x = rng.integers(-128, 128, (1, 32, 32, 64), dtype=np.int8)
    cw = rng.integers(-127, 128, (64, 3, 3, 64), dtype=np.int8)
    cb = np.zeros(64, np.int32)
    cols32 = _im2col(x, 3, 3).astype(np.int32)
    cw32 = cw.reshape(64, -1).T.astype(np.int32).copy()
    macs = 30 * 30 * 64 * 9 * 64
    s_cv, xf = ort_session("Conv", (1, 64, 32, 32), cw.transpose(0, 3, 1, 2)), x.transpose(0, 3, 1, 2).astype(np.float32)
    cases.append(("conv2d_acc", "1x32x32x64 * 64x3x3x64", macs,
                  lambda: conv2d_acc(x, 3, cw, cb, 1, 1, 0, 0, 0, 0, 1, 1, 1),
                  lambda: np.matmul(cols32, cw32), "np.matmul int32 (im2col)", lambda: s_cv.run(None, {"x": xf}),
                  "Conv"))

    # the simulator's convolution task: the same layer through the zero-channel plan, requantized to int8
    # (the byte dot-product kernel where the CPU has AVX-512 VNNI, else the int16 one)
    plan, y8 = ConvPlanCache().get(0, cw), np.empty((1, 30, 30, 64), np.int8)
    mult, shift = np.full(64, 1 << 20, np.int64), np.full(64, 30, np.int64)
    cases.append(("conv2d_requant_planned_into", "1x32x32x64 * 64x3x3x64 -> int8", macs,
                  lambda: conv2d_requant_planned_into(plan, x, 3, cw, cb, 1, 1, 0, 0, 0, 0, 1, 1, 1, mult, shift, 0,
                                                      -128, 127, y8),
                  lambda: np.matmul(cols32, cw32), "np.matmul int32 (im2col)", lambda: s_cv.run(None, {"x": xf}),
                  "Conv"))

    # a DPU task: the int8 SiLU table YOLOv8n runs after most convolutions (load, lut, store) over 1.6 M
    # elements; the "MACs" of this row are elements. Baselines: NumPy's table indexing and onnxruntime's
    # float x * Sigmoid(x) on the same element count
    e = 160 * 160 * 64
    xs = rng.integers(-128, 128, (1, e), dtype=np.int8)
    lut = rng.integers(-128, 128, (1, 256), dtype=np.int8)
    prog = DpuProgramBuilder()
    prog.load(0, 0)
    prog.lut(1, 0, table=0)
    prog.store(1, 0)
    code, ys, no_consts = prog.build(), np.empty((1, e), np.int8), np.zeros((1, 64), np.int32)
    xs_idx = xs.astype(np.intp) + 128
    node = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    graph = helper.make_graph(node, "silu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, e))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    s_silu = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
                                  .SerializeToString(), opts, providers=["CPUExecutionProvider"])
    xsf = xs.astype(np.float32)
    cases.append(("run_dpu_program_into", f"load, lut, store over {e:,} int8", e,
                  lambda: run_dpu_program_into(code, xs, no_consts, lut, 64, 16, 512, 64, ys,
                                               numba.get_num_threads()),
                  lambda: lut[0][xs_idx], "numpy table indexing", lambda: s_silu.run(None, {"x": xsf}),
                  "Sigmoid + Mul"))

    # depthwise 3x3 on 64x64x128
    xd = rng.integers(-128, 128, (1, 64, 64, 128), dtype=np.int8)
    wd = rng.integers(-127, 128, (3, 3, 128), dtype=np.int8)
    bd = np.zeros(128, np.int32)
    colsd = _im2col(xd, 3, 3).reshape(-1, 9, 128).astype(np.int32)
    wd32 = wd.reshape(9, 128).astype(np.int32)
    s_dw = ort_session("Conv", (1, 128, 64, 64), wd.transpose(2, 0, 1)[:, None], group=128)
    xdf = xd.transpose(0, 3, 1, 2).astype(np.float32)
    cases.append(("depthwise_conv2d_acc", "1x64x64x128 * 3x3x128", 62 * 62 * 128 * 9,
                  lambda: depthwise_conv2d_acc(xd, 3, wd, bd, 1, 1, 0, 0, 0, 0, 1, 1),
                  lambda: (colsd * wd32).sum(axis=1, dtype=np.int32), "numpy int32 multiply-sum",
                  lambda: s_dw.run(None, {"x": xdf}), "Conv group=128"))

    threads = numba.get_num_threads()
    with tempfile.TemporaryDirectory() as cache:
        for name, shape, n_macs, kernel, baseline, base_name, ort_run, ort_name in cases:
            cold = first_call_seconds(name, cache)   # empty cache: compiles and writes the cache
            warm = first_call_seconds(name, cache)   # same cache: loads the compiled code
            # interleaved rounds, median per column: load changes on the shared machine hit every column alike
            samples: dict[str, list[float]] = {"numba": [], "numba1": [], "numpy": [], "ort": []}
            for _ in range(3):
                samples["numba"].append(timeit(kernel, repeat=5)["median_s"])
                numba.set_num_threads(1)
                samples["numba1"].append(timeit(kernel, repeat=5)["median_s"])
                numba.set_num_threads(threads)
                samples["numpy"].append(timeit(baseline, repeat=5)["median_s"])
                samples["ort"].append(timeit(ort_run, repeat=5)["median_s"])
            t = {key: statistics.median(v) for key, v in samples.items()}
            rows.append([name, shape, n_macs, n_macs / t["numba"] / 1e9, n_macs / t["numba1"] / 1e9, base_name,
                         n_macs / t["numpy"] / 1e9, t["numpy"] / t["numba"], f"ort float32 {ort_name}, 1 thread",
                         n_macs / t["ort"] / 1e9, t["ort"] / t["numba1"], cold, warm])
    report("kernels", "python benchmarks/bench_kernels.py",
           ["kernel", "shape", "MACs (DPU: elements)", f"numba GMAC/s ({threads} threads)", "numba GMAC/s (1 thread)", "baseline",
            "numpy GMAC/s", "numba/numpy", "float baseline", "ort GMAC/s", "speed numba 1 thread : ort",
            "first call, no cache (s)", "first call, cached (s)"], rows,
           {"numba_threads": threads})


if __name__ == "__main__":
    main()
