"""axdrive pass plugin: scheduling.

``scheduler.schedule`` (provides ``scheduled``) decides how the code generator
shapes the task graph and orders it, and partitions the program over cores:

* a :class:`~axdrive.ir.program_plan.SchedulePolicy` from the config
  (``inter_operator_async``, ``pipeline_spatial_tiles``,
  ``pipeline_channel_tiles``, ``unroll_prologue_epilogue``,
  ``group_ifdw_tasks``, ``use_list_scheduler``, ``aipu_cores_used``,
  ``multicore_mode``), handed over with an :class:`OrderScheduler` under the
  core's :data:`~axdrive.ir.program_plan.TASK_SCHEDULER` key;
* in ``pipeline`` mode, the core of every node (``attrs["schedule"]["core"]``),
  contiguous stages balanced by estimated work.

The code generator derives the dependencies from the bytes tasks touch, so
any order this scheduler returns computes the same numbers.
"""

from __future__ import annotations

__all__ = ["axdrive_passes", "schedule", "OrderScheduler", "policy_from_config", "COMPILE_TIME_MODES"]

from dataclasses import dataclass
from typing import Any, Sequence

from axdrive.ir.program_plan import TASK_SCHEDULER, PlanTask, SchedulePolicy
from axdrive.passes import Phase, compiler_pass, hookimpl, when_mode

from ._list_scheduler import list_schedule
from ._partition import pipeline_stages

COMPILE_TIME_MODES = ("batch", "cooperative", "pipeline")
"""``multicore_mode`` values that partition the cores inside the program (the others are host-runtime modes)."""


def policy_from_config(cfg: Any) -> SchedulePolicy:
    mode = str(cfg.multicore_mode)
    return SchedulePolicy(
        inter_operator_async=bool(cfg.inter_operator_async),
        tile_slots=2 if cfg.pipeline_spatial_tiles else 1,
        channel_slots=2 if cfg.pipeline_channel_tiles else 1,
        unroll_prologue_epilogue=bool(cfg.unroll_prologue_epilogue),
        hoist_weight_loads=bool(cfg.group_ifdw_tasks),
        list_scheduler=bool(cfg.use_list_scheduler),
        cores=int(cfg.aipu_cores_used) if mode in COMPILE_TIME_MODES else 1,
        multicore_mode=mode,
    )


@dataclass
class OrderScheduler:
    """Program order, or a resource-aware list schedule when the policy asks for one."""

    policy: SchedulePolicy
    dma_channels: int = 2

    def order(self, tasks: Sequence[PlanTask]) -> list[int]:
        if not self.policy.list_scheduler:
            return [t.index for t in tasks]
        return list_schedule(tasks, self.dma_channels)


_KEYS = ("inter_operator_async", "pipeline_spatial_tiles", "pipeline_channel_tiles", "unroll_prologue_epilogue",
         "group_ifdw_tasks", "use_list_scheduler", "aipu_cores_used", "multicore_mode", "dma_dual_channel")


@compiler_pass("scheduler.schedule", requires=("memory_planned",), provides=("scheduled",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=int(Phase.CODEGEN) + 1, config_keys=_KEYS)
def schedule(ctx: Any) -> dict[str, Any]:
    """Choose the task-graph shape (layer barriers, L1 slots per tile for pipelining, prologue/epilogue
    unrolling, hoisted weight loads), the task order (program order or a resource-aware list schedule)
    and the multi-core partition (``pipeline``: contiguous stages balanced by work, in
    ``attrs["schedule"]``). Statistics: cores, stages, list_scheduler."""
    policy = policy_from_config(ctx.config)
    ctx.stash[TASK_SCHEDULER] = OrderScheduler(policy, 2 if ctx.config.dma_dual_channel else 1)
    stages = 0
    if policy.multicore_mode == "pipeline" and policy.cores > 1:
        cores = pipeline_stages(ctx.graph, policy.cores)
        for node in ctx.graph.nodes:
            node.attrs["schedule"] = {"core": cores[node.name]}
        stages = len(set(cores.values()))
    return {"cores": policy.cores, "mode": policy.multicore_mode, "stages": stages,
            "list_scheduler": policy.list_scheduler}


@hookimpl
def axdrive_passes() -> list[Any]:
    return [schedule]
