"""Regenerate the figures of docs/memory-and-scheduling.md: YOLOv8n at 320 x 320, default config.

    .venv/bin/python docs/figures/generate.py            # writes docs/figures/yolov8n_*.svg
    .venv/bin/python docs/figures/generate.py --out DIR  # somewhere else

Why a script and not checked-in pictures from elsewhere: the figures must show what this compiler does
today, so they are drawn by the project's own functions (``axdrive_hw.figures``, the ones ``axdrive run
--figures`` uses) from a fresh compile, exactly as ``benchmarks/bench_simulator.py`` compiles the model
(calibrated on the first two sample photos). The compile and the drawing are deterministic, so running it
again on unchanged code gives byte-identical files, and a diff of docs/figures shows a real change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from axdrive import driver
from axdrive.artifacts import atomic_write_text
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos
from axdrive.runner import load_manifest
from axdrive_hw.figures import memory_map_svg, timeline_svg
from axdrive_hw.runtime import AipuRuntime

SHAPE = (1, 3, 320, 320)
HERE = Path(__file__).resolve().parent


def compile_yolo(out: Path) -> None:
    """A default compile of YOLOv8n at 320 x 320, calibrated on two photos (as the simulator benchmark does)."""
    photos = load_images(fetch_photos(CALIBRATION_PHOTOS[:2]), SHAPE, ImagePreprocessing(resize="letterbox"))
    calib = out.parent / "calibration.npy"
    np.save(calib, np.ascontiguousarray(photos, dtype=np.float32))
    driver.compile(str(fetch_model("yolov8n")), output_dir=out, input_shapes={"images": SHAPE}, calibration=str(calib))


def figures(out: Path) -> dict[str, str]:
    """The three figures of one inference of the compiled program in ``out``, by file name."""
    manifest = load_manifest(out)
    config = {**(manifest.get("config") or {}), **{k: v for k, v in (manifest.get("environment") or {}).items()
                                                    if v is not None}}
    loaded = AipuRuntime(str(manifest.get("target") or "aipu_v1")).load(out, config)
    program, inference, target = loaded.program, loaded.inference, loaded.target

    def usable(level: str) -> int:
        return target.memory[level].usable(program.cores)

    what = "YOLOv8n 320x320, default config"
    return {
        "yolov8n_memory_map_l1.svg": memory_map_svg(program, inference, "l1", 0, capacity=usable("l1"),
                                                    title=f"{what}: L1 of core 0 over one inference"),
        "yolov8n_memory_map_l2.svg": memory_map_svg(program, inference, "l2", capacity=usable("l2"),
                                                    title=f"{what}: L2 over one inference"),
        "yolov8n_timeline.svg": timeline_svg(inference, title=f"{what}: one inference, per unit"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the SVG files (default: docs/figures)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="axdrive-figures-") as tmp:
        out = Path(tmp) / "yolov8n_320"
        compile_yolo(out)
        drawn = figures(out)
    for name, svg in drawn.items():
        atomic_write_text(args.out / name, svg).chmod(0o644)  # a temp file is 0600; these are for reading
        print(f"wrote {args.out / name} ({len(svg.encode('utf-8')) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
