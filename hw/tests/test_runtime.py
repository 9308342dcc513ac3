from __future__ import annotations

import json

import numpy as np
import pytest
from _programs import conv_relu_program

from axdrive.errors import ProgramFormatError, UsageError
from axdrive.passes import PluginHost
from axdrive_hw.kernels.dpu import DpuProgramBuilder
from axdrive_hw.program.binary import write_program
from axdrive_hw.program.model import ProgramBuilder
from axdrive_hw.runtime import AipuRuntime, LoadedProgram, core_groups
from axdrive_hw.simulator import run_program

HOST_MODES = {
    "one core": {"aipu_cores_used": 1},
    "multithread": {"multicore_mode": "multithread", "aipu_cores_used": 2},
    "multiprocess": {"multicore_mode": "multiprocess", "aipu_cores_used": 2, "host_processes_used": 2},
}


def _two_heads(shared_token: bool = False):
    """Two cores, each DMAs the shared input into its L1 and writes its own output: y0 = x + 1, y1 = x * 2."""
    pb = ProgramBuilder(cores=2)
    x = pb.input("x", (1, 4, 4, 8))
    for core, out, op in ((0, "y0", "inc"), (1, "y1", "dbl")):
        y = pb.output(out, (1, 4, 4, 8), level="l2")
        code_b = DpuProgramBuilder()
        code_b.load(0, 0)
        if op == "inc":
            code_b.addi(1, 0, 1)
        else:
            code_b.muli(1, 0, 2)
        code_b.store(1, 0)
        code = pb.constant(f"code{core}", code_b.build())
        code_l1 = pb.buffer(f"code{core}_l1", "l1", code.shape, "int32", core=core)
        xl = pb.buffer(f"x{core}_l1", "l1", x.shape, core=core)
        yl = pb.buffer(f"y{core}_l1", "l1", x.shape, core=core)
        t = 10 * core
        pb.dma(core, x, xl, signal=(t + 1,))
        pb.dma(core, code, code_l1, signal=(t + 1,))
        pb.dpu(core, [xl], [yl], code_l1, channels=8, wait=(t + 1, t + 1), signal=(t + 2,))
        # with shared_token, core 1's last copy waits for core 0's: the cores are coupled
        handoff = shared_token and core == 1
        pb.dma(core, yl, y, wait=(t + 2, 20) if handoff else (t + 2,),
               signal=(20,) if shared_token and core == 0 else ())
    return pb.build()


@pytest.fixture
def conv_dir(tmp_path):
    program, ins, _raw = conv_relu_program(seed=3)
    write_program(program, tmp_path)
    return tmp_path, program, ins


def test_runtime_outputs_equal_the_simulator_and_the_report_has_cycles_seconds_and_busy_units(conv_dir):
    out_dir, program, ins = conv_dir
    ref = run_program(program, ins)
    result = AipuRuntime().run(out_dir, ins, config={})
    assert np.array_equal(result.outputs["y"], ref.outputs["y"])
    rep = result.report
    up, down = -(-180 // 8), -(-252 // 8)  # 1x6x6x5 in, 1x6x6x7 out over the 8 bytes/cycle host link
    assert rep["inference_cycles"] == int(ref.cycles)
    assert rep["cycles"] == int(ref.cycles) + up + down
    assert rep["seconds"] == pytest.approx(rep["cycles"] / 800e6)
    assert rep["unit_busy"]["core0.mvm"] > 0 and rep["unit_busy"]["host.link"] == up + down
    assert result.trace_lines is None and result.chrome_trace is None


def test_a_batch_of_frames_is_split_run_and_concatenated(conv_dir):
    out_dir, program, ins = conv_dir
    frames = np.concatenate([ins["x"], -ins["x"] - 1, ins["x"][:, ::-1]], axis=0)
    result = AipuRuntime().run(out_dir, {"x": frames}, config={})
    expected = np.concatenate([run_program(program, {"x": frames[i:i + 1]}).outputs["y"] for i in range(3)])
    assert result.report["frames"] == 3 and np.array_equal(result.outputs["y"], expected)


def test_host_modes_give_identical_outputs_and_the_same_device_time_for_the_same_cores(conv_dir):
    out_dir, _program, ins = conv_dir
    frames = np.concatenate([ins["x"], ins["x"] // 2], axis=0)
    results = {name: AipuRuntime().run(out_dir, {"x": frames}, config=cfg) for name, cfg in HOST_MODES.items()}
    for name, r in results.items():
        assert np.array_equal(r.outputs["y"], results["one core"].outputs["y"]), name
    assert results["multithread"].report["host"] == {"kind": "threads", "workers": 2}
    assert results["multiprocess"].report["host"] == {"kind": "processes", "workers": 2}
    assert results["multithread"].report["cycles"] == results["multiprocess"].report["cycles"]
    # two replicas of the one-core program run the two frames side by side
    assert results["multithread"].report["cycles"] < results["one core"].report["cycles"]


def test_dmabuf_removes_the_host_copies_from_time_and_trace_but_not_from_the_outputs(conv_dir):
    out_dir, _program, ins = conv_dir
    copy = AipuRuntime().run(out_dir, ins, config={}, profile="B,M")
    mapped = AipuRuntime().run(out_dir, ins, config={"input_dmabuf": True, "output_dmabuf": True}, profile="B,M")
    assert np.array_equal(copy.outputs["y"], mapped.outputs["y"])
    link = copy.report["host_link"]
    assert copy.report["cycles"] - mapped.report["cycles"] == link["input_cycles"] + link["output_cycles"] > 0
    assert mapped.report["host_link"]["input_cycles"] == 0
    host_copy = [line for line in copy.trace_lines if " host " in line]
    host_mapped = [line for line in mapped.trace_lines if " host " in line]
    assert host_copy[0].startswith("[M]") and "frame 0 input x host -> ddr:x bytes=180 cycles=23" in host_copy[0]
    assert "frame 0 input x mapped at ddr:x (input_dmabuf) bytes=180 cycles=0" in host_mapped[0]
    assert "frame 0 output y ddr:y -> host bytes=252 cycles=32" in host_copy[-1]
    begin = next(line for line in copy.trace_lines if "program begin" in line)
    assert int(begin.split()[1]) == 23  # the program starts when the input has arrived
    procs = {e["args"]["name"] for e in copy.chrome_trace["traceEvents"] if e["name"] == "process_name"}
    assert {"core0", "host"} <= procs
    json.dumps(copy.chrome_trace)


def test_independent_cores_run_apart_on_threads_with_the_outputs_of_the_whole_program(tmp_path):
    program = _two_heads()
    assert core_groups(program) == [[0], [1]]
    write_program(program, tmp_path)
    x = np.random.default_rng(0).integers(-100, 100, (1, 4, 4, 8), dtype=np.int8)
    whole = run_program(program, {"x": x})
    threaded = AipuRuntime().run(tmp_path, {"x": x}, config={"multicore_mode": "multithread", "aipu_cores_used": 2})
    assert threaded.report["host"]["kind"] == "threads" and threaded.report["core_groups"] == [[0], [1]]
    for name in ("y0", "y1"):
        assert np.array_equal(threaded.outputs[name], whole.outputs[name])
    assert np.array_equal(threaded.outputs["y0"], (x.astype(np.int32) + 1).clip(-128, 127).astype(np.int8))
    assert threaded.report["inference_cycles"] == int(whole.cycles)


def test_cores_that_share_a_token_stay_in_one_group():
    assert core_groups(_two_heads(shared_token=True)) == [[0, 1]]


def test_profile_levels_select_the_trace_lines(conv_dir):
    out_dir, _program, ins = conv_dir
    loaded = AipuRuntime().load(out_dir, {"profiling_levels": ["K"]})
    tags = {line.split()[0] for line in loaded.run(ins).trace_lines}
    assert tags == {"[K]"}
    assert {line.split()[0] for line in loaded.run(ins, profile="all").trace_lines} >= {"[B]", "[M]", "[T]"}
    with pytest.raises(UsageError, match="profiling level 'X' is not one of"):
        loaded.run(ins, profile="B,X")


def test_a_corrupt_program_is_one_program_format_error_naming_the_section(conv_dir):
    out_dir, _program, ins = conv_dir
    data = bytearray((out_dir / "program.bin").read_bytes())
    data[-10] ^= 0xFF
    (out_dir / "program.bin").write_bytes(bytes(data))
    with pytest.raises(ProgramFormatError, match=r"program\.bin: checksum mismatch in section DATA"):
        AipuRuntime().run(out_dir, ins, config={})


def test_inputs_of_the_wrong_type_or_shape_are_usage_errors(conv_dir):
    out_dir, program, ins = conv_dir
    loaded = LoadedProgram(program)
    with pytest.raises(UsageError, match=r"input 'x': program.bin takes int8\[1, 6, 6, 5\], got float32"):
        loaded.run({"x": ins["x"].astype(np.float32)})
    with pytest.raises(UsageError, match=r"or a batch of them along axis 0\), got int8\[1, 6, 5, 5\]"):
        loaded.run({"x": ins["x"][:, :, :5]})
    with pytest.raises(UsageError, match="input 'z' is not an input"):
        loaded.run({**ins, "z": ins["x"]})


def test_the_plugin_answers_the_runtime_hook_for_builtin_targets_only():
    host = PluginHost()
    assert isinstance(host.hook.axdrive_runtime(target="aipu_v1"), AipuRuntime)
    assert host.hook.axdrive_runtime(target="npu_x") is None


def test_loading_the_same_bytes_again_reuses_the_loaded_program_and_new_bytes_do_not(conv_dir, tmp_path):
    out_dir, program, ins = conv_dir
    first = AipuRuntime().load(out_dir, {})
    assert AipuRuntime().load(out_dir, {}) is first  # execute() loads at every call: decoded once
    assert AipuRuntime().load(out_dir, {"frequency": 400e6}) is not first  # another config, another machine
    other, ins2, _raw = conv_relu_program(seed=9)
    write_program(other, out_dir)
    again = AipuRuntime().load(out_dir, {})
    assert again is not first
    assert np.array_equal(again.run(ins2).outputs["y"], run_program(other, ins2).outputs["y"])
