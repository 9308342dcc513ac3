"""Bring your own model: the common shapes of real exports that the visible corpus does not have, each
compiled, run on the simulated AIPU and compared (bit-exact against the integer reference).

Toy models stand in for the public models they were seen in: a standalone BatchNormalization early in a
PP-OCRv4-style text detector (after an activation, where no convolution absorbs it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from _toy_models import toy_model
from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.runner import execute


def _compile_and_compare(model: onnx.ModelProto, tmp_path: Path) -> dict:
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    cal = {"x": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "m.onnx", CompilerConfig(), output_dir=tmp_path / "out", calibration=cal)
    x = rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)
    run = execute(tmp_path / "out", {"x": x}, compare=True, float_model=tmp_path / "m.onnx")
    by_ref = {c.reference.split(" ")[0] + (" float" if "float" in c.reference else ""): c for c in run.comparisons}
    assert by_ref["integer"].max_abs_error == 0.0, run.comparisons  # the device is bit-exact
    return {"result": res, "run": run, "float_sqnr_db": by_ref["onnxruntime float"].sqnr_db}


def test_a_standalone_batchnorm_after_an_activation_compiles_and_runs_bit_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             "s": rng.uniform(0.5, 1.5, 8).astype(np.float32), "b": rng.standard_normal(8).astype(np.float32) * 0.1,
             "m": rng.standard_normal(8).astype(np.float32) * 0.1, "v": rng.uniform(0.5, 1.5, 8).astype(np.float32),
             "w2": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["n"], name="bn"),
             helper.make_node("Conv", ["n", "w2"], ["y"], name="conv2")]
    got = _compile_and_compare(toy_model(nodes, inits), tmp_path)
    assert "BatchNormalization" not in {n.op for n in got["result"].graph.nodes}
    assert got["float_sqnr_db"] > 25


# -- host fallback: what the AIPU cannot run goes to a host part, with its reason ---------------------------------
def _convs(rng: np.random.Generator) -> dict:
    return {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
            "w2": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3}


def _host(result) -> dict[str, dict]:
    return {h["node"]: h for h in result.report["placement"]["host"]}


def test_an_lstm_after_the_backbone_runs_on_the_host_and_the_backbone_on_the_aipu(tmp_path: Path) -> None:
    """A CRNN's shape: convolutions, the feature map reshaped into a sequence, an LSTM over it."""
    rng = np.random.default_rng(2)
    hidden = 4
    inits = {**_convs(rng), "to_seq": np.array([1, 8, 64], np.int64), "flat": np.array([64, hidden], np.int64),
             "W": rng.standard_normal((1, 4 * hidden, 8)).astype(np.float32) * 0.3,
             "R": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "to_seq"], ["s0"], name="to_sequence"),
             helper.make_node("Transpose", ["s0"], ["s"], perm=[2, 0, 1], name="time_first"),
             helper.make_node("LSTM", ["s", "W", "R"], ["Y"], hidden_size=hidden, name="lstm"),
             helper.make_node("Reshape", ["Y", "flat"], ["y"], name="flatten")]
    got = _compile_and_compare(toy_model(nodes, inits), tmp_path)
    placement = got["result"].report["placement"]
    assert placement["device_nodes"] == 2 and placement["device_mac_share"] == 1.0  # conv and relu
    assert _host(got["result"])["lstm"]["part"] == "host_postprocess"
    assert got["float_sqnr_db"] > 20


def test_an_operator_without_a_numpy_kernel_in_the_middle_splits_the_device_part_in_two(tmp_path: Path) -> None:
    """Hardmax has no integer kernel (nor a numpy one: onnxruntime runs it while compiling). Only it goes to the
    host: the convolutions on both sides stay on the AIPU as two device segments, each its own program, chained
    through the host part by tensor name; each segment is bit-exact against its integer reference."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Hardmax", ["r"], ["h"], axis=1, name="hardmax"),
             helper.make_node("Conv", ["h", "w2"], ["y"], name="conv2")]
    got = _compile_and_compare(toy_model(nodes, _convs(rng)), tmp_path)
    assert _host(got["result"]) == {"hardmax": {"node": "hardmax", "op": "Hardmax", "part": "host_part1",
                                                "reason": "Hardmax has no int8 kernel"}}
    placement = got["result"].report["placement"]
    assert placement["device_macs"] == 8 * 8 * 8 * 27 + 4 * 8 * 8 * 8 and placement["host_macs"] == 0
    assert placement["device_segments"] == 2
    parts = got["result"].manifest["parts"]
    assert [(p["kind"], p["name"]) for p in parts] == [("device", "device1"), ("host", "host_part1"),
                                                       ("device", "device2")]
    assert parts[2]["program"] == "device2.program.bin" and [e["name"] for e in parts[2]["inputs"]] == ["h"]
    # both segments were compared bit-exactly (the helper checks the merged integer reference), y among them
    ints = {c.output for c in got["run"].comparisons if c.reference == "integer reference"}
    assert ints == {"r", "y"}
    assert [s["name"] for s in got["run"].report["segments"]] == ["device1", "device2"]
    assert got["run"].report["cycles"] == sum(s["cycles"] for s in got["run"].report["segments"])
    assert got["float_sqnr_db"] > 25


def test_a_host_node_on_the_input_goes_to_the_preprocessing_and_calibration_runs_it(tmp_path: Path) -> None:
    """Upstream of the Hardmax there is nothing to lose: it goes to host_preprocess.onnx, and calibration
    computes the core's inputs through it (onnxruntime), so the quantized core sees real activations."""
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Hardmax", ["x"], ["h"], axis=1, name="hardmax"),
             helper.make_node("Conv", ["h", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    got = _compile_and_compare(toy_model(nodes, _convs(rng)), tmp_path)
    assert _host(got["result"])["hardmax"]["part"] == "host_preprocess"
    assert got["result"].report["placement"]["device_mac_share"] == 1.0
    assert got["float_sqnr_db"] > 25


def test_a_topk_at_the_end_runs_on_the_host(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    inits = {**_convs(rng), "k": np.array([3], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("TopK", ["f", "k"], ["y", "idx"], axis=1, name="topk")]
    model = toy_model(nodes, inits, outputs=("y", "idx"))
    model.graph.output[1].CopyFrom(helper.make_tensor_value_info("idx", onnx.TensorProto.INT64, None))
    got = _compile_and_compare(model, tmp_path)
    assert _host(got["result"])["topk"]["part"] == "host_postprocess"
    assert set(got["run"]) == {"y", "idx"} and got["run"]["idx"].dtype == np.int64


def test_no_host_fallback_lists_every_node_the_aipu_cannot_run_in_one_line(tmp_path: Path) -> None:
    from _support import one_error_line, run_cli

    rng = np.random.default_rng(6)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Hardmax", ["c"], ["h"], axis=1, name="hardmax"),
             helper.make_node("Conv", ["h", "w2"], ["c2"], name="conv2"),
             helper.make_node("Transpose", ["c2"], ["y"], perm=[0, 2, 3, 1], name="to_nhwc")]
    onnx.save(toy_model(nodes, _convs(rng)), tmp_path / "m.onnx")
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32))
    proc = run_cli("compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "out"), "--calibration",
                   str(tmp_path / "cal.npy"), "--set", "graph_cleaner_split_pre_post_processing=false",
                   "--no-host-fallback")
    assert proc.returncode == 1
    # every offender in one line: the Hardmax, and the Transpose to NHWC at the end (a layout op is judged
    # node by node, not taken as the start of a decoding tail)
    one_error_line(proc.stderr, "2 node(s) cannot run on the AIPU and host fallback is off",
                   "'hardmax' (Hardmax has no int8 kernel)", "'to_nhwc' (Transpose perm [0, 2, 3, 1] moves the channels")
    assert not (tmp_path / "out").exists()


def test_the_float_executor_runs_an_operator_it_has_no_kernel_for_as_onnxruntime_does() -> None:
    import onnxruntime as ort

    from axdrive.onnx_io import load_model
    from axdrive.reference import run_float

    rng = np.random.default_rng(7)
    inits = {"W": rng.standard_normal((1, 9, 8)).astype(np.float32), "R": rng.standard_normal((1, 9, 3)).astype(np.float32)}
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["s"]),
             helper.make_node("GRU", ["s", "W", "R"], ["Y", "Y_h"], hidden_size=3, linear_before_reset=1),
             helper.make_node("Identity", ["Y_h"], ["y"])]
    inits["shape"] = np.array([24, 1, 8], np.int64)
    model = toy_model(nodes, inits, x_shape=(1, 3, 8, 8))
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    ours = run_float(load_model(model), {"x": x})["y"]
    theirs = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(["y"], {"x": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)  # one node alone vs the whole model


def test_axdrive_ops_prints_where_every_node_runs_and_why(tmp_path: Path) -> None:
    import json as _json

    from _support import run_cli

    rng = np.random.default_rng(8)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Hardmax", ["r"], ["h"], axis=1, name="hardmax"),
             helper.make_node("Conv", ["h", "w2"], ["y"], name="conv2")]
    onnx.save(toy_model(nodes, _convs(rng)), tmp_path / "m.onnx")
    text = run_cli("ops", str(tmp_path / "m.onnx"), "--all", cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == ("m: 3 node(s) on the AIPU, 1 on the host; 15,872 of 15,872 MACs on the AIPU (100.00 %) "
                        "in 2 device segments")
    # every node in the order the run executes them, with the part it runs in
    assert [ln.split()[:4] for ln in lines[2:]] == [["conv", "Conv", "AIPU", "device1"],
                                                    ["relu", "Relu", "AIPU", "device1"],
                                                    ["hardmax", "Hardmax", "host", "part1"],
                                                    ["conv2", "Conv", "AIPU", "device2"]]
    assert lines[4].endswith("Hardmax has no int8 kernel")
    doc = _json.loads(run_cli("ops", str(tmp_path / "m.onnx"), "--format", "json").stdout)
    assert doc["device_macs"] == 15872 and {h["node"] for h in doc["host"]} == {"hardmax"}
    assert [(p["name"], p["macs"]) for p in doc["parts"]] == [("device1", 13824), ("host_part1", 0),
                                                              ("device2", 2048)]
    assert list(tmp_path.iterdir()) == [tmp_path / "m.onnx"]  # nothing written beside the model


def _three_convs(tmp_path: Path) -> Path:
    """conv1 -> relu1 -> conv2 -> relu2 -> conv3, all of which the AIPU runs."""
    rng = np.random.default_rng(9)
    inits = {"w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             "w2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.3,
             "w3": rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3")]
    onnx.save(toy_model(nodes, inits), tmp_path / "three.onnx")
    return tmp_path / "three.onnx"


def test_the_user_keeps_nodes_on_the_host_and_cuts_the_device_part_from_the_cli_and_a_config_file(tmp_path: Path):
    import json as _json

    from _support import run_cli

    model = _three_convs(tmp_path)
    doc = _json.loads(run_cli("ops", str(model), "--format", "json", "--host-node", "conv3").stdout)
    assert {h["node"]: h["reason"] for h in doc["host"]} == {"conv3": "kept on the host by the user (host_nodes)"}
    doc = _json.loads(run_cli("ops", str(model), "--format", "json", "--device-output", "r1").stdout)
    assert {h["node"] for h in doc["host"]} == {"conv2", "relu2", "conv3"}
    assert "where the user ends the device part (device_outputs)" in doc["host"][0]["reason"]
    (tmp_path / "placement.toml").write_text('[placement]\ndevice_inputs = ["r1"]\n')
    doc = _json.loads(run_cli("ops", str(model), "--format", "json", "--config", str(tmp_path / "placement.toml")).stdout)
    assert {h["node"]: h["part"] for h in doc["host"]} == {"conv1": "host_preprocess", "relu1": "host_preprocess"}
    # the same placement compiles and runs, bit-exactly on the AIPU's part
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "--config", str(tmp_path / "placement.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "placement: device_nodes=3, host_nodes=2" in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (("--host-node", "conv_3"), "host_nodes: the model has no node 'conv_3' (after constant folding) (did you mean 'conv3'?)"),
    (("--device-output", "r_1"), "device_outputs: the model has no run-time tensor 'r_1' (after constant folding) (did you mean 'r1'?)"),
    (("--device-output", "x"), "found nothing to run on the accelerator"),
])
def test_a_placement_naming_nothing_or_leaving_nothing_is_one_line(tmp_path: Path, args, needle) -> None:
    from _support import one_error_line, run_cli

    proc = run_cli("ops", str(_three_convs(tmp_path)), *args)
    assert proc.returncode in (1, 2)
    one_error_line(proc.stderr, needle)


def test_an_unknown_key_of_the_placement_table_is_a_config_problem_with_did_you_mean(tmp_path: Path) -> None:
    from axdrive.config import CompilerConfig
    from axdrive.errors import ConfigError

    (tmp_path / "c.toml").write_text('aipu_cores_used = 2\n[placement]\nhost_node = ["a"]\n')
    with pytest.raises(ConfigError, match=r"placement\.host_node.*did you mean 'host_nodes'"):
        CompilerConfig.from_file(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text('[placement]\nhost_nodes = ["a"]\n')
    assert CompilerConfig.from_file(tmp_path / "d.toml").aipu_cores_used == CompilerConfig().aipu_cores_used


def test_placement_with_the_graph_cleaner_off_is_refused_not_ignored(tmp_path: Path) -> None:
    from _support import one_error_line, run_cli

    proc = run_cli("compile", str(_three_convs(tmp_path)), "-o", str(tmp_path / "out"), "--host-node", "conv3",
                   "--set", "run_graph_cleaner=false")
    assert proc.returncode == 2
    one_error_line(proc.stderr, "placement (host_nodes) needs run_graph_cleaner=true")
    assert not (tmp_path / "out").exists()


# -- the common shapes of real exports: each lowers, or falls back with its reason, and runs bit-exactly -------------
def _export_shape(kind: str, rng: np.random.Generator) -> onnx.ModelProto:
    """One small model per pattern exporters emit (PyTorch, Paddle), around a 3x3 convolution on 1x3x8x8."""
    w = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3}
    conv = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv")]
    f = np.float32
    if kind == "hardswish_clip_mul_div":
        inits = {**w, "three": np.array(3, f), "zero": np.array(0, f), "six": np.array(6, f)}
        nodes = conv + [helper.make_node("Add", ["c", "three"], ["a"], name="add3"),
                        helper.make_node("Clip", ["a", "zero", "six"], ["cl"], name="clip"),
                        helper.make_node("Mul", ["c", "cl"], ["m"], name="mul"),
                        helper.make_node("Div", ["m", "six"], ["y"], name="div")]
    elif kind == "squeeze_excitation":
        inits = {**w, "w1": rng.standard_normal((2, 8, 1, 1)).astype(f) * 0.3,
                 "w2": rng.standard_normal((8, 2, 1, 1)).astype(f) * 0.3}
        nodes = conv + [helper.make_node("GlobalAveragePool", ["c"], ["g"], name="squeeze"),
                        helper.make_node("Conv", ["g", "w1"], ["s1"], name="reduce"),
                        helper.make_node("Relu", ["s1"], ["s2"], name="relu"),
                        helper.make_node("Conv", ["s2", "w2"], ["s3"], name="expand"),
                        helper.make_node("HardSigmoid", ["s3"], ["gate"], alpha=0.2, beta=0.5, name="gate"),
                        helper.make_node("Mul", ["c", "gate"], ["y"], name="excite")]
    elif kind in ("resize_nearest_x2", "resize_bilinear_x2"):
        mode = "nearest" if kind.startswith("resize_nearest") else "linear"
        inits = {**w, "scales": np.array([1, 1, 2, 2], f)}
        nodes = conv + [helper.make_node("Resize", ["c", "", "scales"], ["y"], mode=mode, name="resize")]
    elif kind == "focus_strided_slices":
        starts = {"s00": (0, 0), "s10": (1, 0), "s01": (0, 1), "s11": (1, 1)}
        inits = {"wf": rng.standard_normal((8, 12, 3, 3)).astype(f) * 0.2, "axes": np.array([2, 3], np.int64),
                 "steps": np.array([2, 2], np.int64), "ends": np.array([8, 8], np.int64)}
        nodes = []
        for name, (h, w0) in starts.items():
            inits[f"{name}_st"] = np.array([h, w0], np.int64)
            nodes.append(helper.make_node("Slice", ["x", f"{name}_st", "ends", "axes", "steps"], [name], name=name))
        nodes += [helper.make_node("Concat", list(starts), ["cat"], axis=1, name="focus"),
                  helper.make_node("Conv", ["cat", "wf"], ["y"], pads=[1, 1, 1, 1], name="conv")]
    elif kind == "scalar_first_mul_sub":  # Paddle's learnable hard-swish: Mul(w, x), then Sub(b, x)
        inits = {**w, "k": np.array([0.7], f), "b": np.array([0.25], f)}
        nodes = conv + [helper.make_node("Mul", ["k", "c"], ["m"], name="scale_first"),
                        helper.make_node("Sub", ["b", "m"], ["y"], name="sub_first")]
    elif kind == "flatten_gemm":
        inits = {**w, "fc": rng.standard_normal((5, 8)).astype(f) * 0.3, "fb": np.zeros(5, f)}
        nodes = conv + [helper.make_node("GlobalAveragePool", ["c"], ["g"], name="gap"),
                        helper.make_node("Flatten", ["g"], ["fl"], name="flatten"),
                        helper.make_node("Gemm", ["fl", "fc", "fb"], ["y"], transB=1, name="fc")]
    else:
        raise ValueError(kind)
    return toy_model(nodes, inits)


@pytest.mark.parametrize("kind,on_device", [
    ("hardswish_clip_mul_div", True), ("squeeze_excitation", True), ("resize_nearest_x2", True),
    ("resize_bilinear_x2", False), ("focus_strided_slices", True), ("flatten_gemm", True),
    ("scalar_first_mul_sub", True),
])
def test_a_common_export_shape_lowers_or_falls_back_with_its_reason(tmp_path: Path, kind: str, on_device: bool):
    got = _compile_and_compare(_export_shape(kind, np.random.default_rng(10)), tmp_path)
    placement = got["result"].report["placement"]
    host = _host(got["result"])
    if on_device:
        assert placement["host_nodes"] == 0, host
    else:
        assert host and all(h["reason"] for h in host.values()), host
    assert got["float_sqnr_db"] > 20


# -- the supported-operators report --------------------------------------------------------------------------------
def test_the_supported_operators_report_in_docs_is_current() -> None:
    from _support import REPO, run_cli

    proc = run_cli("ops", "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert (REPO / "docs" / "supported-operators.md").read_text() == proc.stdout, \
        "docs/supported-operators.md is stale: run `make docs`"

