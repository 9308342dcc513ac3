"""The ``lowering.emit_program`` pass: code generation, artifacts and the performance report.

Why apart from :mod:`._codegen`: the generator turns a graph into a
:class:`~axdrive_hw.program.model.Program`; this module is the compile-side
glue around it (config -> target and homes, staged artifacts, the cycle
model's estimate in ``compile_report.json``).
"""

from __future__ import annotations

__all__ = ["emit_program", "HOST_IO_FILE", "performance"]

from typing import TYPE_CHECKING, Any

from axdrive.passes import Phase, compiler_pass, when_mode
from axdrive_hw.target import CONFIG_OVERRIDE_KEYS, Target, load_target

from ._codegen import emit
from ._keys import IO_ON_HOST, PROGRAM
from ._memory import homes_from_config

if TYPE_CHECKING:  # pragma: no cover
    from axdrive_hw.program.model import Program

#: The host side of the device I/O contract (layout, padding), read by ``axdrive run``.
HOST_IO_FILE = "host_io.json"
TARGET_NAME = "aipu_v1"


def _target(cfg: dict[str, Any]) -> Target:
    overrides = {k: cfg[k] for k in CONFIG_OVERRIDE_KEYS if cfg.get(k) is not None and k != "ddr_size_max"}
    return load_target(TARGET_NAME, overrides)


def _l1_budget(target: Target, cfg: dict[str, Any]) -> int:
    usable = target.usable("l1")
    budget = int(usable * float(cfg.get("resources_used", 1.0)))
    if cfg.get("l1_constraint"):
        budget = min(budget, int(cfg["l1_constraint"]))
    return budget


def performance(program: "Program", target: Target, cfg: dict[str, Any]) -> dict[str, Any]:
    """The cycle model's estimate of one inference: cycles, frames/s at ``frequency``, MVM utilization."""
    # the simulator pulls in the Numba kernels: imported when a program is emitted, not whenever the
    # plugin is loaded (every ``axdrive passes`` and every compile load it)
    from axdrive_hw.cycle_model import SimOptions
    from axdrive_hw.simulator import Simulator

    options = SimOptions.from_config(cfg)
    timeline = Simulator(program, target, options, functional=False).run().timeline
    macs = sum(r.macs for r in timeline.records if r.kind == "mvm")
    cycles = float(timeline.cycles)
    peak = target.mvm.peak_macs_per_cycle
    busy = timeline.unit_busy()
    return {"estimated_cycles": int(cycles), "frequency_hz": int(timeline.frequency_hz),
            "frames_per_second": round(timeline.frequency_hz / cycles, 3) if cycles else 0.0,
            "latency_ms": round(1000.0 * cycles / timeline.frequency_hz, 4) if cycles else 0.0,
            "mvm_macs": int(macs), "mvm_utilization": round(macs / (cycles * peak), 5) if cycles else 0.0,
            "unit_busy_cycles": {k: int(v) for k, v in busy.items()}}


@compiler_pass("lowering.emit_program", requires=("registers_allocated",), provides=("program_emitted",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=Phase.EMIT,
               config_keys=("io_memory_pool", "constant_memory_pool", "workspace_memory_pool", "dpu_constants_home",
                            "dpu_instructions_home", "dwpu_instructions_home", "elf_in_ddr", "frequency",
                            "l1_size_used", "l1_constraint", "resources_used", "propagate_span_information",
                            "use_hw_tokens", "dma_dual_channel", "use_sysdma", "mvm_utilization_limit"))
def emit_program(ctx: Any) -> dict[str, Any]:
    """Emit the task list: MVM conv2d/matmul (weight sets planned on the 4 x 512 x 128 IMC array),
    DWPU depthwise/maxpool/resize (average pooling as a unit-weight depthwise sum), DPU programs,
    and the DMA transfers between each buffer's home and L1, layer by layer, height-tiled where a
    layer does not fit L1. Writes ``program.bin``, ``program.json`` and ``host_io.json``; puts the
    cycle model's estimate into ``compile_report.json`` (``performance``) and the target into it
    (``target``). Statistics: layers, tiles, tasks per unit, weight_sets, l1_peak_bytes, cycles."""
    from axdrive_hw.program.binary import encode_program, program_json

    cfg = ctx.config.to_dict()
    target = _target(cfg)
    homes = homes_from_config(ctx.config)
    for note in homes.notes:
        ctx.warn(note)
    result = emit(ctx.graph, target, homes, l1_bytes=_l1_budget(target, cfg),
                  io_on_host=bool(ctx.stash.get(IO_ON_HOST, False)), spans=bool(ctx.config.propagate_span_information))
    program = result.program
    ctx.stash[PROGRAM] = program
    ctx.artifacts.write_bytes("program.bin", encode_program(program))
    ctx.artifacts.write_text("program.json", program_json(program))
    ctx.artifacts.write_json(HOST_IO_FILE, {
        "schema": "axdrive.host_io/1", "target": program.target,
        "inputs": {k: v.to_dict() for k, v in result.io["inputs"].items()},
        "outputs": {k: v.to_dict() for k, v in result.io["outputs"].items()}})
    perf = performance(program, target, cfg)
    ctx.report["target"] = program.target
    ctx.report["performance"] = perf
    ctx.report["lowering"] = {**result.stats, "layers_detail": result.layers}
    return {**result.stats, "tasks": sum(len(t) for t in program.tasks), "buffers": len(program.buffers),
            "estimated_cycles": perf["estimated_cycles"], "frames_per_second": perf["frames_per_second"]}
