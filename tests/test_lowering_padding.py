"""``lowering.apply_pword_padding`` (and ``lowering.remove_float_io`` before it): channel counts
become whole PWORDs, padded lanes never change a real output."""

from __future__ import annotations

import numpy as np
from onnx import helper

from _toy_models import toy_model

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.reference import run_integer
from axdrive_lowering._float_io import strip_float_io
from axdrive_lowering._padding import IO_EDGE, pad_graph

def _model():
    """conv(3->20) -> depthwise -> Sigmoid, per-channel constant Add, Flatten+MatMul after a pool."""
    rng = np.random.default_rng(2)
    inits = {"w1": rng.normal(0, 0.3, (20, 3, 3, 3)).astype(np.float32),
             "w2": rng.normal(0, 0.3, (20, 1, 3, 3)).astype(np.float32),
             "bias": rng.normal(0, 0.3, (1, 20, 1, 1)).astype(np.float32),
             "fc": rng.normal(0, 0.3, (20, 7)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["d"], pads=[1, 1, 1, 1], group=20),
             helper.make_node("Sigmoid", ["d"], ["s"]),
             helper.make_node("Add", ["s", "bias"], ["b"]),
             helper.make_node("GlobalAveragePool", ["b"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("MatMul", ["f", "fc"], ["y"])]
    return toy_model(nodes, inits, outputs=("y", "b"))


def quantized(tmp_path, remove_io_quantization=True):
    cfg = CompilerConfig()
    cfg.compiler_mode = "quantize_only"
    cfg.run_graph_cleaner = False
    cfg.remove_io_quantization = remove_io_quantization
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    return driver.compile(_model(), cfg, output_dir=tmp_path / "q", calibration=cal).graph


def _feeds(n=3):
    return [{"x": np.random.default_rng(s).integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)} for s in range(n)]


def test_removing_the_float_edges_gives_the_int8_core_under_the_model_names(tmp_path):
    wrapped, core = quantized(tmp_path / "f", remove_io_quantization=False), quantized(tmp_path / "i")
    assert strip_float_io(wrapped) == {"edge_conversions_removed": 3}
    assert wrapped.inputs == core.inputs and wrapped.outputs == core.outputs
    assert wrapped.tensors["x"].dtype == np.int8 and wrapped.tensors["x"].qparams == core.tensors["x"].qparams
    for feeds in _feeds():
        a, b = run_integer(wrapped, feeds), run_integer(core, feeds)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def test_every_activation_is_padded_to_whole_pwords_and_real_outputs_are_unchanged(tmp_path):
    core = quantized(tmp_path)
    padded = core.copy()
    stats = pad_graph(padded, 64)
    padded.verify()
    assert stats["io_edges"] == 3  # one Pad after x, one Slice before each output
    assert stats["pad_conv"] == 2 and stats["pad_dense"] == 1 and stats["pad_elementwise_constants"] == 1
    edges = [n for n in padded.nodes if n.attrs.get(IO_EDGE)]
    assert [n.op for n in edges] == ["Pad", "Slice", "Slice"]
    for node in padded.nodes:
        if node.attrs.get(IO_EDGE) == "output":
            continue
        for name in node.outputs:
            assert padded.tensors[name].shape[1] % 64 == 0, name
    for feeds in _feeds():
        a, b = run_integer(core, feeds), run_integer(padded, feeds)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_padded_lanes_of_a_convolution_hold_its_zero_point(tmp_path):
    padded = quantized(tmp_path)
    pad_graph(padded, 64)
    conv = next(n for n in padded.nodes if n.op == "Conv")
    values = run_integer(padded, _feeds(1)[0], keep_all=True)[conv.outputs[0]]
    assert np.all(values[:, 20:] == int(conv.attrs["out_zero_point"]))
