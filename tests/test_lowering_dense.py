"""``lowering.rewrite_dense_to_conv2d``: Gemm/MatMul with constant weights become 1x1 convolutions."""

from __future__ import annotations

import numpy as np
from onnx import helper

from _codegen_support import int8_core
from _toy_models import toy_model

from axdrive.ir.rewrite import rewrite
from axdrive.reference import run_integer
from axdrive_lowering._rules_dense import DENSE_RULES


def _dense_model(op):
    rng = np.random.default_rng(4)
    if op == "Gemm":
        inits = {"w": rng.normal(0, 0.3, (6, 10)).astype(np.float32), "b": rng.normal(0, 0.1, 6).astype(np.float32)}
        node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    else:
        inits = {"w": rng.normal(0, 0.3, (10, 6)).astype(np.float32)}
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
    return toy_model([node], inits, x_shape=[1, 10], name="dense")


def _feeds(shape, n=3):
    return [{"x": np.random.default_rng(s).integers(-128, 128, shape).astype(np.int8)} for s in range(n)]


def test_matmul_and_gemm_become_a_1x1_conv_between_reshapes_with_identical_results(tmp_path):
    for op in ("MatMul", "Gemm"):
        core = int8_core(_dense_model(op), tmp_path / op, (1, 10))
        lowered = core.copy()
        hits = rewrite(lowered, DENSE_RULES)
        assert hits == {"dense_to_conv2d": 1}
        assert [n.op for n in lowered.nodes] == ["Reshape", "Conv", "Reshape"]
        conv = lowered.nodes[1]
        assert lowered.constant(conv.inputs[1]).shape == (6, 10, 1, 1)
        assert lowered.tensors[conv.outputs[0]].shape == (1, 6, 1, 1)
        lowered.verify()
        for feeds in _feeds((1, 10)):
            np.testing.assert_array_equal(run_integer(lowered, feeds)["y"], run_integer(core, feeds)["y"])


def test_a_dense_layer_on_a_larger_input_is_left_alone(tmp_path):
    core = int8_core(_dense_model("MatMul"), tmp_path, (1, 10))
    node = core.nodes[0]
    core.tensors[node.inputs[0]].shape = (1, 2, 10)  # not a 2-D input: not a 1x1 map
    assert rewrite(core, DENSE_RULES) == {"dense_to_conv2d": 0}
