"""The ``multicore`` estimate of ``compile_report.json`` comes from a multi-frame simulation of the cycle model,
per ``multicore_mode``: the method is stated, the throughput is consistent with the latency and with the bounds
of one simulated run (pipeline: the busiest stage; host replicas: cores / latency, lowered by shared bandwidth).
That every combination computes what one core computes is ``test_multicore.py``'s."""

from __future__ import annotations

import json

import pytest

from _lowered import quantized
from axdrive import driver
from axdrive.config import CompilerConfig


@pytest.fixture(scope="module")
def qdq(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimates")
    model, feeds = quantized("ppocr", root)
    return model, {k: tuple(v.shape) for k, v in feeds.items()}


def _multicore(qdq, out, **sets) -> dict:
    model, shapes = qdq
    cfg = CompilerConfig()
    cfg.compiler_mode = "lower_only"
    for k, v in sets.items():
        setattr(cfg, k, v)
    driver.compile(str(model), cfg, output_dir=out, input_shapes=shapes)
    report = json.loads((out / "compile_report.json").read_text())
    return report["multicore"] | {"_frequency": report["performance"]["frequency_hz"],
                                  "_cycles": report["performance"]["estimated_cycles"]}


def _consistent(mc: dict) -> None:
    """What every mode's estimate satisfies: a frame is in flight at every moment of a stream, so at least
    ``frames_per_inference_run`` frames complete per latency; the interval and latency in cycles agree with the
    figures in frames/s and ms."""
    sim, f = mc["simulation"], mc["_frequency"]
    assert mc["throughput_fps"] * mc["latency_ms"] / 1000 >= mc["frames_per_inference_run"] * (1 - 1e-3)
    assert mc["throughput_fps"] == pytest.approx(mc["frames_per_inference_run"] * f / sim["interval_cycles"],
                                                 rel=1e-3)
    assert mc["latency_ms"] == pytest.approx(1000 * sim["latency_cycles"] / f, rel=1e-3)
    assert sim["frame_window"] == 1 and sim["frames"] > sim["warmup_frames"] >= 1


def test_pipeline_throughput_lies_between_one_frame_at_a_time_and_the_busiest_stage(qdq, tmp_path):
    mc = _multicore(qdq, tmp_path / "p", aipu_cores_used=3, multicore_mode="pipeline")
    _consistent(mc)
    # a run carries an even and an odd frame (double-buffered hand-overs); 2 runs fill the 3 stages
    assert mc["frames_per_inference_run"] == 2
    assert mc["method"] == "simulated, 4 runs of 2 frames" and mc["simulation"]["warmup_frames"] == 2
    bound = mc["one_run"]["throughput_fps"]  # 2 x frequency / the busiest stage's busiest unit
    assert mc["throughput_fps"] <= bound * (1 + 1e-3)
    assert mc["throughput_fps"] >= 2 * 1000 / mc["latency_ms"] * (1 - 1e-3)
    db = mc["double_buffered"]  # a second copy of the run's memory lets a stage run one run ahead
    assert db["frame_window"] == 2
    assert mc["throughput_fps"] * (1 - 1e-3) <= db["throughput_fps"] <= bound * (1 + 1e-3)


@pytest.mark.parametrize("mode", ["batch", "cooperative"])
def test_compile_time_modes_state_the_simulation(qdq, tmp_path, mode):
    mc = _multicore(qdq, tmp_path / mode, aipu_cores_used=2, multicore_mode=mode)
    _consistent(mc)
    frames = mc["simulation"]["frames"]
    per_run = 2 if mode == "batch" else 1
    assert mc["frames_per_inference_run"] == per_run and mc["replicas"] == 1
    expected = f"simulated, {frames} runs of 2 frames" if mode == "batch" else f"simulated, {frames} frames"
    assert mc["method"] == expected
    # one copy of the memory: a run never overlaps the previous one more than the one-run figure allows for
    assert mc["throughput_fps"] >= mc["one_run"]["throughput_fps"] * (1 - 1e-3)
    if mode == "batch":  # the copies have memory of their own: nothing couples the cores, nothing to double
        assert "double_buffered" not in mc
    else:
        assert mc["double_buffered"]["throughput_fps"] >= mc["throughput_fps"] * (1 - 1e-3)


@pytest.mark.parametrize("mode", ["multithread", "multiprocess"])
def test_host_replicas_share_the_chip_so_throughput_is_at_most_cores_over_latency(qdq, tmp_path, mode):
    one = _multicore(qdq, tmp_path / "one", aipu_cores_used=1, multicore_mode=mode)
    _consistent(one)
    assert one["replicas"] == 1 and one["method"] == "simulated, 3 frames"
    assert one["throughput_fps"] == pytest.approx(one["_frequency"] / one["_cycles"], rel=1e-3)
    three = _multicore(qdq, tmp_path / "three", aipu_cores_used=3, multicore_mode=mode)
    _consistent(three)
    assert three["replicas"] == 3 and three["program_cores"] == 1
    assert three["method"] == "simulated, 6 frames on 3 replicas"  # 3 warm-up + 3 (a multiple of the replicas)
    assert one["throughput_fps"] < three["throughput_fps"] <= 3 * one["throughput_fps"] * (1 + 1e-3)
    assert three["throughput_fps"] <= three["one_run"]["throughput_fps"] * (1 + 1e-3)
    assert "double_buffered" not in three  # replicas share no memory: one copy is all there is
