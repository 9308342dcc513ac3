"""ONNX import/export: round trip, and one clear one-line error per malformed input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from axdrive.errors import ModelError, UnsupportedOperatorError, UsageError
from axdrive.onnx_io import load_model, save_model, to_onnx
from axdrive.reference import run_float


def small_model(opset: int = 17, batch: int | str = 1) -> onnx.ModelProto:
    """x[batch,2,4,4] -> Conv -> Relu -> Reshape(shape from Shape) -> Softmax"""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "w")
    flat = numpy_helper.from_array(np.array([0, -1], np.int64), "flat")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "flat"], ["f"], name="reshape"),
        helper.make_node("Softmax", ["f"], ["y"], name="softmax", axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 48])
    model = helper.make_model(helper.make_graph(nodes, "small", [x], [y], [w, flat]),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def run_ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def write(tmp_path: Path, model: onnx.ModelProto, name: str = "m.onnx") -> Path:
    path = tmp_path / name
    path.write_bytes(model.SerializeToString())
    return path


def test_round_trip_runs_in_onnxruntime_with_identical_outputs(tmp_path):
    model = small_model()
    graph = load_model(write(tmp_path, model))
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float32)
    expected = run_ort(model, {"x": x})[0]
    np.testing.assert_array_equal(run_ort(to_onnx(graph), {"x": x})[0], expected)
    np.testing.assert_allclose(run_float(graph, {"x": x})["y"], expected, atol=1e-6)
    assert [n.name for n in graph.nodes] == ["conv", "relu", "reshape", "softmax"]
    assert graph.tensors["f"].shape == (1, 48)
    assert graph.nodes[0].source == ("conv",)


def test_save_model_is_deterministic(tmp_path):
    graph = load_model(small_model())
    save_model(graph, tmp_path / "a.onnx")
    save_model(load_model(tmp_path / "a.onnx"), tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


def test_keep_sources_false_leaves_sources_empty():
    graph = load_model(small_model(), keep_sources=False)
    assert all(node.source == () for node in graph.nodes)


def test_constant_nodes_become_constants():
    model = small_model()
    model.graph.initializer.pop()  # "flat" now comes from a Constant node
    model.graph.node.insert(0, helper.make_node("Constant", [], ["flat"], name="k",
                                                value=numpy_helper.from_array(np.array([0, -1], np.int64))))
    graph = load_model(model)
    assert graph.constant("flat").tolist() == [0, -1]
    assert "Constant" not in {n.op for n in graph.nodes}


def one_line_error(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_garbage_file_is_not_a_valid_onnx_model(tmp_path):
    path = tmp_path / "garbage.onnx"
    path.write_bytes(b"this is not a model\x00\xff" * 10)
    with pytest.raises(ModelError, match=r"garbage\.onnx: not a valid ONNX model") as info:
        load_model(path)
    one_line_error(info)


def test_truncated_file_is_not_a_valid_onnx_model(tmp_path):
    data = small_model().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"cut\.onnx: not a valid ONNX model") as info:
        load_model(path)
    one_line_error(info)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ModelError, match=r"nope\.onnx: model file does not exist"):
        load_model(tmp_path / "nope.onnx")


def test_missing_initializer_is_a_dangling_input_naming_file_and_node(tmp_path):
    model = small_model()
    del model.graph.initializer[0]
    with pytest.raises(ModelError, match=r"m\.onnx: node 'conv': dangling input 'w'") as info:
        load_model(write(tmp_path, model))
    one_line_error(info)


def test_cycle_is_named(tmp_path):
    model = small_model()
    model.graph.node[1].input[0] = "f"  # relu reads reshape's output, which needs relu
    with pytest.raises(ModelError, match=r"m\.onnx: node 'relu': the graph has a cycle: relu -> reshape -> relu"):
        load_model(write(tmp_path, model))


def test_unknown_operator_is_named(tmp_path):
    model = small_model()
    model.graph.node[1].op_type = "Frobnicate"
    with pytest.raises(UnsupportedOperatorError, match=r"node 'relu': operator 'Frobnicate' is not an ONNX operator"):
        load_model(write(tmp_path, model))


def test_an_operator_onnx_does_not_define_is_named(tmp_path):
    """An ONNX operator without a numpy kernel loads (onnxruntime runs it: tests/test_byom.py); a name ONNX does
    not define is refused at once, naming the node."""
    model = small_model()
    model.graph.node[1].op_type = "Frobnicate"
    with pytest.raises(UnsupportedOperatorError, match=r"node 'relu': operator 'Frobnicate' is not an ONNX operator"):
        load_model(write(tmp_path, model))


def test_unknown_domain_is_named(tmp_path):
    model = small_model()
    model.graph.node[1].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOperatorError, match=r"node 'relu': operator 'Relu' of domain 'com.example'"):
        load_model(write(tmp_path, model))


def test_too_new_opset_is_rejected(tmp_path):
    from axdrive.onnx_io import MAX_OPSET

    with pytest.raises(ModelError, match=rf"m\.onnx: opset {MAX_OPSET + 1} is newer than the supported opsets "
                                         rf"11\.\.{MAX_OPSET}"):
        load_model(write(tmp_path, small_model(opset=MAX_OPSET + 1)))


def test_old_opset_is_upgraded(tmp_path):
    graph = load_model(write(tmp_path, small_model(opset=9)))
    assert graph.opset == 11
    x = np.ones((1, 2, 4, 4), np.float32)
    np.testing.assert_allclose(run_float(graph, {"x": x})["y"], run_ort(small_model(), {"x": x})[0], atol=1e-6)


def test_dynamic_shape_error_says_how_to_fix_it():
    with pytest.raises(ModelError, match=r"input 'x' has a dynamic shape \[\?,2,4,4\]; set it with "
                                         r"--input-shape x=1x2x4x4") as info:
        load_model(small_model(batch="N"))
    one_line_error(info)


def test_input_shapes_fix_dynamic_dimensions():
    graph = load_model(small_model(batch="N"), input_shapes={"x": (2, 2, 4, 4)})
    assert graph.tensors["x"].shape == (2, 2, 4, 4)
    assert graph.tensors["y"].shape == (2, 48)


def test_input_shapes_must_name_an_input_and_match():
    with pytest.raises(UsageError, match=r"names 'images', which is not a model input \(inputs: x\)"):
        load_model(small_model(), input_shapes={"images": (1, 3, 8, 8)})
    with pytest.raises(UsageError, match=r"does not match the model's shape \[1,2,4,4\]"):
        load_model(small_model(), input_shapes={"x": (1, 3, 4, 4)})


def external_model(tmp_path: Path, location: str) -> Path:
    model = small_model()
    onnx.save_model(model, tmp_path / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    model = onnx.load(tmp_path / "ext.onnx", load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    return write(tmp_path, model, "ext.onnx")


def test_external_data_inside_the_model_directory_loads(tmp_path):
    graph = load_model(external_model(tmp_path, "weights.bin"))
    assert graph.constant("w").shape == (3, 2, 3, 3)


def test_external_data_outside_the_model_directory_is_refused(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    path = external_model(model_dir, "../weights.bin")
    (model_dir / "weights.bin").rename(tmp_path / "weights.bin")
    with pytest.raises(ModelError, match=r"external data '\.\./weights\.bin' of tensor 'w' is outside the model's "
                                         r"directory") as info:
        load_model(path)
    one_line_error(info)


def test_missing_external_data_file_is_named(tmp_path):
    path = external_model(tmp_path, "weights.bin")
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelError, match=r"external data file 'weights\.bin' of tensor 'w' does not exist"):
        load_model(path)


def test_model_proto_input_is_not_modified():
    model = small_model(batch="N")
    before = model.SerializeToString()
    load_model(model, input_shapes={"x": (1, 2, 4, 4)})
    assert model.SerializeToString() == before
