"""`axdrive run` and `axdrive.run` on hand-written output directories.

The compiler does not emit programs yet, so each test writes what a compile
would: program.bin (conv + requant on the MVM, a sigmoid LUT on the DPU),
manifest.json (config, inputs/outputs with quantization), a Softmax
host_postprocess.onnx and, for --compare, the float and QDQ models.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from _support import run_cli
from onnx import TensorProto, helper, numpy_helper

from axdrive.artifacts import canonical_json, sha256_file
from axdrive.cli import main
from axdrive.config import CompilerConfig
from axdrive.numerics import apply_lut, make_lut, quantize_multiplier, requantize

hw = pytest.importorskip("axdrive_hw")
from axdrive_hw.kernels.dpu import DpuProgramBuilder  # noqa: E402
from axdrive_hw.program.binary import write_program  # noqa: E402
from axdrive_hw.program.model import ProgramBuilder  # noqa: E402
from axdrive_hw.reference import conv2d_ref  # noqa: E402

H, W, C, O = 6, 6, 5, 7
X_SCALE, X_ZP = 1 / 32, 3
ACC_SCALE = 0.05
Y_SCALE, Y_ZP = 1 / 256, -128


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Toy:
    """A float conv3x3 -> sigmoid -> softmax model, quantized by hand."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        w = rng.normal(0, 0.3, (O, 3, 3, C))
        self.w_scale = np.abs(w).reshape(O, -1).max(axis=1) / 127
        self.w_q = np.rint(w / self.w_scale[:, None, None, None]).astype(np.int8)
        self.b_q = np.rint(rng.normal(0, 0.5, O) / (X_SCALE * self.w_scale)).astype(np.int32)
        self.m, self.s = quantize_multiplier(X_SCALE * self.w_scale / ACC_SCALE)
        self.lut = make_lut(_sigmoid, ACC_SCALE, 0, Y_SCALE, Y_ZP)

    def reference(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dequantized accelerator output 'feat', the model output 'probs'), in NumPy."""
        xq = np.clip(np.rint(x / X_SCALE) + X_ZP, -128, 127).astype(np.int8)
        acc = conv2d_ref(xq, X_ZP, self.w_q, self.b_q, pads=(1, 1, 1, 1))
        feat = ((apply_lut(requantize(acc, self.m, self.s, 0), self.lut).astype(np.float64) - Y_ZP) * Y_SCALE)
        return feat.astype(np.float32), _softmax(feat.astype(np.float32))

    def program(self):
        pb = ProgramBuilder("aipu_v1", cores=1)
        x = pb.input("x", (1, H, W, C))
        y = pb.output("feat", (1, H, W, O))
        lut = DpuProgramBuilder()
        lut.load(0, 0)
        lut.lut(1, 0, table=0)
        lut.store(1, 0)
        consts = {"w": self.w_q, "bias": self.b_q, "mult": self.m.astype(np.int32), "shift": self.s.astype(np.int32),
                  "code": lut.build(), "luts": self.lut.reshape(1, 256)}
        ddr = {n: pb.constant(n, v) for n, v in consts.items()}
        l1 = {n: pb.buffer(f"{n}_l1", "l1", r.shape, r.dtype) for n, r in (("x", x), *ddr.items())}
        acc = pb.buffer("acc", "l1", (1, H, W, O))
        act = pb.buffer("act", "l1", (1, H, W, O))
        for n, src in (("x", x), *ddr.items()):
            pb.dma(0, src, l1[n], signal=(1,))
        pb.conv2d(0, l1["x"], l1["w"], l1["bias"], acc, x_zp=X_ZP, pads=(1, 1, 1, 1),
                  requant=(l1["mult"], l1["shift"], 0), wait=(1,) * 7, signal=(2,), stage="conv")
        pb.dpu(0, [acc], [act], l1["code"], channels=O, luts=l1["luts"], wait=(2,), signal=(3,), stage="sigmoid")
        pb.dma(0, act, y, wait=(3,))
        return pb.build()

    def float_model(self, qdq: bool = False) -> onnx.ModelProto:
        """The whole model (NHWC in, probs out); with ``qdq`` the QuantizeLinear/DequantizeLinear version."""
        inits = [numpy_helper.from_array(np.transpose(self.w_q, (0, 3, 1, 2)).astype(np.float32)
                                         * self.w_scale[:, None, None, None].astype(np.float32), "W"),
                 numpy_helper.from_array((self.b_q * X_SCALE * self.w_scale).astype(np.float32), "B")]
        nodes = []
        src = "x"

        def qdq_pair(name: str, scale: float, zp: int) -> str:
            inits.extend([numpy_helper.from_array(np.array(scale, np.float32), f"{name}_s"),
                          numpy_helper.from_array(np.array(zp, np.int8), f"{name}_z")])
            nodes.append(helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_q"]))
            nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_dq"]))
            return f"{name}_dq"

        if qdq:
            src = qdq_pair("xin", X_SCALE, X_ZP)
        nodes.append(helper.make_node("Transpose", [src], ["x_nchw"], perm=[0, 3, 1, 2]))
        nodes.append(helper.make_node("Conv", ["x_nchw", "W", "B"], ["conv"], pads=[1, 1, 1, 1]))
        src = "conv"
        if qdq:
            src = qdq_pair("acc", ACC_SCALE, 0)
        nodes.append(helper.make_node("Sigmoid", [src], ["sig"]))
        src = "sig"
        if qdq:
            src = qdq_pair("sigq", Y_SCALE, Y_ZP)
        nodes.append(helper.make_node("Transpose", [src], ["feat_nhwc"], perm=[0, 2, 3, 1]))
        nodes.append(helper.make_node("Softmax", ["feat_nhwc"], ["probs"], axis=-1))
        graph = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, H, W, C])],
                                  [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, H, W, O])], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _postprocess() -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Softmax", ["feat"], ["probs"], axis=-1)], "post",
                              [helper.make_tensor_value_info("feat", TensorProto.FLOAT, [None, H, W, O])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, H, W, O])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_output_dir(path, toy: Toy, *, program: bool = True, float_model: bool = False, qdq: bool = False,
                     target: str | None = None, **config):
    """What a quantize_and_lower compile of the toy model would write into ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    cfg = CompilerConfig()
    for key, value in config.items():
        setattr(cfg, key, value)
    model_entry = {"name": "toy", "file": None, "sha256": "0" * 64}
    if float_model:
        onnx.save(toy.float_model(), path / "toy.onnx")
        model_entry = {"name": "toy", "file": "toy.onnx", "sha256": sha256_file(path / "toy.onnx")}
    if qdq:
        onnx.save(toy.float_model(qdq=True), path / "quantized_model.onnx")
    if program:
        write_program(toy.program(), path)
    onnx.save(_postprocess(), path / "host_postprocess.onnx")
    manifest = {
        "schema": "axdrive.manifest/1", "model": model_entry, "config": cfg.to_dict(include_location=False),
        "inputs": [{"name": "x", "shape": [1, H, W, C], "dtype": "float32",
                    "quantization": {"scale": X_SCALE, "zero_point": X_ZP, "axis": None, "dtype": "int8"}}],
        "outputs": [{"name": "feat", "shape": [1, H, W, O], "dtype": "float32",
                     "quantization": {"scale": Y_SCALE, "zero_point": Y_ZP, "axis": None, "dtype": "int8"}}],
    }
    if target:
        manifest["target"] = target
    (path / "manifest.json").write_text(canonical_json(manifest))
    return relist(path)


def relist(path):
    """List every file of a hand-made output directory in its manifest with its hash, as a compile lists
    them (call again after changing a file on purpose: the run refuses files the manifest does not vouch for)."""
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["artifacts"] = [{"name": f.name, "sha256": sha256_file(f)} for f in sorted(path.iterdir())
                             if f.name not in ("toy.onnx", "manifest.json")]
    (path / "manifest.json").write_text(canonical_json(manifest))
    return path


@pytest.fixture(scope="module")
def toy():
    return Toy()


@pytest.fixture
def x():
    return np.random.default_rng(1).uniform(-4, 3.8, (1, H, W, C)).astype(np.float32)


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_writes_the_original_models_outputs_equal_to_the_numpy_reference(toy, x, tmp_path, capsys):
    out_dir = write_output_dir(tmp_path / "out", toy)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy", "-o", tmp_path / "res.npz")
    assert code == 0, err
    with np.load(tmp_path / "res.npz") as res:
        assert sorted(res.files) == ["probs"]
        np.testing.assert_allclose(res["probs"], toy.reference(x)[1], rtol=1e-6, atol=1e-7)
    assert "1 frame(s)" in out and "probs: float32[1, 6, 6, 7]" in out


def test_core_only_returns_the_dequantized_accelerator_output(toy, x, tmp_path):
    import axdrive

    out_dir = write_output_dir(tmp_path / "out", toy)
    core = axdrive.run(out_dir, {"x": x}, core_only=True)
    assert sorted(core) == ["feat"] and np.array_equal(core["feat"], toy.reference(x)[0])
    assert core.report["cycles"] > core.report["inference_cycles"] > 0


def test_a_batch_of_frames_runs_a_batch_1_host_part_frame_by_frame(toy, tmp_path):
    """Exporters fix the batch at 1 (PP-OCR's host_postprocess.onnx does): a batch of frames must still run."""
    import axdrive

    out_dir = write_output_dir(tmp_path / "out", toy)
    post = _postprocess()
    for vi in (*post.graph.input, *post.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(post, out_dir / "host_postprocess.onnx")
    relist(out_dir)
    frames = np.random.default_rng(3).uniform(-4, 3.8, (3, H, W, C)).astype(np.float32)
    res = axdrive.run(out_dir, {"x": frames})
    assert res["probs"].shape == (3, H, W, O) and res.report["frames"] == 3
    for f in range(3):
        np.testing.assert_allclose(res["probs"][f: f + 1], toy.reference(frames[f: f + 1])[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("config", [
    {"aipu_cores_used": 1},
    {"multicore_mode": "multithread", "aipu_cores_used": 2},
    {"multicore_mode": "multiprocess", "aipu_cores_used": 2, "host_processes_used": 2},
], ids=["one-core", "multithread", "multiprocess"])
def test_host_modes_give_identical_outputs_for_a_batch(toy, tmp_path, capsys, config):
    frames = np.random.default_rng(2).uniform(-4, 3.8, (2, H, W, C)).astype(np.float32)
    out_dir = write_output_dir(tmp_path / "out", toy, **config)
    np.savez(tmp_path / "x.npz", x=frames)
    code, out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npz", "-o", tmp_path / "res.npz")
    assert code == 0, err
    expected = np.concatenate([toy.reference(frames[i:i + 1])[1] for i in range(2)])
    with np.load(tmp_path / "res.npz") as res:
        np.testing.assert_allclose(res["probs"], expected, rtol=1e-6, atol=1e-7)
    assert "2 frame(s)" in out


def test_dmabuf_changes_the_reported_time_and_trace_but_not_the_outputs(toy, x, tmp_path, capsys):
    np.save(tmp_path / "x.npy", x)
    runs = {}
    for dmabuf in (False, True):
        out_dir = write_output_dir(tmp_path / f"out{dmabuf}", toy, input_dmabuf=dmabuf, output_dmabuf=dmabuf)
        code, out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy", "--profile", "B,M")
        assert code == 0, err
        import axdrive

        runs[dmabuf] = (axdrive.run(out_dir, x, profile="B,M"), (out_dir / "profile.txt").read_text(),
                        json.loads((out_dir / "profile_trace.json").read_text()))
    (copied, copied_txt, copied_trace), (mapped, mapped_txt, _) = runs[False], runs[True]
    assert np.array_equal(copied["probs"], mapped["probs"])
    link = copied.report["host_link"]
    assert copied.report["cycles"] - mapped.report["cycles"] == link["input_cycles"] + link["output_cycles"] > 0
    assert "frame 0 input x host -> ddr:x bytes=180 cycles=23" in copied_txt
    assert "frame 0 input x mapped at ddr:x (input_dmabuf) bytes=180 cycles=0" in mapped_txt
    assert all(line.startswith(("[B]", "[M]")) for line in copied_txt.splitlines())
    assert any(e.get("args", {}).get("name") == "host" for e in copied_trace["traceEvents"])


def test_profile_files_go_next_to_the_output_file(toy, x, tmp_path, capsys):
    out_dir = write_output_dir(tmp_path / "out", toy)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "res").mkdir()
    code, _out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy", "-o", tmp_path / "res" / "y.npz",
                           "--profile", "all")
    assert code == 0, err
    assert (tmp_path / "res" / "profile.txt").read_text().count("[K]") == 2
    assert not (out_dir / "profile.txt").exists()


def test_compare_prints_error_and_sqnr_against_the_references(toy, x, tmp_path, capsys):
    import axdrive

    out_dir = write_output_dir(tmp_path / "out", toy, float_model=True, qdq=True)
    np.save(tmp_path / "x.npy", x)
    code, out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy", "--compare")
    assert code == 0, err
    res = axdrive.run(out_dir, x, compare=True)
    by_ref = {c.reference: c for c in res.comparisons}
    assert by_ref["onnxruntime float toy.onnx"].sqnr_db > 25
    assert by_ref["onnxruntime quantized_model.onnx"].max_abs_error < 0.05
    integer = [c for c in res.comparisons if c.reference == "integer reference"]
    assert integer or any(n.startswith("integer reference: skipped") for n in res.notes)
    assert "SQNR" in out and "onnxruntime float toy.onnx" in out


def test_compare_without_the_float_model_says_why_it_was_skipped(toy, x, tmp_path):
    import axdrive

    res = axdrive.run(write_output_dir(tmp_path / "out", toy), x, compare=True)
    assert res.comparisons == []
    assert any("float model: skipped (the manifest names" in n or "float model: skipped (the compile was given" in n
               for n in res.notes)
    assert any(f"no quantized_model.onnx in {tmp_path / 'out'}" in n for n in res.notes)


def test_a_corrupt_program_exits_1_with_one_program_format_error_line(toy, x, tmp_path):
    out_dir = write_output_dir(tmp_path / "out", toy)
    data = bytearray((out_dir / "program.bin").read_bytes())
    data[-20] ^= 0x5A  # inside the constants (DATA)
    (out_dir / "program.bin").write_bytes(bytes(data))
    np.save(tmp_path / "x.npy", x)
    # changed after the compile: the manifest's hash refuses it before the program is even decoded
    proc = run_cli("run", str(out_dir), "--input", str(tmp_path / "x.npy"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "program.bin: sha256" in lines[0] and "differs from the manifest" in lines[0], proc.stderr
    # vouched for by the manifest (as if written damaged): the program's own section checksums catch it
    relist(out_dir)
    proc = run_cli("run", str(out_dir), "--input", str(tmp_path / "x.npy"))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "program.bin: checksum mismatch in section DATA" in lines[0], proc.stderr


def test_a_directory_without_manifest_exits_2(tmp_path, x, capsys):
    np.save(tmp_path / "x.npy", x)
    code, _out, err = _run(capsys, tmp_path, "--input", tmp_path / "x.npy")
    assert code == 2 and err.strip() == f"axdrive: error: {tmp_path}: not an axdrive output directory (no manifest.json)"


def test_a_quantize_only_output_names_the_mode_that_wrote_it(toy, x, tmp_path, capsys):
    out_dir = write_output_dir(tmp_path / "out", toy, program=False, compiler_mode="quantize_only")
    np.save(tmp_path / "x.npy", x)
    code, _out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy")
    assert code == 2 and "no program.bin to run: compiler_mode='quantize_only' wrote this directory" in err


def test_a_target_without_installed_runtime_names_target_and_distribution(toy, x, tmp_path, capsys):
    out_dir = write_output_dir(tmp_path / "out", toy, target="npu_x")
    np.save(tmp_path / "x.npy", x)
    code, _out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npy")
    assert code == 2 and "no installed runtime runs target 'npu_x': install the distribution axdrive-hw" in err


def test_wrong_input_names_are_usage_errors(toy, x, tmp_path, capsys):
    out_dir = write_output_dir(tmp_path / "out", toy)
    np.savez(tmp_path / "x.npz", images=x)
    code, _out, err = _run(capsys, out_dir, "--input", tmp_path / "x.npz")
    assert code == 2 and "input 'images' is not an input of" in err


def test_compare_reports_bit_exactness_against_the_integer_reference_and_the_float_model(ppocr_model, tmp_path):
    """On a real compile: the device equals run_integer on the graph that quantized_model.onnx encodes."""
    import numpy as np

    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.runner import execute

    rng = np.random.default_rng(0)
    cal = tmp_path / "cal.npy"
    np.save(cal, rng.random((2, 3, 48, 192), dtype=np.float32) * 2 - 1)
    out = tmp_path / "out"
    driver.compile(ppocr_model, CompilerConfig(), output_dir=out, calibration=str(cal),
                   input_shapes={"x": (1, 3, 48, 192)})
    x = rng.random((1, 3, 48, 192), dtype=np.float32) * 2 - 1
    result = execute(out, {"x": x}, compare=True, float_model=ppocr_model)
    by = {(c.output, c.reference): c for c in result.comparisons}
    (intref,) = [c for (o, r), c in by.items() if r == "integer reference"]
    assert intref.max_abs_error == 0.0
    assert any(r.startswith("onnxruntime float") for _, r in by)
    assert not [n for n in result.notes if "skipped" in n]
