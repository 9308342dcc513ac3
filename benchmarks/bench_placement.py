"""Bring your own model: per model, how much runs on the AIPU, how close the result is, how fast it simulates.

For the visible corpus (YOLOv8n, PP-OCR classifier, PicoDet layout detector) and the PP-OCRv4 text
detector and recognizer (public models the compiler was not built with), each with its own
preprocessing, calibrated on the 8 calibration photos and evaluated on the 4 evaluation photos) and for toy
models with what the corpus lacks (an LSTM after the backbone, a TopK at the end, an operator without an
int8 kernel in the middle, a channel Transpose inside): compile (``quantize_and_lower``, host fallback on),
then ``axdrive run --compare`` on each evaluation input. Columns:

- the device segments, nodes and MACs on the AIPU (the compile report's ``placement``);
- device SQNR against the float model in onnxruntime (dB, every model output pooled; mean and worst input);
- whether the AIPU's part is bit-exact against the integer reference on every input;
- the simulated frames/s of the device programs at ``frequency`` (the cycle model's estimate, the segments'
  cycles added: they run one after the other).

    python benchmarks/bench_placement.py [MODEL ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
from _common import report
from onnx import helper, numpy_helper

from axdrive import driver
from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, EVALUATION_PHOTOS, fetch_model, fetch_photos
from axdrive.runner import execute

IMAGENET = ImagePreprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
REAL: dict[str, tuple[str, tuple[int, ...], ImagePreprocessing]] = {
    "yolov8n": ("images", (1, 3, 320, 320), ImagePreprocessing(resize="letterbox")),
    "ppocr_cls": ("x", (1, 3, 48, 192), ImagePreprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))),
    "picodet_layout": ("image", (1, 3, 800, 608), IMAGENET),
    # public models the compiler was not built with (the same wheel as the classifier)
    "ppocrv4_det": ("x", (1, 3, 320, 320), IMAGENET),
    "ppocrv4_rec": ("x", (1, 3, 48, 320), ImagePreprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))),
}


def _toy(nodes: list, inits: dict[str, np.ndarray], outputs: dict[str, int], name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info(o, t, None) for o, t in outputs.items()],
                              [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _backbone(rng: np.random.Generator) -> tuple[list, dict[str, np.ndarray]]:
    inits = {"w1": rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * 0.3,
             "w2": rng.standard_normal((16, 16, 3, 3)).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2")]
    return nodes, inits


def toy_lstm_tail(rng: np.random.Generator) -> onnx.ModelProto:
    nodes, inits = _backbone(rng)
    inits.update({"seq": np.array([1, 16, 256], np.int64), "flat": np.array([256, 8], np.int64),
                  "W": rng.standard_normal((1, 32, 16)).astype(np.float32) * 0.3,
                  "R": rng.standard_normal((1, 32, 8)).astype(np.float32) * 0.3})
    nodes += [helper.make_node("Reshape", ["r2", "seq"], ["s0"], name="to_sequence"),
              helper.make_node("Transpose", ["s0"], ["s"], perm=[2, 0, 1], name="time_first"),
              helper.make_node("LSTM", ["s", "W", "R"], ["Y"], hidden_size=8, name="lstm"),
              helper.make_node("Reshape", ["Y", "flat"], ["y"], name="flatten")]
    return _toy(nodes, inits, {"y": onnx.TensorProto.FLOAT}, "toy_lstm_tail")


def toy_lstm_mid(rng: np.random.Generator) -> onnx.ModelProto:
    """An LSTM between two convolutional stages: the feature map becomes a sequence and back."""
    nodes, inits = _backbone(rng)
    inits.update({"seq": np.array([1, 16, 256], np.int64), "back": np.array([1, 8, 16, 16], np.int64),
                  "W": rng.standard_normal((1, 32, 16)).astype(np.float32) * 0.3,
                  "R": rng.standard_normal((1, 32, 8)).astype(np.float32) * 0.3,
                  "w3": rng.standard_normal((16, 8, 3, 3)).astype(np.float32) * 0.1})
    nodes += [helper.make_node("Reshape", ["r2", "seq"], ["s0"], name="to_sequence"),
              helper.make_node("Transpose", ["s0"], ["s"], perm=[2, 0, 1], name="time_first"),
              helper.make_node("LSTM", ["s", "W", "R"], ["Y"], hidden_size=8, name="lstm"),
              helper.make_node("Reshape", ["Y", "back"], ["m"], name="to_map"),
              helper.make_node("Conv", ["m", "w3"], ["c3"], pads=[1, 1, 1, 1], name="conv3"),
              helper.make_node("Relu", ["c3"], ["y"], name="relu3")]
    return _toy(nodes, inits, {"y": onnx.TensorProto.FLOAT}, "toy_lstm_mid")


def toy_topk_end(rng: np.random.Generator) -> onnx.ModelProto:
    nodes, inits = _backbone(rng)
    inits.update({"fc": rng.standard_normal((16, 10)).astype(np.float32) * 0.3, "k": np.array([3], np.int64)})
    nodes += [helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
              helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
              helper.make_node("MatMul", ["f", "fc"], ["logits"], name="fc"),
              helper.make_node("TopK", ["logits", "k"], ["y", "idx"], axis=1, name="topk")]
    return _toy(nodes, inits, {"y": onnx.TensorProto.FLOAT, "idx": onnx.TensorProto.INT64}, "toy_topk_end")


def toy_hardmax_mid(rng: np.random.Generator) -> onnx.ModelProto:
    nodes, inits = _backbone(rng)
    inits["w3"] = rng.standard_normal((8, 16, 1, 1)).astype(np.float32) * 0.3
    nodes += [helper.make_node("Hardmax", ["r2"], ["h"], axis=1, name="hardmax"),
              helper.make_node("Conv", ["h", "w3"], ["y"], name="conv3")]
    return _toy(nodes, inits, {"y": onnx.TensorProto.FLOAT}, "toy_hardmax_mid")


def toy_channel_transpose(rng: np.random.Generator) -> onnx.ModelProto:
    nodes, inits = _backbone(rng)
    inits["w3"] = rng.standard_normal((8, 16, 3, 3)).astype(np.float32) * 0.1
    nodes += [helper.make_node("Transpose", ["r2"], ["t"], perm=[0, 3, 2, 1], name="channel_transpose"),
              helper.make_node("Conv", ["t", "w3"], ["y"], pads=[1, 1, 1, 1], name="conv3")]
    return _toy(nodes, inits, {"y": onnx.TensorProto.FLOAT}, "toy_channel_transpose")


TOYS: dict[str, Callable[[np.random.Generator], onnx.ModelProto]] = {
    "toy_lstm_tail": toy_lstm_tail, "toy_lstm_mid": toy_lstm_mid, "toy_topk_end": toy_topk_end, "toy_hardmax_mid": toy_hardmax_mid,
    "toy_channel_transpose": toy_channel_transpose,
}


def _sqnr(ours: list[np.ndarray], ref: list[np.ndarray]) -> float:
    a = np.concatenate([np.asarray(o, np.float64).ravel() for o in ours])
    b = np.concatenate([np.asarray(r, np.float64).ravel() for r in ref])
    noise = float(np.sum((a - b) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(b ** 2)) / noise)


def measure(key: str, tmp: Path) -> list[Any]:
    rng = np.random.default_rng(0)
    if key in REAL:
        name, shape, prep = REAL[key]
        model_path = fetch_model(key)
        calibration = load_images(fetch_photos(CALIBRATION_PHOTOS), shape, prep).astype(np.float32)
        inputs = [x[None] for x in load_images(fetch_photos(EVALUATION_PHOTOS), shape, prep).astype(np.float32)]
    else:
        name, model_path = "x", tmp / f"{key}.onnx"
        onnx.save(TOYS[key](rng), model_path)
        calibration = rng.uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)
        inputs = [rng.uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32) for _ in range(4)]
    res = driver.compile(model_path, CompilerConfig(), output_dir=tmp / key, calibration={name: calibration},
                         input_shapes={name: (1, *calibration.shape[1:])})
    placement = res.report["placement"]
    import onnxruntime as ort

    float_model = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    sqnrs, exact = [], True
    for x in inputs:
        run = execute(tmp / key, {name: x}, compare=True, float_model=model_path)
        exact &= all(c.max_abs_error == 0 for c in run.comparisons if c.reference == "integer reference")
        want = float_model.run(None, {name: x})
        names = [o.name for o in float_model.get_outputs()]
        sqnrs.append(_sqnr([run[n] for n in names if n in run], [w for n, w in zip(names, want) if n in run]))
    fps = _frames_per_second(res.report)
    total = placement["device_macs"] + placement["host_macs"]
    return [key, placement.get("device_segments", 1),
            f"{placement['device_nodes']}/{placement['device_nodes'] + placement['host_nodes']}",
            f"{placement['device_macs']:,}/{total:,}", f"{100 * placement['device_mac_share']:.2f} %",
            round(float(np.mean(sqnrs)), 2), round(float(np.min(sqnrs)), 2), "yes" if exact else "NO",
            round(float(fps), 1) if fps else "-"]


def _frames_per_second(report: dict[str, Any]) -> float | None:
    """The cycle model's frames/s for the whole chain: the device segments run one after the other, so their
    estimated cycles add up (host parts not included)."""
    sections = [report.get("performance", {})] + [s.get("performance", {}) for s in report.get("segments", [])]
    cycles = sum(int(p.get("estimated_cycles", 0)) for p in sections)
    freq = sections[0].get("frequency_hz")
    return freq / cycles if cycles and freq else None


def main(keys: list[str]) -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_placement_") as tmp:
        for key in keys:
            rows.append(measure(key, Path(tmp)))
    report("placement", "python benchmarks/bench_placement.py " + " ".join(keys),
           ["model", "device segments", "nodes on AIPU", "MACs on AIPU", "MAC share", "SQNR mean dB", "SQNR worst dB",
            "AIPU bit-exact", "simulated frames/s"], rows)


if __name__ == "__main__":
    main(sys.argv[1:] or [*REAL, *TOYS])
