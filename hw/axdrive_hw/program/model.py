"""The program model: what a compiler emits and the simulator runs.

A :class:`Program` is, per core, a task list (:class:`Task`) plus the memory
map (:class:`Buffer`) and the constants (weights, biases, requantization
multipliers/shifts, LUTs, DPU programs) that initialise constant buffers.

Which unit runs which op class (``Task.kind`` / ``Task.op``):

=====  =================  ===============================================
kind   op                 used for
=====  =================  ===============================================
dma    copy2d             every move between DDR, L2 and L1; concat (copy
                          into a channel slice), channel/height tiling
mvm    conv2d, matmul     convolutions and dense layers (int32 out, or
                          int8 with the requantization fused)
dwpu   depthwise          depthwise convolution
dwpu   maxpool, avgpool   pooling
dwpu   resize_nearest     nearest-neighbour upsampling
dpu    program            requantize, activation LUTs (sigmoid, SiLU, ...),
                          residual add, clamp/ReLU, any element-wise tail
=====  =================  ===============================================

MVM, DWPU and DPU operands must live in the L1 of the task's core; DMA may
touch any level. Addresses are byte offsets inside a level (see
:mod:`axdrive_hw.target`). Live ranges are ``(first, last)`` inclusive task
indices in the task list of the buffer's ``core``; ``None`` means the whole
run (inputs, outputs, constants).

Tokens are counting semaphores shared by all cores: ``signal`` increments a
token when the task ends, ``wait`` decrements it before the task starts.
"""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "Ref", "Buffer", "Task", "Program", "ProgramBuilder", "TaskConstructors", "TASK_OPS",
           "BUFFER_KINDS"]

import base64
import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from axdrive_hw.target import LEVELS, Target, load_target

FORMAT_VERSION = 1
TASK_OPS: dict[str, tuple[str, ...]] = {
    "dma": ("copy2d",),
    "mvm": ("conv2d", "matmul"),
    "dwpu": ("depthwise", "maxpool", "avgpool", "resize_nearest"),
    "dpu": ("program",),
}
BUFFER_KINDS = ("input", "output", "constant", "workspace")
_DTYPES = ("int8", "uint8", "int16", "int32", "int64")
_ALIGN = 64  # PWORD


@dataclass(frozen=True)
class Ref:
    """An operand: a contiguous ``shape``/``dtype`` view at byte ``offset`` inside ``buffer``."""

    buffer: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    offset: int = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer, "shape": list(self.shape), "dtype": self.dtype, "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Ref":
        return cls(d["buffer"], tuple(int(v) for v in d["shape"]), d["dtype"], int(d["offset"]))


@dataclass(frozen=True)
class Buffer:
    """One entry of the memory map."""

    name: str
    level: str
    address: int
    size: int
    core: int = 0
    kind: str = "workspace"
    live: tuple[int, int] | None = None
    init: str | None = None  # constant whose bytes initialise the buffer
    shape: tuple[int, ...] = ()  # declared tensor view (how inputs/outputs are exchanged with the host)
    dtype: str = "uint8"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "address": self.address, "size": self.size,
                "core": self.core, "kind": self.kind, "live": list(self.live) if self.live is not None else None,
                "init": self.init, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Buffer":
        live = d["live"]
        return cls(d["name"], d["level"], int(d["address"]), int(d["size"]), int(d["core"]), d["kind"],
                   (int(live[0]), int(live[1])) if live is not None else None, d["init"],
                   tuple(int(v) for v in d["shape"]), d["dtype"])


@dataclass(frozen=True)
class Task:
    """One task of a core's task list."""

    kind: str
    op: str
    inputs: dict[str, Ref]
    outputs: dict[str, Ref]
    params: dict[str, Any] = field(default_factory=dict)
    wait: tuple[int, ...] = ()
    signal: tuple[int, ...] = ()
    stage: str | None = None  # pipeline stage / tile label, for [PB]/[PE] trace lines

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "op": self.op, "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
                "outputs": {k: v.to_dict() for k, v in self.outputs.items()}, "params": self.params,
                "wait": list(self.wait), "signal": list(self.signal), "stage": self.stage}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(d["kind"], d["op"], {k: Ref.from_dict(v) for k, v in d["inputs"].items()},
                   {k: Ref.from_dict(v) for k, v in d["outputs"].items()}, dict(d["params"]),
                   tuple(int(t) for t in d["wait"]), tuple(int(t) for t in d["signal"]), d["stage"])


@dataclass
class Program:
    """A complete AIPU program (see module docstring)."""

    target: str
    cores: int
    buffers: list[Buffer]
    tasks: list[list[Task]]
    constants: dict[str, np.ndarray]
    inputs: dict[str, str]   # graph tensor name -> buffer name
    outputs: dict[str, str]
    version: int = FORMAT_VERSION

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)

    def to_dict(self, *, include_data: bool = True) -> dict[str, Any]:
        """The JSON form (constants base64-encoded).

        ``include_data=False`` gives a description only (sha256 and size
        instead of the bytes): readable for large models, not assemblable.
        """
        consts = {}
        for name, arr in self.constants.items():
            a = np.ascontiguousarray(arr)
            entry: dict[str, Any] = {"dtype": str(a.dtype), "shape": list(a.shape)}
            if include_data:
                entry["base64"] = base64.b64encode(a.tobytes()).decode("ascii")
            else:
                entry["sha256"] = hashlib.sha256(a.tobytes()).hexdigest()
                entry["nbytes"] = a.nbytes
            consts[name] = entry
        return {"format": "axdrive-aipu-program", "version": self.version, "target": self.target,
                "cores": self.cores, "buffers": [b.to_dict() for b in self.buffers],
                "tasks": [[t.to_dict() for t in tl] for tl in self.tasks], "constants": consts,
                "inputs": dict(self.inputs), "outputs": dict(self.outputs)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Program":
        consts = {}
        for name, e in d["constants"].items():
            if "base64" not in e:
                raise ValueError(f"constant {name!r} has no data (this program.json was written as a description "
                                 "with digests only; disassemble program.bin for an assemblable one)")
            raw = base64.b64decode(e["base64"], validate=True)
            consts[name] = np.frombuffer(raw, dtype=e["dtype"]).reshape(e["shape"]).copy()
        return cls(d["target"], int(d["cores"]), [Buffer.from_dict(b) for b in d["buffers"]],
                   [[Task.from_dict(t) for t in tl] for tl in d["tasks"]], consts, dict(d["inputs"]),
                   dict(d["outputs"]), int(d["version"]))


class TaskConstructors:
    """One method per task kind, each building the task's operands and
    parameters and handing them to ``self.task(...)``.

    Shared by :class:`ProgramBuilder` and by any compiler-side recorder that
    collects tasks before their buffers have addresses, so the parameter
    layout of each task kind is written once.
    """

    #: ``task(core, kind, op, inputs, outputs, params=None, **kw) -> index``: what the subclass records.
    task: Callable[..., int]

    def dma(self, core: int, src: Ref, dst: Ref, *, rows: int | None = None, row_bytes: int | None = None,
            src_stride: int | None = None, dst_stride: int | None = None, **kw: Any) -> int:
        """2-D strided copy; defaults copy ``src`` contiguously (one row)."""
        row_bytes = src.nbytes if row_bytes is None else row_bytes
        rows = 1 if rows is None else rows
        return self.task(core, "dma", "copy2d", {"src": src}, {"dst": dst},
                         {"rows": rows, "row_bytes": row_bytes, "src_stride": src_stride or row_bytes,
                          "dst_stride": dst_stride or row_bytes}, **kw)

    def _requant(self, ins: dict[str, Ref], params: dict[str, Any], requant: tuple[Ref, Ref, int] | None) -> None:
        if requant is not None:
            ins["multiplier"], ins["shift"] = requant[0], requant[1]
            params["out_zp"] = int(requant[2])

    def conv2d(self, core: int, x: Ref, w: Ref, bias: Ref, y: Ref, *, x_zp: int, stride: tuple[int, int] = (1, 1),
               pads: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: tuple[int, int] = (1, 1), groups: int = 1,
               requant: tuple[Ref, Ref, int] | None = None, **kw: Any) -> int:
        """MVM convolution, NHWC x OHWI; ``requant=(multiplier_ref, shift_ref, out_zp)`` fuses int8 output."""
        ins = {"x": x, "w": w, "bias": bias}
        params = {"x_zp": int(x_zp), "stride": list(stride), "pads": list(pads), "dilation": list(dilation),
                  "groups": int(groups)}
        self._requant(ins, params, requant)
        return self.task(core, "mvm", "conv2d", ins, {"y": y}, params, **kw)

    def matmul(self, core: int, x: Ref, w: Ref, bias: Ref, y: Ref, *, x_zp: int,
               requant: tuple[Ref, Ref, int] | None = None, **kw: Any) -> int:
        ins = {"x": x, "w": w, "bias": bias}
        params: dict[str, Any] = {"x_zp": int(x_zp)}
        self._requant(ins, params, requant)
        return self.task(core, "mvm", "matmul", ins, {"y": y}, params, **kw)

    def depthwise(self, core: int, x: Ref, w: Ref, bias: Ref, y: Ref, *, x_zp: int, stride: tuple[int, int] = (1, 1),
                  pads: tuple[int, int, int, int] = (0, 0, 0, 0), dilation: tuple[int, int] = (1, 1),
                  requant: tuple[Ref, Ref, int] | None = None, **kw: Any) -> int:
        ins = {"x": x, "w": w, "bias": bias}
        params = {"x_zp": int(x_zp), "stride": list(stride), "pads": list(pads), "dilation": list(dilation)}
        self._requant(ins, params, requant)
        return self.task(core, "dwpu", "depthwise", ins, {"y": y}, params, **kw)

    def pool(self, core: int, op: str, x: Ref, y: Ref, *, kernel: tuple[int, int], stride: tuple[int, int],
             pads: tuple[int, int, int, int] = (0, 0, 0, 0), x_zp: int = 0, count_include_pad: bool = False,
             **kw: Any) -> int:
        """``op`` is ``"maxpool"`` or ``"avgpool"``."""
        return self.task(core, "dwpu", op, {"x": x}, {"y": y},
                         {"kernel": list(kernel), "stride": list(stride), "pads": list(pads), "x_zp": int(x_zp),
                          "count_include_pad": bool(count_include_pad)}, **kw)

    def resize_nearest(self, core: int, x: Ref, y: Ref, **kw: Any) -> int:
        return self.task(core, "dwpu", "resize_nearest", {"x": x}, {"y": y}, {}, **kw)

    def dpu(self, core: int, streams: list[Ref], outputs: list[Ref], code: Ref, *, channels: int,
            consts: Ref | None = None, luts: Ref | None = None, **kw: Any) -> int:
        """Run DPU program ``code`` (int32 ``(n, 6)``) over element streams ``in0..``, writing ``out0..``."""
        ins = {f"in{i}": r for i, r in enumerate(streams)}
        ins["code"] = code
        if consts is not None:
            ins["consts"] = consts
        if luts is not None:
            ins["luts"] = luts
        return self.task(core, "dpu", "program", ins, {f"out{i}": r for i, r in enumerate(outputs)},
                         {"channels": int(channels)}, **kw)


class ProgramBuilder(TaskConstructors):
    """How a compiler constructs a program, one call per buffer and task.

    Buffers get a PWORD-aligned address from a bump allocator per memory
    (level, and core for L1) unless one is given; workspace live ranges are
    inferred from first/last use at :meth:`build` unless given. Each task
    method returns the task's index in its core's list.
    """

    def __init__(self, target: Target | str = "aipu_v1", cores: int = 1) -> None:
        self.target = target if isinstance(target, Target) else load_target(target)
        if not 1 <= cores <= self.target.cores:
            raise ValueError(f"cores={cores} outside 1..{self.target.cores}")
        self.cores = cores
        self._buffers: dict[str, Buffer] = {}
        self._shapes: dict[str, tuple[tuple[int, ...], str]] = {}
        self._tasks: list[list[Task]] = [[] for _ in range(cores)]
        self._constants: dict[str, np.ndarray] = {}
        self._inputs: dict[str, str] = {}
        self._outputs: dict[str, str] = {}
        self._next: dict[tuple[str, int], int] = {}

    # -- memory map -------------------------------------------------------
    def buffer(self, name: str, level: str, shape: Iterable[int], dtype: str = "int8", *, core: int = 0,
               kind: str = "workspace", address: int | None = None, live: tuple[int, int] | None = None,
               init: str | None = None, size: int | None = None) -> Ref:
        """Declare a buffer; returns a :class:`Ref` to the whole of it."""
        if name in self._buffers:
            raise ValueError(f"buffer {name!r} declared twice")
        if level not in LEVELS or kind not in BUFFER_KINDS or dtype not in _DTYPES:
            raise ValueError(f"buffer {name!r}: bad level/kind/dtype {level}/{kind}/{dtype}")
        shape = tuple(int(s) for s in shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        size = nbytes if size is None else size
        space = (level, core if level == "l1" else 0)
        if address is None:
            address = self._next.get(space, 0)
        self._next[space] = max(self._next.get(space, 0), -(-(address + size) // _ALIGN) * _ALIGN)
        self._buffers[name] = Buffer(name, level, address, size, core, kind, live, init, shape, dtype)
        self._shapes[name] = (shape, dtype)
        return Ref(name, shape, dtype, 0)

    def constant(self, name: str, data: np.ndarray, level: str = "ddr", *, core: int = 0) -> Ref:
        """Add constant data and a buffer initialised from it (named like the constant)."""
        a = np.ascontiguousarray(data)
        self._constants[name] = a
        return self.buffer(name, level, a.shape, str(a.dtype), core=core, kind="constant", init=name)

    def add_constant(self, name: str, data: np.ndarray) -> None:
        """Add constant data only (a planner places the buffer it initialises with :meth:`buffer` ``init=``)."""
        self._constants[name] = np.ascontiguousarray(data)

    def map_io(self, inputs: dict[str, str], outputs: dict[str, str]) -> None:
        """Map graph tensor names to already declared input/output buffers."""
        self._inputs.update(inputs)
        self._outputs.update(outputs)

    def input(self, tensor: str, shape: Iterable[int], dtype: str = "int8", level: str = "ddr") -> Ref:
        self._inputs[tensor] = tensor
        return self.buffer(tensor, level, shape, dtype, kind="input")

    def output(self, tensor: str, shape: Iterable[int], dtype: str = "int8", level: str = "ddr") -> Ref:
        self._outputs[tensor] = tensor
        return self.buffer(tensor, level, shape, dtype, kind="output")

    def ref(self, buffer: str, shape: Iterable[int] | None = None, dtype: str | None = None, offset: int = 0) -> Ref:
        """A view into a buffer (default: the whole buffer with its declared shape/dtype)."""
        bshape, bdtype = self._shapes[buffer]
        return Ref(buffer, tuple(shape) if shape is not None else bshape, dtype or bdtype, offset)

    # -- tasks ------------------------------------------------------------
    def task(self, core: int, kind: str, op: str, inputs: dict[str, Ref], outputs: dict[str, Ref],
             params: dict[str, Any] | None = None, *, wait: Iterable[int] = (), signal: Iterable[int] = (),
             stage: str | None = None) -> int:
        if op not in TASK_OPS.get(kind, ()):
            raise ValueError(f"unknown task {kind}/{op}")
        self._tasks[core].append(Task(kind, op, dict(inputs), dict(outputs), dict(params or {}), tuple(wait),
                                      tuple(signal), stage))
        return len(self._tasks[core]) - 1

    # -- finish -----------------------------------------------------------
    def build(self) -> Program:
        """The program; workspace buffers without ``live`` get first..last use by tasks of their core."""
        uses: dict[str, list[int]] = {}
        for core, tl in enumerate(self._tasks):
            for i, t in enumerate(tl):
                for r in list(t.inputs.values()) + list(t.outputs.values()):
                    # live ranges count tasks of the buffer's own core (indices of two lists don't compare)
                    if self._buffers[r.buffer].core == core:
                        uses.setdefault(r.buffer, []).append(i)
        buffers = []
        for b in self._buffers.values():
            if b.kind == "workspace" and b.live is None and b.name in uses:
                b = dataclasses.replace(b, live=(min(uses[b.name]), max(uses[b.name])))
            buffers.append(b)
        return Program(self.target.name, self.cores, buffers, [list(t) for t in self._tasks], dict(self._constants),
                       dict(self._inputs), dict(self._outputs))
