"""The event-driven cycle model of the AIPU.

Every core has four kinds of engines: the MVM, the DWPU, the DPU (one
channel each) and the core DMA (one channel, two with ``dma_dual_channel``);
the chip has one system DMA (DDR <-> L2) used when ``use_sysdma`` is on.
Tasks of a core's list are dispatched in order to per-engine FIFO queues;
the head of a queue starts when the engine has a free channel and every
token it waits on has been signalled (tokens are counting semaphores shared
by all cores; a wait costs ``sync.token_cycles`` with hardware tokens and
``sync.polling_cycles`` with software polling). A task signals its tokens
when it ends. Engines run concurrently, so double buffering, pipelining and
multi-core splits show in the cycles.

Costs (numbers from the :class:`~axdrive_hw.target.Target`):

* MVM: per weight set (see :func:`~axdrive_hw.imc.plan_weight_sets`)
  a load of its bytes at ``weight_load_bandwidth`` and ``M x activation_bits``
  cycles of compute (``M`` im2col rows), at most the set's MACs divided by
  ``peak x mvm_utilization_limit``; with ``imc_double_buffer`` the load of
  the next set overlaps the compute of the current one. The array's second
  weight buffer can also be filled while the *previous* MVM task of the core
  computes: its first load hides behind that task's last compute phase, for
  a previous task of the same layer (output-channel tiles, weight-set
  groups: ``imc_double_buffer_pipeline``) or of another layer
  (``imc_double_buffer_sequential``). A task whose single
  weight set is already resident (same bytes as the previous MVM task of the
  core) skips the load (weight-stationary reuse). A conv2d task with
  ``icr_factor``/``swicr_pack`` parameters (see :mod:`axdrive_hw.imc`) holds
  every replica in one weight set: ``ceil(OW / factor)`` passes per output
  row instead of ``OW``, and a load of ``factor`` times the replica's bytes.
* DWPU: one PWORD of one tap per cycle.
* DPU: the sum of the program's instruction cycles per PWORD chunk.
* DMA: ``setup_cycles``, then the bytes flow at the channel bandwidth, shared
  fairly with every other transfer touching the same memory (each level's
  ``bandwidth``; L1 per core): a fluid model re-evaluated at every event.
* Every MVM/DWPU/DPU task adds its unit's ``task_overhead_cycles``.

Frames: ``run(program, frames=N)`` streams N frames through the same queues
(each core's list issued again per frame, tokens counted per frame, a core
starting a frame after its previous one and, with ``frame_window``, after the
cores it shares memory with are far enough along; ``replicas`` puts copies of
the program on cores of their own, as the host runtime does), and
:meth:`CycleModel.stream` measures throughput and latency in steady state:
what limits a stream (shared memory bandwidth, the system DMA, stages waiting
on each other) does not show in one frame. ``frames=1`` is the one-frame run.
"""

from __future__ import annotations

__all__ = ["SimOptions", "TaskRecord", "TokenEvent", "Timeline", "CycleModel", "FrameStream", "constant_dpu_code",
           "coupled_cores", "task_macs", "UNITS"]

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from axdrive.errors import SimulationError
from axdrive_hw.kernels.dpu import OPCODES
from axdrive_hw.imc import ConvMapping, conv_mapping
from axdrive_hw.imc import plan_weight_sets
from axdrive_hw.kernels.mvm import conv_output_size
from axdrive_hw.program.model import Program, Task
from axdrive_hw.target import Target

UNITS: tuple[str, ...] = ("mvm", "dwpu", "dpu", "dma")
"""Engine kinds of one core (the system DMA is chip-wide, track ``sysdma``)."""

_EPS = 1e-9
_DPU_NAMES = {v: k for k, v in OPCODES.items()}


@dataclass(frozen=True)
class SimOptions:
    """The compiler-config knobs the simulator honours, as explicit fields.

    Names match the configuration properties so a compiler passes them
    through with :meth:`from_config`.
    """

    use_hw_tokens: bool = True
    dma_dual_channel: bool = True
    use_sysdma: bool = True
    mvm_utilization_limit: float = 1.0
    imc_double_buffer: bool = True
    imc_double_buffer_pipeline: bool = False    # first load hidden behind the same layer's previous MVM task
    imc_double_buffer_sequential: bool = False  # first load hidden behind the previous layer's last MVM task
    frequency: int | None = None  # Hz; None: the target's frequency_hz

    def __post_init__(self) -> None:
        if not 0.0 < self.mvm_utilization_limit <= 1.0:
            raise ValueError(f"mvm_utilization_limit={self.mvm_utilization_limit} must be in (0, 1]")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "SimOptions":
        """Pick this class's fields out of a config mapping. In-task double buffering (``imc_double_buffer``)
        follows ``imc_double_buffer_pipeline`` (a task's weight sets are a software-pipelined section); without
        that key, any ``imc_double_buffer_*`` key enables it."""
        known = {k: config[k] for k in cls.__dataclass_fields__ if k in config}
        if "imc_double_buffer" not in known and "imc_double_buffer_pipeline" in config:
            known["imc_double_buffer"] = bool(config["imc_double_buffer_pipeline"])
        elif "imc_double_buffer" not in known:
            flags = [bool(v) for k, v in config.items() if k.startswith("imc_double_buffer")]
            if flags:
                known["imc_double_buffer"] = any(flags)
        return cls(**known)


@dataclass
class TaskRecord:
    """When one task ran. ``start`` is when its work began (after any token wait)."""

    core: int
    index: int
    kind: str
    op: str
    unit: str       # track name: mvm, dwpu, dpu, dma0, dma1, sysdma
    issue: float    # cycle the task left its queue (tokens acquired); all cycles are whole numbers
    start: float
    end: float
    nbytes: int = 0
    macs: int = 0
    weight_load_cycles: float = 0.0
    stage: str | None = None
    frame: int = 0  # which frame of a multi-frame run (``CycleModel.run(frames=N)``); 0 in a one-frame run

    def copy(self) -> TaskRecord:
        """A shallow copy: ``copy.copy`` goes through ``__reduce_ex__`` and costs ten times more, and every
        replayed run hands out its own copy of about a thousand records."""
        new = object.__new__(TaskRecord)
        new.__dict__.update(self.__dict__)
        return new


@dataclass(frozen=True)
class TokenEvent:
    cycle: float
    core: int
    index: int
    token: int
    action: str  # "wait" or "signal"
    count: int   # token count after the action (tokens count per frame)
    frame: int = 0


@dataclass
class Timeline:
    """The cycle model's result: per-task records in start order, token events, totals."""

    records: list[TaskRecord]
    tokens: list[TokenEvent]
    cycles: float
    frequency_hz: int
    cores: int
    core_end: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.cycles / self.frequency_hz

    def copy(self) -> Timeline:
        """Its own records and lists (the frozen token events are shared): what a replayed run hands out."""
        return Timeline([r.copy() for r in self.records], list(self.tokens), self.cycles, self.frequency_hz,
                        self.cores, list(self.core_end))

    def unit_busy(self) -> dict[str, float]:
        """Busy cycles per ``core<N>.<unit>`` track."""
        busy: dict[str, float] = {}
        for r in self.records:
            key = f"core{r.core}.{r.unit}" if r.unit != "sysdma" else "chip.sysdma"
            busy[key] = busy.get(key, 0.0) + (r.end - r.start)
        return dict(sorted(busy.items()))


@dataclass(frozen=True)
class FrameStream:
    """Steady-state figures of a multi-frame run (:meth:`CycleModel.stream`).

    Why measured: once frames overlap, throughput depends on what they share (memory levels, the system
    DMA, hand-overs between cores), which no single-frame figure shows. The *interval* is what each frame
    after the warm-up adds to the whole run: ``(cycles of N frames - cycles of the warm-up frames alone) /
    (N - warm-up)``. Measured so rather than from the last completions because it holds whatever the
    order frames finish in (replicas, a core that the system DMA's fixed priority lets run ahead) and
    leaves out the pipeline's fill. A frame's *span* runs from the first of its tasks leaving a queue to
    the last of them ending (its entry-to-exit time); the latency is the mean span of the frames after
    the warm-up.
    """

    frames: int
    warmup: int
    spans: tuple[tuple[float, float], ...]  # per frame: (entry, exit) cycles
    interval_cycles: float                  # cycles each frame after the warm-up adds to the run
    latency_cycles: float                   # mean span of those frames
    frequency_hz: int
    timeline: Timeline = field(repr=False, compare=False)

    @property
    def frames_per_second(self) -> float:
        """Program runs completed per second in steady state."""
        return self.frequency_hz / self.interval_cycles if self.interval_cycles else 0.0

    @property
    def latency_seconds(self) -> float:
        return self.latency_cycles / self.frequency_hz

    @classmethod
    def from_timeline(cls, timeline: Timeline, warmup: int, warmup_cycles: float) -> FrameStream:
        """Figures of ``timeline`` (records carry their ``frame``) given the cycles of a run of its first
        ``warmup`` frames alone (0 without warm-up)."""
        frames = 1 + max((r.frame for r in timeline.records), default=0)
        if not 0 <= warmup < frames:
            raise ValueError(f"warmup={warmup} must leave at least one of the {frames} frames to measure")
        entry, exit_ = [math.inf] * frames, [0.0] * frames
        for r in timeline.records:
            entry[r.frame] = min(entry[r.frame], r.issue)
            exit_[r.frame] = max(exit_[r.frame], r.end)
        entry = [e if e != math.inf else 0.0 for e in entry]
        measured = frames - warmup
        latency = sum(exit_[f] - entry[f] for f in range(warmup, frames)) / measured
        return cls(frames, warmup, tuple(zip(entry, exit_)), (timeline.cycles - warmup_cycles) / measured, latency,
                   timeline.frequency_hz, timeline)


def constant_dpu_code(program: Program) -> Callable[[int, int, Task], np.ndarray | None]:
    """The DPU code of a task when the program holds it as a constant, for timing-only runs (no data):
    the ``code`` operand's buffer is initialised by a constant, or filled by an earlier DMA of the core
    from one."""
    buffers = {b.name: b for b in program.buffers}

    def raw(name: str) -> np.ndarray | None:
        b = buffers[name]
        if b.init is None:
            return None
        return np.ascontiguousarray(program.constants[b.init]).view(np.uint8).ravel()

    def code(c: int, i: int, task: Task) -> np.ndarray | None:
        ref = task.inputs["code"]
        data = raw(ref.buffer)
        if data is not None:
            return data[ref.offset: ref.offset + ref.nbytes].view(ref.dtype).reshape(ref.shape)
        for t in program.tasks[c][:i][::-1]:  # the code buffer is filled by a DMA: follow it to its constant
            if t.kind == "dma" and t.outputs["dst"].buffer == ref.buffer:
                data = raw(t.inputs["src"].buffer)
                if data is not None:
                    return data[: ref.nbytes].view(ref.dtype).reshape(ref.shape)
        return None

    return code


def coupled_cores(program: Program) -> list[list[int]]:
    """Per core, the other cores whose accesses a next frame could collide with: they share a token, bytes of
    a buffer that one of them writes, or overlapping bytes of one memory (one of the two buffers written).

    Why: a frame stream reuses the program's one copy of its memory, so a core must not start a frame
    while a core it shares memory with still works on the previous one (:meth:`CycleModel.run`'s
    ``frame_window``). Within one frame the program's tokens already order every such access.
    """
    n = program.cores
    buffers = {b.name: b for b in program.buffers}
    written = {r.buffer for tl in program.tasks for t in tl for r in t.outputs.values()}
    touched = [{r.buffer for t in tl for r in (*t.inputs.values(), *t.outputs.values())} for tl in program.tasks]
    tokens = [{tok for t in tl for tok in (*t.wait, *t.signal)} for tl in program.tasks]
    pairs: set[tuple[int, int]] = set()
    for a in range(n):
        for b in range(a + 1, n):
            common = touched[a] & touched[b] & written
            if tokens[a] & tokens[b] or (common and _bytes_collide(program, a, b, common)):
                pairs.add((a, b))
    # overlapping bytes of different buffers: one sweep per memory (L1 per core) in address order
    # (one buffer several cores touch was judged above, by the bytes each touches)
    spans: dict[tuple[str, int], list[tuple[int, int, int, bool, str]]] = {}
    for c in range(n):
        for name in touched[c]:
            buf = buffers[name]
            if buf.size:
                key = (buf.level, buf.core if buf.level == "l1" else -1)
                spans.setdefault(key, []).append((buf.address, buf.address + buf.size, c, name in written, name))
    for items in spans.values():
        items.sort()
        open_: list[tuple[int, int, int, bool, str]] = []
        for lo, hi, c, w, name in items:
            open_ = [x for x in open_ if x[1] > lo]
            for _lo, _hi, c2, w2, name2 in open_:
                if c2 != c and name2 != name and (w or w2):
                    pairs.add((min(c, c2), max(c, c2)))
            open_.append((lo, hi, c, w, name))
    return [sorted({b for a, b in pairs if a == c} | {a for a, b in pairs if b == c}) for c in range(n)]


def _extents(task: Task) -> list[tuple[str, int, int, bool]]:
    """``(buffer, start, end, written)`` of every operand: a strided DMA spans its rows at their stride."""
    out = []
    for role, ref in (*task.inputs.items(), *task.outputs.items()):
        start = ref.offset
        if task.kind == "dma":
            p = task.params
            stride = int(p.get("src_stride" if role == "src" else "dst_stride") or p.get("row_bytes") or ref.nbytes)
            rows, row = int(p.get("rows", 1)), int(p.get("row_bytes") or ref.nbytes)
            end = start + (rows - 1) * stride + row
        else:
            end = start + ref.nbytes
        out.append((ref.buffer, start, end, role in task.outputs))
    return out


def _bytes_collide(program: Program, a: int, b: int, common: set[str]) -> bool:
    """Whether cores ``a`` and ``b`` touch common bytes of the buffers in ``common``, one of them writing: a
    buffer cores fill in disjoint parts (a batch program's model output, one frame per core) couples nothing."""
    spans: list[dict[str, list[tuple[int, int, bool]]]] = [{}, {}]
    for k, core in enumerate((a, b)):
        for task in program.tasks[core]:
            for name, lo, hi, w in _extents(task):
                if name in common:
                    spans[k].setdefault(name, []).append((lo, hi, w))
    for name in common:
        for lo, hi, w in spans[0].get(name, ()):
            for lo2, hi2, w2 in spans[1].get(name, ()):
                if (w or w2) and lo < hi2 and lo2 < hi:
                    return True
    return False


def task_macs(task: Task) -> int:
    """Multiply-accumulates of an MVM/DWPU task (0 for others)."""
    if task.kind == "mvm":
        m, k, o, _sets = _mvm_geometry(task)
        return m * k * o
    if task.op == "depthwise":
        y = task.outputs["y"].shape
        kh, kw, _c = task.inputs["w"].shape
        return int(y[0] * y[1] * y[2] * y[3] * kh * kw)
    return 0


def _layer_of(task: Task) -> str:
    """The layer a task belongs to: its stage without the ``[tile i/n]`` suffix."""
    return (task.stage or "").split(" [tile ")[0]


def _conv_out_width(task: Task) -> int:
    """Output width of a conv2d task (the axis ICR replicates along)."""
    _n, _h, wd, _c = task.inputs["x"].shape
    _o, _kh, kw, _cg = task.inputs["w"].shape
    _t, left, _b, right = task.params.get("pads", (0, 0, 0, 0))
    return conv_output_size(wd, kw, task.params.get("stride", (1, 1))[1], left, right,
                            task.params.get("dilation", (1, 1))[1])


def _mvm_geometry(task: Task) -> tuple[int, int, int, int]:
    """``(M rows, K per group, O total, groups)`` of an MVM task."""
    w = task.inputs["w"].shape
    if task.op == "matmul":
        return int(task.inputs["x"].shape[0]), int(w[1]), int(w[0]), 1
    n, h, wd, _c = task.inputs["x"].shape
    o, kh, kw, cg = w
    sh, sw = task.params.get("stride", (1, 1))
    t, l, b, r = task.params.get("pads", (0, 0, 0, 0))
    dh, dw = task.params.get("dilation", (1, 1))
    oh = conv_output_size(h, kh, sh, t, b, dh)
    ow = conv_output_size(wd, kw, sw, l, r, dw)
    return int(n * oh * ow), int(kh * kw * cg), int(o), int(task.params.get("groups", 1))


class CycleModel:
    """Durations of tasks and the event loop that schedules them.

    ``on_start(core, index, task)`` is called when a task leaves its queue,
    in a token-consistent order; the functional simulator executes the task
    there (so a missing token shows as a read of an unwritten buffer).
    ``on_end(core, index, task)`` is called when it ends.
    """

    def __init__(self, target: Target, options: SimOptions | None = None) -> None:
        self.target = target
        self.options = options or SimOptions()
        freq = self.options.frequency or target.frequency_hz
        if not target.min_frequency_hz <= freq <= target.max_frequency_hz:
            raise ValueError(f"frequency {freq} Hz outside {target.min_frequency_hz}..{target.max_frequency_hz} Hz "
                             f"of target {target.name}")
        self.frequency_hz = int(freq)
        self.last_compute = 0.0  # compute cycles of the last weight set of the last MVM task timed

    # -- costs ---------------------------------------------------------------------------------------
    def mvm_cycles(self, task: Task, resident: tuple[Any, ...] | None,
                   previous: tuple[str, float] | None = None) -> tuple[float, float, int, tuple[Any, ...]]:
        """``(total cycles, weight-load cycles, MACs, weight key)`` of an MVM task. ``previous`` is the layer
        and last compute-phase cycles of the core's previous MVM task: with ``imc_double_buffer_pipeline``
        (same layer) or ``imc_double_buffer_sequential`` (another layer) the first load fills the second
        weight buffer during that phase, so only the rest of it is exposed."""
        spec = self.target.mvm
        m, k, o, groups = _mvm_geometry(task)
        og = o // groups
        peak = spec.peak_macs_per_cycle * self.options.mvm_utilization_limit
        compute, load = [], []
        if task.params.get("icr_factor", 1) > 1 or task.params.get("swicr_pack", 1) > 1:
            # ICR/SWICR: one weight set holding every replica; each pass computes ``factor`` x positions
            imc = self._icr_mapping(task)
            passes = m // _conv_out_width(task) * math.ceil(_conv_out_width(task) / imc.factor)
            active = imc.load_bytes  # one weight cell per MAC of a pass
            compute.append(max(passes * spec.activation_bits, passes * active / peak))
            load.append(imc.load_bytes / spec.weight_load_bandwidth)
        else:
            for s in plan_weight_sets(k, og, spec.rows, spec.columns, spec.imc_blocks) * groups:
                macs_per_row = sum((k1 - k0) * (o1 - o0) for k0, k1, o0, o1 in s)
                compute.append(max(m * spec.activation_bits, m * macs_per_row / peak))
                load.append(macs_per_row / spec.weight_load_bandwidth)  # one int8 weight per MAC of a row
        w = task.inputs["w"]
        key = (w.buffer, w.offset, w.nbytes)
        if len(load) == 1 and resident == key:
            load[0] = 0.0
        if previous is not None and load[0] > 0:
            same = previous[0] == _layer_of(task)
            if (same and self.options.imc_double_buffer_pipeline) or \
                    (not same and self.options.imc_double_buffer_sequential):
                load[0] = max(0.0, load[0] - previous[1])
        if self.options.imc_double_buffer:
            total = load[0] + sum(max(c, nxt) for c, nxt in zip(compute, load[1:] + [0.0]))
        else:
            total = sum(load) + sum(compute)
        exposed = total - sum(compute)
        self.last_compute = compute[-1]
        return spec.task_overhead_cycles + total, exposed, m * k * o, key

    def _icr_mapping(self, task: Task) -> ConvMapping:
        """The IMC occupancy a conv2d task's ``icr_*``/``swicr_*`` parameters ask for; it must fit one weight set."""
        p = task.params
        if task.op != "conv2d" or int(p.get("groups", 1)) != 1:
            raise SimulationError(f"mvm/{task.op} task: ICR/SWICR parameters apply to dense conv2d tasks only")
        o, kh, kw, c = task.inputs["w"].shape
        factor, window = int(p.get("icr_factor", 1)), int(p.get("icr_window", 1))
        if factor % window:
            raise SimulationError(f"mvm/conv2d task: icr_factor={factor} is not a multiple of icr_window={window}")
        try:
            imc = conv_mapping(self.target.mvm, self.target.pword, kh=kh, kw=kw, channels=c, out_channels=o,
                               stride_w=int(p.get("stride", (1, 1))[1]), window=window, copies=factor // window,
                               pack=int(p.get("swicr_pack", 1)), real_channels=int(p.get("swicr_channels", c)))
        except ValueError as e:
            raise SimulationError(f"mvm/conv2d task: {e}") from None
        if not imc.fits:
            raise SimulationError(f"mvm/conv2d task: ICR factor {factor} (window {window}) needs {imc.tiles} IMC blocks, "
                                  f"the array has {imc.blocks}")
        return imc

    def dwpu_cycles(self, task: Task) -> float:
        spec = self.target.dwpu
        n, oh, ow, c = task.outputs["y"].shape
        if task.op == "depthwise":
            taps = task.inputs["w"].shape[0] * task.inputs["w"].shape[1]
        elif task.op in ("maxpool", "avgpool"):
            taps = task.params["kernel"][0] * task.params["kernel"][1]
        else:
            taps = 1
        return spec.task_overhead_cycles + n * oh * ow * math.ceil(c / spec.lanes) * taps

    def dpu_cycles(self, task: Task, code: Any) -> float:
        spec = self.target.dpu
        per_chunk = sum(spec.instruction_cycles[_DPU_NAMES[int(row[0])]] for row in code)
        streams = [r for n, r in task.inputs.items() if n.startswith("in")]
        elements = math.prod(streams[0].shape) if streams else 0
        return spec.task_overhead_cycles + math.ceil(elements / spec.lanes) * per_chunk

    def dma_bytes(self, task: Task) -> int:
        return int(task.params["rows"]) * int(task.params["row_bytes"])

    # -- the event loop ------------------------------------------------------------------------------
    def run(self, program: Program, *, on_start: Callable[[int, int, Task], None] | None = None,
            on_end: Callable[[int, int, Task], None] | None = None,
            dpu_code: Callable[[int, int, Task], Any] | None = None, frames: int = 1, replicas: int = 1,
            frame_window: int | None = None) -> Timeline:
        """Schedule every task of ``program``; ``dpu_code`` returns a DPU task's instruction array.

        ``frames`` > 1 streams that many frames through the program, because a throughput estimate must
        see what one frame cannot: frames overlapping on different cores and competing for the memory
        levels and the system DMA. Each core's task list is issued again per frame, into the same engine
        queues, and tokens count per frame (a frame's waits are met by that frame's signals only). A
        core starts frame ``f`` once it has finished its previous frame (its L1 arenas and buffers are
        reused), and, with ``frame_window`` ``W``, once every core it is coupled with
        (:func:`coupled_cores`: shared tokens or memory) has finished frame ``f - W``. ``W = 1`` is the
        program as planned, one copy of its memory: a frame never touches bytes a coupled core still
        uses for the previous one. ``W = 2`` assumes two copies of the shared memory (double-buffered
        hand-overs: a core runs at most one frame ahead of its partners). ``None`` gates on tokens
        only (a stage starts frame ``f`` when it has finished ``f - 1`` and the earlier stages hand
        frame ``f`` over), which needs as many copies as frames are in flight.
        ``replicas`` > 1 runs that many copies of the program on cores ``r * program.cores + c`` and
        hands frame ``f`` to copy ``f % replicas`` (what the host runtime does with a program using
        fewer cores than it may), the copies sharing DDR, L2 and the system DMA. Records and token
        events carry their frame and their physical core. ``frames=1, replicas=1`` is the one-frame
        run, event for event. ``on_start``/``on_end`` (the functional simulator) need that run.
        """
        t, o = self.target, self.options
        if frames < 1 or replicas < 1:
            raise ValueError(f"frames={frames} and replicas={replicas} must be at least 1")
        if frame_window is not None and frame_window < 1:
            raise ValueError(f"frame_window={frame_window} must be at least 1 (or None: unbounded)")
        if (frames > 1 or replicas > 1) and (on_start is not None or on_end is not None):
            raise ValueError("on_start/on_end execute one frame: a multi-frame or replicated run only times")
        levels = {b.name: b for b in program.buffers}
        pc = program.cores
        cores = pc * replicas
        if replicas > 1 and cores > t.cores:
            raise ValueError(f"{replicas} replicas of a {pc}-core program need {cores} cores, target {t.name} has "
                             f"{t.cores}")
        dma_channels = 2 if o.dma_dual_channel else 1
        sync_cost = t.sync.token_cycles if o.use_hw_tokens else t.sync.polling_cycles

        # engine -> (channel names, queues); queues hold (frame, core, index), core the program's (logical) one
        engines: dict[str, list[str]] = {}
        queues: dict[str, list[list[tuple[int, int, int]]]] = {}
        for c in range(cores):
            for u in ("mvm", "dwpu", "dpu"):
                engines[f"{c}.{u}"] = [u]
                queues[f"{c}.{u}"] = [[]]
            engines[f"{c}.dma"] = [f"dma{i}" for i in range(dma_channels)]
            queues[f"{c}.dma"] = [[]]
        engines["sysdma"] = ["sysdma"]
        queues["sysdma"] = [[] for _ in range(cores)]

        def route(core: int, shift: int, task: Task) -> tuple[str, tuple[str, ...]]:
            """Engine and touched memory levels of a task on physical core ``core`` (replica offset ``shift``)."""
            if task.kind != "dma":
                return f"{core}.{task.kind}", ()
            touched = []
            for ref in (task.inputs["src"], task.outputs["dst"]):
                b = levels[ref.buffer]
                touched.append(f"l1.{b.core + shift}" if b.level == "l1" else b.level)
            if o.use_sysdma and "ddr" in touched:
                return "sysdma", tuple(dict.fromkeys(touched))
            return f"{core}.dma", tuple(dict.fromkeys(touched))

        routes: dict[tuple[int, int, int], tuple[str, tuple[str, ...]]] = {}  # (replica, core, index)
        for r in range(min(replicas, frames)):
            for c, tl in enumerate(program.tasks):
                for i, task in enumerate(tl):
                    routes[(r, c, i)] = route(r * pc + c, r * pc, task)
        for f in range(frames):
            r = f % replicas
            for c, tl in enumerate(program.tasks):
                for i in range(len(tl)):
                    eng = routes[(r, c, i)][0]
                    queues[eng][r * pc + c if eng == "sysdma" else 0].append((f, c, i))
        # frame gating: tasks of (frame, core) not yet ended; the cores each core shares memory or tokens with
        left: dict[tuple[int, int], int] = {(f, c): len(tl) for f in range(frames)
                                            for c, tl in enumerate(program.tasks)}
        coupled = coupled_cores(program) if frames > 1 and frame_window is not None else [[] for _ in range(pc)]

        opened: set[tuple[int, int]] = set()  # once a frame may start on a core, it stays so

        def frame_open(f: int, c: int) -> bool:
            """Whether core ``c`` may start frame ``f``: its previous frame done, its coupled cores close enough."""
            if (f, c) in opened:
                return True
            if f >= replicas and left[(f - replicas, c)]:
                return False
            if frame_window is not None and f >= replicas * frame_window:
                g = f - replicas * frame_window
                if any(left[(g, q)] for q in coupled[c]):
                    return False
            opened.add((f, c))
            return True

        # what each task waits for, (token, count) pairs: checked every time its queue is looked at
        needs = [[tuple((tok, task.wait.count(tok)) for tok in dict.fromkeys(task.wait)) for task in tl]
                 for tl in program.tasks]

        heads = {eng: [0] * len(qs) for eng, qs in queues.items()}
        free = {eng: list(chs) for eng, chs in engines.items()}
        tokens: list[dict[int, int]] = [{} for _ in range(frames)]  # per frame: token -> count
        token_events: list[TokenEvent] = []
        records: list[TaskRecord] = []
        resident: dict[int, tuple[Any, ...] | None] = {c: None for c in range(cores)}
        previous: dict[int, tuple[str, float] | None] = {c: None for c in range(cores)}
        fixed: list[tuple[float, int, int, int, int]] = []  # (end, seq, frame, core, index)
        transfers: dict[tuple[int, int, int], dict[str, Any]] = {}
        rec_of: dict[tuple[int, int, int], TaskRecord] = {}
        dpu_cost: dict[tuple[int, int], float] = {}  # a DPU task's cycles, the same in every frame
        bw_level = {"ddr": t.memory["ddr"].bandwidth, "l2": t.memory["l2"].bandwidth}
        bw_level.update({f"l1.{c}": t.memory["l1"].bandwidth for c in range(cores)})
        remaining_tasks = frames * sum(len(tl) for tl in program.tasks)
        core_end = [0.0] * cores
        seq = 0
        now = 0.0
        # Why wake-ups: most queue heads wait most of the time, and looking at every queue at every event
        # was most of the cost of a long run. A queue is looked at again only when what stopped its head
        # changed: a channel of its engine freed, a token it lacks was signalled, or a frame ended on a core.
        everything = [(eng, qi) for eng, qs in queues.items() for qi in range(len(qs))]  # insertion order
        dirty: set[tuple[str, int]] = set(everything)
        engine_queues = {eng: [(eng, qi) for qi in range(len(qs))] for eng, qs in queues.items()}
        waiters: list[dict[int, list[tuple[str, int]]]] = [{} for _ in range(frames)]  # per frame: token -> queues

        def start(eng: str, qi: int, now: float) -> bool:
            nonlocal seq
            q, h = queues[eng][qi], heads[eng][qi]
            if h >= len(q) or not free[eng]:
                return False
            f, c, i = q[h]
            task = program.tasks[c][i]
            if f and not frame_open(f, c):
                return False
            counts = tokens[f]
            for tok, n in needs[c][i]:
                if counts.get(tok, 0) < n:
                    waiters[f].setdefault(tok, []).append((eng, qi))  # looked at again when it is signalled
                    return False
            r = f % replicas
            pcore = r * pc + c
            for tok in task.wait:
                counts[tok] -= 1
                token_events.append(TokenEvent(now, pcore, i, tok, "wait", counts[tok], f))
            heads[eng][qi] += 1
            channel = free[eng].pop(0)
            begin = now + (sync_cost if task.wait else 0)
            rec = TaskRecord(pcore, i, task.kind, task.op, channel, now, begin, begin, stage=task.stage, frame=f)
            rec_of[(f, c, i)] = rec
            records.append(rec)
            if on_start is not None:
                on_start(c, i, task)
            if task.kind == "dma":
                nbytes = self.dma_bytes(task)
                rec.nbytes = nbytes
                bw = t.dma.system_bandwidth if eng == "sysdma" else t.dma.core_channel_bandwidth
                transfers[(f, c, i)] = {"left": float(nbytes) if nbytes else 1e-7,  # empty copies still cost a beat
                                        "data_from": begin + t.dma.setup_cycles, "bw": bw,
                                        "touched": routes[(r, c, i)][1]}
            else:
                if task.kind == "mvm":
                    dur, wl, macs, key = self.mvm_cycles(task, resident[pcore], previous[pcore])
                    resident[pcore] = key
                    previous[pcore] = (_layer_of(task), self.last_compute)
                    rec.macs, rec.weight_load_cycles = macs, wl
                elif task.kind == "dwpu":
                    dur = self.dwpu_cycles(task)
                    rec.macs = task_macs(task)
                elif (c, i) in dpu_cost:
                    dur = dpu_cost[(c, i)]
                else:
                    code = dpu_code(c, i, task) if dpu_code is not None else None
                    if code is None:
                        raise SimulationError(f"core {c} task {i} (dpu/program): no DPU code available for timing")
                    dur = dpu_cost[(c, i)] = self.dpu_cycles(task, code)
                rec.end = begin + math.ceil(dur)
                heapq.heappush(fixed, (rec.end, seq, f, c, i))
                seq += 1
            return True

        def finish(f: int, c: int, i: int, when: float) -> None:
            nonlocal remaining_tasks
            task = program.tasks[c][i]
            rec = rec_of.pop((f, c, i))
            rec.end = when
            eng = routes[(f % replicas, c, i)][0]
            free[eng].append(rec.unit)
            free[eng].sort()
            dirty.update(engine_queues[eng])
            counts, waiting = tokens[f], waiters[f]
            for tok in task.signal:
                counts[tok] = counts.get(tok, 0) + 1
                token_events.append(TokenEvent(when, rec.core, i, tok, "signal", counts[tok], f))
                woken = waiting.pop(tok, None)
                if woken:
                    dirty.update(woken)
            core_end[rec.core] = max(core_end[rec.core], when)
            left[(f, c)] -= 1
            if not left[(f, c)] and frames > 1:
                dirty.update(everything)  # a later frame may now open on some core
            remaining_tasks -= 1
            if on_end is not None:
                on_end(c, i, task)

        while True:
            # one pass in insertion order (deterministic): a start only takes tokens and channels, so it never
            # lets a queue looked at earlier in the pass start something; only the next event can
            if dirty:
                for key in everything:
                    if key in dirty:
                        while start(key[0], key[1], now):
                            pass
                dirty.clear()
            if not fixed and not transfers:
                if remaining_tasks == 0:
                    break
                raise SimulationError(self._deadlock_message(program, queues, heads, tokens))
            # rates of transfers in their data phase: fair share of every touched level
            active = [k for k, tr in transfers.items() if tr["data_from"] <= now + _EPS]
            users: dict[str, int] = {}
            for k in active:
                for lvl in transfers[k]["touched"]:
                    users[lvl] = users.get(lvl, 0) + 1
            rates = {k: min([transfers[k]["bw"]] + [bw_level[lvl] / users[lvl] for lvl in transfers[k]["touched"]])
                     for k in active}
            nxt = math.inf
            if fixed:
                nxt = fixed[0][0]
            for k, tr in transfers.items():
                # whole cycles: a transfer ends on the first cycle boundary its bytes are through
                nxt = min(nxt, now + max(1, math.ceil(tr["left"] / rates[k] - _EPS)) if k in rates else tr["data_from"])
            for k in active:
                transfers[k]["left"] -= rates[k] * (nxt - now)
            now = nxt
            ended: list[tuple[int, int, int]] = []
            while fixed and fixed[0][0] <= now + _EPS:
                _end, _s, f, c, i = heapq.heappop(fixed)
                ended.append((f, c, i))
            for k in sorted(active):
                if transfers[k]["left"] <= 1e-6:
                    del transfers[k]
                    ended.append(k)
            for f, c, i in ended:
                finish(f, c, i, now)

        records.sort(key=lambda r: (r.start, r.core, r.index, r.frame))
        return Timeline(records, token_events, max(core_end, default=0.0), self.frequency_hz, cores, core_end)

    def stream(self, program: Program, frames: int, *, warmup: int, replicas: int = 1,
               frame_window: int | None = None,
               dpu_code: Callable[[int, int, Task], Any] | None = None) -> FrameStream:
        """Run ``frames`` frames (see :meth:`run`) and measure the steady state after ``warmup`` of them
        (:class:`FrameStream`; the warm-up frames are also run alone, for the interval). The frames measured
        are a multiple of ``replicas``: every replica adds as many, or the interval would count a partial
        round. ``dpu_code`` defaults to :func:`constant_dpu_code`."""
        if not 0 <= warmup < frames:
            raise ValueError(f"warmup={warmup} must leave at least one of the {frames} frames to measure")
        if (frames - warmup) % replicas:
            raise ValueError(f"{frames - warmup} frames measured is not a multiple of replicas={replicas}")
        code = dpu_code or constant_dpu_code(program)
        timeline = self.run(program, dpu_code=code, frames=frames, replicas=replicas, frame_window=frame_window)
        base = self.run(program, dpu_code=code, frames=warmup, replicas=replicas,
                        frame_window=frame_window).cycles if warmup else 0.0
        return FrameStream.from_timeline(timeline, warmup, base)

    @staticmethod
    def _deadlock_message(program: Program, queues: dict[str, list[list[tuple[int, int, int]]]],
                          heads: dict[str, list[int]], tokens: list[dict[int, int]]) -> str:
        for eng, qs in queues.items():
            for qi, q in enumerate(qs):
                h = heads[eng][qi]
                if h < len(q):
                    f, c, i = q[h]
                    task = program.tasks[c][i]
                    missing = [tok for tok in task.wait if tokens[f].get(tok, 0) < task.wait.count(tok)]
                    if missing:
                        where = f" of frame {f}" if f else ""
                        return (f"deadlock: core {c} task {i}{where} ({task.kind}/{task.op}) waits on token "
                                f"{missing[0]} which is never signalled")
        return "deadlock: tasks remain but none can start"
