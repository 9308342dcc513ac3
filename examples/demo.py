"""The `make demo` job: compile real models for the simulated AIPU and run a real photo through one.

Downloads YOLOv8n (NudeNet's 320n detector, from the nudenet wheel) and the
PP-OCR text-direction classifier (from the rapidocr-onnxruntime wheel) into
~/.cache/axdrive, compiles each with the default `quantize_and_lower` (pass
tracing on) and prints the pass timing tree. Then it letterboxes a photo,
runs it through `axdrive run` on YOLOv8n (host pre/post-processing in
onnxruntime, the core on the simulated AIPU), decodes the detections
(boxes cx, cy, w, h + class scores), applies NMS in numpy and draws the boxes
into out/yolov8n/detections.png. Everything goes through the public CLI, as a
user would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photo, fetch_photos

OUT = Path("out")
SIZE = 320
PHOTO = "astronaut.png"
JOBS = [
    ("ppocr_cls", "x", (1, 3, 48, 192), "bilinear"),
    ("yolov8n", "images", (1, 3, SIZE, SIZE), "letterbox"),
]
#: The 18 classes of NudeNet's detector, in the order of its output rows 4..21.
LABELS = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED", "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
SCORE_THRESHOLD = 0.25
IOU_THRESHOLD = 0.45


def axdrive(*args: str) -> None:
    cmd = [sys.executable, "-m", "axdrive", *args]
    print("$ axdrive " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def compile_model(name: str, input_name: str, shape: tuple[int, ...], resize: str) -> Path:
    """Compile with a calibration set preprocessed the way the model expects (letterbox for YOLO)."""
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    calibration = OUT / f"{name}_calibration.npy"
    np.save(calibration, load_images(fetch_photos(CALIBRATION_PHOTOS), shape, ImagePreprocessing(resize=resize)))
    axdrive("compile", str(fetch_model(name)), "-o", str(out), "--set", "trace_tvm_passes=true",
            "--set", "remove_output_dir=true", "--set", f"model_name={name}", "--calibration", str(calibration),
            "--input-shape", f"{input_name}={'x'.join(map(str, shape))}")
    axdrive("trace", str(out / "pass_dependency_graph.json"))
    print()
    return out


def letterbox(photo: Image.Image) -> tuple[np.ndarray, float, tuple[int, int]]:
    """The 320x320 input (RGB / 255, NCHW) and how to map its pixels back: scale and padding."""
    r = min(SIZE / photo.width, SIZE / photo.height)
    w, h = max(1, round(photo.width * r)), max(1, round(photo.height * r))
    pad = ((SIZE - w) // 2, (SIZE - h) // 2)
    canvas = Image.new("RGB", (SIZE, SIZE), (114, 114, 114))
    canvas.paste(photo.resize((w, h), Image.BILINEAR), pad)
    x = np.asarray(canvas, np.float32).transpose(2, 0, 1)[None] / 255.0
    return np.ascontiguousarray(x), r, pad


def iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1,y1,x2,y2 box with many."""
    lo, hi = np.maximum(box[:2], others[:, :2]), np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(b[..., 2:] - b[..., :2], axis=-1)  # noqa: E731
    return inter / (area(box) + area(others) - inter + 1e-9)


def detections(output0: np.ndarray) -> list[tuple[np.ndarray, float, int]]:
    """Decode ``1 x (4 + classes) x anchors`` (cx, cy, w, h in input pixels + class scores), then
    per-class non-maximum suppression."""
    rows = output0[0].T
    scores = rows[:, 4:]
    cls = scores.argmax(axis=1)
    best = scores[np.arange(len(rows)), cls]
    keep = best >= SCORE_THRESHOLD
    cx, cy, w, h = rows[keep, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    best, cls = best[keep], cls[keep]
    found = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        idx = idx[np.argsort(-best[idx])]
        while idx.size:
            top, idx = idx[0], idx[1:]
            found.append((boxes[top], float(best[top]), int(c)))
            idx = idx[iou(boxes[top], boxes[idx]) < IOU_THRESHOLD]
    return sorted(found, key=lambda d: -d[1])


def detect(out: Path) -> Path:
    photo = Image.open(fetch_photo(PHOTO)).convert("RGB")
    x, r, (pad_x, pad_y) = letterbox(photo)
    # the run's files go beside the output directory, not into it: with remove_output_dir=true the next
    # compile demands a directory that holds only what axdrive wrote
    photo_input, photo_output = OUT / f"{out.name}_photo_input.npy", OUT / f"{out.name}_photo_output.npz"
    np.save(photo_input, x)
    axdrive("run", str(out), "--input", str(photo_input), "-o", str(photo_output),
            "--compare", "--float-model", str(fetch_model("yolov8n")))
    found = detections(np.load(photo_output)["output0"])
    draw = ImageDraw.Draw(photo)
    for box, score, c in found:
        x1, y1, x2, y2 = (box - [pad_x, pad_y, pad_x, pad_y]) / r
        draw.rectangle([x1, y1, x2, y2], outline=(255, 40, 40), width=3)
        draw.text((x1 + 4, y1 + 2), f"{LABELS[c]} {score:.2f}", fill=(255, 255, 0))
        print(f"  {LABELS[c]:<24} {score:.2f}  box ({x1:.0f}, {y1:.0f}) - ({x2:.0f}, {y2:.0f})")
    target = OUT / f"{out.name}_detections.png"
    photo.save(target)
    print(f"{len(found)} detection(s) on {PHOTO}, drawn into {target.resolve()}")
    return target


def main() -> int:
    outs = {name: compile_model(name, input_name, shape, resize) for name, input_name, shape, resize in JOBS}
    detect(outs["yolov8n"])
    print(f"artifacts are in {OUT.resolve()}/<model>/ (manifest.json lists them with their sha256)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
