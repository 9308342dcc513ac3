"""Partitioning into any number of host parts and device segments, chained by tensor name.

The graph cleaner gives every node a level (even: host, odd: AIPU); each
non-empty level is a part, and the parts run in order. The property tests
build random graphs with random host nodes and check what makes the chain
correct whatever the model: every part reads only what the model's inputs,
constants and earlier parts provide; kinds alternate; every node the AIPU
can run stays on it (or says why not). The end-to-end tests compile a model
whose host node sits in the middle, run the chain on the simulated AIPU and
compare every device segment bit-exactly against its integer reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from _toy_models import between_convs, toy_model
from axdrive.ir import Graph, Node, Tensor
from axdrive_graph_cleaner._split import NO_MACS_REASON, build_parts, find_split


# -- the partition, on random graphs ---------------------------------------------------------------------------
@st.composite
def _graphs(draw) -> tuple[Graph, dict[str, str]]:
    """A random DAG of MatMul (with MACs), Relu and Add nodes over [1, 4] tensors, and random host nodes."""
    n = draw(st.integers(2, 14))
    f32 = np.dtype(np.float32)
    tensors = {"x": Tensor("x", (1, 4), f32), "w": Tensor("w", (4, 4), f32, np.eye(4, dtype=np.float32))}
    values, nodes, host = ["x"], [], {}
    for i in range(n):
        op = draw(st.sampled_from(["MatMul", "Relu", "Add"]))
        a = draw(st.sampled_from(values))
        inputs = {"MatMul": [a, "w"], "Relu": [a], "Add": [a, draw(st.sampled_from(values))]}[op]
        out = f"t{i}"
        tensors[out] = Tensor(out, (1, 4), f32)
        nodes.append(Node(f"n{i}", op, inputs, [out]))
        values.append(out)
        if draw(st.booleans()) and draw(st.booleans()):
            host[f"n{i}"] = "marked host"
    used = {i for node in nodes for i in node.inputs}
    outputs = [v for v in values[1:] if v not in used] or [values[-1]]
    return Graph(name="g", nodes=nodes, tensors=tensors, inputs=["x"], outputs=outputs, opset=17), host


@settings(max_examples=200, deadline=None)
@given(_graphs())
def test_the_parts_chain_alternate_and_keep_every_device_node_on_the_device(case) -> None:
    graph, host = case
    split = find_split(graph, split_pre=False, layout_preamble_to_host=False, host_reasons=host)
    parts = split.parts
    placed = [n for p in parts for n in p.nodes]
    assert sorted(placed) == sorted(n.name for n in graph.nodes)  # every node in exactly one part
    assert all(a.kind != b.kind for a, b in zip(parts, parts[1:]))  # kinds alternate
    by_name = {n.name: n for n in graph.nodes}
    available = {"x", "w"}
    for part in parts:  # a part reads only what the model and the parts before it provide
        inside = {o for m in part.nodes for o in by_name[m].outputs}
        assert all(i in available or i in inside for m in part.nodes for i in by_name[m].inputs)
        assert set(part.inputs) <= available
        available |= inside
    assert set(graph.outputs) <= available
    on_device = set(split.device)
    for node in graph.nodes:  # the AIPU keeps everything it can run, or the node says why not
        if node.name in host:
            assert node.name not in on_device
        elif node.name not in on_device:
            assert split.reasons[node.name] == NO_MACS_REASON
    segments = [p for p in parts if p.kind == "device"]
    if len(segments) > 1:  # a lone MAC-free segment is not worth two boundary crossings
        macs = [any(by_name[m].op == "MatMul" for m in p.nodes) for p in segments]
        assert all(macs) or not any(macs)


def test_the_names_of_the_parts_say_where_they_run() -> None:
    f32 = np.dtype(np.float32)
    tensors = {n: Tensor(n, (1, 4), f32) for n in ("x", "a", "b", "c", "d")}
    tensors["w"] = Tensor("w", (4, 4), f32, np.eye(4, dtype=np.float32))
    nodes = [Node("h0", "Relu", ["x"], ["a"]), Node("m1", "MatMul", ["a", "w"], ["b"]),
             Node("h2", "Relu", ["b"], ["c"]), Node("m3", "MatMul", ["c", "w"], ["d"])]
    graph = Graph(name="g", nodes=nodes, tensors=tensors, inputs=["x"], outputs=["d"], opset=17)
    split = find_split(graph, split_pre=False, layout_preamble_to_host=False, host_reasons={"h0": "r", "h2": "r"})
    assert [(p.name, p.nodes, p.inputs, p.outputs) for p in split.parts] == [
        ("host_preprocess", ["h0"], ["x"], ["a"]), ("device1", ["m1"], ["a"], ["b"]),
        ("host_part1", ["h2"], ["b"], ["c"]), ("device2", ["m3"], ["c"], ["d"])]
    assert build_parts(graph, {"h0": 0, "m1": 1, "h2": 2, "m3": 3})[-1].name == "device2"


# -- end to end ---------------------------------------------------------------------------------------------------
def _hardmax_in_the_middle(tmp_path: Path) -> Path:
    middle = [helper.make_node("Relu", ["c"], ["r"], name="relu"),
              helper.make_node("Hardmax", ["r"], ["m"], axis=1, name="hardmax")]
    path = tmp_path / "m.onnx"
    onnx.save(between_convs(middle, seed=3), path)
    return path


def test_a_further_segment_is_calibrated_on_the_real_activations_at_its_inputs(tmp_path: Path) -> None:
    """Hardmax's output is one-hot: the second segment's input grid must span exactly [0, 1]. Calibration gets
    it by running the parts before the segment in float (onnxruntime for the Hardmax), as at deployment."""
    from axdrive import driver
    from axdrive.config import CompilerConfig

    rng = np.random.default_rng(0)
    cal = {"x": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(_hardmax_in_the_middle(tmp_path), CompilerConfig(trace_tvm_passes=True),
                         output_dir=tmp_path / "out", calibration=cal)
    (q,) = [e["quantization"] for p in res.manifest["parts"] if p["name"] == "device2" for e in p["inputs"]]
    assert q["scale"] * (127 - q["zero_point"]) == pytest.approx(1.0) and q["zero_point"] == -128
    # the further segment's passes ran as passes of their own, named in the trace, with their own requirements
    doc = json.loads((tmp_path / "out" / "pass_dependency_graph.json").read_text())
    seg = {p["id"]: p for p in doc["passes"] if p.get("segment") == "device2"}
    assert {"quantizer.calibrate", "quantizer.quantize", "lowering.emit_program"} <= {p["name"] for p in seg.values()}
    for edge in doc["edges"]:
        if edge["kind"] == "requires" and edge["to"] in seg:
            src = next(p for p in doc["passes"] if p["id"] == edge["from"])
            assert src.get("segment") in (None, "device2"), (src, edge)
    assert [s["name"] for s in res.report["segments"]] == ["device2"] and "lowering" in res.report["segments"][0]
    # and the same compile again gives byte-identical artifacts
    again = driver.compile(tmp_path / "m.onnx", CompilerConfig(trace_tvm_passes=True), output_dir=tmp_path / "out2",
                           calibration=cal)
    assert again.manifest["artifacts"] == res.manifest["artifacts"]


def test_the_cli_keeps_a_middle_node_on_the_host_and_runs_the_chain_bit_exactly(tmp_path: Path) -> None:
    """``--host-node conv2`` on conv1 -> relu1 -> conv2 -> relu2 -> conv3: two device segments around it."""
    from _support import run_cli
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    rng = np.random.default_rng(1)
    np.save(tmp_path / "cal.npy", rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32))
    np.save(tmp_path / "x.npy", rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32))
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "--calibration", str(tmp_path / "cal.npy"),
                   "--host-node", "conv2")
    assert proc.returncode == 0, proc.stderr
    assert "device_segments=2" in proc.stdout and "device2.program.bin" in proc.stdout
    # each segment's estimate on a line of its own, named
    assert "  performance [device1]: estimated_cycles=" in proc.stdout
    assert "  performance [device2]: estimated_cycles=" in proc.stdout
    proc = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "--compare", "-o", str(tmp_path / "y.npz"))
    assert proc.returncode == 0, proc.stderr
    exact = {ln.split()[0] for ln in proc.stdout.splitlines() if "integer reference" in ln and "max-abs 0 " in ln}
    assert exact == {"r1", "y"}, proc.stdout  # device1's output and device2's, each bit-exact
    assert set(np.load(tmp_path / "y.npz")) == {"y"}  # the model's outputs, by name


def _compile_run_compare(model: onnx.ModelProto, tmp_path: Path):
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.runner import execute

    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(0)
    cal = {"x": rng.uniform(-1, 1, (4, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "m.onnx", CompilerConfig(), output_dir=tmp_path / "out", calibration=cal)
    run = execute(tmp_path / "out", {"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)}, compare=True,
                  float_model=tmp_path / "m.onnx")
    ints = [c for c in run.comparisons if c.reference == "integer reference"]
    assert ints and all(c.max_abs_error == 0.0 for c in ints), run.comparisons
    floats = [c for c in run.comparisons if c.reference.startswith("onnxruntime float")]
    return res, run, floats


@pytest.mark.parametrize("layout", ["channel_transpose", "flatten_of_a_map"])
def test_a_layout_change_between_maps_is_judged_alone_and_the_network_after_it_stays_on_the_aipu(tmp_path, layout):
    """A Transpose that moves the channels, or a Flatten of an 8x8 map before a dense layer, stays among the
    tensors the AIPU stores (rank 4 or 2): it is no decoding tail. The lowering says why it cannot run it, it
    alone goes to the host, and the layer after it is a second device segment."""
    rng = np.random.default_rng(11)
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu")]
    if layout == "channel_transpose":
        inits["w2"] = rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.2
        nodes += [helper.make_node("Transpose", ["r"], ["t"], perm=[0, 3, 2, 1], name="move"),
                  helper.make_node("Conv", ["t", "w2"], ["y"], pads=[1, 1, 1, 1], name="after")]
    else:
        inits["fc"] = rng.standard_normal((5, 512)).astype(np.float32) * 0.05
        nodes += [helper.make_node("Flatten", ["r"], ["t"], name="move"),
                  helper.make_node("Gemm", ["t", "fc"], ["y"], transB=1, name="after")]
    res, run, floats = _compile_run_compare(toy_model(nodes, inits), tmp_path)
    placement = res.report["placement"]
    assert [h["node"] for h in placement["host"]] == ["move"] and placement["device_mac_share"] == 1.0
    assert [(p["name"], p["nodes"]) for p in placement["parts"]] == [("device1", 2), ("host_part1", 1),
                                                                     ("device2", 1)]
    assert floats and floats[0].sqnr_db > 20


def _host_with(name: str, *passes):
    """A plugin host with the built-in plugins and one in-process plugin ``name`` contributing ``passes``."""
    from axdrive.passes import PluginHost, hookimpl

    class Plugin:
        @hookimpl
        def axdrive_passes(self):
            return list(passes)

    host = PluginHost()
    host.register(Plugin(), name=name)
    return host


def test_a_pass_failing_on_a_further_segment_names_it_and_leaves_nothing_behind(tmp_path: Path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.errors import PluginError
    from axdrive.passes import Phase, compiler_pass

    @compiler_pass("fragile.check", requires=("quantized",), phase=Phase.LEGALIZE)
    def check(ctx):
        if ctx.segment is not None:
            raise RuntimeError(f"cannot handle {ctx.segment.name}")

    host = _host_with("fragile", check)
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    with pytest.raises(PluginError, match=r"pass 'fragile.check' \(plugin fragile\) on device segment device2 "
                                          r"failed: RuntimeError: cannot handle device2"):
        driver.compile(_hardmax_in_the_middle(tmp_path), CompilerConfig(), output_dir=tmp_path / "out",
                       calibration=cal, plugins=host)
    assert not (tmp_path / "out").exists()  # a compile into a new path leaves no folder when it fails


def test_stop_after_stops_every_segment_at_the_same_point(tmp_path: Path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(_hardmax_in_the_middle(tmp_path), CompilerConfig(), output_dir=tmp_path / "out",
                         calibration=cal, stop_after="quantizer.write_qdq")
    names = set(res.artifacts)
    assert {"quantized_model.onnx", "device2.quantized_model.onnx", "host_part1.onnx"} <= names
    assert not {"program.bin", "device2.program.bin"} & names
    ran = [(p["name"], p["status"]) for p in res.report["passes"] if p["name"] == "lowering.emit_program"]
    assert ran == [("lowering.emit_program", "skipped")] * 2


def test_an_lstm_between_two_convolutional_stages_leaves_both_stages_on_the_aipu(tmp_path: Path) -> None:
    """conv -> Reshape into a sequence -> LSTM -> Reshape back into a map -> conv: the sequence part runs on the
    host (rank-3 tensors, no int8 LSTM), each convolutional stage is a device segment, bit-exact."""
    rng = np.random.default_rng(12)
    hidden = 8
    inits = {"w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             "seq": np.array([1, 8, 64], np.int64), "back": np.array([1, 8, 8, 8], np.int64),
             "W": rng.standard_normal((1, 4 * hidden, 8)).astype(np.float32) * 0.3,
             "R": rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32) * 0.3,
             "w2": rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.2}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "seq"], ["s0"], name="to_sequence"),
             helper.make_node("Transpose", ["s0"], ["s"], perm=[2, 0, 1], name="time_first"),
             helper.make_node("LSTM", ["s", "W", "R"], ["Y"], hidden_size=hidden, name="lstm"),
             helper.make_node("Reshape", ["Y", "back"], ["m"], name="to_map"),
             helper.make_node("Conv", ["m", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["y"], name="relu2")]
    res, run, floats = _compile_run_compare(toy_model(nodes, inits), tmp_path)
    placement = res.report["placement"]
    assert [(p["name"], p["nodes"]) for p in placement["parts"]] == [("device1", 2), ("host_part1", 4),
                                                                     ("device2", 2)]
    assert placement["device_mac_share"] == 1.0
    assert {h["node"]: h["reason"] for h in placement["host"]}["lstm"].startswith("LSTM has no int8 kernel")
    assert floats and floats[0].sqnr_db > 20


def test_a_model_with_nothing_for_the_aipu_is_one_line_and_quantize_only_writes_every_segment(tmp_path) -> None:
    from _support import one_error_line, run_cli

    nodes = [helper.make_node("Hardmax", ["x"], ["h"], axis=1, name="hardmax"),
             helper.make_node("TopK", ["h", "k"], ["y", "i"], axis=3, name="topk")]
    model = toy_model(nodes, {"k": np.array([2], np.int64)}, outputs=("y",))
    onnx.save(model, tmp_path / "none.onnx")
    proc = run_cli("compile", str(tmp_path / "none.onnx"), "-o", str(tmp_path / "out"))
    assert proc.returncode != 0
    one_error_line(proc.stderr, "found nothing to run on the accelerator")
    assert not (tmp_path / "out").exists()
    # quantize_only: the quantizer's reasons alone place the Hardmax; each device segment gets its QDQ model
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32))
    proc = run_cli("compile", str(_hardmax_in_the_middle(tmp_path)), "-o", str(tmp_path / "q"), "--calibration",
                   str(tmp_path / "cal.npy"), "--set", "compiler_mode=quantize_only")
    assert proc.returncode == 0, proc.stderr
    assert {"quantized_model.onnx", "host_part1.onnx", "device2.quantized_model.onnx"} <= set(
        p.name for p in (tmp_path / "q").iterdir())


def _refusing_plugin(refuse: str):
    """A plugin whose legalization check refuses the node named ``refuse`` (by its ONNX name), as a check that
    depends on the quantized grid would: the graph cleaner cannot foresee it."""
    from axdrive.errors import UnsupportedOperatorError
    from axdrive.passes import Phase, compiler_pass

    @compiler_pass("picky.check", requires=("quantized",), phase=Phase.LEGALIZE)
    def check(ctx):
        for node in ctx.graph.nodes:
            if refuse in (node.name, *node.source):
                raise UnsupportedOperatorError(f"node {node.name!r} is not to my taste", node=node.name,
                                               reasons={refuse: "not to my taste"})

    return _host_with("picky", check)


def test_a_node_the_back_end_refuses_after_the_split_goes_to_the_host_on_a_second_attempt(tmp_path: Path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.errors import UnsupportedOperatorError
    from axdrive.runner import execute
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    rng = np.random.default_rng(2)
    cal = {"x": rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "out", calibration=cal,
                         plugins=_refusing_plugin("conv2"))
    host = {h["node"]: h for h in res.report["placement"]["host"]}
    assert set(host) == {"conv2"} and host["conv2"]["reason"] == \
        "the back end refused it in an earlier attempt (not to my taste)"
    assert res.report["placement"]["device_segments"] == 2
    assert any("refused 1 node(s) an earlier attempt left on the AIPU (conv2)" in w for w in res.report["warnings"])
    run = execute(tmp_path / "out", {"x": rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32)}, compare=True)
    ints = [c for c in run.comparisons if c.reference == "integer reference"]
    assert ints and all(c.max_abs_error == 0.0 for c in ints)
    # strict: the refusal is the error, as before
    with pytest.raises(UnsupportedOperatorError, match="not to my taste"):
        driver.compile(model, CompilerConfig(), output_dir=tmp_path / "strict", calibration=cal,
                       plugins=_refusing_plugin("conv2"), host_fallback=False)
    assert not (tmp_path / "strict").exists()
