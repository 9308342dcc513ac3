"""DPU register allocators compared: spills, reloads, allocation time, simulated cycles.

Programs: the real models' DPU programs, as the lowering attaches them
(``node.attrs["dpu_program"]`` after ``lowering.build_dpu_programs``): PP-OCR
cls (1x3x48x192) and YOLOv8n (1x3x320x320) are compiled up to
``dpu_programs_built`` with the default configuration, calibrated on one
random sample; programs identical up to their name are allocated once and
weighted by how many nodes carry them. Plus a generated suite (concats of
growing fan-in, random programs of growing pressure). Per algorithm: spilled
values, reloads, median allocation time, and DPU cycles per chunk (the sum of
``[dpu.instruction_cycles]`` of ``aipu_v1`` over the physical program; the
hardware interpreter runs every program to check it against the virtual
one). Last, ``backjump_recursive`` against exhaustive search on small random
programs with 2 to 4 registers.
"""

from __future__ import annotations

import tempfile
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
from axdrive_dpu_alloc.examples import generated_suite, random_program

ALGORITHMS = ("graph", "lazy", "backjump_recursive", "try_all")

#: model -> (input name, input shape, calibration range).
MODELS = {"ppocr_cls": ("x", (1, 3, 48, 192), (-1.0, 1.0)),
          "yolov8n": ("images", (1, 3, 320, 320), (0.0, 1.0))}


def model_programs(name: str) -> list[tuple[VProgram, int]]:
    """The model's DPU programs as the lowering builds them, with how many nodes carry each
    (programs equal up to their name count once)."""
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.models import fetch_model

    input_name, shape, (lo, hi) = MODELS[name]
    sample = np.random.default_rng(0).uniform(lo, hi, shape).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="bench_dpu_alloc_") as tmp:
        result = driver.compile(str(fetch_model(name)), CompilerConfig(), output_dir=tmp,
                                calibration={input_name: sample}, input_shapes={input_name: shape},
                                stop_after="dpu_programs_built")
    first: dict[tuple[object, ...], VProgram] = {}
    count: Counter[tuple[object, ...]] = Counter()
    for node in result.graph.nodes:
        program = node.attrs.get("dpu_program")
        if program is None:
            continue
        assert isinstance(program, VProgram), type(program)
        key = (program.instrs, program.n_inputs, program.n_outputs, program.n_luts, program.n_consts)
        first.setdefault(key, program)
        count[key] += 1
    return [(first[key], count[key]) for key in first]


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
    n_programs: dict[str, dict[str, int]] = {}
    for model in MODELS:
        programs = model_programs(model)
        n_programs[model] = {"programs": sum(c for _, c in programs), "distinct": len(programs)}
        suites += [(model, program, count) for program, count in programs]
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
    for model, n in n_programs.items():
        print(model, n)
    summary: dict[str, dict[str, object]] = {f"{suite}/{algorithm}": dict(c)
                                             for (suite, algorithm), c in sorted(totals.items())}
    summary["backjump_vs_exhaustive"] = {"programs": total, "equal_minimum": agree,
                                         "search_ms": round(t_search * 1e3, 1),
                                         "exhaustive_ms": round(t_exhaustive * 1e3, 1)}
    for key, value in summary.items():
        print(key, {k: (round(v, 2) if isinstance(v, float) else v) for k, v in value.items()})
    report("dpu_alloc", "python benchmarks/bench_dpu_alloc.py", columns, rows,
           {"totals": summary, "model_programs": n_programs})


if __name__ == "__main__":
    main()
