"""The functional simulator: runs a :class:`Program` bit-exactly on the Numba kernels.

Tasks execute in the order the cycle model starts them (token-consistent,
engines concurrent), and every memory access is checked against the memory
map. A run stops with a one-line :class:`~axdrive.errors.SimulationError`
naming the task and the address when

* an operand lies outside its buffer or a buffer outside its memory level,
* a task reads bytes nobody has written yet (typically a missing token),
* a task writes a buffer whose bytes overlap another buffer that is still
  live (written and not past its last use),
* a task touches a buffer outside the buffer's live range, or an
  MVM/DWPU/DPU operand is not in the L1 of the task's core,
* the tasks deadlock on tokens.
"""

from __future__ import annotations

__all__ = ["Simulator", "SimResult", "run_program"]

import math
import threading
from functools import partial
from typing import Any, Callable, Mapping

import numba
import numpy as np
from numpy.lib.stride_tricks import as_strided

from axdrive.errors import SimulationError
from axdrive_hw.cycle_model import CycleModel, SimOptions, Timeline, constant_dpu_code
from axdrive_hw.kernels.dma import copy2d, copy2d_many
from axdrive_hw.kernels.dpu import run_dpu_program_into, validate_dpu_program
from axdrive_hw.kernels.dwpu import avg_pool2d, depthwise_conv2d_acc, max_pool2d, resize_nearest
from axdrive_hw.kernels.mvm import (ConvPlanCache, ConvWeightPlan, conv2d_acc_planned, conv2d_requant_planned_into,
                                    matmul_acc)
from axdrive_hw.numerics import requantize_nb
from axdrive_hw.program.model import TASK_OPS, Buffer, Program, Ref, Task
from axdrive_hw.target import Target, load_target


def _where(b: Buffer, offset: int) -> str:
    space = f"l1[core{b.core}]" if b.level == "l1" else b.level
    return f"{space}+0x{b.address + offset:x}"


class _ScheduleChanged(Exception):
    """A replayed run met a DPU program other than the recorded one."""


def _task_name(core: int, index: int, task: Task) -> str:
    return f"core {core} task {index} ({task.kind}/{task.op})"


_ITEMSIZE = {d: np.dtype(d).itemsize for d in ("int8", "uint8", "int16", "int32", "int64")}


def _nbytes(ref: Ref) -> int:
    """``ref.nbytes`` without a NumPy reduction (this is called several times per task)."""
    size = _ITEMSIZE.get(ref.dtype)
    return math.prod(ref.shape) * (size if size is not None else np.dtype(ref.dtype).itemsize)


class _Layout:
    """The run-independent part of :class:`_Memory`, checked once per program.

    Buffer bounds and overlaps, and each constant-initialised buffer's bytes
    and written mask (a template that runs share until they write it).
    """

    def __init__(self, program: Program, target: Target) -> None:
        self.buffers = {b.name: b for b in program.buffers}
        self.overlaps: dict[str, list[Buffer]] = {b.name: [] for b in program.buffers}
        self.init_data: dict[str, np.ndarray] = {}
        self.init_written: dict[str, np.ndarray] = {}
        self.init_dirty: set[str] = set()
        by_space: dict[tuple[str, int], list[Buffer]] = {}
        for b in program.buffers:
            if b.level == "l1" and not 0 <= b.core < program.cores:
                raise SimulationError(f"buffer {b.name!r}: L1 of core {b.core} does not exist "
                                      f"(program uses {program.cores} cores)")
            usable = target.usable(b.level)
            if b.address < 0 or b.size < 0 or b.address + b.size > usable:
                raise SimulationError(f"buffer {b.name!r} at {_where(b, 0)} size {b.size} is out of bounds of "
                                      f"{b.level} (usable bytes 0x0..0x{usable:x})")
            by_space.setdefault((b.level, b.core if b.level == "l1" else 0), []).append(b)
        for bufs in by_space.values():
            bufs = sorted(bufs, key=lambda b: (b.address, b.name))
            for i, a in enumerate(bufs):
                for b in bufs[i + 1:]:
                    if b.address >= a.address + a.size:
                        break
                    if a.size == 0 or b.size == 0:
                        continue
                    if a.live is None and b.live is None:
                        raise SimulationError(f"buffers {a.name!r} and {b.name!r} overlap at {_where(b, 0)} and are "
                                              "both live for the whole run")
                    self.overlaps[a.name].append(b)
                    self.overlaps[b.name].append(a)
        for b in program.buffers:
            if b.init is not None:
                if b.init not in program.constants:
                    raise SimulationError(f"buffer {b.name!r}: initialising constant {b.init!r} is missing")
                raw = np.ascontiguousarray(program.constants[b.init]).view(np.uint8).ravel()
                if raw.size > b.size:
                    raise SimulationError(f"buffer {b.name!r}: constant {b.init!r} has {raw.size} bytes, buffer "
                                          f"holds {b.size}")
                data = np.zeros(b.size, dtype=np.uint8)
                written = np.zeros(b.size, dtype=bool)
                data[: raw.size] = raw
                written[: raw.size] = True
                self.init_data[b.name], self.init_written[b.name] = data, written
                if raw.size:
                    self.init_dirty.add(b.name)


class _Memory:
    """Per-buffer storage plus a written-byte mask; every access goes through a check."""

    def __init__(self, program: Program, target: Target, layout: _Layout | None = None) -> None:
        layout = layout if layout is not None else _Layout(program, target)
        self.buffers = layout.buffers
        self.overlaps = layout.overlaps
        # constant-initialised buffers start as the layout's templates, copied on their first write
        self.data: dict[str, np.ndarray] = dict(layout.init_data)
        self.written: dict[str, np.ndarray] = dict(layout.init_written)
        self.shared: set[str] = set(layout.init_data)
        self.dirty: set[str] = set(layout.init_dirty)  # buffers with at least one written byte
        self.retired: set[str] = set()

    def _store(self, b: Buffer) -> np.ndarray:
        """The bytes of ``b``, for reading."""
        if b.name not in self.data:
            self.data[b.name] = np.zeros(b.size, dtype=np.uint8)
            self.written[b.name] = np.zeros(b.size, dtype=bool)
        return self.data[b.name]

    def _store_w(self, b: Buffer) -> np.ndarray:
        """The bytes of ``b``, for writing (its own copy, and its own written mask)."""
        if b.name in self.shared:
            self.shared.discard(b.name)
            self.data[b.name] = self.data[b.name].copy()
            self.written[b.name] = self.written[b.name].copy()
            return self.data[b.name]
        return self._store(b)

    def buffer(self, who: str, name: str) -> Buffer:
        b = self.buffers.get(name)
        if b is None:
            raise SimulationError(f"{who}: operand names unknown buffer {name!r}")
        return b

    def check_range(self, who: str, role: str, b: Buffer, start: int, end: int) -> None:
        if start < 0 or end > b.size:
            raise SimulationError(f"{who}: {role} bytes {start}..{end} at {_where(b, start)} are out of bounds of "
                                  f"buffer {b.name!r} ({b.size} bytes at {_where(b, 0)})")

    def _check_written(self, who: str, role: str, b: Buffer, mask: np.ndarray, first_offset: int,
                       stride: int | None = None, row_bytes: int | None = None) -> None:
        if mask.all():
            return
        flat = int(np.flatnonzero(~mask.ravel())[0])
        off = first_offset + (flat if stride is None else (flat // row_bytes) * stride + flat % row_bytes)
        raise SimulationError(f"{who}: reads {role} at {_where(b, off)} (buffer {b.name!r} + {off}) before anything "
                              "wrote it")

    def read(self, who: str, role: str, ref: Ref, *, copy: bool = True) -> np.ndarray:
        """The operand's value; ``copy=False`` gives a view that is only valid until the next write."""
        b = self.buffer(who, ref.buffer)
        start, end = ref.offset, ref.offset + _nbytes(ref)
        self.check_range(who, role, b, start, end)
        data = self._store(b)
        self._check_written(who, role, b, self.written[b.name][start:end], start)
        value = data[start:end].view(ref.dtype).reshape(ref.shape)
        return value.copy() if copy else value

    def _claim(self, who: str, b: Buffer, start: int, end: int) -> None:
        """Writing ``b[start:end]``: no other live buffer may share those bytes."""
        lo, hi = b.address + start, b.address + end
        for other in self.overlaps[b.name]:
            if other.name in self.retired or other.address >= hi or other.address + other.size <= lo:
                continue
            if other.live is None or other.name in self.dirty:
                at = max(lo, other.address) - b.address
                raise SimulationError(f"{who}: writes buffer {b.name!r} at {_where(b, at)} which overlaps live buffer "
                                      f"{other.name!r}")

    def write(self, who: str, role: str, ref: Ref, value: np.ndarray) -> None:
        b = self.buffer(who, ref.buffer)
        start, end = ref.offset, ref.offset + _nbytes(ref)
        self.check_range(who, role, b, start, end)
        if value.shape != ref.shape or value.dtype != np.dtype(ref.dtype):
            raise SimulationError(f"{who}: result {value.dtype}{list(value.shape)} does not match output {role} "
                                  f"{ref.dtype}{list(ref.shape)} (buffer {b.name!r})")
        self._claim(who, b, start, end)
        self._store_w(b)[start:end] = np.ascontiguousarray(value).view(np.uint8).ravel()
        self.written[b.name][start:end] = True
        if end > start:
            self.dirty.add(b.name)

    def output_view(self, ref: Ref) -> np.ndarray | None:
        """A writable view of an output operand for a kernel to fill in place, or ``None``: the checked
        memory sees every write whole (claims, written masks), so it never hands one out."""
        return None

    def write_lanes(self, who: str, role: str, ref: Ref, value: np.ndarray, lane0: int) -> None:
        """Write ``value`` into the innermost-axis slice ``lane0 .. lane0 + value.shape[-1]`` of ``ref``."""
        b = self.buffer(who, ref.buffer)
        start, end = ref.offset, ref.offset + _nbytes(ref)
        self.check_range(who, role, b, start, end)
        self._claim(who, b, start, end)
        item = np.dtype(ref.dtype).itemsize
        lo, hi = lane0 * item, (lane0 + value.shape[-1]) * item
        row = ref.shape[-1] * item
        self._store_w(b)[start:end].reshape(-1, row)[:, lo:hi] = (
            np.ascontiguousarray(value.astype(ref.dtype, copy=False)).view(np.uint8).reshape(-1, hi - lo))
        self.written[b.name][start:end].reshape(-1, row)[:, lo:hi] = True
        if end > start:
            self.dirty.add(b.name)

    def copy2d(self, who: str, src: Ref, dst: Ref, rows: int, row_bytes: int, src_stride: int,
               dst_stride: int) -> None:
        sb, db = self.buffer(who, src.buffer), self.buffer(who, dst.buffer)
        if rows <= 0 or row_bytes <= 0:
            return
        if src_stride < row_bytes or dst_stride < row_bytes:
            raise SimulationError(f"{who}: strides {src_stride}/{dst_stride} are shorter than a row of {row_bytes} "
                                  "bytes")
        s_end = src.offset + (rows - 1) * src_stride + row_bytes
        d_end = dst.offset + (rows - 1) * dst_stride + row_bytes
        self.check_range(who, "src", sb, src.offset, s_end)
        self.check_range(who, "dst", db, dst.offset, d_end)
        d_data = self._store_w(db)
        s_data = self._store(sb)  # after the destination: the same array when src and dst are one buffer
        if rows == 1 or src_stride == row_bytes:  # contiguous bytes: a plain slice of the mask
            self._check_written(who, "src", sb, self.written[sb.name][src.offset:s_end], src.offset)
        else:
            smask = as_strided(self.written[sb.name][src.offset:], (rows, row_bytes), (src_stride, 1),
                               writeable=False)
            self._check_written(who, "src", sb, smask, src.offset, src_stride, row_bytes)
        self._claim(who, db, dst.offset, d_end)
        copy2d(s_data, src.offset, src_stride, d_data, dst.offset, dst_stride, rows, row_bytes)
        if rows == 1 or dst_stride == row_bytes:
            self.written[db.name][dst.offset:d_end] = True
        else:
            dmask = as_strided(self.written[db.name][dst.offset:], (rows, row_bytes), (dst_stride, 1))
            dmask[...] = True
        self.dirty.add(db.name)

    def retire(self, name: str) -> None:
        self.retired.add(name)

    checked = True


class _LazyMasks(dict):  # type: ignore[type-arg]
    """Written-byte masks made on first use (a replay never reads them)."""

    def __init__(self, buffers: dict[str, Buffer], masks: dict[str, np.ndarray]) -> None:
        super().__init__(masks)
        self.buffers = buffers

    def __missing__(self, name: str) -> np.ndarray:
        mask = self[name] = np.zeros(self.buffers[name].size, dtype=bool)
        return mask


class _ReplayMemory(_Memory):
    """The memory of a replayed run: the same data, none of the memory-map checks.

    Every check of :class:`_Memory` (bounds, bytes read before written, writes
    into a live buffer, live ranges, placement) depends only on the program
    and on the order of task starts and ends, never on the values: the
    recorded run made them all, in this order, with inputs of the same sizes,
    and passed, so a replay would pass them again. A replay keeps the checks
    that look at values (DPU programs, requantization shifts).
    """

    checked = False

    def __init__(self, program: Program, target: Target, layout: _Layout, arena: "_Arena") -> None:
        super().__init__(program, target, layout)
        self.written = _LazyMasks(self.buffers, self.written)  # nothing reads the masks: made only if written
        # every buffer is a view of the arena, reused run after run without clearing: the recorded run checked
        # that no byte is read before this run writes it (and fresh arrays would cost a page fault per 4 KiB)
        self.data = dict(arena.views)
        self.shared = set()
        self.arena = arena

    def _store(self, b: Buffer) -> np.ndarray:
        return self.data[b.name]

    def _store_w(self, b: Buffer) -> np.ndarray:
        return self.data[b.name]

    def view(self, ref: Ref) -> np.ndarray:
        """The operand ``ref`` as a typed view of the arena."""
        return self.data[ref.buffer][ref.offset: ref.offset + _nbytes(ref)].view(ref.dtype).reshape(ref.shape)

    def address(self, ref: Ref) -> int:
        """The operand's first byte in the arena's array."""
        return self.arena.offsets[ref.buffer] + ref.offset

    def check_range(self, who: str, role: str, b: Buffer, start: int, end: int) -> None:
        pass

    def _check_written(self, who: str, role: str, b: Buffer, mask: np.ndarray, first_offset: int,
                       stride: int | None = None, row_bytes: int | None = None) -> None:
        pass

    def _claim(self, who: str, b: Buffer, start: int, end: int) -> None:
        pass

    def retire(self, name: str) -> None:
        pass

    def read(self, who: str, role: str, ref: Ref, *, copy: bool = True) -> np.ndarray:
        value = self.view(ref)
        return value.copy() if copy else value

    def output_view(self, ref: Ref) -> np.ndarray | None:
        return self.view(ref)

    def write(self, who: str, role: str, ref: Ref, value: np.ndarray) -> None:
        if value.shape != ref.shape or value.dtype != np.dtype(ref.dtype):
            super().write(who, role, ref, value)  # raises the recorded run's error
        start = ref.offset
        self.data[ref.buffer][start: start + value.nbytes] = np.ascontiguousarray(value).view(np.uint8).ravel()

    def copy2d(self, who: str, src: Ref, dst: Ref, rows: int, row_bytes: int, src_stride: int,
               dst_stride: int) -> None:
        if rows <= 0 or row_bytes <= 0:
            return
        # one view object per buffer: copy2d sees a copy within one buffer as one array
        copy2d(self.data[src.buffer], src.offset, src_stride, self.data[dst.buffer], dst.offset, dst_stride, rows,
               row_bytes)


class _Arena:
    """Every buffer of a program as a view of one array, for compiled replays.

    One array lets a run of DMA tasks be one kernel call over absolute
    offsets (:func:`~axdrive_hw.kernels.dma.copy2d_many`), and lets a replay
    bind each task's operands as views once. Buffers never share bytes here
    (each has its own 64-byte aligned range), so a copy within the array has
    exactly the semantics of a copy between the per-buffer arrays of
    :class:`_Memory`. Constant-initialised buffers hold their constants; those
    some task (or an input) writes are restored at the start of each run.
    """

    ALIGN = 64

    def __init__(self, layout: _Layout, written: set[str]) -> None:
        offsets: dict[str, int] = {}
        total = 0
        for name, b in layout.buffers.items():
            offsets[name] = total
            total += -(-b.size // self.ALIGN) * self.ALIGN
        self.array = np.zeros(max(total, 1), dtype=np.uint8)
        self.offsets = offsets
        self.views = {n: self.array[o: o + layout.buffers[n].size] for n, o in offsets.items()}
        for name, data in layout.init_data.items():
            self.views[name][...] = data
        self.restore = [(self.views[n], layout.init_data[n]) for n in sorted(written & set(layout.init_data))]

    def reset(self) -> None:
        """Put back the constants the previous run overwrote."""
        for view, data in self.restore:
            np.copyto(view, data)


class _Compiled:
    """A replay as straight-line steps over one arena: the recorded task order with operands bound once.

    Built from the recorded run's schedule. A task whose parameters (weights,
    requantization operands, DPU code, constants, tables) come only from the
    program's constants, never from an input, sees the same parameter values
    in every run; so its convolution plan, requantization rows and DPU program
    validation are made once, here. Consecutive DMA tasks become one batched
    copy. Every other task (and any task whose parameters depend on an input)
    runs through :meth:`Simulator._execute` each time, as an uncompiled replay
    does, DPU code comparison included.
    """

    # operands that parameterise a task rather than carry its data
    PARAMS = ("w", "bias", "multiplier", "shift", "code", "consts", "luts")

    def __init__(self, sim: "Simulator", layout: _Layout, events: list[tuple[bool, int, int, Task]],
                 codes: dict[tuple[int, int], np.ndarray]) -> None:
        program = sim.program
        starts = [(c, i, t) for is_start, c, i, t in events if is_start]
        written = set(program.inputs.values())
        tainted = set(program.inputs.values())  # buffers whose bytes may depend on an input
        param_tainted: set[tuple[int, int]] = set()
        for c, i, t in starts:
            ins = {r.buffer for r in t.inputs.values()}
            if any(t.inputs[k].buffer in tainted for k in self.PARAMS if k in t.inputs):
                param_tainted.add((c, i))
            outs = {r.buffer for r in t.outputs.values()}
            written |= outs
            if ins & tainted:
                tainted |= outs
        self.arena = _Arena(layout, written)
        self.mem = _ReplayMemory(program, sim.target, layout, self.arena)
        self.sim = sim
        self.codes = codes
        # DMA batches, and tasks (with whether their parameters may depend on an input)
        self.items: list[np.ndarray | tuple[int, int, Task, bool]] = []
        dma: list[tuple[int, int, int, int, int, int]] = []
        for c, i, t in starts:
            if t.kind == "dma":
                p = t.params
                rows, row_bytes = int(p["rows"]), int(p["row_bytes"])
                if rows > 0 and row_bytes > 0 and int(p["src_stride"]) >= row_bytes \
                        and int(p["dst_stride"]) >= row_bytes:
                    dma.append((self.mem.address(t.inputs["src"]), int(p["src_stride"]),
                                self.mem.address(t.outputs["dst"]), int(p["dst_stride"]), rows, row_bytes))
                    continue
            if dma:
                self.items.append(np.array(dma, dtype=np.int64))
                dma = []
            self.items.append((c, i, t, (c, i) in param_tainted))
        if dma:
            self.items.append(np.array(dma, dtype=np.int64))
        self.steps: list[Callable[[], Any]] | None = None  # made by the first run

    def run(self) -> None:
        """Execute every task once. The first run makes the steps as it goes: a task's parameters are read
        when the tasks before it have run (most reach the L1 by DMA during the run)."""
        if self.steps is not None:
            for step in self.steps:
                step()
            return
        sim, mem, steps = self.sim, self.mem, []
        for item in self.items:
            if isinstance(item, np.ndarray):
                step = partial(copy2d_many, self.arena.array, item)
            else:
                c, i, t, tainted = item
                step = (None if tainted else sim._compile_task(mem, c, i, t)) \
                    or partial(sim._execute_checked_code, mem, c, i, t, self.codes.get((c, i)))
            step()
            steps.append(step)
        self.steps = steps


class SimResult:
    """Outputs by graph tensor name, and the timing of the run.

    A replayed run's timeline is its own copy of the recorded one, made when
    first asked for: the host runtime only takes the outputs of each run.
    """

    def __init__(self, outputs: dict[str, np.ndarray], timeline: Timeline | Callable[[], Timeline]) -> None:
        self.outputs = outputs
        self._timeline = timeline

    @property
    def timeline(self) -> Timeline:
        if not isinstance(self._timeline, Timeline):
            self._timeline = self._timeline()
        return self._timeline

    @property
    def cycles(self) -> float:
        return self.timeline.cycles

    @property
    def seconds(self) -> float:
        return self.timeline.seconds


class Simulator:
    """Runs a program: ``Simulator(program).run({"x": x})``.

    ``functional=False`` only times the program (no data, no memory checks),
    which is how large layers are estimated without computing them.
    """

    def __init__(self, program: Program, target: Target | None = None, options: SimOptions | None = None, *,
                 functional: bool = True) -> None:
        self.program = program
        self.target = target or load_target(program.target)
        self.options = options or SimOptions()
        self.functional = functional
        self.model = CycleModel(self.target, self.options)
        if not 1 <= program.cores <= self.target.cores:
            raise SimulationError(f"program uses {program.cores} cores, target {self.target.name} has "
                                  f"{self.target.cores}")
        names = {b.name for b in program.buffers}
        for c, tl in enumerate(program.tasks):
            for i, t in enumerate(tl):
                if t.op not in TASK_OPS.get(t.kind, ()):
                    raise SimulationError(f"core {c} task {i}: unknown task {t.kind}/{t.op}")
                for role, ref in list(t.inputs.items()) + list(t.outputs.items()):
                    if ref.buffer not in names:
                        raise SimulationError(f"{_task_name(c, i, t)}: operand {role!r} names unknown buffer "
                                              f"{ref.buffer!r}")
        self._layout: _Layout | None = None  # built (and checked) by the first functional run
        self._schedule: tuple[list[tuple[bool, int, int, Task]], dict[tuple[int, int], np.ndarray],
                              Timeline] | None = None
        self._live_end: dict[tuple[int, int], list[str]] = {}
        self._conv_plans = ConvPlanCache()  # zero-skipping plans of the conv weights, per task
        self._valid_dpu: set[tuple[bytes, int, int, int, int]] = set()  # DPU programs that passed validation
        self._input_sizes: dict[str, int] = {}  # input bytes of the recorded run
        self._compiled: list[_Compiled] = []  # compiled replays not in use (one per concurrent run)
        self._pool_lock = threading.Lock()
        for b in program.buffers:
            if b.live is not None:
                self._live_end.setdefault((b.core, b.live[1]), []).append(b.name)

    # -- public --------------------------------------------------------------------------------------
    def run(self, inputs: Mapping[str, np.ndarray] | None = None) -> SimResult:
        """Execute every task; returns outputs (functional mode) and the timeline."""
        p = self.program
        if not self.functional:
            timeline = self.model.run(p, dpu_code=constant_dpu_code(p))
            return SimResult({}, timeline)
        schedule = self._schedule
        if schedule is not None:
            try:
                return self._replay(inputs, *schedule)
            except _ScheduleChanged:
                pass  # a DPU program differs from the recorded run's: schedule again
        mem = self._memory()
        self._load_inputs(mem, dict(inputs or {}))
        codes: dict[tuple[int, int], np.ndarray] = {}
        events: list[tuple[bool, int, int, Task]] = []

        def on_start(c: int, i: int, task: Task) -> None:
            events.append((True, c, i, task))
            code = self._execute(mem, c, i, task)
            if code is not None:
                codes[(c, i)] = code

        def on_end(c: int, i: int, task: Task) -> None:
            events.append((False, c, i, task))
            for name in self._live_end.get((c, i), ()):
                mem.retire(name)

        timeline = self.model.run(p, on_start=on_start, on_end=on_end, dpu_code=lambda c, i, t: codes.get((c, i)))
        outputs = self._outputs(mem)
        # The cycle model is data-independent except for the DPU programs it times: later runs replay this
        # order of task starts and ends (and this timeline) for as long as the DPU programs are the same.
        self._schedule = (events, codes, timeline)
        self._input_sizes = self._sizes(inputs)
        return SimResult(outputs, timeline)

    @staticmethod
    def _sizes(inputs: Mapping[str, np.ndarray] | None) -> dict[str, int]:
        return {k: np.asarray(v).nbytes for k, v in (inputs or {}).items()}

    def _replay(self, inputs: Mapping[str, np.ndarray] | None, events: list[tuple[bool, int, int, Task]],
                codes: dict[tuple[int, int], np.ndarray], timeline: Timeline) -> SimResult:
        # inputs of the recorded sizes write the recorded bytes: the memory-map checks would pass again, so
        # the run is the compiled step list; other sizes replay the recorded order with every check
        if self._sizes(inputs) == self._input_sizes:
            return self._run_compiled(inputs, events, codes, timeline)
        mem = self._memory()
        self._load_inputs(mem, dict(inputs or {}))
        live_end = self._live_end
        for is_start, c, i, task in events:
            if is_start:
                self._execute_checked_code(mem, c, i, task, codes.get((c, i)))
            else:
                for name in live_end.get((c, i), ()):
                    mem.retire(name)
        return SimResult(self._outputs(mem), timeline.copy)

    def _run_compiled(self, inputs: Mapping[str, np.ndarray] | None, events: list[tuple[bool, int, int, Task]],
                      codes: dict[tuple[int, int], np.ndarray], timeline: Timeline) -> SimResult:
        """A replay through a :class:`_Compiled` step list (built on the first replay, one per concurrent run)."""
        with self._pool_lock:
            comp = self._compiled.pop() if self._compiled else None
        if comp is None:
            if self._layout is None:
                self._layout = _Layout(self.program, self.target)
            comp = _Compiled(self, self._layout, events, codes)
        try:
            comp.arena.reset()
            self._load_inputs(comp.mem, dict(inputs or {}))
            comp.run()
            outputs = self._outputs(comp.mem)
        finally:
            with self._pool_lock:
                self._compiled.append(comp)
        return SimResult(outputs, timeline.copy)

    def _execute_checked_code(self, mem: _Memory, c: int, i: int, task: Task, code: np.ndarray | None) -> None:
        """:meth:`_execute` in a replay: a DPU program other than the recorded one means the schedule changed."""
        got = self._execute(mem, c, i, task)
        if got is not None and not np.array_equal(got, code):
            raise _ScheduleChanged

    def _compile_task(self, mem: _ReplayMemory, c: int, i: int, task: Task) -> Callable[[], Any] | None:
        """One task as a step with its operands bound (parameters read and checked once), or ``None``
        when it has no compiled form: the caller then runs it through :meth:`_execute` every time."""
        who = _task_name(c, i, task)
        generic = partial(self._execute, mem, c, i, task)
        if task.kind == "mvm" and task.op != "matmul":
            return self._compile_conv(mem, who, task, generic)
        if task.kind == "dpu":
            return self._compile_dpu(mem, who, task)
        return None

    def _compile_conv(self, mem: _ReplayMemory, who: str, task: Task,
                      generic: Callable[[], Any]) -> Callable[[], Any] | None:
        """An int8 convolution with its requantization fused, into the output operand's view."""
        ref = task.outputs["y"]
        if ref.dtype != "int8" or "multiplier" not in task.inputs:
            return None
        x, w = mem.view(task.inputs["x"]), mem.view(task.inputs["w"])
        bias = mem.view(task.inputs["bias"]).astype(np.int32).ravel()
        p = task.params
        g = int(p.get("groups", 1))
        if x.ndim != 4 or w.ndim != 4 or w.shape[3] * g != x.shape[3] or w.shape[0] % g or bias.size != w.shape[0]:
            return None  # the generic path names the error
        lanes = p.get("y_channels")
        o0, o1 = (int(lanes[0]), int(lanes[1])) if lanes is not None else (0, ref.shape[-1])
        if w.shape[0] != o1 - o0 or not 0 <= o0 < o1 <= ref.shape[-1]:
            return None
        out = mem.view(ref)[..., o0:o1]
        if np.may_share_memory(out, x):
            return None
        m, s, zp, qmin, qmax = self._requant_operands(mem, who, task, o1 - o0)
        (sh, sw), pads, (dh, dw) = p.get("stride", (1, 1)), p.get("pads", (0, 0, 0, 0)), p.get("dilation", (1, 1))
        plan = self._conv_plans.get(who, w) if g == 1 else None
        w = w.copy()  # the parameters are constant in every run: the kernel reads them from here
        args = (plan, x, int(p["x_zp"]), w, bias, sh, sw, *pads, dh, dw, g, m, s, zp, qmin, qmax, out)

        def step() -> None:
            if not conv2d_requant_planned_into(*args):
                generic()  # only the int64 kernels apply: the two-step path
        return step

    def _compile_dpu(self, mem: _ReplayMemory, who: str, task: Task) -> Callable[[], Any] | None:
        """A DPU program whose single output the interpreter writes in place (validated once, here)."""
        if len(task.outputs) != 1 or task.outputs["out0"].dtype not in ("int8", "int32"):
            return None
        spec = self.target.dpu
        # the step keeps its own copies of the parameters: they are the same in every run
        code, streams, outs, channels, consts, luts = self._dpu_operands(mem, who, task, copy_code=True)
        res = mem.view(outs[0]).reshape(1, -1)
        if any(np.may_share_memory(res, st) for st in streams):
            return None
        consts = consts if consts.shape[0] else np.zeros((1, max(channels, 1)), np.int32)
        luts = luts if luts.shape[0] else np.zeros((1, 256), np.int8)
        fixed = (consts, luts, channels, spec.registers, spec.lanes, spec.spill_slots, res)
        if len(streams) == 1:
            inp = streams[0].reshape(1, -1)
            return lambda: run_dpu_program_into(code, inp, *fixed, numba.get_num_threads())
        # several streams: stacked into an array of their own (their common dtype, else int32), as _dpu does
        dtype = streams[0].dtype if len({st.dtype for st in streams}) == 1 else np.dtype(np.int32)
        stacked = np.empty((len(streams), streams[0].size), dtype=dtype)
        flat = [st.reshape(-1) for st in streams]

        def step() -> None:
            for k, st in enumerate(flat):
                stacked[k] = st
            run_dpu_program_into(code, stacked, *fixed, numba.get_num_threads())
        return step

    def _memory(self) -> _Memory:
        if self._layout is None:
            self._layout = _Layout(self.program, self.target)
        return _Memory(self.program, self.target, self._layout)

    def _outputs(self, mem: _Memory) -> dict[str, np.ndarray]:
        outputs = {}
        for tensor, name in self.program.outputs.items():
            b = mem.buffers[name]
            ref = Ref(name, b.shape or (b.size,), b.dtype if b.shape else "uint8", 0)
            outputs[tensor] = mem.read(f"output {tensor!r}", "output", ref)
        return outputs

    # -- internals -----------------------------------------------------------------------------------
    def _load_inputs(self, mem: _Memory, inputs: dict[str, np.ndarray]) -> None:
        unknown = sorted(set(inputs) - set(self.program.inputs))
        if unknown:
            raise SimulationError(f"input {unknown[0]!r} is not an input of the program "
                                  f"(inputs: {', '.join(self.program.inputs)})")
        for tensor, name in self.program.inputs.items():
            if tensor not in inputs:
                raise SimulationError(f"input {tensor!r} is missing")
            b = mem.buffers[name]
            a = np.ascontiguousarray(inputs[tensor])
            if (b.shape and tuple(a.shape) != b.shape) or (b.shape and a.dtype != np.dtype(b.dtype)) \
                    or a.nbytes > b.size:
                raise SimulationError(f"input {tensor!r}: expected {b.dtype}{list(b.shape)} ({b.size} bytes), got "
                                      f"{a.dtype}{list(a.shape)}")
            mem.write(f"input {tensor!r}", "input", Ref(name, a.shape, str(a.dtype), 0), a)

    def _check_place(self, mem: _Memory, who: str, c: int, i: int, task: Task) -> None:
        for role, ref in list(task.inputs.items()) + list(task.outputs.items()):
            b = mem.buffers[ref.buffer]
            if task.kind != "dma" and not (b.level == "l1" and b.core == c):
                raise SimulationError(f"{who}: operand {role!r} (buffer {b.name!r}) is in {_where(b, 0)}; "
                                      f"{task.kind.upper()} operands must be in the L1 of core {c}")
            if b.live is not None and b.core == c and not b.live[0] <= i <= b.live[1]:
                raise SimulationError(f"{who}: operand {role!r} touches buffer {b.name!r} at {_where(b, ref.offset)} "
                                      f"outside its live range {b.live[0]}..{b.live[1]}")

    def _execute(self, mem: _Memory, c: int, i: int, task: Task) -> np.ndarray | None:
        who = _task_name(c, i, task)
        if mem.checked:
            self._check_place(mem, who, c, i, task)
        try:
            if task.kind == "dma":
                p = task.params
                mem.copy2d(who, task.inputs["src"], task.outputs["dst"], int(p["rows"]), int(p["row_bytes"]),
                           int(p["src_stride"]), int(p["dst_stride"]))
                return None
            if task.kind == "mvm":
                self._mvm(mem, who, task)
            elif task.kind == "dwpu":
                self._dwpu(mem, who, task)
            else:
                return self._dpu(mem, who, task)
        except KeyError as e:
            raise SimulationError(f"{who}: missing operand or parameter {e}") from None
        return None

    def _requant_operands(self, mem: _Memory, who: str, task: Task,
                          o: int) -> tuple[np.ndarray, np.ndarray, int, int, int]:
        """``(multipliers, shifts, out_zp, qmin, qmax)`` of a task with an int8 output over ``o`` channels, checked."""
        y = task.outputs["y"]
        if "multiplier" not in task.inputs:
            raise SimulationError(f"{who}: output 'y' is {y.dtype} but the task has no multiplier/shift operands")
        m = mem.read(who, "multiplier", task.inputs["multiplier"], copy=False).astype(np.int64).ravel()
        s = mem.read(who, "shift", task.inputs["shift"], copy=False).astype(np.int64).ravel()
        if np.any(s < 1) or np.any(s > 62):
            raise SimulationError(f"{who}: requantization shift outside 1..62")
        if m.size not in (1, o) or s.size != m.size:
            raise SimulationError(f"{who}: {m.size} multipliers / {s.size} shifts for {o} channels")
        return m, s, int(task.params["out_zp"]), int(task.params.get("qmin", -128)), int(task.params.get("qmax", 127))

    def _requant_or_acc(self, mem: _Memory, who: str, task: Task, acc: np.ndarray) -> np.ndarray:
        if task.outputs["y"].dtype == "int32":
            return acc
        o = acc.shape[-1]
        m, s, zp, qmin, qmax = self._requant_operands(mem, who, task, o)
        return requantize_nb(acc.reshape(-1, o), m, s, zp, qmin, qmax).reshape(acc.shape)

    def _conv_requant(self, mem: _Memory, who: str, task: Task, plan: ConvWeightPlan | None, x: np.ndarray,
                      w: np.ndarray, bias: np.ndarray, conv: tuple[int, ...], groups: int) -> bool:
        """An int8 convolution output computed and requantized in one kernel pass, straight into the output
        operand when the memory hands out a view (a replay); ``False`` when the fused kernels do not apply."""
        ref = task.outputs["y"]
        if ref.dtype != "int8" or "multiplier" not in task.inputs:
            return False
        lanes = task.params.get("y_channels")
        o0, o1 = (int(lanes[0]), int(lanes[1])) if lanes is not None else (0, ref.shape[-1])
        if w.shape[0] != o1 - o0 or not 0 <= o0 < o1 <= ref.shape[-1]:
            return False  # _write_y names the mismatch
        m, s, zp, qmin, qmax = self._requant_operands(mem, who, task, o1 - o0)
        view = mem.output_view(ref)
        if view is not None and not np.may_share_memory(view, x):
            out = view[..., o0:o1]
            if out.shape != (*ref.shape[:-1], o1 - o0):
                return False
            return conv2d_requant_planned_into(plan, x, int(task.params["x_zp"]), w, bias, *conv, groups, m, s, zp,
                                               qmin, qmax, out)
        y = np.empty((*ref.shape[:-1], o1 - o0), dtype=np.int8)
        try:
            done = conv2d_requant_planned_into(plan, x, int(task.params["x_zp"]), w, bias, *conv, groups, m, s, zp,
                                               qmin, qmax, y)
        except ValueError:
            return False  # the shapes do not fit: the two-step path reports it
        if done:
            self._write_y(mem, who, task, y)
        return done

    def _mvm(self, mem: _Memory, who: str, task: Task) -> None:
        # operands as views of the memory (the kernels only read them; the task writes after they return)
        x = mem.read(who, "x", task.inputs["x"], copy=False)
        w = mem.read(who, "w", task.inputs["w"], copy=False)
        bias = mem.read(who, "bias", task.inputs["bias"], copy=False).astype(np.int32).ravel()
        p = task.params
        if task.op == "matmul":
            if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or bias.size != w.shape[0]:
                raise SimulationError(f"{who}: shapes x{list(x.shape)} w{list(w.shape)} bias{list(bias.shape)} do "
                                      "not form a matmul")
            acc = matmul_acc(x, int(p["x_zp"]), w, bias)
        else:
            g = int(p.get("groups", 1))
            if x.ndim != 4 or w.ndim != 4 or w.shape[3] * g != x.shape[3] or w.shape[0] % g or bias.size != w.shape[0]:
                raise SimulationError(f"{who}: shapes x{list(x.shape)} w{list(w.shape)} bias{list(bias.shape)} do "
                                      f"not form a conv2d with groups={g}")
            (sh, sw), pads, (dh, dw) = p.get("stride", (1, 1)), p.get("pads", (0, 0, 0, 0)), p.get("dilation", (1, 1))
            # bit-identical to conv2d_acc: the channels whose weights are all zero are skipped
            plan = self._conv_plans.get(who, w) if g == 1 else None
            if self._conv_requant(mem, who, task, plan, x, w, bias, (sh, sw, *pads, dh, dw), g):
                return
            acc = conv2d_acc_planned(plan, x, int(p["x_zp"]), w, bias, sh, sw, *pads, dh, dw, g)
        self._write_y(mem, who, task, self._requant_or_acc(mem, who, task, acc))

    def _write_y(self, mem: _Memory, who: str, task: Task, y: np.ndarray) -> None:
        ref = task.outputs["y"]
        lanes = task.params.get("y_channels")
        if lanes is not None:  # one output-channel group of a layer split by weight sets
            o0, o1 = int(lanes[0]), int(lanes[1])
            if not 0 <= o0 < o1 <= ref.shape[-1] or y.shape != (*ref.shape[:-1], o1 - o0):
                raise SimulationError(f"{who}: computes y{list(y.shape)} for channels {o0}..{o1} of output operand "
                                      f"{list(ref.shape)}")
            mem.write_lanes(who, "y", ref, y.astype(ref.dtype, copy=False), o0)
            return
        if y.shape != ref.shape:
            raise SimulationError(f"{who}: computes y{list(y.shape)} but the output operand is {list(ref.shape)}")
        mem.write(who, "y", ref, y.astype(ref.dtype, copy=False))

    def _dwpu(self, mem: _Memory, who: str, task: Task) -> None:
        x = mem.read(who, "x", task.inputs["x"], copy=False)
        p = task.params
        if task.op == "depthwise":
            w = mem.read(who, "w", task.inputs["w"], copy=False)
            bias = mem.read(who, "bias", task.inputs["bias"], copy=False).astype(np.int32).ravel()
            if x.ndim != 4 or w.ndim != 3 or w.shape[2] != x.shape[3] or bias.size != x.shape[3]:
                raise SimulationError(f"{who}: shapes x{list(x.shape)} w{list(w.shape)} do not form a depthwise conv")
            (sh, sw), pads, (dh, dw) = p.get("stride", (1, 1)), p.get("pads", (0, 0, 0, 0)), p.get("dilation", (1, 1))
            acc = depthwise_conv2d_acc(x, int(p["x_zp"]), w, bias, sh, sw, *pads, dh, dw)
            y = self._requant_or_acc(mem, who, task, acc)
        elif task.op == "maxpool":
            (kh, kw), (sh, sw) = p["kernel"], p["stride"]
            y = max_pool2d(x, kh, kw, sh, sw, *p.get("pads", (0, 0, 0, 0)))
        elif task.op == "avgpool":
            (kh, kw), (sh, sw) = p["kernel"], p["stride"]
            y = avg_pool2d(x, int(p.get("x_zp", 0)), kh, kw, sh, sw, *p.get("pads", (0, 0, 0, 0)),
                           bool(p.get("count_include_pad", False)))
        else:
            shape = task.outputs["y"].shape
            y = resize_nearest(x, shape[1], shape[2])
        self._write_y(mem, who, task, y)

    def _dpu_operands(self, mem: _Memory, who: str, task: Task, *, copy_code: bool
                      ) -> tuple[np.ndarray, list[np.ndarray], list[Ref], int, np.ndarray, np.ndarray]:
        """``(code, streams, outs, channels, consts, luts)`` of a DPU task, checked: equal element counts and
        a valid program (validated once per code and operand counts: runs repeat the same few programs)."""
        spec = self.target.dpu
        code = mem.read(who, "code", task.inputs["code"], copy=False).astype(np.int32, copy=copy_code)
        code = code.reshape(-1, 6)
        streams = [mem.read(who, n, r, copy=False) for n, r in sorted(task.inputs.items()) if n.startswith("in")]
        outs = [task.outputs[f"out{k}"] for k in range(len(task.outputs))]
        if not streams or len({s.size for s in streams} | {math.prod(o.shape) for o in outs}) != 1:
            raise SimulationError(f"{who}: input and output streams must all have the same element count")
        channels = int(task.params["channels"])
        consts = (mem.read(who, "consts", task.inputs["consts"], copy=False).astype(np.int32, copy=copy_code)
                  .reshape(-1, channels) if "consts" in task.inputs else np.zeros((0, max(channels, 1)), np.int32))
        luts = (mem.read(who, "luts", task.inputs["luts"], copy=False).astype(np.int8, copy=copy_code)
                .reshape(-1, 256) if "luts" in task.inputs else np.zeros((0, 256), np.int8))
        key = (code.tobytes(), len(streams), len(outs), luts.shape[0], consts.shape[0])
        if key not in self._valid_dpu:
            try:
                validate_dpu_program(code, registers=spec.registers, n_inputs=len(streams), n_outputs=len(outs),
                                     n_luts=luts.shape[0], n_consts=consts.shape[0], spill_slots=spec.spill_slots)
            except ValueError as e:
                raise SimulationError(f"{who}: {e}") from None
            self._valid_dpu.add(key)
        return code, streams, outs, channels, consts, luts

    def _dpu(self, mem: _Memory, who: str, task: Task) -> np.ndarray:
        spec = self.target.dpu
        # the recorded run keeps its own copy of the code (a replay compares against it right away)
        code, streams, outs, channels, consts, luts = self._dpu_operands(mem, who, task, copy_code=mem.checked)
        # one stream goes in as it is (int8 or int32, a view of the memory); several are stacked, in their
        # common dtype when they share one (int8 concats), else in int32
        if len(streams) == 1:
            inp = streams[0].reshape(1, -1)
        elif len({st.dtype for st in streams}) == 1:
            inp = np.stack([st.ravel() for st in streams])
        else:
            inp = np.stack([st.astype(np.int32).ravel() for st in streams])
        # int8 output operands saturate; when every output is int8 the interpreter stores them so
        narrow = all(ref.dtype == "int8" for ref in outs)
        # a single output the memory can hand out as a view (a replay) that shares no bytes with the input
        # is written by the interpreter in place
        direct = mem.output_view(outs[0]) if len(outs) == 1 and outs[0].dtype in ("int8", "int32") else None
        if direct is not None and not np.may_share_memory(direct, inp):
            res = direct.reshape(1, -1)
        else:
            direct = None
            res = np.empty((len(outs), inp.shape[1]), dtype=np.int8 if narrow else np.int32)
        run_dpu_program_into(code, inp, consts if consts.shape[0] else np.zeros((1, max(channels, 1)), np.int32),
                             luts if luts.shape[0] else np.zeros((1, 256), np.int8), channels, spec.registers,
                             spec.lanes, spec.spill_slots, res, numba.get_num_threads())
        if direct is not None:
            return code
        for k, ref in enumerate(outs):
            v = res[k]
            if ref.dtype == "int8" and not narrow:
                v = np.clip(v, -128, 127, out=v)  # int8 outputs saturate (res is this task's own array)
            mem.write(who, f"out{k}", ref, v.astype(ref.dtype, copy=False).reshape(ref.shape))
        return code


def run_program(program: Program, inputs: Mapping[str, np.ndarray] | None = None, target: Target | None = None,
                options: SimOptions | None = None, **option_fields: Any) -> SimResult:
    """One-call simulation; ``option_fields`` are :class:`SimOptions` fields (``use_hw_tokens=False`` ...)."""
    if option_fields:
        options = SimOptions(**{**(options.__dict__ if options else {}), **option_fields})
    return Simulator(program, target, options).run(inputs)
