"""The scheduler (axdrive-scheduler) and the task graph it shapes: every scheduling property changes the
tasks or their timing, never the numbers computed."""

from __future__ import annotations

import numpy as np
import pytest

from _lowered import lower, quantized
from axdrive.config import CompilerConfig
from axdrive.ir.program_plan import PlanTask
from axdrive_scheduler import policy_from_config
from axdrive_scheduler._list_scheduler import list_schedule


def test_list_scheduler_respects_dependencies_and_hoists_independent_loads():
    # a chain dma -> mvm -> dma, and an independent long dma that a naive order would put last
    tasks = [PlanTask(0, 0, "dma", 10, (), 0), PlanTask(1, 0, "mvm", 100, (0,), 0),
             PlanTask(2, 0, "dma", 10, (1,), 0), PlanTask(3, 0, "dma", 50, (), 1)]
    order = list_schedule(tasks, dma_channels=1)
    pos = {t: k for k, t in enumerate(order)}
    assert pos[0] < pos[1] < pos[2]
    assert pos[3] < pos[2]  # the load runs while the MVM computes


def test_policy_reads_every_scheduling_property():
    cfg = CompilerConfig()
    cfg.pipeline_spatial_tiles = False
    cfg.group_ifdw_tasks = True
    cfg.aipu_cores_used = 3
    cfg.multicore_mode = "pipeline"
    p = policy_from_config(cfg)
    assert (p.tile_slots, p.hoist_weight_loads, p.cores, p.multicore_mode) == (1, True, 3, "pipeline")
    cfg.multicore_mode = "multithread"
    assert policy_from_config(cfg).cores == 1  # host modes replicate a one-core program


@pytest.fixture(scope="module")
def ppocr(tmp_path_factory):
    root = tmp_path_factory.mktemp("sched")
    qdq, feeds = quantized("ppocr", root)
    report, ref = lower(qdq, root / "default", feeds)
    return root, qdq, feeds, report, ref


@pytest.mark.parametrize("flip, companion", [
    ({"inter_operator_async": False}, {}), ({"use_list_scheduler": True}, {}),
    ({"pipeline_spatial_tiles": False}, {"force_h_tiling": 3}),
    ({"unroll_prologue_epilogue": True}, {"force_h_tiling": 3}), ({"group_ifdw_tasks": True}, {}),
    ({"use_hw_tokens": False}, {}), ({"pipeline_channel_tiles": False}, {"force_oc_tiling": 2})])
def test_each_scheduling_property_changes_the_cycles_and_keeps_the_outputs(ppocr, flip, companion, tmp_path):
    root, qdq, feeds, default, ref = ppocr
    base = lower(qdq, tmp_path / "base", feeds, **companion)[0] if companion else default
    report, out = lower(qdq, tmp_path / "o", feeds, **companion, **flip)
    for k in ref:
        np.testing.assert_array_equal(out[k], ref[k], err_msg=k)
    assert report["performance"]["estimated_cycles"] != base["performance"]["estimated_cycles"]


def test_layers_overlap_only_when_inter_operator_async(ppocr, tmp_path):
    root, qdq, feeds, base, ref = ppocr
    sync, _ = lower(qdq, tmp_path / "o", feeds, inter_operator_async=False)
    assert base["performance"]["estimated_cycles"] < sync["performance"]["estimated_cycles"]
