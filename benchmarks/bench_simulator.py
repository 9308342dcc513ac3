"""How fast the simulated AIPU runs a YOLOv8n-sized program, against onnxruntime on the real model, in one run.

The compiler does not emit programs yet, so the program is synthetic but has
YOLOv8n's work: its 64 convolutions at 320x320, with the shapes read from the
real model by ONNX shape inference (cin, cout, kernel, stride, H, W), each as
DMA in (activations, weights, bias, requantization) -> MVM conv with fused
requantization -> DPU SiLU lookup table -> DMA out. It runs through the host
runtime (``program.bin`` in an output directory, ``AipuRuntime.load(...).run``),
functionally (every MAC computed by the Numba kernels, every access checked),
and is timed against onnxruntime's float CPU latency on the real model with one
intra-op thread, on the same machine in the same process. The simulator is
timed with Numba's default thread count and with one thread; the three are
timed in interleaved rounds and the median over the rounds is reported.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import numba
import numpy as np
import onnx
import onnxruntime as ort
from _common import report, timeit
from onnx import shape_inference

from axdrive.models import fetch_model
from axdrive.numerics import make_lut, quantize_multiplier
from axdrive_hw.kernels.dpu import DpuProgramBuilder
from axdrive_hw.program.binary import write_program
from axdrive_hw.program.model import Program, ProgramBuilder
from axdrive_hw.runtime import AipuRuntime

SIZE = 320
ROUNDS = 5
_ALIGN = 64


def yolo_conv_layers(path: Path, size: int = SIZE) -> list[tuple[int, int, int, int, int, int, int]]:
    """``(cin, cout, k, stride, pad, H, W)`` of every Conv of the model at ``1x3xSIZExSIZE`` (input H, W)."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, 3, size, size)):
        d.ClearField("dim_param")
        d.dim_value = v
    model = shape_inference.infer_shapes(model)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in [*model.graph.value_info, *model.graph.input]}
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    layers = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
        if any(a.name == "group" and a.i != 1 for a in node.attribute):
            raise ValueError(f"{node.name}: grouped conv is not part of this benchmark")
        n, cin, h, w = shapes[node.input[0]]
        cout, _cg, kh, _kw = inits[node.input[1]]
        stride = attrs.get("strides", [1, 1])[0]
        pad = attrs.get("pads", [0, 0, 0, 0])[0]
        layers.append((cin, cout, kh, stride, pad, h, w))
    return layers


def _out(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def synthetic_program(layers: list[tuple[int, int, int, int, int, int, int]], seed: int = 0) -> Program:
    """One core; layer l's L1 buffers live in region ``l % 2``, so a layer loads while the previous one finishes."""
    rng = np.random.default_rng(seed)
    pb = ProgramBuilder("aipu_v1", cores=1)
    silu = make_lut(lambda v: v / (1 + np.exp(-v)), 0.05, 0, 0.05, 0)
    code_b = DpuProgramBuilder()
    code_b.load(0, 0)
    code_b.lut(1, 0, table=0)
    code_b.store(1, 0)
    plans = []
    for cin, cout, k, s, p, h, w in layers:
        oh, ow = _out(h, k, s, p), _out(w, k, s, p)
        sizes = {"x": ((1, h, w, cin), "int8"), "w": ((cout, k, k, cin), "int8"), "bias": ((cout,), "int32"),
                 "mult": ((cout,), "int32"), "shift": ((cout,), "int32"), "acc": ((1, oh, ow, cout), "int8"),
                 "act": ((1, oh, ow, cout), "int8")}
        offsets, at = {}, 0
        for name, (shape, dtype) in sizes.items():
            offsets[name] = at
            at += -(-_nbytes(shape, dtype) // _ALIGN) * _ALIGN
        plans.append((sizes, offsets, at))
    region = max(p[2] for p in plans)
    # the DPU program and its table are the same for every layer: L1 constants below the two regions
    code = pb.constant("silu_code", code_b.build(), level="l1")
    luts = pb.constant("silu_lut", silu.reshape(1, 256), level="l1")
    first_free = 1024
    for i, ((cin, cout, k, s, p, h, w), (sizes, offsets, _)) in enumerate(zip(layers, plans)):
        base = first_free + (i % 2) * region
        l1 = {n: pb.buffer(f"L{i}.{n}_l1", "l1", shape, dtype, address=base + offsets[n])
              for n, (shape, dtype) in sizes.items()}
        if i == 0:
            src_x = pb.input("images", sizes["x"][0])
        else:
            src_x = pb.constant(f"L{i}.x", rng.integers(-128, 128, sizes["x"][0], dtype=np.int8))
        m, sh = quantize_multiplier(np.full(cout, 0.002))
        srcs = {"x": src_x,
                "w": pb.constant(f"L{i}.w", rng.integers(-127, 128, sizes["w"][0], dtype=np.int8)),
                "bias": pb.constant(f"L{i}.bias", rng.integers(-500, 500, cout).astype(np.int32)),
                "mult": pb.constant(f"L{i}.mult", m.astype(np.int32)),
                "shift": pb.constant(f"L{i}.shift", sh.astype(np.int32))}
        loaded, computed, activated, done = 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4
        free = (4 * (i - 2) + 4,) if i >= 2 else ()  # region i % 2 is free once layer i-2 has been stored
        for n, src in srcs.items():
            pb.dma(0, src, l1[n], wait=free if n == "x" else (), signal=(loaded,))
        # the other DMAs of this layer follow the x copy in the same FIFO, so one token wait covers the region
        pb.conv2d(0, l1["x"], l1["w"], l1["bias"], l1["acc"], x_zp=0, stride=(s, s), pads=(p, p, p, p),
                  requant=(l1["mult"], l1["shift"], 0), wait=(loaded,) * len(srcs), signal=(computed,),
                  stage=f"conv{i}")
        pb.dpu(0, [l1["acc"]], [l1["act"]], code, channels=cout, luts=luts, wait=(computed,), signal=(activated,),
               stage=f"silu{i}")
        dst = (pb.output("out", sizes["act"][0]) if i == len(layers) - 1
               else pb.buffer(f"L{i}.y", "ddr", sizes["act"][0]))
        pb.dma(0, l1["act"], dst, wait=(activated,), signal=(done,) if i + 2 < len(layers) else ())
    return pb.build()


def main() -> None:
    path = fetch_model("yolov8n")
    layers = yolo_conv_layers(path)
    macs = sum(cin * cout * k * k * _out(h, k, s, p) * _out(w, k, s, p) for cin, cout, k, s, p, h, w in layers)
    program = synthetic_program(layers)
    rng = np.random.default_rng(1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    image = rng.random((1, 3, SIZE, SIZE), dtype=np.float32)
    name = sess.get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        write_program(program, tmp, json_constants=False)
        loaded = AipuRuntime().load(tmp, {})
        feeds = {"images": rng.integers(-128, 128, (1, SIZE, SIZE, 3), dtype=np.int8)}
        first = loaded.run(feeds)
        default_threads = numba.get_num_threads()
        # ROUNDS interleaved rounds, each timing all three; the medians over rounds are reported, so a
        # change of load on the shared machine hits every row alike
        samples: dict[str, list[float]] = {"sim": [], "sim1": [], "ort": []}
        for _ in range(ROUNDS):
            samples["sim"].append(timeit(lambda: loaded.run(feeds), repeat=3)["median_s"])
            numba.set_num_threads(1)
            samples["sim1"].append(timeit(lambda: loaded.run(feeds), repeat=3)["median_s"])
            numba.set_num_threads(default_threads)
            samples["ort"].append(timeit(lambda: sess.run(None, {name: image}), repeat=10, warmup=2)["median_s"])
    sim, sim1, ort_t = ({"median_s": statistics.median(samples[k])} for k in ("sim", "sim1", "ort"))

    cycles = first.report["inference_cycles"]
    device_ms = cycles / first.report["frequency_hz"] * 1e3
    ref = ort_t["median_s"]
    rows = [
        [f"axdrive-hw functional simulation ({default_threads} Numba threads)", sim["median_s"] * 1e3,
         sim["median_s"] / ref, macs / sim["median_s"] / 1e9],
        ["axdrive-hw functional simulation (1 Numba thread)", sim1["median_s"] * 1e3, sim1["median_s"] / ref,
         macs / sim1["median_s"] / 1e9],
        ["onnxruntime float32 CPU, 1 thread (real yolov8n)", ref * 1e3, 1.0, None],
    ]
    report("bench_simulator", "python benchmarks/bench_simulator.py",
           ["what", "median ms", "x onnxruntime", "simulated GMAC/s"], rows,
           extra={"conv_layers": len(layers), "macs": macs, "input": f"1x3x{SIZE}x{SIZE}",
                  "tasks": sum(len(t) for t in program.tasks), "simulated_cycles": cycles,
                  "simulated_ms_at_800MHz": device_ms, "host_link_cycles": first.report["host_link"],
                  "layers": [list(layer) for layer in layers], "numba_threads": default_threads,
                  "rounds_ms": {k: [round(v * 1e3, 2) for v in vs] for k, vs in samples.items()}})
    print(f"{len(layers)} conv layers, {macs / 1e9:.3f} GMAC, {sum(len(t) for t in program.tasks)} tasks; "
          f"simulated {cycles:,} cycles = {device_ms:.3f} ms at 800 MHz")


if __name__ == "__main__":
    sys.exit(main())
