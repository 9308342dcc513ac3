"""The quantizer plugin: calibration, schemes, the quantized IR, the QDQ model,
the three compiler modes, the debug/export properties, and agreement between
onnxruntime and the integer reference on real models."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.errors import CalibrationError
from axdrive.passes import PluginHost, resolve_pipeline
from axdrive.reference import run_float, run_integer

from _toy_models import onnx_model as _model, value_info as _vi

RNG = np.random.default_rng(3)


def mobile_block():
    """conv+Relu -> depthwise conv -> Sigmoid, Add(sigmoid, dw) -> 1x1 conv -> Clip(0,6)
    -> GlobalAveragePool -> Flatten -> MatMul: a MobileNet-like block with every op kind of a classifier."""
    rng = np.random.default_rng(0)
    inits = {"w1": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32),
             "b1": rng.normal(0, 0.1, 8).astype(np.float32),
             "w2": rng.normal(0, 0.5, (8, 1, 3, 3)).astype(np.float32) * np.linspace(0.1, 3, 8).reshape(8, 1, 1, 1)
             .astype(np.float32),
             "b2": rng.normal(0, 0.1, 8).astype(np.float32),
             "w3": rng.normal(0, 0.3, (8, 8, 1, 1)).astype(np.float32),
             "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32),
             "fc": rng.normal(0, 0.3, (8, 5)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8, name="dw"),
             helper.make_node("Sigmoid", ["c2"], ["s2"], name="sigmoid"),
             helper.make_node("Add", ["s2", "c2"], ["a"], name="add"),
             helper.make_node("Conv", ["a", "w3"], ["c3"], name="conv3"),
             helper.make_node("Clip", ["c3", "lo", "hi"], ["r3"], name="clip"),
             helper.make_node("GlobalAveragePool", ["r3"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc")]
    return _model(nodes, [_vi("x", [1, 3, 16, 16])], [_vi("y", [1, 5])], inits)


def branchy():
    """Two branches of different ranges concatenated, max-pooled, resized, multiplied
    with each other and scaled by constants, ending in a Softmax (kept in the core)."""
    rng = np.random.default_rng(1)
    inits = {"wa": rng.normal(0, 0.3, (4, 3, 1, 1)).astype(np.float32),
             "wb": rng.normal(0, 2.0, (4, 3, 1, 1)).astype(np.float32),
             "k": rng.uniform(0.5, 2, (1, 8, 1, 1)).astype(np.float32),
             "six": rng.uniform(4, 8, (1, 8, 1, 1)).astype(np.float32),
             "scales": np.array([1, 1, 2, 2], np.float32),
             "shape": np.array([1, 8, 64], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a"),
             helper.make_node("Conv", ["x", "wb"], ["b"], name="conv_b"),
             helper.make_node("HardSwish", ["b"], ["bh"], name="hswish"),
             helper.make_node("Concat", ["a", "bh"], ["c"], axis=1, name="concat"),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Resize", ["p", "", "scales"], ["u"], mode="nearest", name="up"),
             helper.make_node("Mul", ["u", "c"], ["m"], name="mul"),
             helper.make_node("Mul", ["m", "k"], ["mk"], name="scale"),
             helper.make_node("Div", ["mk", "six"], ["d"], name="div"),
             helper.make_node("LeakyRelu", ["d"], ["l"], alpha=0.1, name="leaky"),
             helper.make_node("Reshape", ["l", "shape"], ["rs"], name="reshape"),
             helper.make_node("Softmax", ["rs"], ["y"], axis=-1, name="softmax")]
    return _model(nodes, [_vi("x", [1, 3, 8, 8])], [_vi("y", [1, 8, 64])], inits)


def _calibration(shape, n=3, seed=0):
    return {"x": np.random.default_rng(seed).normal(0, 1, (n, *shape[1:])).astype(np.float32)}


def _compile(model, tmp_path, name="out", calibration=None, **props):
    """Compile in ``quantize_only`` unless told otherwise: these tests look at the
    quantized graph, which lowering passes would go on to rewrite."""
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    for key, value in props.items():
        setattr(cfg, key, value)
    if calibration is None:
        calibration = _calibration([1, 3, 16, 16])
    return driver.compile(model, cfg, output_dir=tmp_path / name, calibration=calibration)


def _stats(result, name):
    return next(p for p in result.report["passes"] if p["name"] == name)


def _sqnr(ref, approx):
    ref, approx = np.asarray(ref, np.float64), np.asarray(approx, np.float64)
    return 10 * np.log10((ref ** 2).sum() / max(((ref - approx) ** 2).sum(), 1e-30))


# -- the quantized IR ---------------------------------------------------------------
def test_quantized_graph_is_int8_with_qparams_weights_per_channel_and_int32_biases(tmp_path):
    r = _compile(mobile_block(), tmp_path, remove_io_quantization=True)
    g = r.graph
    for node in g.nodes:
        assert "integer_op" in node.attrs, node.name
        for out in node.outputs:
            t = g.tensors[out]
            assert t.dtype == np.int8 and t.qparams is not None and np.all(t.qparams.scale > 0)
    conv1 = g.node("conv1")
    w, b = g.tensors[conv1.inputs[1]], g.tensors[conv1.inputs[2]]
    assert w.dtype == np.int8 and w.qparams.axis == 0 and w.qparams.scale.shape == (8,)
    assert np.all(w.qparams.zero_point == 0) and np.abs(w.data).max() == 127
    assert b.dtype == np.int32
    assert conv1.attrs["requant_multiplier"].shape == (8,) and conv1.attrs["requant_shift"].shape == (8,)
    assert np.all((conv1.attrs["requant_multiplier"] >= 2**30) & (conv1.attrs["requant_multiplier"] < 2**31))


def test_relu_and_clip_fuse_into_the_preceding_conv_clamp(tmp_path):
    r = _compile(mobile_block(), tmp_path, remove_io_quantization=True)
    g = r.graph
    assert not [n for n in g.nodes if n.op in ("Relu", "Clip", "Relu6")]
    conv1, conv3 = g.node("conv1"), g.node("conv3")
    assert conv1.outputs == ["r1"] and conv1.attrs["fused_activation"] == "Relu"
    assert conv1.attrs["clamp_min"] == max(-128, int(g.tensors["r1"].qparams.zero_point))
    qp = g.tensors[conv3.outputs[0]].qparams
    assert conv3.attrs["clamp_max"] == min(127, int(qp.zero_point) + round(6.0 / float(qp.scale)))
    assert _stats(r, "quantizer.quantize")["stats"]["activations_fused"] == 2


def test_integer_reference_tracks_the_float_model(tmp_path):
    model = mobile_block()
    r = _compile(model, tmp_path, remove_io_quantization=True)
    x = _calibration([1, 3, 16, 16], n=1, seed=9)["x"]
    from axdrive.onnx_io import load_model

    ref = run_float(load_model(model), {"x": x})["y"]
    qp_in, qp_out = r.graph.tensors["x"].qparams, r.graph.tensors["y"].qparams
    xq = np.clip(np.rint(x / qp_in.scale) + qp_in.zero_point, -128, 127).astype(np.int8)
    y = qp_out.dequantize(run_integer(r.graph, {"x": xq})["y"])
    assert _sqnr(ref, y) > 25


def test_every_op_kind_agrees_with_onnxruntime_within_one_lsb(tmp_path):
    r = _compile(branchy(), tmp_path, calibration=_calibration([1, 3, 8, 8]), run_graph_cleaner=False)
    kinds = {n.attrs["integer_op"] for n in r.graph.nodes}
    assert {"mac", "lut", "concat", "move", "mul", "softmax"} <= kinds
    q = r.report["quantization"]
    assert q["ort_agreement_1lsb"] >= 0.99, q
    assert r.graph.node("div").op == "Mul"  # x / c (per channel) became x * (1/c)


def test_luts_are_built_for_nonlinear_functions(tmp_path):
    r = _compile(branchy(), tmp_path, calibration=_calibration([1, 3, 8, 8]), run_graph_cleaner=False)
    luts = [n for n in r.graph.nodes if n.attrs["integer_op"] == "lut"]
    assert {n.op for n in luts} == {"HardSwish", "LeakyRelu"}
    assert all(n.attrs["lut"].shape == (256,) and n.attrs["lut"].dtype == np.int8 for n in luts)
    assert _stats(r, "quantizer.quantize")["stats"]["luts_built"] == 3  # + the softmax exponent table


# -- the QDQ model and modes --------------------------------------------------------------
def test_quantize_only_writes_a_qdq_model_that_onnxruntime_runs(tmp_path):
    model = mobile_block()
    r = _compile(model, tmp_path, compiler_mode="quantize_only")
    path = r.artifacts["quantized_model.onnx"]
    qdq = onnx.load(str(path))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in qdq.graph.node}
    assert qdq.opset_import[0].version == 17
    x = _calibration([1, 3, 16, 16], n=1, seed=5)["x"]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert _sqnr(want, got) > 25
    assert r.report["quantization"]["ort_agreement_1lsb"] >= 0.99


def test_onnx_opset_version_sets_the_opset_of_the_qdq_model(tmp_path):
    r = _compile(mobile_block(), tmp_path, compiler_mode="quantize_only", onnx_opset_version=19)
    assert onnx.load(str(r.artifacts["quantized_model.onnx"])).opset_import[0].version == 19


def test_quantize_and_lower_writes_the_qdq_model_too(tmp_path):
    r = _compile(mobile_block(), tmp_path, compiler_mode="quantize_and_lower")
    assert "quantized_model.onnx" in r.artifacts
    assert _stats(r, "quantizer.import_qdq")["status"] == "skipped"


def test_pipeline_says_why_each_quantizer_pass_runs_or_is_skipped():
    host = PluginHost()
    cfg = CompilerConfig()
    cfg.compiler_mode = "lower_only"
    entries = {e.name: e.enablement for e in resolve_pipeline(host.passes(), cfg)}
    assert not entries["quantizer.calibrate"].enabled
    assert entries["quantizer.calibrate"].reason == "compiler_mode=lower_only"
    assert entries["quantizer.import_qdq"].enabled
    assert entries["quantizer.debug"].reason == "compiler_mode=lower_only"


def _ort_quantized(tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    float_path = tmp_path / "float.onnx"
    onnx.save(mobile_block(), float_path)
    batches = iter({"x": s[None]} for s in _calibration([1, 3, 16, 16], n=4)["x"])

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(batches, None)

    qdq_path = tmp_path / "qdq.onnx"
    quantize_static(str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return qdq_path


def test_lower_only_takes_the_scales_of_an_onnxruntime_qdq_model_as_they_are(tmp_path):
    qdq_path = _ort_quantized(tmp_path)
    qdq = onnx.load(str(qdq_path))
    inits = {i.name: numpy_helper.to_array(i) for i in qdq.graph.initializer}
    r = _compile(qdq_path, tmp_path, compiler_mode="lower_only", remove_io_quantization=True)
    assert _stats(r, "quantizer.calibrate")["status"] == "skipped"
    assert "quantized_model.onnx" not in r.artifacts
    from axdrive_quantizer import QUANTIZED_CORE

    g = r.session.stash[QUANTIZED_CORE]  # r.graph went on through the lowering passes
    q_of = {n.input[0]: n for n in qdq.graph.node if n.op_type == "QuantizeLinear"}
    assert float(g.tensors["x"].qparams.scale) == pytest.approx(float(inits[q_of["x"].input[1]]), rel=1e-7)
    # the integer weights and biases are the model's own (the frontend does not fold their DequantizeLinear)
    assert _stats(r, "quantizer.import_qdq")["stats"]["weights"] == 6
    dq_of = {n.output[0]: n for n in qdq.graph.node if n.op_type == "DequantizeLinear"}
    conv1 = g.node("conv1")
    source = next(n for n in qdq.graph.node if n.name == "conv1")
    np.testing.assert_array_equal(g.tensors[conv1.inputs[1]].data, inits[dq_of[source.input[1]].input[0]])
    np.testing.assert_array_equal(g.tensors[conv1.inputs[2]].data, inits[dq_of[source.input[2]].input[0]])
    # the integer graph computes what onnxruntime computes on the QDQ model, within 1 LSB
    x = _calibration([1, 3, 16, 16], n=1, seed=11)["x"]
    want = ort.InferenceSession(str(qdq_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    qp_in, qp_out = g.tensors["x"].qparams, g.tensors[g.outputs[0]].qparams
    xq = np.clip(np.rint(x / qp_in.scale) + qp_in.zero_point, -128, 127).astype(np.int8)
    got = qp_out.dequantize(run_integer(g, {"x": xq})[g.outputs[0]])
    assert np.abs(got - want).max() <= float(qp_out.scale) * 1.001


def test_remove_io_quantization_makes_inputs_and_outputs_int8(tmp_path):
    kept = _compile(mobile_block(), tmp_path, "kept", compiler_mode="quantize_only")
    removed = _compile(mobile_block(), tmp_path, "removed", compiler_mode="quantize_only", remove_io_quantization=True)
    assert kept.graph.tensors["x"].dtype == np.float32 and kept.graph.nodes[0].op == "QuantizeLinear"
    assert kept.graph.nodes[-1].op == "DequantizeLinear"
    assert removed.graph.tensors["x"].dtype == np.int8
    qdq = ort.InferenceSession(str(removed.artifacts["quantized_model.onnx"]), providers=["CPUExecutionProvider"])
    assert qdq.get_inputs()[0].type == "tensor(int8)" and qdq.get_outputs()[0].type == "tensor(int8)"


# -- schemes ------------------------------------------------------------------------
def test_histogram_range_minimises_the_quantization_error_of_a_long_tail():
    from axdrive_quantizer._observe import Observer
    from axdrive_quantizer._ranges import activation_qparams

    x = np.random.default_rng(2).laplace(size=(4, 1, 250_000)).astype(np.float32)
    observer = Observer(["x"])
    for batch in x:  # one histogram, grown over batches
        observer.update({"x": batch})

    def mse(qp):
        q = np.clip(np.rint(x / qp.scale) + qp.zero_point, -128, 127)
        return float(((qp.dequantize(q) - x) ** 2).mean())

    hist = activation_qparams(observer.stats["x"], "histogram", False)
    minmax = activation_qparams(observer.stats["x"], "min_max", False)
    assert float(hist.scale) < 0.75 * float(minmax.scale)  # the tail is clipped
    assert mse(hist) < 0.6 * mse(minmax)
    best = min(mse(type(hist).per_tensor(2 * h / 255, 0)) for h in np.linspace(6, 14, 33))
    assert mse(hist) <= best * 1.02  # as good as a brute-force search over symmetric clips


def test_clip_weight_keeps_more_of_the_tail_than_plain_mse_and_less_than_min_max():
    from axdrive_quantizer._observe import Observer
    from axdrive_quantizer._ranges import activation_qparams

    x = np.random.default_rng(2).laplace(size=(1, 1, 400_000)).astype(np.float32)
    observer = Observer(["x"])
    observer.update({"x": x})
    st = observer.stats["x"]
    plain, weighted = (float(activation_qparams(st, "histogram", False, w).scale) for w in (1.0, 6.0))
    minmax = float(activation_qparams(st, "min_max", False).scale)
    assert plain < weighted < minmax

    def clipped(scale):  # fraction of values beyond a symmetric grid of this scale
        return float((np.abs(x) > 127.5 * scale).mean())

    assert clipped(weighted) < 0.5 * clipped(plain)


def silu_block():
    """Conv -> x * Sigmoid(x) (the frontend fuses it into axdrive.SiLU) -> Conv."""
    rng = np.random.default_rng(4)
    inits = {"w1": rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32),
             "w2": rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
             helper.make_node("Mul", ["c", "s"], ["a"], name="silu"),
             helper.make_node("Conv", ["a", "w2"], ["y"], name="conv2")]
    return _model(nodes, [_vi("x", [1, 3, 16, 16])], [_vi("y", [1, 4, 16, 16])], inits)


def test_silu_inputs_get_weighted_clipping_and_other_tensors_plain_mse(tmp_path, monkeypatch):
    import axdrive_quantizer._ranges as ranges

    on = _compile(silu_block(), tmp_path, "on", calibration=_laplace(), remove_io_quantization=True)
    assert _stats(on, "quantizer.calibrate")["stats"]["clip_weighted_tensors"] == 1
    assert [n.op for n in on.graph.nodes if n.attrs["integer_op"] == "lut"] == ["SiLU"]
    monkeypatch.setattr(ranges, "CLIP_WEIGHTS", {})
    off = _compile(silu_block(), tmp_path, "off", calibration=_laplace(), remove_io_quantization=True)
    assert _stats(off, "quantizer.calibrate")["stats"]["clip_weighted_tensors"] == 0
    lut_in = next(n.inputs[0] for n in on.graph.nodes if n.op == "SiLU")
    s_on, s_off = (float(r.graph.tensors[lut_in].qparams.scale) for r in (on, off))
    assert s_on >= s_off  # the SiLU input clips less
    for name, t in on.graph.tensors.items():  # everything else is chosen exactly as before
        if t.data is None and name != lut_in:
            assert float(t.qparams.scale) == float(off.graph.tensors[name].qparams.scale), name
    assert on.report["quantization"]["ort_agreement_1lsb"] >= 0.99


def _laplace(n=20):
    return {"x": np.random.default_rng(2).laplace(size=(n, 3, 16, 16)).astype(np.float32)}


def test_histogram_scheme_grids_are_never_wider_than_min_max_grids(tmp_path):
    hist = _compile(mobile_block(), tmp_path, "h", calibration=_laplace(), remove_io_quantization=True)
    mm = _compile(mobile_block(), tmp_path, "m", calibration=_laplace(), remove_io_quantization=True,
                  quantization_scheme="per_tensor_min_max")
    pairs = [(float(t.qparams.scale), float(mm.graph.tensors[n].qparams.scale))
             for n, t in hist.graph.tensors.items() if t.data is None]
    assert all(h <= m * (1 + 1e-6) for h, m in pairs)
    assert any(h < 0.96 * m for h, m in pairs)  # small data, mild tails: a few percent
    assert hist.report["quantization"]["scheme"] == "per_tensor_histogram"


def test_hybrid_scheme_quantizes_depthwise_inputs_per_channel(tmp_path):
    plain = _compile(mobile_block(), tmp_path, "p", remove_io_quantization=True)
    hybrid = _compile(mobile_block(), tmp_path, "h", remove_io_quantization=True,
                      quantization_scheme="hybrid_per_tensor_per_channel")
    assert plain.graph.tensors["r1"].qparams.axis is None
    qp = hybrid.graph.tensors["r1"].qparams
    assert qp.axis == 1 and qp.scale.shape == (8,) and len(set(qp.scale.tolist())) > 1
    dw = hybrid.graph.node("dw")
    assert np.shape(dw.attrs["in_zero_point"]) == (8,)
    assert len(set(qp.zero_point.tolist())) == 1  # one zero point per tensor: what the AIPU's data path takes
    assert hybrid.report["quantization"]["ort_agreement_1lsb"] >= 0.99


def test_quantize_dw_channel_wise_gives_depthwise_inputs_per_channel_scales(tmp_path):
    off = _compile(mobile_block(), tmp_path, "off", remove_io_quantization=True,
                   quantization_scheme="per_tensor_min_max")
    on = _compile(mobile_block(), tmp_path, "on", remove_io_quantization=True,
                  quantization_scheme="per_tensor_min_max", quantize_dw_channel_wise=True)
    assert off.graph.tensors["r1"].qparams.axis is None
    assert on.graph.tensors["r1"].qparams.axis == 1
    assert _stats(on, "quantizer.quantize")["stats"]["per_channel_activations"] == 1
    x = _calibration([1, 3, 16, 16], n=3)["x"][:1]  # a calibration sample: no range is exceeded
    outs = []
    for r in (off, on):
        qp = r.graph.tensors["r1"].qparams
        qx = np.clip(np.rint(x / r.graph.tensors["x"].qparams.scale) + r.graph.tensors["x"].qparams.zero_point,
                     -128, 127).astype(np.int8)
        outs.append(qp.dequantize(run_integer(r.graph, {"x": qx}, keep_all=True)["r1"]))
    from axdrive.onnx_io import load_model

    ref = run_float(load_model(mobile_block()), {"x": x}, keep_all=True)["r1"]
    assert _sqnr(ref, outs[1]) > _sqnr(ref, outs[0])  # channels of small range get finer grids


# -- properties: export and debug -----------------------------------------------------------
def test_quantized_graph_export_writes_integer_parameters(tmp_path):
    r = _compile(mobile_block(), tmp_path, "on")
    doc = json.loads(r.artifacts["quantized_graph.json"].read_text())
    conv = next(n for n in doc["nodes"] if n["name"] == "conv1")
    assert conv["integer_op"] == "mac" and len(conv["params"]["requant_multiplier"]) == 8
    assert doc["tensors"]["r1"]["quantization"]["dtype"] == "int8"
    off = _compile(mobile_block(), tmp_path, "off", quantized_graph_export=False)
    assert "quantized_graph.json" not in off.artifacts


def test_quantization_debug_reports_layers_worst_first_with_the_dumped_model(tmp_path):
    r = _compile(mobile_block(), tmp_path, quantization_debug=True)
    doc = json.loads(r.artifacts["quantization_debug.json"].read_text())
    sqnr = [row["sqnr_db"] for row in doc["layers"]]
    assert sqnr == sorted(sqnr) and len(sqnr) >= 8
    model = onnx.load(str(r.artifacts["quantization_debug_model.onnx"]))
    assert "r1" in {o.name for o in model.graph.output}
    # the same figures in graph order, each with what it inherited from its inputs and what it added
    ordered = doc["graph_order"]
    assert sorted(r["tensor"] for r in ordered) == sorted(r["tensor"] for r in doc["layers"])
    assert [r["order"] for r in ordered] == sorted(r["order"] for r in ordered)
    for i, row in enumerate(ordered):  # what a layer inherited is an earlier layer's figure
        if row["inherited_db"] is not None:
            assert row["inherited_db"] in {r["sqnr_db"] for r in ordered[:i]}
            assert row["added_db"] == round(row["inherited_db"] - row["sqnr_db"], 3)
    assert ordered[0]["op"] == "input" and ordered[0]["inherited_db"] is None
    assert sum(r["inherited_db"] is not None for r in ordered) == len(ordered) - 1  # all but the input inherit


def test_quantization_debug_writes_into_model_debug_save_dir(tmp_path):
    target = tmp_path / "dbg"
    r = _compile(mobile_block(), tmp_path, quantization_debug=True, model_debug_save_dir=str(target))
    assert (target / "quantization_debug.json").is_file() and (target / "quantization_debug_model.onnx").is_file()
    assert "quantization_debug.json" not in r.artifacts


def test_compiles_are_byte_identical(tmp_path):
    a = _compile(mobile_block(), tmp_path, "a")
    b = _compile(mobile_block(), tmp_path, "b")
    for name in ("quantized_model.onnx", "quantized_graph.json"):
        assert a.artifacts[name].read_bytes() == b.artifacts[name].read_bytes()


# -- calibration input ------------------------------------------------------------------
def test_no_calibration_calibrates_on_the_sample_photos_with_a_warning(tmp_path):
    cfg = CompilerConfig()
    r = driver.compile(mobile_block(), cfg, output_dir=tmp_path / "o")
    assert any("sample photos" in w for w in r.session.warnings)
    assert _stats(r, "quantizer.calibrate")["stats"]["samples"] == 8


def test_calibration_from_a_npy_file(tmp_path):
    path = tmp_path / "cal.npy"
    np.save(path, _calibration([1, 3, 16, 16], n=2)["x"])
    r = _compile(mobile_block(), tmp_path, calibration=str(path))
    assert _stats(r, "quantizer.calibrate")["stats"]["samples"] == 2
    assert r.report["quantization"]["calibration"] == str(path)


@pytest.mark.parametrize("make, message", [
    (lambda p: np.save(p / "c.npy", np.zeros((2, 3, 5, 5), np.float32)) or p / "c.npy", "has shape"),
    (lambda p: np.savez(p / "c.npz", x=np.full((1, 3, 16, 16), np.nan, np.float32)) or p / "c.npz", "NaN"),
    (lambda p: p / "missing.npy", "no such file"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no images"),
    (lambda p: (p / "imgs").mkdir() or (p / "imgs" / "broken.png").write_bytes(b"not a png") and p / "imgs",
     "broken.png: cannot decode image"),
])
def test_bad_calibration_input_fails_with_one_line_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(CalibrationError, match=message) as info:
        _compile(mobile_block(), tmp_path, calibration=str(path))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_calibration_runs_the_host_preprocessing_before_the_core(tmp_path):
    block = mobile_block()
    pre = [helper.make_node("Mul", ["pixels", "inv255"], ["scaled"], name="scale255"),
           helper.make_node("Sub", ["scaled", "mean"], ["x"], name="submean")]
    inits = {i.name: numpy_helper.to_array(i) for i in block.graph.initializer}
    inits.update(inv255=np.array(1 / 255, np.float32), mean=np.array(0.5, np.float32))
    model = _model(pre + list(block.graph.node), [_vi("pixels", [1, 3, 16, 16])], [_vi("y", [1, 5])], inits)
    pixels = {"pixels": np.random.default_rng(0).uniform(0, 255, (3, 3, 16, 16)).astype(np.float32)}
    r = _compile(model, tmp_path, calibration=pixels, remove_io_quantization=True)
    assert "host_preprocess.onnx" in r.artifacts and r.graph.inputs == ["x"]
    assert float(r.graph.tensors["x"].qparams.scale) == pytest.approx(1 / 255, rel=0.02)  # [-0.5, 0.5], not [0, 255]


def test_a_dead_activation_gets_a_valid_scale(tmp_path):
    model = mobile_block()
    for init in model.graph.initializer:
        if init.name in ("w1", "b1"):
            init.CopyFrom(numpy_helper.from_array(np.zeros(numpy_helper.to_array(init).shape, np.float32), init.name))
    r = _compile(model, tmp_path, remove_io_quantization=True)
    qp = r.graph.tensors["r1"].qparams
    assert np.isfinite(qp.scale).all() and (qp.scale > 0).all()
    assert _stats(r, "quantizer.calibrate")["stats"]["constant_tensors"] >= 1
    x = np.zeros((1, 3, 16, 16), np.int8)
    assert np.all(run_integer(r.graph, {"x": x}, keep_all=True)["r1"] == qp.zero_point)


# -- real models ---------------------------------------------------------------------
def _photos(shape, n, resize="bilinear"):
    from axdrive.calibration import ImagePreprocessing, load_images
    from axdrive.models import CALIBRATION_PHOTOS, fetch_photos

    return load_images(fetch_photos(CALIBRATION_PHOTOS[:n]), shape, ImagePreprocessing(resize=resize))


def test_ppocr_onnxruntime_and_integer_reference_agree_within_one_lsb(tmp_path, ppocr_model):
    shape = (1, 3, 48, 192)
    r = driver.compile(ppocr_model, CompilerConfig(compiler_mode="quantize_only"), output_dir=tmp_path / "o",
                       input_shapes={"x": shape},
                       calibration={"x": _photos(shape, 3)})
    q = r.report["quantization"]
    assert q["ort_agreement_1lsb"] >= 0.99, q
    assert q["layers_quantized"] >= 50


@pytest.mark.slow
def test_yolov8n_onnxruntime_and_integer_reference_agree_within_one_lsb(tmp_path, yolo_model):
    shape = (1, 3, 320, 320)
    r = driver.compile(yolo_model, CompilerConfig(compiler_mode="quantize_only"), output_dir=tmp_path / "o",
                       input_shapes={"images": shape},
                       calibration={"images": _photos(shape, 8, "letterbox")})
    q = r.report["quantization"]
    assert q["ort_agreement_1lsb"] >= 0.99, q
    assert q["layers_quantized"] == 63


def test_lower_only_reads_our_own_qdq_model_where_data_movement_runs_on_the_integers(ppocr_model, tmp_path):
    """Our QDQ export lets MaxPool read the quantized tensor directly (onnxruntime runs it on
    uint8); lower_only must take such a model and rebuild the very same integer graph."""
    rng = np.random.default_rng(3)
    cal = {"x": rng.random((2, 3, 48, 192), dtype=np.float32) * 2 - 1}
    first = driver.compile(ppocr_model, CompilerConfig(compiler_mode="quantize_only"), output_dir=tmp_path / "q",
                           calibration=cal, input_shapes={"x": (1, 3, 48, 192)})
    qdq = tmp_path / "q" / "quantized_model.onnx"
    nodes = onnx.load(qdq).graph.node
    quantized = {o for n in nodes if n.op_type == "QuantizeLinear" for o in n.output}
    assert any(n.op_type == "MaxPool" and n.input[0] in quantized for n in nodes)
    again = driver.compile(qdq, CompilerConfig(compiler_mode="lower_only", run_graph_cleaner=False),
                           output_dir=tmp_path / "l", stop_after="quantized")
    x = rng.random((1, 3, 48, 192), dtype=np.float32) * 2 - 1
    (name,) = again.graph.outputs
    assert np.array_equal(run_integer(again.graph, {"x": x})[name], run_integer(first.graph, {"x": x})[name])


def test_histogram_bins_are_floor_and_clip_and_folding_per_tensor_equals_per_batch():
    """The bin indices skip floor and clip (truncation of a value >= 0, the top edge
    folded into the last bin): same counts as the explicit formula; and folding
    one tensor at a time (the executor's on_value) gives the statistics of
    folding whole batches."""
    from axdrive_quantizer._observe import NBINS, Histogram, Observer

    rng = np.random.default_rng(5)
    x = (rng.standard_normal(50_000) * 3).astype(np.float32)
    x[:3] = [np.abs(x).max(), -np.abs(x).max(), 0.0]  # both edges and zero
    hist = Histogram.start(float(np.abs(x).max()), None)
    hist.add(x)
    width = np.float32(NBINS / (2 * hist.radius))
    t = x * width + np.float32(NBINS / 2)
    expected = np.bincount(np.clip(np.floor(t), 0, NBINS - 1).astype(np.int64), minlength=NBINS)
    np.testing.assert_array_equal(hist.counts, expected)

    batches = [rng.laplace(size=(2, 3, 8)).astype(np.float32) * s for s in (1.0, 5.0, 0.5)]
    whole, single = Observer(["a", "b"], per_channel={"a"}), Observer(["a", "b"], per_channel={"a"})
    for b in batches:
        whole.update({"a": b, "b": -b})
        single.fold("a", b)
        single.fold("b", -b)
        single.fold("ignored", b)
    assert sorted(single.stats) == ["a", "b"]
    for name in ("a", "b"):
        w, s = whole.stats[name], single.stats[name]
        assert (w.minimum, w.maximum, w.samples) == (s.minimum, s.maximum, s.samples)
        np.testing.assert_array_equal(w.histogram.counts, s.histogram.counts)
    np.testing.assert_array_equal(whole.stats["a"].channel_histogram.counts, single.stats["a"].channel_histogram.counts)
    assert single.stats["a"].channel_histogram.counts.sum() == 3 * 2 * 8 * 3


@pytest.mark.parametrize("target, batched", [([1, 32], False), ([1, -1], False), ([-1, 32], True)])
def test_calibration_runs_batched_only_where_the_batch_is_not_baked_in(target, batched):
    """A constant Reshape to [1, 32] is seen in the graph (no probe); [1, -1] fails the
    probe's batch-axis check, whose statistics are dropped; [-1, 32] runs batched.
    The statistics are those of one sample at a time whenever batching is off."""
    from axdrive.ir import Graph, Node, Tensor
    from axdrive_quantizer._calibration import CalibrationData, observe
    from axdrive_quantizer._observe import Observer

    graph = Graph(nodes=[Node("r", "Relu", ["x"], ["t"]), Node("f", "Reshape", ["t", "shape"], ["y"])],
                  tensors={"x": Tensor("x", (1, 2, 4, 4), np.float32), "t": Tensor("t", (1, 2, 4, 4), np.float32),
                           "shape": Tensor.constant("shape", np.array(target, np.int64)),
                           "y": Tensor("y", (1, 32), np.float32)},
                  inputs=["x"], outputs=["y"])
    spread = np.array([1.0, 9.0, 0.1, 3.0, 30.0])[:, None, None, None]  # later samples grow the histograms
    x = (np.random.default_rng(6).standard_normal((5, 2, 4, 4)) * spread).astype(np.float32)
    observer = Observer(["x", "t", "y"])
    stats = observe(graph, CalibrationData({"x": x}, "arrays", 5), observer)
    assert (stats["batch_size"] > 1) == batched
    if not batched:
        assert stats["batches"] == 5
        single = Observer(["x", "t", "y"])
        for i in range(5):
            single.update({"x": x[i:i + 1], "t": np.maximum(x[i:i + 1], 0), "y": np.maximum(x[i:i + 1], 0).reshape(1, 32)})
        for name in ("x", "t", "y"):
            a, b = observer.stats[name], single.stats[name]
            assert (a.minimum, a.maximum, a.samples) == (b.minimum, b.maximum, b.samples) == (a.minimum, a.maximum, 5)
            np.testing.assert_array_equal(a.histogram.counts, b.histogram.counts)
