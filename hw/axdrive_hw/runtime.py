"""The host runtime of the simulated AIPU: what ``axdrive run`` drives.

Why a runtime on top of the simulator: a real accelerator is driven by host
software that puts the inputs into device memory, starts the cores and fetches
the outputs, and *how* it does that (threads or processes, copies or mapped
buffers) changes wall time and device time but never the numbers. This module
is that host for the simulated AIPU:

* :class:`AipuRuntime` loads ``program.bin`` from an output directory and takes
  the compile's resolved config (``manifest.json`` ``"config"``): target
  overrides (``l1_size_used``, ``frequency``, ...) and :class:`SimOptions`
  come from it, so a run simulates the machine the program was compiled for.
* **Frames.** Inputs whose first axis is ``k`` times the program's input batch
  are ``k`` inferences (frames); the outputs are concatenated back.
* **Core groups.** The cores of one program are split into independent groups
  when they share no token, no buffer that a task writes and no DDR/L2 bytes;
  each group is then simulated as a program of its own. Coupled cores stay in
  one group and run in one event loop, as the simulator always does.
* **Host modes** (``multicore_mode``) decide how the (frame, group) units
  execute: ``multithread`` on ``aipu_cores_used`` threads (the Numba kernels
  are ``nogil``, so they overlap); ``multiprocess`` on ``host_processes_used``
  worker processes, the units split into contiguous chunks, one per process
  (spawned, because Numba's OpenMP layer is not fork-safe; one process means
  this one); ``batch``, ``cooperative`` and ``pipeline`` partition the cores in
  the program itself, so their units run here one after another. Outputs are
  bit-identical in every mode.
* **Device time.** One inference's cycles come from the cycle model, which is
  data-independent: it is computed once per run, on the whole program, and is
  the same whatever the host mode. In the host modes a program that uses fewer
  cores than ``aipu_cores_used`` is replicated over the spare cores and the
  frames go round robin to the replicas. Each frame's inputs reach device
  memory by a host copy over the host link (``dma.host_link_bandwidth`` bytes
  per cycle, one transfer at a time, in request order) unless
  ``input_dmabuf`` maps them (no cycles); outputs likewise with
  ``output_dmabuf``. The transfers appear in the report, in the trace as
  ``[M]`` lines on the ``host``/``link`` track and in the Chrome trace as the
  process ``host``.
* **Host time.** Each frame's host seconds (simulating it) are summarised in
  the report as ``host_frame_seconds``, after dropping the
  ``profiling_drop_percentile`` fraction of the samples at each end, so one
  slow first frame (JIT warm-up, a worker starting) does not skew the mean.
* **Device resources.** ``device_dir`` (recorded in the manifest's
  ``environment``, handed over by ``axdrive run``) selects the target
  description the same way the compile did: a ``target.toml`` there replaces
  the built-in one.
"""

from __future__ import annotations

__all__ = ["AipuRuntime", "LoadedProgram", "RuntimeResult", "HostTransfer", "HOST_MODES", "core_groups",
           "group_program"]

import dataclasses
import heapq
import json
import math
import multiprocessing
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from axdrive.errors import ProgramFormatError, UsageError
from axdrive_hw.cycle_model import SimOptions, TaskRecord, Timeline, TokenEvent
from axdrive_hw.plugin import builtin_targets
from axdrive_hw.profiler import chrome_trace, parse_levels, summarize_runs, trace_lines
from axdrive_hw.program.binary import decode_program
from axdrive_hw.program.model import Program
from axdrive_hw.simulator import Simulator
from axdrive_hw.target import CONFIG_OVERRIDE_KEYS, Target, load_target

HOST_MODES: tuple[str, ...] = ("multithread", "multiprocess")
"""``multicore_mode`` values that are host-runtime modes (the others partition cores at compile time)."""

PROGRAM_FILE = "program.bin"


# -- independent core groups --------------------------------------------------------------------------------
def _touched(program: Program, core: int) -> set[str]:
    return {r.buffer for t in program.tasks[core] for r in (*t.inputs.values(), *t.outputs.values())}


def core_groups(program: Program) -> list[list[int]]:
    """Cores that can be simulated apart, as sorted groups.

    Two cores are coupled when they share a token, a buffer that some task
    writes, or bytes of DDR/L2 (address overlap between buffers each touches).
    Programs whose inputs or outputs are touched by no task are not split: the
    whole-program run is the one that reports them.
    """
    n = program.cores
    parent = list(range(n))

    def find(c: int) -> int:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    def join(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    touched = [_touched(program, c) for c in range(n)]
    io_buffers = set(program.inputs.values()) | set(program.outputs.values())
    if any(all(b not in t for t in touched) for b in io_buffers):
        return [list(range(n))]
    written = {r.buffer for tl in program.tasks for t in tl for r in t.outputs.values()}
    tokens = [{tok for t in program.tasks[c] for tok in (*t.wait, *t.signal)} for c in range(n)]
    buffers = {b.name: b for b in program.buffers}
    for a in range(n):
        for b in range(a + 1, n):
            shared = touched[a] & touched[b]
            if tokens[a] & tokens[b] or shared & written:
                join(a, b)
                continue
            for x in touched[a]:
                bx = buffers[x]
                if bx.level == "l1" or bx.size == 0:
                    continue
                if any(by.level == bx.level and by.size and by.name != x and by.address < bx.address + bx.size
                       and bx.address < by.address + by.size for by in (buffers[y] for y in touched[b])):
                    join(a, b)
                    break
    groups: dict[int, list[int]] = {}
    for c in range(n):
        groups.setdefault(find(c), []).append(c)
    return sorted(groups.values())


def group_program(program: Program, cores: Sequence[int]) -> Program:
    """The part of ``program`` that ``cores`` run: their task lists (others empty), buffers, constants, I/O.

    Core numbers are kept, so L1 homes and trace lines still name the real core.
    """
    if list(cores) == list(range(program.cores)):
        return program
    names: set[str] = set().union(*(_touched(program, c) for c in cores))
    buffers = [b for b in program.buffers if b.name in names]
    inits = {b.init for b in buffers if b.init is not None}
    return Program(program.target, program.cores, buffers,
                   [list(tl) if c in cores else [] for c, tl in enumerate(program.tasks)],
                   {k: v for k, v in program.constants.items() if k in inits},
                   {t: b for t, b in program.inputs.items() if b in names},
                   {t: b for t, b in program.outputs.items() if b in names}, program.version)


# -- results ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostTransfer:
    """One frame's input upload or output download between host and device memory."""

    frame: int
    direction: str  # "input" or "output"
    tensors: tuple[str, ...]
    nbytes: int
    start: int      # cycle
    cycles: int     # 0 when the buffers are mapped (dmabuf)
    mapped: bool


@dataclass
class RuntimeResult:
    """What one run gives back: device outputs by tensor name, the run report and, when profiled, the traces.

    ``timeline`` covers every frame on the device's clock (frames shifted to
    when they ran, replicas on their own cores). ``program``, ``inference``
    (one inference's timing) and ``capacities`` (usable bytes per memory
    level) are what :meth:`figures` draws from; ``inference`` is the loaded
    program's own, shared by its runs (not copied per run: read it, do not
    change it).
    """

    outputs: dict[str, np.ndarray]
    report: dict[str, Any]
    _timeline: Timeline
    transfers: list[HostTransfer]
    trace_lines: list[str] | None = None
    chrome_trace: dict[str, Any] | None = None
    program: Program | None = None
    inference: Timeline | None = None
    capacities: dict[str, int] = dataclasses.field(default_factory=dict)
    _timeline_shared: bool = False  # ``_timeline`` is the runtime's cached one: copied when first read

    @property
    def timeline(self) -> Timeline:
        """The run's device timeline, its own copy (made on first access: most runs only want outputs)."""
        if self._timeline_shared:
            self._timeline = self._timeline.copy()
            self._timeline_shared = False
        return self._timeline

    def figures(self) -> dict[str, str]:
        """The run's figures as SVG text by file name (``axdrive run --figures``; see :mod:`axdrive_hw.figures`).

        Drawn on request, not with every run: a run is often repeated (benchmarks, frames) and nobody
        wants the figures of each. The memory maps show one inference, the timeline the whole run.
        """
        if self.program is None:
            raise UsageError("this run result carries no program to draw figures from")
        from axdrive_hw.figures import run_figures

        links = [(t.start, t.start + t.cycles, f"frame {t.frame} {t.direction} {', '.join(t.tensors)} {t.nbytes:,} B")
                 for t in self.transfers if t.cycles]
        return run_figures(self.program, self.inference or self.timeline, self.timeline, capacities=self.capacities,
                           host_transfers=links)


# -- multiprocess workers -----------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(program_bytes: bytes, source: str, target: Target, options: SimOptions,
                 groups: list[list[int]]) -> None:
    program = decode_program(program_bytes, source)
    _WORKER["simulators"] = [Simulator(group_program(program, g), target, options) for g in groups]


def _timed(simulator: Simulator, feeds: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    """One unit's outputs and the host seconds it took (the samples ``profiling_drop_percentile`` trims)."""
    t0 = time.perf_counter()
    outputs = simulator.run(feeds).outputs
    return outputs, time.perf_counter() - t0


def _worker_run(units: list[tuple[int, dict[str, np.ndarray]]]) -> list[tuple[dict[str, np.ndarray], float]]:
    sims = _WORKER["simulators"]
    return [_timed(sims[g], feeds) for g, feeds in units]


# -- the runtime ----------------------------------------------------------------------------------------------
class LoadedProgram:
    """A program ready to run under one resolved config; run it as often as you like.

    ``config`` is the compile's resolved configuration (a mapping of property
    names, as ``manifest.json`` records it); missing keys take the defaults
    of a fresh compile.
    """

    def __init__(self, program: Program, config: Mapping[str, Any] | None = None, *,
                 source: str = PROGRAM_FILE, program_bytes: bytes | None = None) -> None:
        cfg = dict(config or {})
        self.program = program
        self.source = source
        self._bytes = program_bytes
        overrides = {k: cfg[k] for k in CONFIG_OVERRIDE_KEYS if cfg.get(k) is not None and k != "ddr_size_max"}
        try:
            self.target = load_target(program.target, overrides)
            self.options = SimOptions.from_config(cfg)
        except (KeyError, ValueError, TypeError) as exc:
            raise UsageError(f"{source}: the recorded config does not give a valid {program.target} target: "
                             f"{exc.args[0] if exc.args else exc}") from None
        self.mode = str(cfg.get("multicore_mode", "multiprocess"))
        self.cores_used = max(1, int(cfg.get("aipu_cores_used", program.cores)))
        self.processes = max(1, int(cfg.get("host_processes_used", 1)))
        self.input_dmabuf = bool(cfg.get("input_dmabuf", False))
        self.output_dmabuf = bool(cfg.get("output_dmabuf", False))
        # the next frame's upload overlaps the current frame's run (off when a config does not say)
        self.double_buffer = bool(cfg.get("double_buffer", False))
        self.padded_rows: int | None = None  # set by _frames when a batch program got a partial last batch
        self.default_levels: tuple[str, ...] = tuple(str(v) for v in cfg.get("profiling_levels") or ())
        # a fraction per end in the config (0.25 = a quarter), a percentage in summarize_runs
        self.drop_fraction = float(cfg.get("profiling_drop_percentile", 0.0) or 0.0)
        self.groups = core_groups(program)
        self.simulators = [Simulator(group_program(program, g), self.target, self.options) for g in self.groups]
        host_mode = self.mode in HOST_MODES
        self.replicas = max(1, min(self.cores_used, self.target.cores) // program.cores) if host_mode else 1
        # one inference's timing: data-independent, so computed once and shared by every frame and host mode
        self.inference = Simulator(program, self.target, self.options, functional=False).run().timeline

    # -- inputs ----------------------------------------------------------------------------------------
    def _frames(self, inputs: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        p = self.program
        unknown = sorted(set(inputs) - set(p.inputs))
        if unknown:
            raise UsageError(f"input {unknown[0]!r} is not an input of {self.source} (inputs: {', '.join(p.inputs)})")
        frames = None
        split: dict[str, list[np.ndarray]] = {}
        for tensor, name in p.inputs.items():
            if tensor not in inputs:
                raise UsageError(f"input {tensor!r} of {self.source} is missing")
            b = p.buffer(name)
            a = np.asarray(inputs[tensor])
            want = f"{b.dtype}{list(b.shape)}"
            if a.dtype != np.dtype(b.dtype):
                raise UsageError(f"input {tensor!r}: {self.source} takes {want}, got {a.dtype}{list(a.shape)}")
            if b.shape and a.ndim == len(b.shape) and tuple(a.shape[1:]) == b.shape[1:] and b.shape[0] > 1 \
                    and 0 < a.shape[0] and a.shape[0] % b.shape[0]:
                # a batch program (``multicore_mode = batch``): fill the last batch with copies of the last frame
                self.padded_rows = int(a.shape[0])
                fill = b.shape[0] - a.shape[0] % b.shape[0]
                a = np.concatenate([a, np.repeat(a[-1:], fill, axis=0)], axis=0)
            if tuple(a.shape) == b.shape:
                k = 1
            elif b.shape and b.shape[0] > 0 and a.ndim == len(b.shape) and tuple(a.shape[1:]) == b.shape[1:] \
                    and a.shape[0] % b.shape[0] == 0 and a.shape[0] > 0:
                k = a.shape[0] // b.shape[0]
            else:
                raise UsageError(f"input {tensor!r}: {self.source} takes {want} (or a batch of them along axis 0), "
                                 f"got {a.dtype}{list(a.shape)}")
            if frames is not None and k != frames:
                raise UsageError(f"input {tensor!r} holds {k} frames, another input {frames}: every input needs the "
                                 "same batch")
            frames = k
            split[tensor] = [np.ascontiguousarray(x) for x in np.split(a, k, axis=0)] if k > 1 else [a]
        k = frames or 1
        return [{t: parts[f] for t, parts in split.items()} for f in range(k)]

    # -- execution -------------------------------------------------------------------------------------
    def _units(self, frames: list[dict[str, np.ndarray]]) -> list[tuple[int, dict[str, np.ndarray]]]:
        return [(g, {t: frame[t] for t in sim.program.inputs}) for frame in frames
                for g, sim in enumerate(self.simulators)]

    def _execute(self, units: list[tuple[int, dict[str, np.ndarray]]]) -> tuple[list[tuple[dict[str, np.ndarray],
                                                                                        float]], dict[str, Any]]:
        """Each unit's outputs with its host seconds, in unit order, and how the host ran them."""
        if self.mode == "multithread" and self.cores_used > 1 and len(units) > 1:
            workers = min(self.cores_used, len(units))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aipu-core") as pool:
                outs = list(pool.map(lambda u: _timed(self.simulators[u[0]], u[1]), units))
            return outs, {"kind": "threads", "workers": workers}
        if self.mode == "multiprocess" and self.processes > 1 and len(units) > 1:
            workers = min(self.processes, len(units))
            bounds = np.linspace(0, len(units), workers + 1).round().astype(int)
            chunks = [units[bounds[i]: bounds[i + 1]] for i in range(workers)]
            data = self._bytes if self._bytes is not None else _encode(self.program)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(data, self.source, self.target, self.options, self.groups)) as pool:
                outs = [o for chunk in pool.map(_worker_run, chunks) for o in chunk]
            return outs, {"kind": "processes", "workers": workers}
        return [_timed(self.simulators[g], feeds) for g, feeds in units], {"kind": "inline", "workers": 1}

    def run(self, inputs: Mapping[str, np.ndarray], *, profile: str | Iterable[str] | None = None) -> RuntimeResult:
        """Run every frame of ``inputs`` (device dtypes, tensor names of the program).

        ``profile`` selects trace levels (``"B,K"``, ``"all"``, tags); ``None``
        uses the config's ``profiling_levels``, and no levels means no traces.
        """
        try:
            levels = parse_levels(profile if profile is not None else self.default_levels)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        started = time.perf_counter()
        self.padded_rows = None
        frames = self._frames(inputs)
        units = self._units(frames)
        outs, host = self._execute(units)
        per_frame: list[dict[str, np.ndarray]] = [{} for _ in frames]
        frame_seconds = [0.0] * len(frames)
        for i, (out, seconds) in enumerate(outs):  # units are frame-major, one per core group
            per_frame[i // len(self.simulators)].update(out)
            frame_seconds[i // len(self.simulators)] += seconds
        outputs = {t: (per_frame[0][t] if len(frames) == 1 else np.concatenate([o[t] for o in per_frame], axis=0))
                   for t in self.program.outputs}
        if self.padded_rows is not None:  # drop the rows of the frames that only filled a batch
            outputs = {t: v[: self.padded_rows] for t, v in outputs.items()}
        wall = time.perf_counter() - started
        timeline, transfers = self._schedule_for(len(frames))
        report = self._report(len(frames), timeline, transfers, host, wall)
        report["host_frame_seconds"] = {**summarize_runs(frame_seconds, 100.0 * self.drop_fraction),
                                        "drop_fraction": self.drop_fraction}
        lines = chrome = None
        if levels:
            view = self._replicated_view()
            lines = _merge_lines(trace_lines(timeline, view, levels), transfers, levels, self.program)
            chrome = _with_host_track(chrome_trace(timeline, view), transfers, timeline)
        capacities = {level: self.target.memory[level].usable(self.program.cores) for level in self.target.memory}
        return RuntimeResult(outputs, report, timeline, transfers, lines, chrome, self.program, self.inference,
                             capacities, _timeline_shared=True)

    # -- device time -----------------------------------------------------------------------------------
    def _link_cycles(self, direction: str) -> tuple[int, int, tuple[str, ...]]:
        """``(bytes, cycles, tensors)`` of one frame's upload or download."""
        p = self.program
        io = p.inputs if direction == "input" else p.outputs
        nbytes = sum(p.buffer(b).size for b in io.values())
        mapped = self.input_dmabuf if direction == "input" else self.output_dmabuf
        cycles = 0 if mapped or not nbytes else math.ceil(nbytes / self.target.dma.host_link_bandwidth)
        return nbytes, cycles, tuple(io)

    def _schedule_for(self, frames: int) -> tuple[Timeline, list[HostTransfer]]:
        """:meth:`_device_schedule`, computed once per frame count (it depends on nothing else). The timeline
        is the cached one, not to be changed: a :class:`RuntimeResult` copies it when it is first read."""
        cache: dict[int, tuple[Timeline, list[HostTransfer]]] = self.__dict__.setdefault("_schedules", {})
        hit = cache.get(frames)
        if hit is None:
            hit = cache[frames] = self._device_schedule(frames)
        t, transfers = hit
        return t, list(transfers)

    def _unit_busy(self, timeline: Timeline) -> dict[str, float]:
        """``timeline.unit_busy()``, once per cached schedule (the report of every run needs it)."""
        cache: dict[int, tuple[Timeline, dict[str, float]]] = self.__dict__.setdefault("_busy", {})
        hit = cache.get(id(timeline))
        if hit is None or hit[0] is not timeline:
            hit = cache[id(timeline)] = (timeline, timeline.unit_busy())
        return hit[1]

    def _device_schedule(self, frames: int) -> tuple[Timeline, list[HostTransfer]]:
        """Place every frame on the device clock: uploads and downloads share the host link, replicas run apart."""
        one = self.inference
        run = int(math.ceil(one.cycles))
        in_bytes, up, in_names = self._link_cycles("input")
        out_bytes, down, out_names = self._link_cycles("output")
        link_free = 0
        starts = [0] * frames
        replica_free = [0] * self.replicas
        transfers: list[HostTransfer] = []
        # (request cycle, order, frame, direction): served in request order, one transfer at a time
        pending = [(0, f, f, "input") for f in range(min(frames, self.replicas))]
        heapq.heapify(pending)
        seq = frames
        while pending:
            ready, _o, f, direction = heapq.heappop(pending)
            cost = up if direction == "input" else down
            begin = max(ready, link_free) if cost else ready
            end = begin + cost
            if cost:
                link_free = end
            transfers.append(HostTransfer(f, direction, in_names if direction == "input" else out_names,
                                          in_bytes if direction == "input" else out_bytes, begin, cost, cost == 0))
            if direction == "input":
                r = f % self.replicas
                starts[f] = max(end, replica_free[r])  # double buffering: the upload may finish early
                replica_free[r] = starts[f] + run
                heapq.heappush(pending, (starts[f] + run, seq, f, "output"))
                if self.double_buffer and f + self.replicas < frames:
                    seq += 1  # the next frame of this replica uploads into the other buffer right away
                    heapq.heappush(pending, (end, seq, f + self.replicas, "input"))
            elif not self.double_buffer and f + self.replicas < frames:
                heapq.heappush(pending, (end, seq, f + self.replicas, "input"))
            seq += 1
        records: list[TaskRecord] = []
        tokens: list[TokenEvent] = []
        pc = self.program.cores
        core_end = [0.0] * (pc * self.replicas)
        for f, at in enumerate(starts):
            shift = pc * (f % self.replicas)
            records += [dataclasses.replace(r, core=r.core + shift, issue=r.issue + at, start=r.start + at,
                                            end=r.end + at) for r in one.records]
            tokens += [dataclasses.replace(e, cycle=e.cycle + at, core=e.core + shift) for e in one.tokens]
            for c, end in enumerate(one.core_end):
                core_end[c + shift] = max(core_end[c + shift], end + at)
        records.sort(key=lambda r: (r.start, r.core, r.index))
        tokens.sort(key=lambda e: (e.cycle, e.core, e.index))
        total = max([t.start + t.cycles for t in transfers] + core_end + [0.0])
        transfers.sort(key=lambda t: (t.start, t.direction != "input", t.frame))
        return Timeline(records, tokens, float(total), one.frequency_hz, pc * self.replicas, core_end), transfers

    def _replicated_view(self) -> Program:
        """The program as the profiler sees the replicated device: one copy of the task lists per replica."""
        if self.replicas == 1:
            return self.program
        p = self.program
        return Program(p.target, p.cores * self.replicas, p.buffers, [tl for _ in range(self.replicas) for tl in p.tasks],
                       p.constants, p.inputs, p.outputs, p.version)

    def _report(self, frames: int, timeline: Timeline, transfers: list[HostTransfer], host: dict[str, Any],
                wall: float) -> dict[str, Any]:
        f = timeline.frequency_hz
        link = {d: sum(t.cycles for t in transfers if t.direction == d) for d in ("input", "output")}
        busy = {k: int(v) for k, v in self._unit_busy(timeline).items()}
        if link["input"] or link["output"]:
            busy["host.link"] = link["input"] + link["output"]
        seconds = timeline.cycles / f
        return {
            "target": self.target.name,
            "program": self.source,
            "cores": self.program.cores,
            "multicore_mode": self.mode,
            "core_groups": self.groups,
            "replicas": self.replicas,
            "host": host,
            "frames": frames,
            "cycles": int(timeline.cycles),
            "seconds": seconds,
            "frequency_hz": f,
            "frames_per_second": frames / seconds if seconds else None,
            "inference_cycles": int(self.inference.cycles),
            "host_link": {"input_dmabuf": self.input_dmabuf, "output_dmabuf": self.output_dmabuf,
                          "double_buffer": self.double_buffer,
                          "bytes_per_cycle": self.target.dma.host_link_bandwidth,
                          "input_bytes": sum(t.nbytes for t in transfers if t.direction == "input"),
                          "output_bytes": sum(t.nbytes for t in transfers if t.direction == "output"),
                          "input_cycles": link["input"], "output_cycles": link["output"]},
            "unit_busy": busy,
            "host_wall_s": round(wall, 6),
        }


def _encode(program: Program) -> bytes:
    from axdrive_hw.program.binary import encode_program

    return encode_program(program)


def _host_line(tag: str, cycle: int, text: str) -> str:
    # the profiler's layout: "[TAG] <cycle> <who> <track> <text>"
    return f"[{tag}]{' ' * (3 - len(tag))}{cycle:>12} {'host':<6} {'link':<7} {text}"


def _merge_lines(device: list[str], transfers: list[HostTransfer], levels: Sequence[str],
                 program: Program) -> list[str]:
    """Device trace lines plus one ``[M]`` line per host transfer, in cycle order (uploads first, downloads last)."""
    keyed = [((int(line.split(None, 2)[1]), 1, i), line) for i, line in enumerate(device)]
    if "M" in levels:
        for i, t in enumerate(transfers):
            io = program.inputs if t.direction == "input" else program.outputs
            where = ", ".join(f"{program.buffer(io[n]).level}:{io[n]}" for n in t.tensors)
            if t.mapped:
                text = (f"frame {t.frame} {t.direction} {', '.join(t.tensors)} mapped at {where} "
                        f"({t.direction}_dmabuf) bytes={t.nbytes} cycles=0")
            else:
                arrow = f"host -> {where}" if t.direction == "input" else f"{where} -> host"
                text = (f"frame {t.frame} {t.direction} {', '.join(t.tensors)} {arrow} bytes={t.nbytes} "
                        f"cycles={t.cycles} bytes/cycle={t.nbytes / t.cycles:.2f}")
            keyed.append(((t.start, 0 if t.direction == "input" else 2, i), _host_line("M", t.start, text)))
    keyed.sort(key=lambda kv: kv[0])
    return [line for _k, line in keyed]


def _with_host_track(trace: dict[str, Any], transfers: list[HostTransfer], timeline: Timeline) -> dict[str, Any]:
    """Add the host link as process ``host`` (thread ``link``) to a profiler Chrome trace."""
    us = 1e6 / timeline.frequency_hz
    pid = timeline.cores + 1  # the profiler uses 0..cores-1 for cores and ``cores`` for the chip
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": "host"}},
              {"name": "thread_name", "ph": "M", "pid": pid, "tid": 1, "args": {"name": "link"}}]
    for t in transfers:
        events.append({"name": f"{t.direction} frame {t.frame}" + (" (mapped)" if t.mapped else ""), "cat": "host",
                       "ph": "X", "pid": pid, "tid": 1, "ts": round(t.start * us, 6), "dur": round(t.cycles * us, 6),
                       "args": {"frame": t.frame, "tensors": list(t.tensors), "bytes": t.nbytes,
                                "start_cycle": t.start, "cycles": t.cycles, "mapped": t.mapped}})
    return {**trace, "traceEvents": trace["traceEvents"] + events}


# Loaded programs, reused while the file holds the same bytes: ``axdrive run``/``execute`` load the output
# directory at every call, and a LoadedProgram keeps the decoded program, the checked memory map, the one-inference
# timing and each Simulator's recorded schedule (later runs replay it). Keyed by path, target and config; a hit
# needs the file's identity (inode, size, modification time in ns) unchanged, or else its bytes equal to the cached
# ones. The compiler writes program.bin to a temporary file and renames it, so a new program is a new inode; the
# identity check spares reading and comparing megabytes at every call.
_LOADED: "OrderedDict[tuple[str, str, str], tuple[tuple[int, int, int], bytes, LoadedProgram]]" = OrderedDict()
_LOADED_LOCK = threading.Lock()
_LOADED_MAX = 4


def _cache_key(path: str, target: str, config: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    try:
        return (path, target, json.dumps(dict(config or {}), sort_keys=True))
    except (TypeError, ValueError):
        return None  # a config JSON cannot spell: no caching


class AipuRuntime:
    """The runtime ``axdrive-hw`` contributes through the ``axdrive_runtime`` hook, for one built-in target."""

    distribution = "axdrive-hw"

    def __init__(self, target: str = "aipu_v1") -> None:
        if target not in builtin_targets():
            raise UsageError(f"axdrive-hw has no target {target!r} (built-in: {', '.join(builtin_targets())})")
        self.target = target

    def load(self, output_dir: str | Path, config: Mapping[str, Any] | None = None, *,
             program: str = PROGRAM_FILE) -> LoadedProgram:
        """Read and check ``output_dir/program`` (``program.bin``, or a further device segment's
        ``device2.program.bin``); raises a one-line ``ProgramFormatError`` if it is damaged."""
        path = Path(output_dir) / program
        key = _cache_key(str(path), self.target, config)
        try:
            st = path.stat()
            identity = (st.st_ino, st.st_size, st.st_mtime_ns)
            with _LOADED_LOCK:
                hit = _LOADED.get(key) if key is not None else None
                if hit is not None and hit[0] == identity:  # the same file, untouched
                    _LOADED.move_to_end(key)
                    return hit[2]
            data = path.read_bytes()
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file (the directory holds no compiled program)") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
        with _LOADED_LOCK:
            hit = _LOADED.get(key) if key is not None else None
            if hit is not None and hit[1] == data:  # the same bytes: the decoded program and its simulators
                _LOADED[key] = (identity, data, hit[2])
                _LOADED.move_to_end(key)
                return hit[2]
        program = decode_program(data, str(path))
        if program.target != self.target:
            raise ProgramFormatError(f"{path}: the program is for target {program.target!r}, the manifest says "
                                     f"{self.target!r}")
        loaded = LoadedProgram(program, config, source=str(path), program_bytes=data)
        if key is not None:
            with _LOADED_LOCK:
                _LOADED[key] = (identity, data, loaded)
                while len(_LOADED) > _LOADED_MAX:
                    _LOADED.popitem(last=False)
        return loaded

    def run(self, output_dir: str | Path, inputs: Mapping[str, np.ndarray], *,
            config: Mapping[str, Any] | None = None, profile: str | Iterable[str] | None = None,
            program: str = PROGRAM_FILE) -> RuntimeResult:
        """Load ``output_dir``'s program (file name ``program``) under ``config`` and run ``inputs`` (device
        dtypes) on it."""
        return self.load(output_dir, config, program=program).run(inputs, profile=profile)
