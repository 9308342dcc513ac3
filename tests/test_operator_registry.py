"""The operator registry: one table, fed by every plugin through ``axdrive_operators``, that the quantizer,
the placement, lowering's validation, tiling, code generation and ``axdrive ops`` all read.

The tests register rules the way a third-party plugin would and check that each consumer follows them:
a plugin that registers an element-wise operator as a table puts that operator on the AIPU, bit-exact, with
no change anywhere else; a rule's constraint is the sentence the report prints *and* the reason a node
goes to the host.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from _toy_models import between_convs
from axdrive.ir import Graph, Node, Tensor
from axdrive.operators import Constraint, OperatorRegistry, OperatorRule


def _host(*plugins):
    from axdrive.passes import PluginHost

    host = PluginHost()
    for i, plugin in enumerate(plugins):
        host.register(plugin, name=f"plugin{i}")
    return host


def _rules_plugin(*rules, fail: bool = False):
    from axdrive.passes import hookimpl

    class Plugin:
        @hookimpl
        def axdrive_operators(self):
            if fail:
                raise RuntimeError("no rules today")
            return list(rules)

    return Plugin()


def _mish_model(tmp_path: Path) -> Path:
    """conv -> Mish -> conv (Mish: ONNX opset 18, which no built-in plugin quantizes)."""
    model = between_convs([helper.make_node("Mish", ["c"], ["m"], name="mish")], seed=4, opset=18,
                          weights=("w1", "w2"), convs=("conv1", "conv2"))
    onnx.save(model, tmp_path / "mish.onnx")
    return tmp_path / "mish.onnx"


def _graph(*nodes: Node, shapes: dict[str, tuple[int, ...]], consts: dict[str, np.ndarray] | None = None) -> Graph:
    f32 = np.dtype(np.float32)
    tensors = {k: Tensor(k, s, f32) for k, s in shapes.items()}
    for k, v in (consts or {}).items():
        tensors[k] = Tensor(k, v.shape, v.dtype, v)
    return Graph("g", list(nodes), tensors, ["x"], [nodes[-1].outputs[0]], 17)


# -- the table -----------------------------------------------------------------------------------------------
def test_the_int8_rules_are_tried_in_order_and_the_first_that_holds_picks_the_kernel() -> None:
    from axdrive.passes import default_operators

    ops = default_operators()
    scalar = {"s": np.asarray(2.0, np.float32), "v": np.ones((1, 4, 1, 1), np.float32)}
    shapes = {"x": (1, 4, 2, 2), "z": (1, 4, 2, 2), "y": (1, 4, 2, 2)}
    g = _graph(Node("a", "Add", ["x", "s"], ["y"]), shapes=shapes, consts=scalar)
    assert ops.integer_kind(g, g.nodes[0]) == "lut"  # a scalar operand: one table
    g = _graph(Node("a", "Add", ["x", "z"], ["y"]), shapes=shapes)
    assert ops.integer_kind(g, g.nodes[0]) == "add"  # two run-time operands: an integer addition
    g = _graph(Node("d", "Div", ["x", "z"], ["y"]), shapes=shapes)
    assert ops.integer_kind(g, g.nodes[0]) is None
    assert ops.integer_reason(g, g.nodes[0]) == ("Div has no int8 kernel for this node (lut: 2 run-time inputs; "
                                                 "mul: it divides by the run-time tensor 'z')")
    g = _graph(Node("l", "LSTM", ["x"], ["y"]), shapes=shapes)
    assert ops.integer_reason(g, g.nodes[0]) == "LSTM has no int8 kernel"


def test_a_constraint_is_the_words_the_report_prints_and_the_reason_a_node_goes_to_the_host() -> None:
    """The Split rule's constraint: its text is in the report, its check names the node's axis."""
    from axdrive.operators import operator_report
    from axdrive.passes import default_operators

    ops = default_operators()
    (split,) = ops.rules_for("Split", "aipu")
    row = next(r for r in operator_report(ops) if r["op"] == "Split")
    assert row["aipu"][0]["constraints"] == [c.text for c in split.constraints]
    shapes = {"x": (1, 4, 2, 2), "y": (1, 2, 2, 2), "y2": (1, 2, 2, 2)}
    g = _graph(Node("s", "Split", ["x"], ["y", "y2"], {"axis": 0}), shapes=shapes)
    why = ops.aipu_reason(g, g.nodes[0])
    assert why == split.violation(g, g.nodes[0]) and "axis 0" in why
    g.nodes[0].attrs["axis"] = 1
    assert ops.aipu_reason(g, g.nodes[0]) is None
    # a condition only quantization decides is not held against a float node
    (softmax,) = ops.rules_for("Softmax", "aipu")
    assert any(c.quantized for c in softmax.constraints)
    g = _graph(Node("p", "Softmax", ["x"], ["y"], {"axis": 1}), shapes={"x": (1, 4, 2, 2), "y": (1, 4, 2, 2)})
    assert ops.aipu_reason(g, g.nodes[0]) is None
    assert "exp_table" in ops.aipu_reason(g, g.nodes[0], kind="softmax", quantized=True)


def test_tiling_and_code_generation_ask_the_registry_which_unit_runs_a_node() -> None:
    """One answer for both: a lowered ConvTranspose's zero insertion is a DMA scatter, not an MVM layer."""
    from axdrive.passes import default_operators

    ops = default_operators()
    conv = Node("c", "Conv", ["x", "w"], ["y"], {"integer_op": "mac"})
    insertion = Node("z", "ConvTranspose", ["x", "w"], ["y"], {"integer_op": "mac", "zero_insertion": [2, 2]})
    table = Node("t", "Sigmoid", ["x"], ["y"], {"integer_op": "lut"})
    view = Node("r", "Reshape", ["x", "s"], ["y"], {"integer_op": "move"})
    assert [ops.unit(n) for n in (conv, insertion, table, view)] == ["mvm", "dma", "dpu", "view"]
    assert ops.is_unit_head(conv) and not ops.is_unit_head(insertion) and not ops.is_unit_head(table)


def test_bad_rules_and_a_crashing_plugin_are_one_line_naming_the_plugin() -> None:
    from axdrive.errors import PluginError

    with pytest.raises(ValueError, match="role 'lowering' is not one of rewrite, int8, aipu"):
        OperatorRule("Conv", "lowering", "x")
    with pytest.raises(ValueError, match="unit 'gpu' is not one of"):
        OperatorRule("Conv", "aipu", "x", unit="gpu")
    with pytest.raises(ValueError, match="names no integer kernel"):
        OperatorRule("Conv", "int8", "x")
    with pytest.raises(PluginError, match=r"plugin 'plugin0' failed in axdrive_operators\(\): RuntimeError: no rules"):
        _host(_rules_plugin(fail=True)).operators
    with pytest.raises(PluginError, match="plugin 'plugin0' returned str from axdrive_operators"):
        _host(_rules_plugin("Conv")).operators
    assert isinstance(_host().operators, OperatorRegistry)


# -- a plugin's rules, followed by every consumer ---------------------------------------------------------------
def test_a_plugin_that_registers_an_operator_as_a_table_puts_it_on_the_aipu_bit_exactly(tmp_path: Path) -> None:
    """Without the plugin Mish has no int8 kernel and is a host part between two device segments; with one
    ``int8`` rule (``kind="lut"``) the quantizer builds its table from the float kernel (onnxruntime), the
    built-in lowering maps it as any table, and the whole model is one device segment, bit-exact."""
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.runner import execute

    model = _mish_model(tmp_path)
    rng = np.random.default_rng(0)
    cal = {"x": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    x = {"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)}
    plain = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "plain", calibration=cal)
    (host_node,) = plain.report["placement"]["host"]
    assert host_node["node"] == "mish" and host_node["reason"] == "Mish has no int8 kernel"
    assert plain.report["placement"]["device_segments"] == 2

    rule = OperatorRule("Mish", "int8", "lut: a table (a plugin's)", ("one run-time input",), kind="lut")
    res = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "out", calibration=cal,
                         plugins=_host(_rules_plugin(rule)))
    assert res.report["placement"]["host"] == [] and res.report["placement"]["device_segments"] == 1
    run = execute(tmp_path / "out", x, compare=True, float_model=model)
    # the simulated AIPU against onnxruntime on quantized_model.onnx (written at opset 18, where Mish exists)
    exact = [c for c in run.comparisons if c.reference == "onnxruntime quantized_model.onnx"]
    assert exact and all(c.max_abs_error == 0.0 for c in exact), run.comparisons
    assert any("written at opset 18, not onnx_opset_version=17: Mish exists from opset 18" in w
               for w in res.report["warnings"])
    floats = [c for c in run.comparisons if c.reference.startswith("onnxruntime float")]
    assert floats and floats[0].sqnr_db > 20, floats


def test_a_plugins_kernel_the_quantizer_lacks_sends_the_node_to_the_host_saying_so(tmp_path: Path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    model = _mish_model(tmp_path)
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    rule = OperatorRule("Mish", "int8", "softplus-tanh unit", kind="mish")
    res = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "out", calibration=cal,
                         plugins=_host(_rules_plugin(rule)))
    (host_node,) = res.report["placement"]["host"]
    assert host_node["node"] == "mish"
    assert "integer kernel 'mish' (registered by plugin0) is not one the quantizer implements" in host_node["reason"]


def test_the_report_lists_a_plugins_rules_beside_the_built_in_ones() -> None:
    from axdrive.operators import format_report, operator_report

    rows = {r["op"]: r for r in operator_report(_host().operators)}
    assert rows["Conv"]["float"] == "numpy" and rows["Conv"]["aipu"][0]["summary"].startswith("MVM conv2d")
    assert rows["Conv"]["aipu"][0]["unit"] == "mvm" and rows["Conv"]["aipu"][0]["plugin"] == "axdrive-lowering"
    assert [a["summary"] for a in rows["Sigmoid"]["aipu"]] == ["DPU program (table lookup)"]  # by its kernel
    assert "frontend.fold_batchnorm" in rows["BatchNormalization"]["rewrite"][0]["summary"]
    assert rows["Einsum"]["int8"] == rows["Einsum"]["aipu"] == [] and "LSTM" not in rows  # float only
    einsum = [OperatorRule("Einsum", "int8", "mac: a plugin's kernel", kind="mac"),
              OperatorRule("Einsum", "aipu", "MVM, by a plugin", (Constraint("two operands"),), unit="mvm")]
    ops = _host(_rules_plugin(*einsum)).operators
    row = next(r for r in operator_report(ops) if r["op"] == "Einsum")
    assert row["float"] == "numpy" and row["aipu"][0]["constraints"] == ["two operands"]
    assert row["aipu"][0]["plugin"] == "plugin0"
    assert "| Einsum | numpy |  | mac: a plugin's kernel | MVM, by a plugin (two operands) |" in \
        format_report(ops, "md")


def test_a_mac_with_a_run_time_weight_goes_to_the_host_whatever_its_groups() -> None:
    """The weight's constness is every MAC rule's first constraint: the others read the weight's shape."""
    from axdrive.passes import default_operators

    ops = default_operators()
    shapes = {"x": (1, 4, 4, 4), "w": (4, 2, 3, 3), "y": (1, 4, 4, 4)}
    for attrs in ({}, {"group": 2}):
        g = _graph(Node("c", "Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1], **attrs}), shapes=shapes)
        g.inputs = ["x", "w"]
        assert ops.aipu_reason(g, g.nodes[0], kind="mac") == ("a product of two run-time tensors has no MVM mapping "
                                                              "(weights must be constant)")
        assert "its weight 'w' (input 1) is a run-time tensor" in ops.integer_reason(g, g.nodes[0])
