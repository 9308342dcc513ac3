"""The ``lowering.emit_program`` pass: code generation, artifacts and the performance report.

Why apart from :mod:`._codegen`: the generator turns a graph into a
:class:`~axdrive_hw.program.model.Program`; this module is the compile-side
glue around it (config -> target and homes, staged artifacts, the cycle
model's estimate in ``compile_report.json``).
"""

from __future__ import annotations

__all__ = ["emit_program", "HOST_IO_FILE", "MEASURED_FRAMES", "performance"]

from typing import TYPE_CHECKING, Any

from axdrive.errors import MemoryPlanError
from axdrive.ir.program_plan import MEMORY_PLANNER, TASK_SCHEDULER
from axdrive.passes import Phase, compiler_pass, when_mode
from axdrive_hw.layer_report import layer_performance, to_csv
from axdrive_hw.plugin import TARGET
from axdrive_hw.target import Target, l1_budget

from ._codegen import frames_per_run, record
from ._finalize import finalize
from ._keys import IO_ON_HOST, PROGRAM
from ._memory import homes_from_config

if TYPE_CHECKING:  # pragma: no cover
    from axdrive_hw.cycle_model import FrameStream
    from axdrive_hw.program.model import Program

#: The host side of the device I/O contract (layout, padding), read by ``axdrive run``.
HOST_IO_FILE = "host_io.json"




def estimate(program: "Program", target: Target, cfg: dict[str, Any]) -> Any:
    """The cycle model's timeline of one inference (no data computed)."""
    # the simulator pulls in the Numba kernels: imported when a program is emitted, not whenever the
    # plugin is loaded (every ``axdrive passes`` and every compile load it)
    from axdrive_hw.cycle_model import SimOptions
    from axdrive_hw.simulator import Simulator

    return Simulator(program, target, SimOptions.from_config(cfg), functional=False).run().timeline


def performance(program: "Program", target: Target, cfg: dict[str, Any], timeline: Any = None) -> dict[str, Any]:
    """The cycle model's estimate of one inference: cycles, frames/s at ``frequency``, MVM utilization."""
    timeline = timeline if timeline is not None else estimate(program, target, cfg)
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
    """Per core, the busy cycles of its busiest unit: no pipeline stage takes a frame in less, so frequency over
    the largest is the bound a stream of frames through the stages cannot beat."""
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


#: Frames measured after the warm-up in the multi-frame estimate (rounded up to a multiple of the replicas). The
#: warm-up fills the stages or replicas, after which every frame adds the same: the YOLOv8n figures are the same
#: with 2, 4 and 8 measured frames, and each simulated frame costs about one single-frame run of compile time.
MEASURED_FRAMES = 2


def _one_run_estimate(perf: dict[str, Any], mode: str, used: int, per_run: int) -> dict[str, Any]:
    """The figures derived from the single simulated run: kept next to the multi-frame ones, because they are
    the bounds the stream is compared with (batch: frames per run / latency; pipeline: frames per run x
    frequency / busiest stage's busiest unit; cooperative: 1 / latency; host modes: cores used / latency)."""
    cycles, f = perf["estimated_cycles"] + perf.get("tasklist_load_cycles", 0), perf["frequency_hz"]
    latency = cycles / f if cycles else 0.0
    if mode == "batch":
        fps = per_run / latency if latency else 0.0
    elif mode == "pipeline":
        stage = max(perf["core_busy_cycles"] or [cycles])
        fps = per_run * f / stage if stage else 0.0
    elif mode == "cooperative":
        fps = 1 / latency if latency else 0.0
    else:
        fps = used / latency if latency else 0.0
    return {"latency_ms": round(1000 * latency, 4), "throughput_fps": round(fps, 3), "method": "one simulated run"}


def _multicore(program: "Program", target: Target, cfg: dict[str, Any], perf: dict[str, Any],
               per_run: int) -> dict[str, Any]:
    """Estimated latency and throughput of the configured multi-core combination, from a multi-frame run.

    Why several frames: what limits a stream of frames (memory levels and the system DMA shared by the cores
    or replicas, stages waiting on each other) does not show in one frame. The cycle model runs
    ``warmup + MEASURED_FRAMES`` runs (:meth:`~axdrive_hw.cycle_model.CycleModel.stream`): ``batch`` and
    ``cooperative`` the program itself, ``pipeline`` the program with runs (``per_run`` frames each, even and
    odd with their own hand-overs) entering its first stage back to back (warm-up: enough runs for one frame
    per stage), the host modes the one-core program replicated over
    ``aipu_cores_used`` as the runtime does (warm-up: one frame per replica). Throughput is the cycles each
    measured frame adds to the run, latency their mean entry-to-exit span. The headline figures keep the
    program's memory as planned (``frame_window=1``: a core starts a frame once the cores it shares memory or
    tokens with are done with the previous one); ``double_buffered`` gives the same with a second copy of
    that shared memory (``frame_window=2``), when the program has coupled cores.
    """
    from axdrive_hw.cycle_model import CycleModel, SimOptions, coupled_cores
    from axdrive_hw.runtime import HOST_MODES

    mode, used, cores = str(cfg["multicore_mode"]), int(cfg["aipu_cores_used"]), program.cores
    host = mode in HOST_MODES
    replicas = max(1, min(used, target.cores) // cores) if host else 1
    warmup = replicas if host else (-(-cores // per_run) if mode == "pipeline" else 1)
    frames = warmup + -(-MEASURED_FRAMES // replicas) * replicas
    model = CycleModel(target, SimOptions.from_config(cfg))

    def measure(window: int) -> tuple[dict[str, Any], "FrameStream"]:
        s = model.stream(program, frames, warmup=warmup, replicas=replicas, frame_window=window)
        return {"latency_ms": round(1000 * s.latency_seconds, 4),
                "throughput_fps": round(per_run * s.frames_per_second, 3), "frame_window": window}, s

    planned, stream = measure(1)
    if per_run > 1:
        method = f"simulated, {frames} runs of {per_run} frames"
    elif replicas > 1:
        method = f"simulated, {frames} frames on {replicas} replicas"
    else:
        method = f"simulated, {frames} frames"
    out = {"multicore_mode": mode, "aipu_cores_used": used, "program_cores": cores, "replicas": replicas,
           "frames_per_inference_run": per_run, "latency_ms": planned["latency_ms"],
           "throughput_fps": planned["throughput_fps"], "method": method,
           "simulation": {"frames": frames, "warmup_frames": warmup, "frame_window": 1,
                          "interval_cycles": int(round(stream.interval_cycles)),
                          "latency_cycles": int(round(stream.latency_cycles))},
           "one_run": _one_run_estimate(perf, mode, used, per_run)}
    if any(coupled_cores(program)):
        out["double_buffered"] = measure(2)[0]
    return out


@compiler_pass("lowering.emit_program",
               requires=("registers_allocated", "tiled", "memory_planned", "scheduled", "target_loaded"),
               provides=("program_emitted",),
               enabled=when_mode("quantize_and_lower", "lower_only"), phase=Phase.EMIT,
               config_keys=("io_memory_pool", "constant_memory_pool", "workspace_memory_pool", "dpu_constants_home",
                            "dpu_instructions_home", "dwpu_instructions_home", "elf_in_ddr", "stream_tasklist",
                            "frequency", "l1_size_used", "l1_constraint", "resources_used", "l1_virtual_address",
                            "l1_core0_physical_address", "ddr_size_used", "ddr_size_reserved",
                            "imc_double_buffer_pipeline", "imc_double_buffer_sequential", "propagate_span_information",
                            "use_hw_tokens", "dma_dual_channel", "use_sysdma",
                            "mvm_utilization_limit", "force_h_tiling", "force_oc_tiling", "multicore_mode",
                            "aipu_cores_used"))
def emit_program(ctx: Any) -> dict[str, Any]:
    """Emit the program: per layer its constants into an L1 arena and its tiles (MVM conv2d/matmul with
    weight sets planned on the 4 x 512 x 128 IMC array, DWPU depthwise/maxpool/resize, DPU programs, DMA
    between homes and L1) as the tiling chose; buffers placed by the memory planner (re-tiling a layer
    that does not fit, up to ``max_memplan_attempts``), dependencies from the bytes tasks touch, tasks
    ordered by the scheduler and synchronised by tokens. Writes ``program.bin``, ``program.json``,
    ``host_io.json`` and ``layer_performance.csv`` (the cycle model per layer, beside each layer's lower
    bound: ``axdrive report DIR``); puts ``performance`` (cycle model), ``layer_performance``, ``memory``
    (peak vs bound per level) and ``multicore`` into ``compile_report.json``. Statistics: layers, tiles, tasks per unit, cycles."""
    from axdrive_hw.program.binary import encode_program, program_json

    cfg = ctx.config.to_dict()
    target = ctx.stash[TARGET]
    homes = homes_from_config(ctx.config)
    for note in homes.notes:
        ctx.warn(note)
    scheduler = ctx.stash[TASK_SCHEDULER]
    l1_bytes = l1_budget(target, cfg)
    forced = ctx.config.force_h_tiling is not None or ctx.config.force_oc_tiling is not None

    def run_codegen(extra: dict[str, int], ungrouped: frozenset[str]) -> Any:
        return record(ctx.graph, target, homes, l1_bytes=l1_bytes, io_on_host=bool(ctx.stash.get(IO_ON_HOST, False)),
                      spans=bool(ctx.config.propagate_span_information), policy=scheduler.policy, extra_tiles=extra,
                      ungrouped=ungrouped, forced=forced, operators=ctx.operators)

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
    timeline = estimate(program, target, cfg)
    perf = performance(program, target, cfg, timeline)
    perf["tasklist_load_cycles"] = tasklist["load_cycles"]
    ctx.report["target"] = program.target
    ctx.report["performance"] = perf
    from . import MODEL_MACS

    layers = layer_performance(timeline, target, ctx.stash.get(MODEL_MACS))  # where the cycles go (axdrive report)
    ctx.report["layer_performance"] = layers
    ctx.artifacts.write_text("layer_performance.csv", to_csv(layers["rows"]))
    memory = done.plan.to_dict()
    for key, use in memory["levels"].items():
        level = target.memory[key.split(".")[0]]
        use["size_bytes"] = int(level.size)
        use["reserved_bytes"] = int(level.size - target.usable(level.name))
    ctx.report["memory"] = {**memory, "attempts": done.attempts, "tasklist": tasklist,
                            "ddr_device_bytes": int(cfg["ddr_size_max"]), "address_map": _address_map(target, program)}
    ctx.report["multicore"] = _multicore(program, target, cfg, perf, frames_per_run(scheduler.policy))
    ctx.report["lowering"] = {**result.stats, "layers_detail": result.layers, "token_edges": done.edges,
                              "phase_seconds": {k: round(v, 4) for k, v in done.phases.items()}}
    return {**result.stats, "tasks": sum(len(t) for t in program.tasks), "buffers": len(program.buffers),
            "estimated_cycles": perf["estimated_cycles"], "frames_per_second": perf["frames_per_second"]}
