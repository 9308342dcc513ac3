"""DPU register allocators compared: spills, reloads, allocation time, simulated cycles.

Programs: the element-wise tails of the two real models (one DPU program per
tail kind each model needs, weighted by how many times it occurs), derived
from the ONNX graphs by the tail builders in ``axdrive_dpu_alloc.examples``
until the lowering attaches real programs; plus a generated suite (concats of
growing fan-in, random programs of growing pressure). Per algorithm: spilled
values, reloads, median allocation time, and DPU cycles per chunk (the sum of
``[dpu.instruction_cycles]`` of ``aipu_v1`` over the physical program; the
hardware interpreter runs every program to check it against the virtual
one). Last, ``backjump_recursive`` against exhaustive search on small random
programs with 2 to 4 registers.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
from _common import report, timeit
from axdrive_hw.kernels.dpu import run_dpu_program
from axdrive_hw.target import load_target

from axdrive.ir.dpu import VProgram, max_pressure
from axdrive_dpu_alloc import DpuAllocationError, allocate, dpu_cycles
from axdrive_dpu_alloc._backjump import min_spill_set
from axdrive_dpu_alloc._exhaustive import exhaustive_min_spills
from axdrive_dpu_alloc.examples import concat_add, generated_suite, hardswish, random_program, residual_add, \
    requantize, silu

ALGORITHMS = ("graph", "lazy", "backjump_recursive", "try_all")


def model_tails(name: str) -> Counter[str]:
    """How many DPU tails of each kind the model needs (from its ONNX graph)."""
    import onnx

    from axdrive.models import fetch_model

    graph = onnx.load(str(fetch_model(name))).graph
    consts = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    tails: Counter[str] = Counter()
    for n in graph.node:
        ops = [c.op_type for c in consumers.get(n.output[0], [])] if n.output else []
        if n.op_type == "Conv":
            tails["silu" if "Sigmoid" in ops and "Mul" in ops else
                  "hardswish" if "HardSigmoid" in ops or "HardSwish" in ops else "requantize"] += 1
        elif n.op_type == "Add" and not any(i in consts for i in n.input):
            tails["residual_add"] += 1
        elif n.op_type == "Concat" and len(n.input) > 1:
            tails[f"concat_add_{len(n.input)}"] += 1
    return tails


def _program(kind: str) -> VProgram:
    builders = {"silu": silu, "hardswish": hardswish, "requantize": requantize, "residual_add": residual_add}
    return builders[kind]() if kind in builders else concat_add(int(kind.rsplit("_", 1)[1]))


def _check(program: VProgram, code: np.ndarray, rng: np.random.Generator) -> None:
    """Run on the hardware interpreter twice over the same inputs: the physical program must be well-formed;
    bit-exactness against a reference interpreter is the tests' job."""
    inputs = rng.integers(-1000, 1000, (program.n_inputs, 130), dtype=np.int32)
    consts = rng.integers(-(2**16), 2**16, (max(program.n_consts, 1), 8), dtype=np.int32)
    luts = rng.integers(-128, 128, (max(program.n_luts, 1), 256), dtype=np.int8)
    run_dpu_program(code, inputs, consts, luts, 8, program.n_outputs, 16, 64, 64)


def main() -> None:
    target = load_target("aipu_v1")
    cycles_of = target.dpu.instruction_cycles
    rng = np.random.default_rng(0)
    suites: list[tuple[str, VProgram, int]] = []
    for model in ("yolov8n", "ppocr_cls"):
        for kind, count in sorted(model_tails(model).items()):
            suites.append((model, _program(kind), count))
    suites += [("generated", p, 1) for p in generated_suite()]

    columns = ["suite", "program", "x", "values", "pressure"] + [f"{a} {m}" for a in ALGORITHMS
                                                                  for m in ("spills/reloads", "ms", "cycles")]
    rows = []
    totals: dict[tuple[str, str], Counter[str]] = {}
    for suite, program, count in suites:
        row: list[object] = [suite, program.name, count, len(program.values), max_pressure(program)]
        for algorithm in ALGORITHMS:
            try:
                result = allocate(program, algorithm)
            except DpuAllocationError as exc:
                row += ["fail: " + str(exc).rsplit(": ", 1)[-1][:40], "-", "-"]
                totals.setdefault((suite, algorithm), Counter())["failed"] += count
                continue
            t = timeit(lambda: allocate(program, algorithm), repeat=3, warmup=0)["median_s"]
            cyc = dpu_cycles(result.code, cycles_of)
            _check(program, result.code, rng)
            row += [f"{result.spills}/{result.reloads}" + ("" if algorithm != "try_all" else f" ({result.algorithm})"),
                    round(t * 1e3, 2), cyc]
            tot = totals.setdefault((suite, algorithm), Counter())
            tot["spills"] += count * result.spills
            tot["reloads"] += count * result.reloads
            tot["cycles"] += count * cyc
            tot["ms"] += count * t * 1e3
        rows.append(row)

    # backjump_recursive against exhaustive search on small programs.
    agree = total = 0
    t_search = t_exhaustive = 0.0
    for seed in range(200):
        r = np.random.default_rng(seed)
        sources = int(r.integers(3, 7))
        program = random_program(r, sources, 7 - sources + int(r.integers(0, 2)), n_outputs=2)
        registers = int(r.integers(2, 5))
        if registers < 3 and any(i.op in ("select", "mulq") for i in program.instrs):
            registers = 3
        t0 = time.perf_counter()
        best = exhaustive_min_spills(program, registers)
        t1 = time.perf_counter()
        found = len(min_spill_set(program, registers))
        t_search += time.perf_counter() - t1
        t_exhaustive += t1 - t0
        total += 1
        agree += found == best
    summary = {f"{suite}/{algorithm}": dict(c) for (suite, algorithm), c in sorted(totals.items())}
    summary["backjump_vs_exhaustive"] = {"programs": total, "equal_minimum": agree,
                                         "search_ms": round(t_search * 1e3, 1),
                                         "exhaustive_ms": round(t_exhaustive * 1e3, 1)}
    for key, value in summary.items():
        print(key, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in value.items()})
    report("dpu_alloc", "python benchmarks/bench_dpu_alloc.py", columns, rows, {"totals": summary})


if __name__ == "__main__":
    main()
