"""Multi-frame runs of the cycle model: ``CycleModel.run(program, frames=N, replicas=R, frame_window=W)`` and the
steady-state figures ``CycleModel.stream`` measures from them (what the compile report's multi-core estimate
uses). The one-frame run must stay event for event what it was."""

from __future__ import annotations

import pytest
from _programs import conv_relu_program

from axdrive_hw.cycle_model import CycleModel, FrameStream, SimOptions, constant_dpu_code, coupled_cores
from axdrive_hw.program.model import ProgramBuilder
from axdrive_hw.simulator import Simulator
from axdrive_hw.target import load_target

TARGET = load_target("aipu_v1")
MODEL = CycleModel(TARGET, SimOptions())


def _events(timeline):
    recs = [(r.core, r.index, r.unit, r.issue, r.start, r.end, r.frame) for r in timeline.records]
    toks = [(e.cycle, e.core, e.index, e.token, e.action, e.count, e.frame) for e in timeline.tokens]
    return recs, toks, timeline.cycles, timeline.core_end


def _two_matmuls(pb, c, x, m, k, o, wait=(), signal=()):
    """Two matmuls of ``x`` with different weights (the next frame's first one never finds its weights resident
    in the IMC array, so every frame costs what the first does); the first waits on ``wait``, the second
    signals ``signal``. Returns the second one's output."""
    for j in range(2):
        w = pb.buffer(f"w{c}_{j}", "l1", (o, k), core=c, kind="constant")
        b = pb.buffer(f"b{c}_{j}", "l1", (o,), "int32", core=c, kind="constant")
        y = pb.buffer(f"y{c}_{j}", "l1", (m, o), "int32", core=c, kind="output" if j else "workspace")
        pb.matmul(c, x, w, b, y, x_zp=0, wait=() if j else wait, signal=signal if j else ())
    return y


def _pipeline(work=(256, 1024, 512), k=512, o=128):
    """One stage per core: DMA the hand-over (L2) into L1, matmuls of ``work[c]`` rows, DMA the result to the
    next hand-over; token ``c`` tells core ``c`` its input is there."""
    cores = len(work)
    pb = ProgramBuilder(cores=cores)
    rows = max(work)
    hand = [pb.buffer("x" if c == 0 else f"h{c}", "l2", (rows, k), kind="input" if c == 0 else "workspace")
            for c in range(cores)]
    out = pb.buffer("y", "l2", (rows, k), kind="output")
    for c, m in enumerate(work):
        a = pb.buffer(f"a{c}", "l1", (m, k), core=c)
        src = pb.ref(hand[c].buffer, (m, k))
        pb.dma(c, src, a, wait=(c,) if c else (), signal=(10 + c,))  # tokens 10+: within the core
        y = _two_matmuls(pb, c, a, m, k, o, wait=(10 + c,), signal=(20 + c,))
        dst = pb.ref(out.buffer if c == cores - 1 else hand[c + 1].buffer, (m, o * 4))
        pb.dma(c, pb.ref(y.buffer, (m, o * 4), "int8"), dst, wait=(20 + c,),
               signal=(c + 1,) if c < cores - 1 else ())
    return pb.build()


def _copies(cores, nbytes=256 * 1024, src_level="ddr", m=64):
    """``cores`` independent copies (one per core, own buffers, no token): a DMA of ``nbytes`` from
    ``src_level`` into L1 and a small matmul. DDR is 32 bytes/cycle for the whole chip."""
    pb = ProgramBuilder(cores=cores)
    for c in range(cores):
        s = pb.buffer(f"s{c}", src_level, (nbytes,), kind="input")
        d = pb.buffer(f"d{c}", "l1", (nbytes,), core=c)
        x = pb.buffer(f"x{c}", "l1", (m, 512), core=c, kind="input")
        if nbytes:
            pb.dma(c, s, d, signal=(c,))
        _two_matmuls(pb, c, x, m, 512, 128, wait=(c,) if nbytes else ())
    return pb.build()


def _busiest_stage(timeline):
    """Per core, the busy cycles of its busiest unit (DMA channels together): the stage bound of a pipeline."""
    busy: dict[tuple[int, str], float] = {}
    for r in timeline.records:
        unit = "dma" if r.unit.startswith("dma") else r.unit
        busy[(r.core, unit)] = busy.get((r.core, unit), 0.0) + r.end - r.start
    return max(busy.values())


# -- the one-frame run is unchanged ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: conv_relu_program(3)[0], lambda: _pipeline(), lambda: _copies(3)])
def test_one_frame_is_the_run_it_always_was(make):
    program = make()
    sim = Simulator(program, TARGET, SimOptions(), functional=False).run().timeline
    one = MODEL.run(program, dpu_code=constant_dpu_code(program), frames=1, replicas=1, frame_window=1)
    assert _events(one) == _events(sim)
    assert {r.frame for r in one.records} == {0}


def test_one_frame_stream_measures_the_run():
    program = _pipeline()
    s = MODEL.stream(program, 1, warmup=0)
    assert s.interval_cycles == s.latency_cycles == s.timeline.cycles
    assert s.frames_per_second == pytest.approx(TARGET.frequency_hz / s.timeline.cycles)


# -- frames -------------------------------------------------------------------------------------------------
def test_every_task_runs_once_per_frame_and_tokens_count_per_frame():
    program = _pipeline()
    tl = MODEL.run(program, frames=5, frame_window=None)
    tasks = sum(len(t) for t in program.tasks)
    assert len(tl.records) == 5 * tasks
    assert sorted({(r.frame, r.core, r.index) for r in tl.records}) == sorted(
        (f, c, i) for f in range(5) for c, t in enumerate(program.tasks) for i in range(len(t)))
    for e in tl.tokens:  # each frame's token goes 0 -> 1 -> 0: frames never borrow each other's signals
        assert e.count == (1 if e.action == "signal" else 0)
    assert {e.frame for e in tl.tokens} == set(range(5))


def test_a_stage_takes_a_frame_after_its_previous_frame_and_the_hand_over():
    program = _pipeline()
    tl = MODEL.run(program, frames=6, frame_window=None)
    span = {}
    for r in tl.records:
        a, b = span.get((r.frame, r.core), (float("inf"), 0.0))
        span[(r.frame, r.core)] = (min(a, r.issue), max(b, r.end))
    signal = {(e.frame, e.token): e.cycle for e in tl.tokens if e.action == "signal"}
    for (f, c), (first, _last) in span.items():
        if f:
            assert first >= span[(f - 1, c)][1]  # the stage finished the previous frame
    for r in tl.records:
        if r.core and r.index == 0:  # the stage's input DMA waits for the previous stage of the same frame
            assert r.issue >= signal[(r.frame, r.core)]


def test_pipeline_throughput_lies_between_one_frame_at_a_time_and_the_busiest_stage():
    program = _pipeline()
    one = MODEL.run(program)
    cores = program.cores
    s = MODEL.stream(program, cores + 4, warmup=cores, frame_window=None)
    f = TARGET.frequency_hz
    assert s.frames_per_second >= 1 / s.latency_seconds  # frames overlap: at least one is always in flight
    assert s.frames_per_second <= f / _busiest_stage(one) + 1e-9
    assert s.frames_per_second > f / one.cycles  # pipelining pays: better than a frame at a time
    # double-buffered hand-overs (window 2): pipelined too, nearly as fast, frames queue less between stages
    two = MODEL.stream(program, cores + 4, warmup=cores, frame_window=2)
    assert f / one.cycles < two.frames_per_second <= s.frames_per_second * (1 + 1e-9)
    assert two.frames_per_second > 0.9 * s.frames_per_second
    assert two.latency_cycles <= s.latency_cycles


def test_a_single_copy_of_the_hand_overs_keeps_a_stage_from_running_ahead():
    program = _pipeline()
    cores = program.cores
    one = MODEL.run(program)
    planned = MODEL.stream(program, cores + 4, warmup=cores, frame_window=1)
    free = MODEL.stream(program, cores + 4, warmup=cores, frame_window=None)
    # window 1: a stage starts a frame only when the stages it shares a hand-over with are done with the last one
    assert planned.frames_per_second < free.frames_per_second
    assert planned.frames_per_second >= 1 / planned.latency_seconds
    assert planned.frames_per_second <= TARGET.frequency_hz / _busiest_stage(one) + 1e-9


# -- shared bandwidth: batch copies and host replicas -----------------------------------------------------------
def test_batch_copies_share_ddr_so_throughput_falls_below_cores_over_the_one_core_latency():
    one_core = MODEL.run(_copies(1)).cycles
    for cores in (2, 4):
        s = MODEL.stream(_copies(cores), 5, warmup=1, frame_window=1)
        fps = cores * s.frames_per_second  # one frame per core per run
        assert fps < 0.75 * cores * TARGET.frequency_hz / one_core
        assert fps >= cores / s.latency_seconds - 1e-9


def test_batch_copies_without_shared_traffic_scale_with_the_cores():
    one_core = MODEL.run(_copies(1, nbytes=0)).cycles
    s = MODEL.stream(_copies(4, nbytes=0), 5, warmup=1, frame_window=1)
    assert 4 * s.frames_per_second == pytest.approx(4 * TARGET.frequency_hz / one_core)


def test_replicas_take_frames_round_robin_and_contend_for_ddr():
    program = _copies(1)
    one = MODEL.run(program).cycles
    tl = MODEL.run(program, frames=6, replicas=3)
    assert {(r.frame, r.core) for r in tl.records} == {(f, f % 3) for f in range(6)}
    assert tl.cores == 3 and len(tl.core_end) == 3
    s = MODEL.stream(program, 9, warmup=3, replicas=3)
    assert s.frames_per_second < 0.75 * 3 * TARGET.frequency_hz / one  # DDR bandwidth is the chip's
    compute = _copies(1, nbytes=0)
    c1 = MODEL.run(compute).cycles
    sc = MODEL.stream(compute, 9, warmup=3, replicas=3)
    assert sc.frames_per_second == pytest.approx(3 * TARGET.frequency_hz / c1)


# -- coupling ---------------------------------------------------------------------------------------------------
def test_cores_are_coupled_by_tokens_written_buffers_and_overlapping_bytes():
    assert coupled_cores(_copies(3)) == [[], [], []]  # each its own tokens and buffers
    assert coupled_cores(_pipeline()) == [[1], [0, 2], [1]]
    pb = ProgramBuilder(cores=3)
    shared = pb.buffer("shared", "l2", (1024,), kind="input")  # read by every core: no coupling
    alias = pb.buffer("alias", "l2", (1024,), address=4096)
    other = pb.buffer("other", "l2", (512,), address=4096 + 512)  # overlaps alias's upper half
    for c in range(3):
        pb.dma(c, shared, pb.buffer(f"l{c}", "l1", (1024,), core=c))
    pb.dma(0, shared, alias)
    pb.dma(2, pb.ref("other"), pb.buffer("l2b", "l1", (512,), core=2))
    assert coupled_cores(pb.build()) == [[2], [], [0]]
    assert other.buffer == "other"


def test_bad_arguments_are_refused():
    program = _pipeline()
    with pytest.raises(ValueError, match="replicas"):
        MODEL.run(program, replicas=2)  # 2 x 3 cores > 4
    with pytest.raises(ValueError, match="frames"):
        MODEL.run(program, frames=0)
    with pytest.raises(ValueError, match="frame_window"):
        MODEL.run(program, frames=2, frame_window=0)
    with pytest.raises(ValueError, match="one frame"):
        MODEL.run(program, frames=2, on_start=lambda c, i, t: None)
    with pytest.raises(ValueError, match="warmup"):
        FrameStream.from_timeline(MODEL.run(program, frames=2), 2, 0.0)
    with pytest.raises(ValueError, match="warmup"):
        MODEL.stream(program, 3, warmup=3)
