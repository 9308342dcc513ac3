"""The `make demo` job: fetch a real model, compile it, show what came out.

Downloads YOLOv8n (from the nudenet wheel) and the PP-OCR text-direction
classifier (from the rapidocr-onnxruntime wheel) into ~/.cache/axdrive,
compiles each with pass tracing on, and prints where the artifacts are and
the pass timing tree. Everything goes through the public CLI, as a user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from axdrive.models import fetch_model

OUT = Path("out")
JOBS = [
    ("ppocr_cls", ["--input-shape", "x=1x3x48x192"]),
    ("yolov8n", ["--input-shape", "images=1x3x320x320"]),
]


def axdrive(*args: str) -> None:
    cmd = [sys.executable, "-m", "axdrive", *args]
    print("$ axdrive " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    for name, extra in JOBS:
        model = fetch_model(name)
        out = OUT / name
        axdrive("compile", str(model), "-o", str(out), "--set", "trace_tvm_passes=true",
                "--set", "remove_output_dir=true", "--set", f"model_name={name}", *extra)
        axdrive("trace", str(out / "pass_dependency_graph.json"))
        print()
    print(f"artifacts are in {OUT.resolve()}/<model>/ (manifest.json lists them with their sha256)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
