"""Whole real models: import, ONNX round trip, float executor vs onnxruntime
on a real photo, and the frontend pipeline, for PP-OCR cls and YOLOv8n."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import structlog
from PIL import Image

from axdrive.models import fetch_photo
from axdrive.onnx_io import load_model, to_onnx
from axdrive.passes import CompileSession, PassContext
from axdrive.reference import run_float

import axdrive_frontend as fe

pytestmark = pytest.mark.model


def photo(name: str, width: int, height: int, mean: float, std: float) -> np.ndarray:
    image = Image.open(fetch_photo(name)).convert("RGB").resize((width, height), Image.BILINEAR)
    x = (np.asarray(image, np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def rel_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


def check_model(path, name: str, x: np.ndarray) -> None:
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {name: x})
    graph = load_model(path, input_shapes={name: x.shape})
    ours = run_float(graph, {name: x})
    exported = ort.InferenceSession(to_onnx(graph).SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {name: x})
    for out, e, r in zip(graph.outputs, expected, exported):
        assert ours[out].shape == e.shape
        assert rel_error(ours[out], e) <= 1e-4
        assert rel_error(r, e) <= 1e-6

    session = CompileSession(config=type("C", (), {"propagate_span_information": True})(), host=None, tracer=None,
                             model=path, inputs={"input_shapes": {name: x.shape}})
    for p in fe.PASSES:
        p.run(PassContext(session, p, structlog.get_logger()))
        session.graph.verify()
    optimized = run_float(session.graph, {name: x})
    for out, e in zip(session.graph.outputs, expected):
        assert rel_error(optimized[out], e) <= 1e-4
    assert len(session.graph.nodes) < len(graph.nodes)


def test_ppocr_cls_imports_round_trips_and_matches_onnxruntime(ppocr_model):
    check_model(ppocr_model, "x", photo("text.png", 192, 48, 0.5, 0.5))


def test_yolov8n_imports_round_trips_and_matches_onnxruntime(yolo_model):
    check_model(yolo_model, "images", photo("motorcycle_right.png", 320, 320, 0.0, 1.0))
