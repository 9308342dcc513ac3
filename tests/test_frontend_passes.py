"""The axdrive-frontend passes: each pass's effect on a small graph, with
numerics unchanged against onnxruntime on the original model."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import structlog
from onnx import TensorProto, helper, numpy_helper

from axdrive.errors import ModelError
from axdrive.onnx_io import to_onnx
from axdrive.passes import CompileSession, PassContext, PluginHost, order_passes
from axdrive.reference import run_float

import axdrive_frontend as fe

try:  # the real config when it imports; the tests only need attribute access
    from axdrive.config import CompilerConfig

    def make_config(**values: Any) -> Any:
        config = CompilerConfig()
        for key, value in values.items():
            setattr(config, key, value)
        return config
except Exception:  # pragma: no cover - config module being written concurrently
    class _Config:
        propagate_span_information = True

    def make_config(**values: Any) -> Any:
        config = _Config()
        config.__dict__.update(values)
        return config


def run_pass(pass_, session: CompileSession) -> dict:
    stats = pass_.run(PassContext(session, pass_, structlog.get_logger()))
    session.graph.verify()
    return dict(stats)


def session_for(model: Any, **inputs: Any) -> CompileSession:
    return CompileSession(config=make_config(), host=None, tracer=None, model=model, inputs=dict(inputs))


def loaded(model: onnx.ModelProto) -> CompileSession:
    session = session_for(model)
    for p in (fe.load, fe.check, fe.shape_infer):
        run_pass(p, session)
    return session


def make(nodes, inputs, outputs, inits=(), opset=17) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "t", inputs, outputs, list(inits)),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def vi(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def assert_same_numerics(model: onnx.ModelProto, graph, shape) -> None:
    """Float executor and onnxruntime on the re-exported IR both match
    onnxruntime on the original model."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 4
    name = graph.inputs[0]
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {name: x})
    exported = ort.InferenceSession(to_onnx(graph).SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {name: x})
    ours = run_float(graph, {name: x})
    for out, e, r in zip(graph.outputs, expected, exported):
        tol = 1e-5 * max(1.0, float(np.abs(e).max()))
        np.testing.assert_allclose(ours[out], e, atol=tol)
        np.testing.assert_allclose(r, e, atol=tol)


def ops(graph) -> Counter:
    return Counter(n.qualified_op for n in graph.nodes)


def test_plugin_is_found_through_the_entry_point_and_ordered_as_a_chain():
    host = PluginHost(autoload=True)
    ordered, _ = order_passes([p for p in host.passes() if p.name.startswith("frontend.")])
    assert [p.name for p in ordered] == ["frontend.load", "frontend.check", "frontend.shape_infer", "frontend.optimize"]
    group = ordered[-1]
    assert [s.name for s in group.subpasses] == [p.name for p in fe.PASSES[3:]]
    assert group.provides == ("graph_optimized",)


def test_disabling_one_optimisation_skips_only_that_rewrite(tmp_path, ppocr_model):
    from axdrive import driver
    from axdrive.config import CompilerConfig

    cfg = CompilerConfig(trace_tvm_passes=True, compiler_mode="quantize_only")
    res = driver.compile(ppocr_model, cfg, output_dir=tmp_path / "o", input_shapes={"x": (1, 3, 48, 192)}, plugins=["no:quantizer", "no:example"],
                         disable_passes=["frontend.fold_batchnorm"])
    status = {p["name"]: p["status"] for p in res.report["passes"]}
    assert status["frontend.fold_batchnorm"] == "skipped" and status["frontend.fuse_activations"] == "ok"
    assert status["graph_cleaner.split"] == "ok"
    assert sum(n.op == "BatchNormalization" for n in res.graph.nodes) == 35


def conv_relu_model() -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    return make(nodes, [vi("x", ["N", 2, 5, 5])], [vi("y", None)],
                [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))])


def test_load_reads_session_model_input_shapes_and_span_flag():
    session = session_for(conv_relu_model(), input_shapes={"x": (1, 2, 5, 5)})
    stats = run_pass(fe.load, session)
    assert stats == {"nodes": 2, "constants": 1, "inputs": 1, "outputs": 1, "opset": 17}
    assert session.graph.nodes[0].source == ("conv",)
    session = session_for(conv_relu_model(), input_shapes={"x": (1, 2, 5, 5)})
    session.config = make_config(propagate_span_information=False)
    run_pass(fe.load, session)
    assert all(n.source == () for n in session.graph.nodes)


def test_load_without_input_shape_for_a_dynamic_input_fails_with_the_fix():
    with pytest.raises(ModelError, match=r"--input-shape x=1x2x5x5"):
        run_pass(fe.load, session_for(conv_relu_model()))


def test_check_counts_and_rejects_a_broken_graph():
    session = session_for(conv_relu_model(), input_shapes={"x": (1, 2, 5, 5)})
    run_pass(fe.load, session)
    assert run_pass(fe.check, session) == {"nodes": 2, "tensors": 4, "constants": 1, "op_types": 2}
    session.graph.nodes[1].inputs = ["ghost"]
    with pytest.raises(ModelError, match=r"node 'relu': dangling input 'ghost'"):
        run_pass(fe.check, session)


def test_shape_infer_recomputes_stale_shapes():
    session = session_for(conv_relu_model(), input_shapes={"x": (1, 2, 5, 5)})
    run_pass(fe.load, session)
    session.graph.tensors["y"].shape = (7,)
    stats = run_pass(fe.shape_infer, session)
    assert session.graph.tensors["y"].shape == (1, 3, 5, 5)
    assert stats["tensors"] == 2 and stats["changed"] == 1


def shape_arith_model() -> onnx.ModelProto:
    """y = Reshape(x, [Shape(x)[0], -1]) + (2 * 3)"""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["n", "zero_axes"], ["n1"], name="unsq"),
        helper.make_node("Concat", ["n1", "minus1"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
        helper.make_node("Mul", ["two", "three"], ["six"], name="mul_consts"),
        helper.make_node("Add", ["r", "six"], ["y"], name="add"),
    ]
    inits = [init("zero", np.array(0, np.int64)), init("zero_axes", np.array([0], np.int64)),
             init("minus1", np.array([-1], np.int64)), init("two", np.array(2, np.float32)),
             init("three", np.array(3, np.float32))]
    return make(nodes, [vi("x", [2, 3, 4])], [vi("y", None)], inits)


def test_fold_constants_removes_shape_arithmetic():
    model = shape_arith_model()
    session = loaded(model)
    stats = run_pass(fe.fold_constants, session)
    assert stats["shape_of_static"] == 1 and stats["constant_inputs"] == 4
    assert ops(session.graph) == Counter({"Reshape": 1, "Add": 1})
    assert session.graph.constant("target").tolist() == [2, -1]
    assert session.graph.constant("six") == 6
    assert_same_numerics(model, session.graph, (2, 3, 4))


def test_eliminate_dead_code_drops_identities_unused_nodes_and_constants():
    nodes = [helper.make_node("Identity", ["x"], ["i"], name="ident"),
             helper.make_node("Relu", ["i"], ["y"], name="relu"),
             helper.make_node("Neg", ["x"], ["unused"], name="dead"),
             helper.make_node("Mul", ["unused", "k"], ["unused2"], name="dead2")]
    model = make(nodes, [vi("x", [1, 4])], [vi("y", None)], [init("k", np.ones(4, np.float32))])
    session = loaded(model)
    stats = run_pass(fe.eliminate_dead_code, session)
    assert stats["identity"] == 1 and stats["dead_nodes"] == 2 and stats["dead_constants"] == 1
    assert [(n.op, n.inputs) for n in session.graph.nodes] == [("Relu", ["x"])]
    assert "k" not in session.graph.tensors
    assert_same_numerics(model, session.graph, (1, 4))


@pytest.mark.parametrize("with_bias", [True, False])
def test_fold_batchnorm_folds_into_the_conv(with_bias):
    rng = np.random.default_rng(2)
    conv_in = ["x", "w", "b"] if with_bias else ["x", "w"]
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="conv", group=2, pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["y"], name="bn", epsilon=1e-3)]
    inits = [init("w", rng.standard_normal((4, 1, 3, 3)).astype(np.float32)),
             init("b", rng.standard_normal(4).astype(np.float32)),
             init("g", rng.standard_normal(4).astype(np.float32)), init("beta", rng.standard_normal(4).astype(np.float32)),
             init("m", rng.standard_normal(4).astype(np.float32)),
             init("v", (np.abs(rng.standard_normal(4)) + 0.5).astype(np.float32))]
    model = make(nodes, [vi("x", [1, 2, 6, 6])], [vi("y", None)], inits if with_bias else inits[:1] + inits[2:])
    session = loaded(model)
    stats = run_pass(fe.fold_batchnorm, session)
    assert stats["conv_batchnorm"] == 1
    (conv,) = session.graph.nodes
    assert conv.op == "Conv" and conv.outputs == ["y"] and conv.source == ("conv", "bn")
    assert conv.attrs["group"] == 2
    assert_same_numerics(model, session.graph, (1, 2, 6, 6))


def test_fold_batchnorm_leaves_a_conv_with_other_users():
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "g", "g", "g"], ["y"], name="bn"),
             helper.make_node("Relu", ["c"], ["z"], name="relu")]
    model = make(nodes, [vi("x", [1, 1, 3, 3])], [vi("y", None), vi("z", None)],
                 [init("w", rng.standard_normal((1, 1, 1, 1)).astype(np.float32)), init("g", np.ones(1, np.float32))])
    session = loaded(model)
    assert run_pass(fe.fold_batchnorm, session)["conv_batchnorm"] == 0


@pytest.mark.parametrize("shape", [(1, 4, 5, 5), (1, 4)])
def test_a_batchnorm_no_conv_absorbs_becomes_a_per_channel_multiply_add(shape):
    """After an activation (or on a rank-2 tensor) nothing absorbs the BatchNormalization: it becomes
    ``x * factor + shift`` with per-channel constants, which quantize and lower like any elementwise op."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "g", "beta", "m", "v"], ["y"], name="bn", epsilon=1e-3)]
    inits = [init("g", rng.standard_normal(4).astype(np.float32)), init("beta", rng.standard_normal(4).astype(np.float32)),
             init("m", rng.standard_normal(4).astype(np.float32)),
             init("v", (np.abs(rng.standard_normal(4)) + 0.5).astype(np.float32))]
    model = make(nodes, [vi("x", list(shape))], [vi("y", None)], inits)
    session = loaded(model)
    stats = run_pass(fe.fold_batchnorm, session)
    assert stats["conv_batchnorm"] == 0 and stats["batchnorm_affine"] == 1
    assert [n.op for n in session.graph.nodes] == ["Relu", "Mul", "Add"]
    assert session.graph.nodes[-1].outputs == ["y"] and session.graph.nodes[-1].source == ("bn",)
    factor = session.graph.constant(session.graph.nodes[1].inputs[1])
    assert factor.shape == (1, 4, *([1] * (len(shape) - 2)))
    assert_same_numerics(model, session.graph, shape)


def activation_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"], name="sig"),
        helper.make_node("Mul", ["s", "x"], ["silu"], name="silu_mul"),
        helper.make_node("Add", ["silu", "three"], ["a3"], name="add3"),
        helper.make_node("Clip", ["a3", "zero", "six"], ["c"], name="clip"),
        helper.make_node("Mul", ["silu", "c"], ["m"], name="hs_mul"),
        helper.make_node("Div", ["m", "six"], ["hs1"], name="hs_div"),
        helper.make_node("HardSigmoid", ["hs1"], ["hsig"], name="hsig", alpha=1 / 6, beta=0.5),
        helper.make_node("Mul", ["hs1", "hsig"], ["hs2"], name="hs2_mul"),
        helper.make_node("HardSigmoid", ["hs2"], ["se"], name="se_gate", alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["hs2", "se"], ["gated"], name="se_mul"),
        helper.make_node("Clip", ["gated", "zero", "six"], ["y"], name="relu6"),
    ]
    inits = [init("three", np.array(3, np.float32)), init("zero", np.array(0, np.float32)),
             init("six", np.array(6, np.float32))]
    return make(nodes, [vi("x", [2, 8])], [vi("y", None)], inits, opset=11)


def test_fuse_activations_forms_silu_hardswish_and_relu6():
    model = activation_model()
    session = loaded(model)
    stats = run_pass(fe.fuse_activations, session)
    assert (stats["silu"], stats["hardswish_mul_div"], stats["hardswish_hardsigmoid"], stats["relu6"]) == (1, 1, 1, 1)
    assert [n.qualified_op for n in session.graph.nodes] == \
        ["axdrive.SiLU", "HardSwish", "HardSwish", "HardSigmoid", "Mul", "axdrive.Relu6"]
    # opset 11 has no HardSwish and ONNX no SiLU/Relu6: the export expands them
    exported = to_onnx(session.graph)
    assert {n.op_type for n in exported.graph.node} <= {"Sigmoid", "Mul", "HardSigmoid", "Clip"}
    onnx.checker.check_model(exported)
    assert_same_numerics(model, session.graph, (2, 8))


def test_whole_frontend_pipeline_keeps_numerics():
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"], name="bn"),
             helper.make_node("Sigmoid", ["bn"], ["s"], name="sig"),
             helper.make_node("Mul", ["bn", "s"], ["act"], name="mul"),
             helper.make_node("Shape", ["act"], ["shape"], name="shape"),
             helper.make_node("Reshape", ["act", "shape"], ["y"], name="reshape")]
    inits = [init("w", rng.standard_normal((3, 2, 3, 3)).astype(np.float32))] + \
        [init(k, (np.abs(rng.standard_normal(3)) + 0.5).astype(np.float32)) for k in ("g", "beta", "m", "v")]
    model = make(nodes, [vi("x", [1, 2, 5, 5])], [vi("y", None)], inits)
    session = session_for(model)
    for p in fe.PASSES:
        run_pass(p, session)
    assert ops(session.graph) == Counter({"Conv": 1, "axdrive.SiLU": 1, "Reshape": 1})
    assert_same_numerics(model, session.graph, (1, 2, 5, 5))
