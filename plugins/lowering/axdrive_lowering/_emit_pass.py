"""The ``lowering.emit_program`` pass: code generation, artifacts and the performance report.

Why apart from :mod:`._codegen`: the generator turns a graph into a
:class:`~axdrive_hw.program.model.Program`; this module is the compile-side
glue around it (config -> target and homes, staged artifacts, the cycle
model's estimate in ``compile_report.json``).
"""

from __future__ import annotations

__all__ = ["emit_program", "HOST_IO_FILE", "performance"]

from typing import TYPE_CHECKING, Any

from axdrive.errors import MemoryPlanError
from axdrive.ir.program_plan import MEMORY_PLANNER, TASK_SCHEDULER
from axdrive.passes import Phase, compiler_pass, when_mode
from axdrive_hw.target import CONFIG_OVERRIDE_KEYS, Target, load_target

from ._codegen import record
from ._finalize import finalize
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
            "unit_busy_cycles": {k: int(v) for k, v in busy.items()},
            "core_busy_cycles": _core_busy(timeline)}


def _core_busy(timeline: Any) -> list[int]:
    """Per core, the busy cycles of its busiest unit: a pipeline stage's time per frame once frames stream."""
    busy: dict[tuple[int, str], float] = {}
    for r in timeline.records:
        unit = "dma" if r.unit.startswith("dma") else r.unit
        busy[(r.core, unit)] = busy.get((r.core, unit), 0.0) + (r.end - r.start)
    cores = sorted({c for c, _u in busy})
    return [int(max(v for (c, _u), v in busy.items() if c == core)) for core in cores]


def _tasklist(program: "Program", cfg: dict[str, Any]) -> dict[str, Any]:
    """Where the task list lives and whether it fits its L2 slot (``stream_tasklist``, ``elf_in_ddr``)."""
    from axdrive_hw.program.binary import encode_program

    constant_bytes = sum(-(-a.nbytes // 64) * 64 for a in program.constants.values())
    total = len(encode_program(program)) - constant_bytes
    tasks = sum(len(t) for t in program.tasks) or 1
    per_core = [round(total * len(t) / tasks) for t in program.tasks]
    slot = int(cfg["l2_size_reserved_tasklist"])
    streamed = bool(cfg["stream_tasklist"])
    if not streamed and max(per_core) > slot:
        raise MemoryPlanError(f"the task list of core {per_core.index(max(per_core))} needs {max(per_core)} bytes of "
                              f"L2 but its slot has {slot}; raise l2_size_reserved_tasklist or set stream_tasklist")
    # streamed: the slot holds a window that refills while the tasks run; else the whole list loads first
    source_bw = 32 if cfg["elf_in_ddr"] else 128
    load = 0 if streamed else -(-max(per_core) // source_bw)
    return {"bytes_per_core": per_core, "slot_bytes": slot, "streamed": streamed,
            "image_home": "ddr" if cfg["elf_in_ddr"] else "l2", "load_cycles": int(load)}


def _address_map(target: Target, program: "Program") -> dict[str, Any]:
    """Where L1 sits as the device sees it: program addresses are offsets inside a level, so the host tools
    need the bases to turn an L1 offset into the address the program uses (``l1_virtual_address``) and into
    the physical address a DMA descriptor of core ``c`` carries (``l1_core0_physical_address`` + ``c`` x the
    per-core L1 size, ``l1_size_used``)."""
    l1 = target.memory["l1"]
    return {"l1": {"virtual_base": int(l1.virtual_address), "bytes_per_core": int(l1.size),
                   "cores": [{"core": c, "physical_base": int(l1.core0_physical_address + c * l1.size)}
                             for c in range(program.cores)]}}


def _multicore(perf: dict[str, Any], cfg: dict[str, Any], cores: int) -> dict[str, Any]:
    """Estimated latency and throughput of the configured multi-core combination."""
    mode, used = str(cfg["multicore_mode"]), int(cfg["aipu_cores_used"])
    cycles, f = perf["estimated_cycles"] + perf.get("tasklist_load_cycles", 0), perf["frequency_hz"]
    latency = cycles / f if cycles else 0.0
    if mode == "batch":
        fps, frames = cores / latency if latency else 0.0, cores
    elif mode == "pipeline":
        stage = max(perf["core_busy_cycles"] or [cycles])
        fps, frames = f / stage if stage else 0.0, 1
    elif mode == "cooperative":
        fps, frames = 1 / latency if latency else 0.0, 1
    else:  # host modes: the runtime replicates the one-core program over the cores
        fps, frames = used / latency if latency else 0.0, 1
    return {"multicore_mode": mode, "aipu_cores_used": used, "program_cores": cores,
            "frames_per_inference_run": frames, "latency_ms": round(1000 * latency, 4),
            "throughput_fps": round(fps, 3)}


@compiler_pass("lowering.emit_program", requires=("registers_allocated", "tiled", "memory_planned", "scheduled"),
               provides=("program_emitted",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=Phase.EMIT,
               config_keys=("io_memory_pool", "constant_memory_pool", "workspace_memory_pool", "dpu_constants_home",
                            "dpu_instructions_home", "dwpu_instructions_home", "elf_in_ddr", "stream_tasklist",
                            "frequency", "l1_size_used", "l1_constraint", "resources_used", "l1_virtual_address",
                            "l1_core0_physical_address", "ddr_size_used", "ddr_size_reserved",
                            "imc_double_buffer_pipeline", "imc_double_buffer_sequential", "propagate_span_information",
                            "use_hw_tokens", "dma_dual_channel", "use_sysdma",
                            "mvm_utilization_limit", "force_h_tiling", "force_oc_tiling"))
def emit_program(ctx: Any) -> dict[str, Any]:
    """Emit the program: per layer its constants into an L1 arena and its tiles (MVM conv2d/matmul with
    weight sets planned on the 4 x 512 x 128 IMC array, DWPU depthwise/maxpool/resize, DPU programs, DMA
    between homes and L1) as the tiling chose; buffers placed by the memory planner (re-tiling a layer
    that does not fit, up to ``max_memplan_attempts``), dependencies from the bytes tasks touch, tasks
    ordered by the scheduler and synchronised by tokens. Writes ``program.bin``, ``program.json`` and
    ``host_io.json``; puts ``performance`` (cycle model), ``memory`` (peak vs bound per level) and
    ``multicore`` into ``compile_report.json``. Statistics: layers, tiles, tasks per unit, cycles."""
    from axdrive_hw.program.binary import encode_program, program_json

    cfg = ctx.config.to_dict()
    target = _target(cfg)
    homes = homes_from_config(ctx.config)
    for note in homes.notes:
        ctx.warn(note)
    scheduler = ctx.stash[TASK_SCHEDULER]
    l1_bytes = _l1_budget(target, cfg)
    forced = ctx.config.force_h_tiling is not None or ctx.config.force_oc_tiling is not None

    def run_codegen(extra: dict[str, int], ungrouped: frozenset[str]) -> Any:
        return record(ctx.graph, target, homes, l1_bytes=l1_bytes, io_on_host=bool(ctx.stash.get(IO_ON_HOST, False)),
                      spans=bool(ctx.config.propagate_span_information), policy=scheduler.policy, extra_tiles=extra,
                      ungrouped=ungrouped, forced=forced)

    done = finalize(run_codegen, target, ctx.stash[MEMORY_PLANNER], scheduler, l1_bytes=l1_bytes,
                    use_sysdma=bool(cfg["use_sysdma"]), dual=bool(cfg["dma_dual_channel"]))
    program, result = done.program, done.emitted
    ctx.stash[PROGRAM] = program
    ctx.artifacts.write_bytes("program.bin", encode_program(program))
    ctx.artifacts.write_text("program.json", program_json(program))
    ctx.artifacts.write_json(HOST_IO_FILE, {
        "schema": "axdrive.host_io/1", "target": program.target,
        "inputs": {k: v.to_dict() for k, v in result.io["inputs"].items()},
        "outputs": {k: v.to_dict() for k, v in result.io["outputs"].items()}})
    tasklist = _tasklist(program, cfg)
    perf = performance(program, target, cfg)
    perf["tasklist_load_cycles"] = tasklist["load_cycles"]
    ctx.report["target"] = program.target
    ctx.report["performance"] = perf
    memory = done.plan.to_dict()
    for key, use in memory["levels"].items():
        level = target.memory[key.split(".")[0]]
        use["size_bytes"] = int(level.size)
        use["reserved_bytes"] = int(level.size - target.usable(level.name))
    ctx.report["memory"] = {**memory, "attempts": done.attempts, "tasklist": tasklist,
                            "ddr_device_bytes": int(cfg["ddr_size_max"]), "address_map": _address_map(target, program)}
    ctx.report["multicore"] = _multicore(perf, cfg, program.cores)
    ctx.report["lowering"] = {**result.stats, "layers_detail": result.layers, "token_edges": done.edges,
                              "phase_seconds": {k: round(v, 4) for k, v in done.phases.items()}}
    return {**result.stats, "tasks": sum(len(t) for t in program.tasks), "buffers": len(program.buffers),
            "estimated_cycles": perf["estimated_cycles"], "frames_per_second": perf["frames_per_second"]}
