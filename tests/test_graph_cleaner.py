"""The graph cleaner: what goes to the host, what stays on the accelerator,
and that host pre + core + host post reproduce the whole model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from axdrive import driver
from axdrive.config import CompilerConfig

from _toy_models import classifier  # shared with the property-effect tests


def compile_(model, tmp_path, **cfg):
    config = CompilerConfig(**{"compiler_mode": "quantize_only", "graph_cleaner_dump_core_onnx": "core.onnx", **cfg})
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    # stop after cleaning: the quantizer and later passes are not what is under test here
    return driver.compile(path, config, output_dir=tmp_path / "out", plugins=["no:quantizer", "no:example"],
                          disable_passes=[])


def run_chain(out, feeds):
    """host_preprocess -> core -> host_postprocess with onnxruntime, chained by tensor name."""
    env = dict(feeds)
    for name in ("host_preprocess.onnx", "core.onnx", "host_postprocess.onnx"):
        path = out / name
        if not path.exists():
            continue
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        results = sess.run(None, {i.name: env[i.name] for i in sess.get_inputs()})
        env.update(zip([o.name for o in sess.get_outputs()], results))
    return env


def reference(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def test_classifier_final_softmax_stays_on_the_accelerator_and_the_chain_reproduces_the_model(tmp_path):
    model = classifier()
    res = compile_(model, tmp_path)
    out = res.output_dir
    # a final Softmax over the channels is lowered to the DPU (pixel reductions): nothing is left for the host
    assert not (out / "host_postprocess.onnx").exists() and not (out / "host_preprocess.onnx").exists()
    assert {"Softmax", "MatMul"} <= {n.op for n in res.graph.nodes}
    assert res.report["graph_cleaner"]["final_softmax_on_device"] == ["softmax"]
    assert res.report["graph_cleaner"]["post_nodes"] == 0
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    got, want = run_chain(out, {"x": x})["prob"], reference(model, {"x": x})["prob"]
    assert np.max(np.abs(got - want)) <= 1e-5
    manifest = json.loads((out / "manifest.json").read_text())
    assert "core.onnx" in {a["name"] for a in manifest["artifacts"]}


def test_a_softmax_that_is_not_final_goes_to_the_host_with_what_follows(tmp_path):
    model = classifier()
    model.graph.node.append(onnx.helper.make_node("Mul", ["prob", "scale"], ["scaled"], name="rescale"))
    model.graph.output[0].name = "scaled"
    res = compile_(model, tmp_path)
    post = onnx.load(res.output_dir / "host_postprocess.onnx")
    assert [n.op_type for n in post.graph.node] == ["Softmax", "Mul"]
    assert res.report["graph_cleaner"]["final_softmax_on_device"] == []
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    assert np.max(np.abs(run_chain(res.output_dir, {"x": x})["scaled"] - reference(model, {"x": x})["scaled"])) <= 1e-5


def test_normalisation_preamble_goes_to_host_preprocess_unless_splitting_pre_is_off(tmp_path):
    model = classifier("normalise")
    res = compile_(model, tmp_path)
    pre = onnx.load(res.output_dir / "host_preprocess.onnx")
    assert [n.op_type for n in pre.graph.node] == ["Mul", "Sub"]
    x = (np.random.default_rng(2).random((1, 3, 8, 8)) * 255).astype(np.float32)
    assert np.max(np.abs(run_chain(res.output_dir, {"x": x})["prob"] - reference(model, {"x": x})["prob"])) <= 1e-5
    off = compile_(model, tmp_path / "off", graph_cleaner_split_pre_post_processing=False)
    assert not (off.output_dir / "host_preprocess.onnx").exists()
    assert {"Mul", "Sub"} <= {n.op for n in off.graph.nodes}


def test_layout_transform_in_the_preamble_moves_to_the_host_only_when_asked(tmp_path):
    """An H/W swap the AIPU runs with DMA copies: it stays in the core unless the config moves it."""
    model = classifier("layout")
    kept = compile_(model, tmp_path / "kept")
    assert "Transpose" in {n.op for n in kept.graph.nodes}
    assert not (kept.output_dir / "host_preprocess.onnx").exists()  # the Transpose blocks the normalisation run
    moved = compile_(model, tmp_path / "moved", remove_layout_transform_from_preamble=True)
    assert "Transpose" not in {n.op for n in moved.graph.nodes}
    pre = onnx.load(moved.output_dir / "host_preprocess.onnx")
    assert [n.op_type for n in pre.graph.node] == ["Transpose", "Mul", "Sub"]
    x = np.random.default_rng(3).random((1, 3, 8, 8), dtype=np.float32)
    got = run_chain(moved.output_dir, {"x": x})["prob"]
    assert np.max(np.abs(got - reference(model, {"x": x})["prob"])) <= 1e-5


def test_condition_cuts_after_the_matmul_with_the_largest_weight(tmp_path):
    model = classifier()
    res = compile_(model, tmp_path, graph_cleaner_condition="maximum_weight_tensor_size", graph_cleaner_node="MatMul")
    # fc1 has 8x16=128 weights, fc2 16x5=80: the core ends after fc1
    assert res.report["graph_cleaner"]["cut_after"] in {"fc1"} | {n.name for n in res.graph.nodes if n.op == "MatMul"}
    post_ops = [n.op_type for n in onnx.load(res.output_dir / "host_postprocess.onnx").graph.node]
    assert "MatMul" in post_ops and "Softmax" in post_ops  # fc2 went to the host with the tail
    assert sum(n.op == "MatMul" for n in res.graph.nodes) == 1
    x = np.random.default_rng(4).random((1, 3, 8, 8), dtype=np.float32)
    assert np.max(np.abs(run_chain(res.output_dir, {"x": x})["prob"] - reference(model, {"x": x})["prob"])) <= 1e-5


def test_first_dimension_condition_and_threshold_choose_differently(tmp_path):
    model = classifier()
    # first dimensions: fc1 8, fc2 16 -> fc2 is chosen, so only Softmax stays after it
    res = compile_(model, tmp_path / "a", graph_cleaner_condition="maximum_weight_tensor_first_dimension_size",
                   graph_cleaner_node="MatMul")
    assert sum(n.op == "MatMul" for n in res.graph.nodes) == 2
    # a threshold above every candidate: a warning, and the automatic split
    res = compile_(model, tmp_path / "b", graph_cleaner_condition="maximum_weight_tensor_size",
                   graph_cleaner_node="MatMul", graph_cleaner_threshold=10_000)
    assert any("graph_cleaner_threshold=10000" in w for w in res.report["warnings"])
    assert res.report["graph_cleaner"]["cut_after"] is None


def test_dumps_are_written_as_named_and_load_in_onnxruntime(tmp_path):
    res = compile_(classifier(), tmp_path, graph_cleaner_dump_full_opt_onnx="full.onnx")
    for name in ("core.onnx", "full.onnx"):
        ort.InferenceSession(str(res.output_dir / name), providers=["CPUExecutionProvider"])
    full = onnx.load(res.output_dir / "full.onnx")
    assert "Softmax" in {n.op_type for n in full.graph.node}


def test_a_dump_name_with_a_directory_is_a_config_error(tmp_path):
    from axdrive.errors import ConfigError

    with pytest.raises(ConfigError, match="graph_cleaner_dump_core_onnx='../core.onnx' is invalid: must be a plain file name"):
        compile_(classifier(), tmp_path, graph_cleaner_dump_core_onnx="../core.onnx")


def test_cleaner_off_keeps_the_whole_model_and_records_why(tmp_path):
    res = compile_(classifier(), tmp_path, run_graph_cleaner=False, graph_cleaner_dump_core_onnx=None,
                   trace_tvm_passes=True)
    assert not (res.output_dir / "host_postprocess.onnx").exists()
    assert "Softmax" in {n.op for n in res.graph.nodes}
    doc = json.loads((res.output_dir / "pass_dependency_graph.json").read_text())
    (row,) = [p for p in doc["passes"] if p["name"] == "graph_cleaner.split"]
    assert row["status"] == "skipped" and row["reason"] == "run_graph_cleaner=false"


def _photo(shape):
    from PIL import Image

    from axdrive.models import fetch_photo

    n, c, h, w = shape
    img = Image.open(fetch_photo("astronaut.png")).convert("RGB").resize((w, h))
    return (np.asarray(img, np.float32).transpose(2, 0, 1)[None] / 255.0).astype(np.float32)


def _real_model_chain(path, name, shape, tmp_path):
    model = onnx.load(path)
    res = driver.compile(path, CompilerConfig(compiler_mode="quantize_only", graph_cleaner_dump_core_onnx="core.onnx"),
                         output_dir=tmp_path / "out", plugins=["no:quantizer", "no:example"],
                         input_shapes={name: shape})
    x = _photo(shape)
    got = run_chain(res.output_dir, {name: x})
    want = reference(model, {name: x})
    for out_name, value in want.items():
        assert np.max(np.abs(got[out_name] - value)) <= 1e-5, out_name
    return res


def test_ppocr_classifier_final_softmax_stays_on_the_accelerator(ppocr_model, tmp_path):
    res = _real_model_chain(ppocr_model, "x", (1, 3, 48, 192), tmp_path)
    # Softmax -> Identity -> output: final through the Identity, over the 2 channels of a 1x2 tensor
    assert not (res.output_dir / "host_postprocess.onnx").exists()
    assert res.report["graph_cleaner"]["final_softmax_on_device"] == ["Softmax@0"]
    assert {"Softmax", "MatMul", "Conv"} <= {n.op for n in res.graph.nodes}


@pytest.mark.slow
def test_yolov8n_decoding_tail_goes_to_the_host(yolo_model, tmp_path):
    res = _real_model_chain(yolo_model, "images", (1, 3, 320, 320), tmp_path)
    post = {n.op_type for n in onnx.load(res.output_dir / "host_postprocess.onnx").graph.node}
    assert {"Softmax", "Reshape", "Sigmoid"} <= post
    core_ops = {n.op for n in res.graph.nodes}
    assert "Softmax" not in core_ops and "Reshape" not in core_ops
    assert sum(n.op == "Conv" for n in res.graph.nodes) == 63  # all but the DFL convolution
