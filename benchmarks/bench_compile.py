"""YOLOv8n: compile time by phase, estimated frames/s by cores and multi-core mode, memory peak vs bound.

One whole compile (``quantize_and_lower``, 2 calibration photos) is timed per
pass (the driver's report) and, inside ``lowering.emit_program``, per phase
(recording the tasks, memory plan with its retries, dependencies, schedule,
building the program). Then the quantized model is lowered (``lower_only``)
for every multi-core combination (cores 1 to 4 x ``multicore_mode``) and the
report's estimated latency and throughput are tabulated, with the memory
plan's peak per level against its lower bound (the most bytes live at once).
The estimate is the cycle model's multi-frame simulation (``multicore.method``;
``double_buffered``: with a second copy of the memory the cores share, for
programs whose cores still share bytes: batch copies no longer do, pipeline
runs already carry two frames with hand-overs of their own); the one-run
figure is derived from one simulated run (``multicore.one_run``). Last, one
core at ``tiling_depth`` 1, 2 and 4 with either scheduler.
Cycles come from the cycle model and do not depend on the machine; seconds do
(each combination's compile time is in the table, the estimate included).
Prints Markdown tables.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from axdrive import driver
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos

MODES = ("multiprocess", "multithread", "batch", "cooperative", "pipeline")


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    shape = (1, 3, 320, 320)
    photos = load_images(fetch_photos(CALIBRATION_PHOTOS[:2]), shape, ImagePreprocessing(resize="letterbox"))
    cfg = CompilerConfig()
    t0 = time.perf_counter()
    driver.compile(str(fetch_model("yolov8n")), cfg, output_dir=root / "full", input_shapes={"images": shape},
                   calibration={"images": photos})
    total = time.perf_counter() - t0
    rep = json.loads((root / "full" / "compile_report.json").read_text())
    print(f"whole compile (quantize_and_lower): {total:.2f} s\n")
    print("| pass | seconds |\n|---|---|")
    passes = sorted(((p["name"], p.get("wall_ms", 0.0) / 1000) for p in rep["passes"]), key=lambda p: -p[1])
    for name, sec in passes[:8]:
        print(f"| {name} | {sec:.3f} |")
    print("\n| emit_program phase | seconds |\n|---|---|")
    for name, sec in rep["lowering"]["phase_seconds"].items():
        print(f"| {name} | {sec:.3f} |")
    qdq = root / "full" / "quantized_model.onnx"
    print("\n| cores | mode | program cores | method | latency ms | frames/s | double-buffered frames/s "
          "| one-run frames/s | compile s | L1 peak/bound | L2 peak/bound |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cores in (1, 2, 3, 4):
        for mode in MODES:
            if cores == 1 and mode != "multiprocess":
                continue
            if cores < 2 and mode in ("cooperative", "pipeline"):
                continue
            t0 = time.perf_counter()
            r = _report(qdq, root / f"{mode}{cores}", cores, mode)
            sec = time.perf_counter() - t0
            mc, mem = r["multicore"], r["memory"]["levels"]
            l1 = max(v["peak_over_bound"] for k, v in mem.items() if k.startswith("l1"))
            l2 = mem.get("l2", {}).get("peak_over_bound")
            db = mc.get("double_buffered", {}).get("throughput_fps")
            print(f"| {cores} | {mode} | {mc['program_cores']} | {mc['method']} | {mc['latency_ms']:.3f} "
                  f"| {mc['throughput_fps']:.1f} | {'-' if db is None else f'{db:.1f}'} "
                  f"| {mc['one_run']['throughput_fps']:.1f} | {sec:.2f} | {l1} | {l2} |")
    depth_first(qdq, root)


def depth_first(qdq: Path, root: Path) -> None:
    """One core, ``tiling_depth`` 1, 2 and 4, with the in-order and the list scheduler: estimated cycles
    against depth 1 with the same scheduler (the reference of each row), depth-first groups, and the bytes
    their intermediates take in L1 (rolling buffers) against the whole tensors they stand for."""
    print("\n| scheduler | tiling_depth | estimated cycles | x depth 1 | depth-first groups | rolling L1 bytes "
          "| whole intermediates bytes |")
    print("|---|---|---|---|---|---|---|")
    for listed in (False, True):
        base = None
        for depth in (1, 2, 4):
            r = _report(qdq, root / f"depth{depth}_{int(listed)}", 1, "multiprocess", tiling_depth=depth,
                        use_list_scheduler=listed)
            cycles = r["performance"]["estimated_cycles"]
            base = base or cycles
            tiling = next(p["stats"] for p in r["passes"] if p["name"].startswith("tiling"))
            print(f"| {'list' if listed else 'in order'} | {depth} | {cycles:,.0f} | {cycles / base:.4f} "
                  f"| {tiling.get('depth_groups', 0)} | {tiling.get('rolling_bytes', 0):,} "
                  f"| {tiling.get('kept_bytes', 0):,} |")


def _report(qdq: Path, out: Path, cores: int, mode: str, **more: Any) -> dict[str, Any]:
    cfg_sets = {"aipu_cores_used": cores, "multicore_mode": mode, **more}
    c = CompilerConfig()
    c.compiler_mode = "lower_only"
    for k, v in cfg_sets.items():
        setattr(c, k, v)
    driver.compile(str(qdq), c, output_dir=out, input_shapes={"images": (1, 3, 320, 320)})
    return json.loads((out / "compile_report.json").read_text())


if __name__ == "__main__":
    main()
