"""Host-side and location properties: each one's effect, shown where it acts, on PP-OCR.

Why a file of its own: these properties do not change what a compile
computes, so ``test_property_effects.py`` (artifacts and compile report)
cannot show them. Each test here flips one property from its default on the
real PP-OCR direction classifier and asserts the specific difference in the
place the property acts: the ``axdrive run`` report and trace (host runtime),
the output directory, the failure artifact, the trace files, the manifest's
``environment`` or the debug directory. (``softmax_neutral_value`` changes the
compiled program: ``test_property_effects.py`` and
``test_lowering_softmax.py`` show it.) ``test_property_effects_all.py`` checks that this file's
:data:`COVERED` and the compile-side file together cover all 93 properties.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import axdrive
from axdrive.config import BY_NAME, CompilerConfig
from axdrive.errors import MemoryPlanError, UsageError
from axdrive.runner import RunResult, execute
from _support import listing

pytest.importorskip("axdrive_hw")

#: The properties whose effect this file shows. ``multicore_mode`` is tested here too (its host-runtime values
#: ``multiprocess``/``multithread``) but claimed by ``test_property_effects.py``, which shows its compile-time
#: values (``batch``, ``cooperative``, ``pipeline``); a property is claimed by exactly one file.
COVERED: frozenset[str] = frozenset({
    "double_buffer", "input_dmabuf", "output_dmabuf", "profiling_levels", "profiling_drop_percentile",
    "host_processes_used", "output_dir", "remove_output_dir", "save_error_artifact",
    "randomize_onnx_model", "trace_tvm_passes", "compiler_dir", "runtime_dir", "device_dir",
    "model_debug_save_dir",
})

SHAPE = (1, 3, 48, 192)
X = np.random.default_rng(0).random(SHAPE, dtype=np.float32) * 2 - 1
CALIBRATION = {"x": X}  # one sample: enough for a real compile, cheap enough for ~20 of them
INFEASIBLE = {"l1_constraint": 1024}  # PP-OCR's first conv alone needs ~100 KB of L1: the compile fails
TARGET_TOML = Path(__file__).resolve().parents[1] / "hw" / "axdrive_hw" / "targets" / "aipu_v1.toml"

Compiler = Callable[..., Path]


@pytest.fixture(scope="module")
def compiled(ppocr_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Compiler:
    """``compiled(**overrides)``: the output directory of PP-OCR compiled with ``overrides``, once per module.

    The IR verifier is off: these tests are about where host-side properties
    act, and ~20 compiles must stay within the time budget."""
    cache: dict[str, Path] = {}

    def get(**overrides: Any) -> Path:
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp("ppocr")
            compile_into(ppocr_model, out, **overrides)
            cache[key] = out
        return cache[key]

    return get


def compile_into(model: Path, out: Path, **overrides: Any) -> axdrive.CompileResult:
    """One real compile of ``model`` into ``out`` with the given properties."""
    return axdrive.compile(model, CompilerConfig(**overrides), output_dir=out, calibration=CALIBRATION,
                           input_shapes={"x": SHAPE}, verify=False)


def run_frames(out: Path, frames: int, profile: str | None = None) -> RunResult:
    """``axdrive run`` on ``frames`` frames of the accelerator part (the host post-processing is batch-1)."""
    return execute(out, {"x": np.repeat(X, frames, axis=0)}, core_only=True, profile=profile)


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())


def upload_start(result: RunResult, frame: int) -> int:
    """Cycle at which ``frame``'s input upload starts, from its ``[M]`` host-link trace line."""
    assert result.trace_lines is not None
    line = next(ln for ln in result.trace_lines if f" host   link    frame {frame} input " in ln)
    return int(line.split()[1])


# -- host runtime: axdrive run report and trace ---------------------------------------------------------------
def test_double_buffer_uploads_the_next_frame_while_the_current_one_runs(compiled: Compiler) -> None:
    on, off = run_frames(compiled(), 2, "M"), run_frames(compiled(double_buffer=False), 2, "M")
    assert on.report["host_link"]["double_buffer"] is True and off.report["host_link"]["double_buffer"] is False
    upload = on.report["host_link"]["input_cycles"] // 2
    assert upload_start(on, 1) == upload  # right after frame 0's upload, while frame 0 runs
    assert upload_start(off, 1) > upload + on.report["inference_cycles"]  # only after frame 0 came back
    assert on.report["cycles"] < off.report["cycles"]
    assert all(np.array_equal(on[k], off[k]) for k in on)


def test_input_dmabuf_maps_the_inputs_so_their_upload_costs_no_cycles(compiled: Compiler) -> None:
    copied, mapped = run_frames(compiled(), 1, "M"), run_frames(compiled(input_dmabuf=True), 1, "M")
    assert copied.report["host_link"]["input_cycles"] > 0 and mapped.report["host_link"]["input_cycles"] == 0
    assert any("frame 0 input x mapped at" in ln and "(input_dmabuf)" in ln for ln in mapped.trace_lines or [])
    assert mapped.report["cycles"] == copied.report["cycles"] - copied.report["host_link"]["input_cycles"]
    assert all(np.array_equal(copied[k], mapped[k]) for k in copied)


def test_output_dmabuf_maps_the_outputs_so_their_download_costs_no_cycles(compiled: Compiler) -> None:
    copied, mapped = run_frames(compiled(), 1, "M"), run_frames(compiled(output_dmabuf=True), 1, "M")
    assert copied.report["host_link"]["output_cycles"] > 0 and mapped.report["host_link"]["output_cycles"] == 0
    assert any("frame 0 output" in ln and "(output_dmabuf)" in ln for ln in mapped.trace_lines or [])
    assert mapped.report["cycles"] == copied.report["cycles"] - copied.report["host_link"]["output_cycles"]


def test_profiling_levels_make_a_plain_run_write_exactly_those_trace_levels(compiled: Compiler) -> None:
    plain = run_frames(compiled(), 1)
    profiled = run_frames(compiled(profiling_levels=["B", "K"]), 1)
    assert plain.trace_lines is None and plain.chrome_trace is None
    assert profiled.trace_lines and profiled.chrome_trace is not None
    assert {ln.split()[0] for ln in profiled.trace_lines} == {"[B]", "[K]"}


def test_profiling_drop_percentile_trims_the_per_frame_host_times_in_the_run_report(compiled: Compiler) -> None:
    trimmed = run_frames(compiled(), 4).report["host_frame_seconds"]  # default 0.25: one of four per end
    whole = run_frames(compiled(profiling_drop_percentile=0.0), 4).report["host_frame_seconds"]
    assert (trimmed["drop_fraction"], trimmed["runs"], trimmed["kept"]) == (0.25, 4, 2)
    assert (whole["drop_fraction"], whole["runs"], whole["kept"]) == (0.0, 4, 4)
    assert all(s["min"] <= s["mean"] <= s["max"] for s in (trimmed, whole))


def test_multicore_mode_multithread_runs_the_frames_on_one_thread_per_core(compiled: Compiler) -> None:
    procs = run_frames(compiled(aipu_cores_used=2), 2)  # default multiprocess, one host process: inline
    threads = run_frames(compiled(aipu_cores_used=2, multicore_mode="multithread"), 2)
    assert procs.report["multicore_mode"] == "multiprocess" and procs.report["host"] == {"kind": "inline", "workers": 1}
    assert threads.report["multicore_mode"] == "multithread"
    assert threads.report["host"] == {"kind": "threads", "workers": 2}
    assert threads.report["replicas"] == procs.report["replicas"] == 2
    assert all(np.array_equal(procs[k], threads[k]) for k in procs)


def test_host_processes_used_runs_the_frames_in_that_many_worker_processes(compiled: Compiler) -> None:
    one = run_frames(compiled(aipu_cores_used=2), 2)
    two = run_frames(compiled(aipu_cores_used=2, host_processes_used=2), 2)
    assert one.report["host"] == {"kind": "inline", "workers": 1}
    assert two.report["host"] == {"kind": "processes", "workers": 2}
    assert all(np.array_equal(one[k], two[k]) for k in one)


# -- the output directory -------------------------------------------------------------------------------------
def test_output_dir_is_where_every_artifact_lands(compiled: Compiler, ppocr_model: Path, tmp_path: Path) -> None:
    here, there = compiled(), tmp_path / "deep" / "b"
    second = compile_into(ppocr_model, there, output_dir=str(there))
    assert second.output_dir == there and all(p.parent == there for p in second.artifacts.values())
    assert listing(there) == listing(here)
    assert "manifest.json" in second.artifacts and not any(p.parent == here for p in second.artifacts.values())
    # where the files go is not part of what was compiled
    assert "output_dir" not in manifest(there)["config"]
    assert (here / "manifest.json").read_bytes() == (there / "manifest.json").read_bytes()


def test_remove_output_dir_demands_a_directory_holding_only_what_axdrive_wrote(compiled: Compiler, ppocr_model: Path,
                                                                             tmp_path: Path) -> None:
    """Without it a user's file beside the artifacts is left alone; with it the compile refuses to start
    (naming the file) instead of deleting it, and accepts a directory that holds only its own files."""
    kept, strict = tmp_path / "kept", tmp_path / "strict"
    for d in (kept, strict):
        shutil.copytree(compiled(), d, symlinks=True)
        (d / "profile.txt").write_text("from an earlier run\n")  # the user's (axdrive run wrote it): never ours
    compile_into(ppocr_model, kept)
    assert (kept / "profile.txt").read_text() == "from an earlier run\n"
    before = (strict / "manifest.json").read_bytes()
    with pytest.raises(UsageError, match=r"remove_output_dir: .* did not write \(profile.txt\)"):
        compile_into(ppocr_model, strict, remove_output_dir=True)
    assert (strict / "profile.txt").is_file() and (strict / "manifest.json").read_bytes() == before
    (strict / "profile.txt").unlink()
    compile_into(ppocr_model, strict, remove_output_dir=True)
    assert listing(strict) == listing(compiled())


# -- failures and traces --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def failed(ppocr_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Compiler:
    """``failed(**overrides)``: the output directory of a PP-OCR compile that fails on an infeasible
    ``l1_constraint`` (the memory planning error is asserted), once per module."""
    cache: dict[str, Path] = {}

    def get(**overrides: Any) -> Path:
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in cache:
            out = tmp_path_factory.mktemp("failed")
            with pytest.raises(MemoryPlanError, match="l1_constraint"):
                compile_into(ppocr_model, out, **INFEASIBLE, **overrides)
            cache[key] = out
        return cache[key]

    return get


def test_save_error_artifact_writes_the_error_zip_on_a_failing_compile(failed: Compiler) -> None:
    plain, saved = failed(), failed(save_error_artifact=True)
    assert listing(plain) == [] and list(plain.iterdir()) == []  # nothing, not even a partial artifact
    assert listing(saved) == ["error_artifact.zip"]
    with zipfile.ZipFile(saved / "error_artifact.zip") as z:
        assert {"error.txt", "config.json", "log.jsonl", "model.onnx"} <= set(z.namelist())
        assert "MemoryPlanError" in z.read("error.txt").decode()
        assert json.loads(z.read("config.json"))["l1_constraint"] == 1024


def _weights(zip_path: Path) -> dict[str, np.ndarray]:
    """The model's weights in the error ZIP: PP-OCR (a Paddle export) keeps them all in Constant nodes."""
    with zipfile.ZipFile(zip_path) as z:
        model = onnx.load_from_string(z.read("model.onnx"))
    return {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
            if n.op_type == "Constant" and n.attribute[0].type == onnx.AttributeProto.TENSOR}


def test_randomize_onnx_model_false_keeps_the_real_weights_in_the_error_zip(failed: Compiler,
                                                                             ppocr_model: Path) -> None:
    noise_dir = failed(save_error_artifact=True)  # randomize_onnx_model defaults to true
    real_dir = failed(save_error_artifact=True, randomize_onnx_model=False)
    original = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in onnx.load(str(ppocr_model)).graph.node
                if n.op_type == "Constant"}
    noise, real = _weights(noise_dir / "error_artifact.zip"), _weights(real_dir / "error_artifact.zip")
    fc = "fc_0.w_0"  # the classifier's dense weights, 200x2 float
    assert np.array_equal(real[fc], original[fc])
    assert noise[fc].shape == original[fc].shape and noise[fc].dtype == original[fc].dtype
    assert not np.array_equal(noise[fc], original[fc])
    floats = [k for k, v in original.items() if v.dtype.kind == "f" and v.size > 1]
    assert all(np.array_equal(real[k], original[k]) for k in floats)
    assert not any(np.array_equal(noise[k], original[k]) for k in floats)


def test_trace_tvm_passes_writes_the_pass_graph_and_the_chrome_trace(compiled: Compiler) -> None:
    plain, traced = compiled(), compiled(trace_tvm_passes=True)
    names = {"pass_dependency_graph.json", "pass_trace.json"}
    assert not names & set(listing(plain))
    assert names <= set(listing(traced)) and names <= set(manifest(traced)["reports"])
    graph = json.loads((traced / "pass_dependency_graph.json").read_text())
    assert "lowering.emit_program" in json.dumps(graph)
    assert json.loads((traced / "pass_trace.json").read_text())["traceEvents"]


# -- location properties: the machine, recorded outside the config identity -------------------------------------
def test_compiler_dir_is_recorded_in_the_manifest_environment_only(compiled: Compiler) -> None:
    assert "`manifest.json` under `environment`" in BY_NAME["compiler_dir"].doc
    base, given = manifest(compiled()), manifest(compiled(compiler_dir="/opt/axdrive"))
    assert "environment" not in base and given["environment"] == {"compiler_dir": "/opt/axdrive"}
    assert given["config_sha256"] == base["config_sha256"] and "compiler_dir" not in given["config"]


def test_runtime_dir_is_recorded_in_the_manifest_environment_only(compiled: Compiler) -> None:
    assert "manifest.json` under `environment`" in BY_NAME["runtime_dir"].doc
    assert "deployment tooling" in BY_NAME["runtime_dir"].doc
    base, given = manifest(compiled()), manifest(compiled(runtime_dir="/opt/aipu-runtime"))
    assert "environment" not in base and given["environment"] == {"runtime_dir": "/opt/aipu-runtime"}
    assert given["config_sha256"] == base["config_sha256"] and "runtime_dir" not in given["config"]


def test_device_dir_target_toml_replaces_the_target_in_the_compile_and_the_run(compiled: Compiler,
                                                                              tmp_path: Path) -> None:
    text = TARGET_TOML.read_text()
    slower = text.replace("core_channel_bandwidth = 64", "core_channel_bandwidth = 16")
    assert slower != text
    device = tmp_path / "device"
    device.mkdir()
    (device / "target.toml").write_text(slower)
    base_dir, custom_dir = compiled(), compiled(device_dir=str(device))
    base, custom = manifest(base_dir), manifest(custom_dir)
    assert custom["environment"] == {"device_dir": str(device)} and custom["config_sha256"] == base["config_sha256"]
    estimate = json.loads((custom_dir / "compile_report.json").read_text())["performance"]["estimated_cycles"]
    base_estimate = json.loads((base_dir / "compile_report.json").read_text())["performance"]["estimated_cycles"]
    assert estimate > base_estimate  # a quarter of the DMA bandwidth
    ran, base_ran = run_frames(custom_dir, 1), run_frames(base_dir, 1)
    assert ran.report["inference_cycles"] == estimate and base_ran.report["inference_cycles"] == base_estimate


def test_model_debug_save_dir_receives_the_quantization_debug_report(compiled: Compiler, tmp_path: Path) -> None:
    debug = tmp_path / "debug"
    names = {"quantization_debug.json", "quantization_debug_model.onnx"}
    in_output = compiled(quantization_debug=True)
    elsewhere = compiled(quantization_debug=True, model_debug_save_dir=str(debug))
    assert names <= set(listing(in_output))
    assert not names & set(listing(elsewhere))
    assert not names & {a["name"] for a in manifest(elsewhere)["artifacts"]}
    assert sorted(p.name for p in debug.iterdir()) == sorted(names)  # atomic writes: no temp file left
    report = json.loads((debug / "quantization_debug.json").read_text())
    assert report["layers"] and report == json.loads((in_output / "quantization_debug.json").read_text())


def test_one_target_per_compile_every_back_end_pass_reads_device_dir(tmp_path: Path) -> None:
    """``aipu.target`` loads the target once; ICR (which used to read the built-in description whatever
    device_dir said), the register allocator, tiling and emission all read that object. A device whose IMC
    array has one block instead of four gets smaller ICR factors."""
    from axdrive import driver
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    device = tmp_path / "device"
    device.mkdir()
    (device / "target.toml").write_text(TARGET_TOML.read_text().replace("imc_blocks = 4", "imc_blocks = 1"))
    stats = []
    for config in (CompilerConfig(), CompilerConfig(device_dir=str(device))):
        res = driver.compile(model, config, output_dir=tmp_path / f"out{len(stats)}", calibration=cal)
        rows = {p["name"]: p for p in res.report["passes"]}
        for name in ("icr.choose_factors", "dpu_alloc.allocate_registers", "tiling.choose_tiles",
                     "lowering.emit_program"):
            assert "target_loaded" in next(e for e in res.session.pipeline if e.name == name).pass_.requires
        stats.append(rows["icr.choose_factors"]["stats"])
    assert stats[1]["max_factor"] < stats[0]["max_factor"], stats
