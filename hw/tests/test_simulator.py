from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _programs import conv_relu_program
from hypothesis import given, settings
from hypothesis import strategies as st

from axdrive.errors import SimulationError
from axdrive_hw.kernels.dpu import DpuProgramBuilder
from axdrive_hw.numerics import apply_lut, make_lut, quantize_multiplier, requantize
from axdrive_hw.program.model import ProgramBuilder
from axdrive_hw.reference import (avg_pool2d_ref, conv2d_ref, depthwise_conv2d_ref, matmul_ref, max_pool2d_ref,
                                  resize_nearest_ref)
from axdrive_hw.simulator import Simulator, run_program


def _conv_relu_expected(ins, raw, pads=(1, 1, 1, 1)):
    acc = conv2d_ref(ins["x"], raw["x_zp"], raw["w"], raw["bias"], pads=pads)
    return np.maximum(requantize(acc, raw["m"], raw["s"], -1), -1)


@settings(max_examples=8)
@given(st.integers(0, 2**31), st.integers(1, 70), st.integers(1, 70), st.integers(-128, 127))
def test_dma_conv_dpu_dma_program_matches_the_numpy_reference(seed, c, o, x_zp):
    program, ins, raw = conv_relu_program(seed, c=c, o=o, h=4, w=5, x_zp=x_zp)
    out = run_program(program, ins).outputs["y"]
    assert out.dtype == np.int8 and np.array_equal(out, _conv_relu_expected(ins, raw))


def test_without_tokens_the_conv_reads_its_input_before_the_dma_wrote_it():
    program, ins, _ = conv_relu_program(tokens=False)
    with pytest.raises(SimulationError, match=r"core 0 task 6 \(mvm/conv2d\): reads x at l1\[core0\]\+0x0 "
                                              r"\(buffer 'x_l1' \+ 0\) before anything wrote it"):
        run_program(program, ins)


def _copy_program(src_size, dst_size, **dma):
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (src_size,))
    y = pb.output("y", (dst_size,))
    tmp = pb.buffer("tmp", "l1", (dst_size,))
    pb.dma(0, x, tmp, signal=(1,), **dma)
    pb.dma(0, tmp, y, wait=(1,))
    return pb


def test_out_of_bounds_dma_names_task_buffer_and_address():
    pb = _copy_program(64, 64, rows=2, row_bytes=40, src_stride=40, dst_stride=40)
    with pytest.raises(SimulationError, match=r"core 0 task 0 \(dma/copy2d\): src bytes 0\.\.80 at ddr\+0x0 are out "
                                              r"of bounds of buffer 'x' \(64 bytes at ddr\+0x0\)"):
        run_program(pb.build(), {"x": np.zeros(64, np.int8)})


def test_a_buffer_outside_its_memory_level_is_rejected_at_load():
    pb = ProgramBuilder(cores=1)
    pb.input("x", (64,))
    pb.buffer("big", "l1", (64,), address=4 * 2**20 - 512 * 2**10 - 32)
    with pytest.raises(SimulationError, match=r"buffer 'big' at l1\[core0\]\+0x37ffe0 size 64 is out of bounds of l1"):
        Simulator(pb.build()).run({"x": np.zeros(64, np.int8)})


def test_writing_a_buffer_that_overlaps_a_live_buffer_names_task_and_address():
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (128,))
    y = pb.output("y", (64,))
    a = pb.buffer("a", "l1", (128,), address=0)
    b = pb.buffer("b", "l1", (64,), address=64)  # shares a's upper half
    pb.dma(0, x, a, signal=(1,))
    pb.dma(0, pb.ref("a", (64,)), b, wait=(1,), signal=(2,))  # a is still live: read again below
    pb.dma(0, pb.ref("a", (64,), offset=64), y, wait=(2,))
    with pytest.raises(SimulationError, match=r"core 0 task 1 \(dma/copy2d\): writes buffer 'b' at l1\[core0\]\+0x40 "
                                              r"which overlaps live buffer 'a'"):
        run_program(pb.build(), {"x": np.arange(128, dtype=np.int8)})


def test_address_reuse_after_the_last_use_is_allowed():
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (64,))
    y = pb.output("y", (64,))
    a = pb.buffer("a", "l1", (64,), address=0)
    b = pb.buffer("b", "l2", (64,))
    c = pb.buffer("c", "l1", (64,), address=0)  # same bytes as a, after a's last use
    pb.dma(0, x, a, signal=(1,))
    pb.dma(0, a, b, wait=(1,), signal=(2,))
    pb.dma(0, b, c, wait=(2,), signal=(3,))
    pb.dma(0, c, y, wait=(3,))
    xin = np.arange(64, dtype=np.int8)
    assert np.array_equal(run_program(pb.build(), {"x": xin}).outputs["y"], xin)


def test_tokens_never_signalled_are_a_deadlock_naming_the_waiting_task():
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (64,))
    y = pb.output("y", (64,))
    pb.dma(0, x, y, wait=(9,))
    with pytest.raises(SimulationError, match=r"deadlock: core 0 task 0 \(dma/copy2d\) waits on token 9"):
        run_program(pb.build(), {"x": np.zeros(64, np.int8)})


def test_compute_operands_must_be_in_the_l1_of_the_core():
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (2, 8))
    w = pb.constant("w", np.ones((3, 8), np.int8))
    bias = pb.constant("b", np.zeros(3, np.int32))
    y = pb.output("y", (2, 3), "int32")
    pb.matmul(0, x, w, bias, y, x_zp=0)
    with pytest.raises(SimulationError, match=r"core 0 task 0 \(mvm/matmul\): operand 'x' \(buffer 'x'\) is in "
                                              r"ddr\+0x0; MVM operands must be in the L1 of core 0"):
        run_program(pb.build(), {"x": np.zeros((2, 8), np.int8)})


def test_inputs_are_checked_and_unwritten_outputs_are_an_error():
    pb = ProgramBuilder(cores=1)
    pb.input("x", (64,))
    pb.output("y", (64,))
    prog = pb.build()
    with pytest.raises(SimulationError, match=r"input 'x': expected int8\[64\] \(64 bytes\), got float32\[64\]"):
        run_program(prog, {"x": np.zeros(64, np.float32)})
    with pytest.raises(SimulationError, match="input 'x' is missing"):
        run_program(prog, {})
    with pytest.raises(SimulationError, match=r"output 'y': reads output at ddr\+0x40"):
        run_program(prog, {"x": np.zeros(64, np.int8)})


def _l1(pb, ref, name, signal):
    dst = pb.buffer(name, "l1", ref.shape, ref.dtype)
    pb.dma(0, ref, dst, signal=(signal,))
    return dst


def test_matmul_depthwise_pools_resize_and_lut_tasks_match_references():
    rng = np.random.default_rng(5)
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (1, 6, 6, 67))
    wdw = rng.integers(-127, 128, (3, 3, 67), dtype=np.int8)
    bdw = rng.integers(-500, 500, 67).astype(np.int32)
    m, s = quantize_multiplier(np.full(67, 0.01))
    lut = make_lut(lambda r: r / (1 + np.exp(-r)), 0.05, 0, 0.05, 0)
    dp = DpuProgramBuilder()
    dp.load(0, 0); dp.lut(1, 0, table=0); dp.store(1, 0)
    consts = {n: pb.constant(n, a) for n, a in (("wdw", wdw), ("bdw", bdw), ("m", m.astype(np.int32)),
                                                 ("s", s.astype(np.int32)), ("lut", lut[None]), ("code", dp.build()))}
    l1 = {n: _l1(pb, r, f"{n}_l1", 1) for n, r in [("x", x)] + list(consts.items())}
    dw = pb.buffer("dw", "l1", (1, 3, 3, 67))
    mp = pb.buffer("mp", "l1", (1, 2, 2, 67))
    ap = pb.buffer("ap", "l1", (1, 2, 2, 67))
    rs = pb.buffer("rs", "l1", (1, 5, 3, 67))
    lt = pb.buffer("lt", "l1", (1, 5, 3, 67))
    y = pb.output("y", (1, 5, 3, 67))
    pb.depthwise(0, l1["x"], l1["wdw"], l1["bdw"], dw, x_zp=4, stride=(2, 2), pads=(1, 1, 0, 0),
                 requant=(l1["m"], l1["s"], 2), wait=(1,) * 7, signal=(2,))
    pb.pool(0, "maxpool", dw, mp, kernel=(2, 2), stride=(1, 1), wait=(2,), signal=(3,))
    pb.pool(0, "avgpool", mp, ap, kernel=(2, 2), stride=(1, 1), pads=(0, 0, 1, 1), x_zp=2, signal=(4,))
    pb.resize_nearest(0, ap, rs, signal=(5,))
    pb.dpu(0, [rs], [lt], l1["code"], channels=67, luts=l1["lut"], wait=(3, 4, 5), signal=(6,))
    pb.dma(0, lt, y, wait=(6,))
    xin = rng.integers(-128, 128, (1, 6, 6, 67), dtype=np.int8)
    got = run_program(pb.build(), {"x": xin}).outputs["y"]
    e = requantize(depthwise_conv2d_ref(xin, 4, wdw, bdw, (2, 2), (1, 1, 0, 0)), m, s, 2)
    e = avg_pool2d_ref(max_pool2d_ref(e, (2, 2), (1, 1), (0, 0, 0, 0)), 2, (2, 2), (1, 1), (0, 0, 1, 1))
    e = apply_lut(resize_nearest_ref(e, 5, 3), lut)
    assert np.array_equal(got, e)


def test_two_cores_hand_over_through_l2_with_a_token():
    rng = np.random.default_rng(1)
    pb = ProgramBuilder(cores=2)
    x = pb.input("x", (4, 70))
    w = rng.integers(-127, 128, (9, 70), dtype=np.int8)
    bias = rng.integers(-99, 99, 9).astype(np.int32)
    cw, cb = pb.constant("w", w), pb.constant("b", bias)
    x1 = pb.buffer("x_l1_c0", "l1", (4, 70), core=0)
    x2 = pb.buffer("x_l2", "l2", (4, 70))
    x3 = pb.buffer("x_l1_c1", "l1", (4, 70), core=1)
    w1, b1 = pb.buffer("w_l1", "l1", (9, 70), core=1), pb.buffer("b_l1", "l1", (9,), "int32", core=1)
    acc = pb.buffer("acc", "l1", (4, 9), "int32", core=1)
    y = pb.output("y", (4, 9), "int32")
    pb.dma(0, x, x1, signal=(1,))
    pb.dma(0, x1, x2, wait=(1,), signal=(2,))  # core 0 hands x to core 1 through L2
    pb.dma(1, cw, w1, signal=(3,))
    pb.dma(1, cb, b1, signal=(3,))
    pb.dma(1, x2, x3, wait=(2,), signal=(3,))
    pb.matmul(1, x3, w1, b1, acc, x_zp=-7, wait=(3, 3, 3), signal=(4,))
    pb.dma(1, acc, y, wait=(4,))
    xin = rng.integers(-128, 128, (4, 70), dtype=np.int8)
    res = run_program(pb.build(), {"x": xin})
    assert np.array_equal(res.outputs["y"], matmul_ref(xin, -7, w, bias))
    assert {r.core for r in res.timeline.records} == {0, 1}


def test_simulation_is_deterministic():
    program, ins, _ = conv_relu_program(3)
    a, b = run_program(program, ins), run_program(program, ins)
    assert np.array_equal(a.outputs["y"], b.outputs["y"])
    assert [dataclasses.astuple(r) for r in a.timeline.records] == [dataclasses.astuple(r) for r in b.timeline.records]


def test_repeated_runs_replay_the_schedule_and_match_a_fresh_simulator():
    program, ins, raw = conv_relu_program(3, c=9, o=11)
    sim = Simulator(program)
    first = sim.run(ins)
    rng = np.random.default_rng(5)
    for _ in range(2):
        other = {"x": rng.integers(-128, 128, ins["x"].shape, dtype=np.int8)}
        again, fresh = sim.run(other), Simulator(program).run(other)
        assert np.array_equal(again.outputs["y"], fresh.outputs["y"])
        assert np.array_equal(again.outputs["y"], _conv_relu_expected(other, raw))
        assert again.timeline == fresh.timeline == first.timeline


def test_a_dpu_program_that_changes_between_runs_is_scheduled_again():
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (1, 2, 2, 64))
    code_in = pb.input("code", (8, 6), "int32")
    y = pb.output("y", (1, 2, 2, 64))
    xl = pb.buffer("x_l1", "l1", (1, 2, 2, 64))
    cl = pb.buffer("code_l1", "l1", (8, 6), "int32")
    yl = pb.buffer("y_l1", "l1", (1, 2, 2, 64))
    pb.dma(0, x, xl, signal=(1,))
    pb.dma(0, code_in, cl, signal=(1,))
    pb.dpu(0, [xl], [yl], cl, channels=64, wait=(1, 1), signal=(2,))
    pb.dma(0, yl, y, wait=(2,))
    program = pb.build()

    def code(adds):  # x + adds, as 8 instructions (padded with nops)
        b = DpuProgramBuilder()
        b.load(0, 0)
        for _ in range(adds):
            b.addi(0, 0, 1)
        b.store(0, 0)
        return np.concatenate([b.build(), np.zeros((6 - adds, 6), np.int32)])

    xin = np.random.default_rng(0).integers(-128, 120, (1, 2, 2, 64), dtype=np.int8)
    sim = Simulator(program)
    assert np.array_equal(sim.run({"x": xin, "code": code(1)}).outputs["y"], xin + 1)
    later = {"x": xin, "code": code(6)}
    again, fresh = sim.run(later), Simulator(program).run(later)
    assert np.array_equal(again.outputs["y"], xin + 6) and np.array_equal(again.outputs["y"], fresh.outputs["y"])
    assert again.timeline == fresh.timeline


def test_replays_reuse_buffers_and_skip_no_check_that_could_fail_and_stay_exact():
    program, ins, raw = conv_relu_program(seed=5, c=3, o=16)
    sim = Simulator(program)
    rng = np.random.default_rng(5)
    for k in range(4):  # recorded run, then compiled replays on reused (not cleared) buffers with other inputs
        x = ins["x"] if k == 0 else rng.integers(-128, 128, ins["x"].shape, dtype=np.int8)
        out = sim.run({"x": x}).outputs["y"]
        assert np.array_equal(out, _conv_relu_expected({"x": x}, raw))
    compiled, = sim._compiled  # one step list, made by the first replay and reused by the others
    assert compiled.steps is not None


def test_a_replay_still_checks_its_inputs():
    program, ins, _raw = conv_relu_program(seed=6)
    sim = Simulator(program)
    sim.run(ins)
    with pytest.raises(SimulationError, match="input 'x': expected"):
        sim.run({"x": ins["x"][:, :3]})


def test_a_compiled_replay_restores_constants_a_task_overwrote():
    # task 0 reads the constant, task 1 overwrites it with the input, task 2 reads it again: every run must
    # start from the constant, not from what the previous run left in the buffer
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (64,))
    k = pb.constant("k", np.arange(64, dtype=np.int8))
    y0, y1 = pb.output("y0", (64,)), pb.output("y1", (64,))
    pb.dma(0, k, y0, signal=(1,))
    pb.dma(0, x, k, wait=(1,), signal=(2,))
    pb.dma(0, k, y1, wait=(2,))
    sim = Simulator(pb.build())
    rng = np.random.default_rng(3)
    for _ in range(4):  # the recorded run, the run that makes the steps, then two compiled replays
        xin = rng.integers(-128, 128, 64, dtype=np.int8)
        out = sim.run({"x": xin}).outputs
        assert np.array_equal(out["y0"], np.arange(64, dtype=np.int8)) and np.array_equal(out["y1"], xin)
    compiled, = sim._compiled
    assert len(compiled.steps) == 1  # the three copies are one batched DMA step


def test_a_compiled_replay_reads_parameters_that_depend_on_an_input_at_every_run():
    # the DPU's constant table comes from an input: its task must not be bound to the first run's table
    pb = ProgramBuilder(cores=1)
    x = pb.input("x", (1, 1, 2, 64))
    lut_in = pb.input("lut", (1, 256))
    y = pb.output("y", (1, 1, 2, 64))
    xl, ll, yl = (pb.buffer("x_l1", "l1", (1, 1, 2, 64)), pb.buffer("lut_l1", "l1", (1, 256)),
                  pb.buffer("y_l1", "l1", (1, 1, 2, 64)))
    code = DpuProgramBuilder()
    code.load(0, 0)
    code.lut(1, 0, table=0)
    code.store(1, 0)
    cl = pb.constant("code", code.build(), "l1")
    pb.dma(0, x, xl, signal=(1,))
    pb.dma(0, lut_in, ll, signal=(1,))
    pb.dpu(0, [xl], [yl], cl, channels=64, luts=ll, wait=(1, 1), signal=(2,))
    pb.dma(0, yl, y, wait=(2,))
    sim = Simulator(pb.build())
    rng = np.random.default_rng(4)
    xin = rng.integers(-128, 128, (1, 1, 2, 64), dtype=np.int8)
    for _ in range(4):
        table = rng.integers(-128, 128, (1, 256), dtype=np.int8)
        out = sim.run({"x": xin, "lut": table}).outputs["y"]
        assert np.array_equal(out, table[0][xin.astype(np.int64) + 128])
