"""Multi-core: ``batch``, ``cooperative`` and ``pipeline`` partition the program over 1 to 4 cores,
``multithread``/``multiprocess`` drive replicas from the host; every combination computes exactly what
one core computes, and the report gives each one's estimated latency and throughput."""

from __future__ import annotations

import numpy as np
import pytest

from _lowered import lower, quantized


@pytest.fixture(scope="module")
def ppocr(tmp_path_factory):
    root = tmp_path_factory.mktemp("multicore")
    qdq, feeds = quantized("ppocr", root)
    report, ref = lower(qdq, root / "one", feeds)
    return qdq, feeds, report, ref


@pytest.mark.parametrize("mode", ["batch", "cooperative", "pipeline"])
@pytest.mark.parametrize("cores", [2, 4])
def test_compile_time_modes_compute_what_one_core_computes(ppocr, tmp_path, mode, cores):
    qdq, feeds, one, ref = ppocr
    report, out = lower(qdq, tmp_path / "o", feeds, aipu_cores_used=cores, multicore_mode=mode)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k], err_msg=k)
    mc = report["multicore"]
    assert mc["program_cores"] == cores and mc["multicore_mode"] == mode
    assert mc["latency_ms"] > 0 and mc["throughput_fps"] > 0


def test_cooperative_cores_cut_the_latency_and_batch_cores_raise_the_throughput(ppocr, tmp_path):
    qdq, feeds, one, _ref = ppocr
    coop = lower(qdq, tmp_path / "c", feeds, aipu_cores_used=4, multicore_mode="cooperative")[0]["multicore"]
    batch = lower(qdq, tmp_path / "b", feeds, aipu_cores_used=4, multicore_mode="batch")[0]["multicore"]
    assert coop["latency_ms"] < one["multicore"]["latency_ms"]
    assert batch["throughput_fps"] > one["multicore"]["throughput_fps"]


def test_a_batch_program_runs_any_number_of_frames(ppocr, tmp_path):
    from axdrive import run

    qdq, feeds, _one, ref = ppocr
    lower(qdq, tmp_path / "b", feeds, aipu_cores_used=2, multicore_mode="batch")
    name, x = next(iter(feeds.items()))
    out = run(tmp_path / "b", {name: np.concatenate([x, x, x])})
    for k in ref:
        np.testing.assert_array_equal(out[k], np.concatenate([ref[k]] * 3), err_msg=k)


@pytest.mark.parametrize("mode, processes", [("multithread", 1), ("multiprocess", 2)])
def test_host_modes_compute_what_one_core_computes(ppocr, tmp_path, mode, processes):
    from axdrive import run

    qdq, feeds, _one, ref = ppocr
    report, _ = lower(qdq, tmp_path / "h", feeds, aipu_cores_used=2, multicore_mode=mode,
                      host_processes_used=processes)
    assert report["multicore"]["program_cores"] == 1 and report["multicore"]["aipu_cores_used"] == 2
    name, x = next(iter(feeds.items()))
    out = run(tmp_path / "h", {name: np.concatenate([x, x])})
    for k in ref:
        np.testing.assert_array_equal(out[k], np.concatenate([ref[k]] * 2), err_msg=k)


def test_yolov8n_on_four_cooperative_cores_is_bit_exact_and_faster(tmp_path, yolo_model):
    qdq, feeds = quantized("yolo", tmp_path)
    one, ref = lower(qdq, tmp_path / "one", feeds)
    four, out = lower(qdq, tmp_path / "four", feeds, aipu_cores_used=4, multicore_mode="cooperative")
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k], err_msg=k)
    assert four["multicore"]["latency_ms"] < 0.6 * one["multicore"]["latency_ms"]
    for level, use in one["memory"]["levels"].items():
        assert use["peak_bytes"] <= 1.05 * use["lower_bound_bytes"], level
