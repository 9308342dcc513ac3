"""What ICR and SWICR buy on YOLOv8n's early layers, in estimated cycles.

YOLOv8n at 1x3x320x320 is compiled twice with the same calibration photos:
with ``enable_icr``/``enable_swicr`` (the defaults) and without. For each of
the first ``LAYERS`` layers that run on the MVM, the table gives the chosen
ICR factor and SWICR packing, the MVM task cycles and the whole layer's cycles
(its DMA, MVM and DPU tasks; every task waits for the one before, so a
layer's cycles are the sum of its tasks') from the cycle model, with and
without, and the ratio; then the totals of those layers and of the whole
model. The outputs of both programs are checked to be identical on one photo.
Cycles come from the cycle model, which does not depend on the machine.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import report

from axdrive import driver
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos
from axdrive.runner import execute
from axdrive_hw.cycle_model import SimOptions
from axdrive_hw.simulator import Simulator
from axdrive_hw.target import load_target

SHAPE = (1, 3, 320, 320)
LAYERS = 8
OFF = {"enable_icr": False, "enable_swicr": False}


def compile_yolo(out: Path, calibration: np.ndarray, **props: Any) -> Any:
    cfg = CompilerConfig()
    for k, v in props.items():
        setattr(cfg, k, v)
    return driver.compile(str(fetch_model("yolov8n")), cfg, output_dir=out, input_shapes={"images": SHAPE},
                          calibration={"images": calibration})


def layer_cycles(result: Any) -> tuple[dict[str, dict[str, float]], int]:
    """Per layer (stage label without the tile suffix, in program order): MVM and total task cycles;
    and the whole program's cycles."""
    from axdrive_lowering import PROGRAM

    program = result.session.stash[PROGRAM]
    cfg = result.session.config.to_dict()
    timeline = Simulator(program, load_target("aipu_v1"), SimOptions.from_config(cfg), functional=False).run().timeline
    layers: dict[str, dict[str, float]] = {}
    for r in sorted(timeline.records, key=lambda r: r.index):
        name = (r.stage or "").split(" [tile ")[0].split(" <- ")[0]
        entry = layers.setdefault(name, {"mvm": 0.0, "total": 0.0, "mvm_tasks": 0})
        entry["total"] += r.end - r.issue
        if r.kind == "mvm":
            entry["mvm"] += r.end - r.start
            entry["mvm_tasks"] += 1
    return layers, int(timeline.cycles)


def main() -> None:
    photos = load_images(fetch_photos(CALIBRATION_PHOTOS[:2]), SHAPE, ImagePreprocessing(resize="letterbox"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        on = compile_yolo(Path(tmp) / "on", photos)
        off = compile_yolo(Path(tmp) / "off", photos, **OFF)
        compile_s = time.perf_counter() - t0
        x = {"images": photos[1:2]}
        got_on = execute(on.output_dir, x, core_only=True).core_outputs
        got_off = execute(off.output_dir, x, core_only=True).core_outputs
        identical = all(np.array_equal(got_on[k], got_off[k]) for k in got_off)
        decisions = on.session.report.get("icr", {})
        per_on, total_on = layer_cycles(on)
        per_off, total_off = layer_cycles(off)
    early = [name for name, v in per_on.items() if v["mvm_tasks"]][:LAYERS]
    rows = []
    for name in early:
        d = decisions.get(name, {})
        a, b = per_on[name], per_off[name]
        rows.append([name, d.get("icr_factor", 1), d.get("swicr_pack", 1), int(b["mvm"]), int(a["mvm"]),
                     int(b["total"]), int(a["total"]), round(b["total"] / a["total"], 3)])
    sum_off = sum(r[5] for r in rows)
    sum_on = sum(r[6] for r in rows)
    rows.append([f"first {len(early)} MVM layers", "", "", sum(r[3] for r in rows), sum(r[4] for r in rows),
                 sum_off, sum_on, round(sum_off / sum_on, 3)])
    rows.append(["whole model", "", "", "", "", total_off, total_on, round(total_off / total_on, 3)])
    report("icr", "python benchmarks/bench_icr.py",
           ["layer", "icr factor", "swicr pack", "mvm cycles off", "mvm cycles on", "layer cycles off",
            "layer cycles on", "gain"], rows,
           {"outputs_identical": identical, "compile_seconds_both": round(compile_s, 1),
            "icr_layers": sum(1 for d in decisions.values() if d["icr_factor"] > 1),
            "swicr_layers": sum(1 for d in decisions.values() if d["swicr_pack"] > 1),
            "mvm_layers": len(decisions)})
    print(f"outputs identical with and without ICR/SWICR: {identical}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
