"""``lowering.emit_program``: the legalized graph as AIPU tasks.

Execution model: every activation has a home buffer (``workspace_memory_pool``;
model I/O in ``io_memory_pool``), every constant one too
(``constant_memory_pool``, DPU tables in ``dpu_constants_home``, DPU code in
``dpu_instructions_home``, DWPU coefficients in ``dwpu_instructions_home``).
A *layer* (a head node plus its fused DPU tail, see :mod:`._dpu_programs`) is
emitted as: DMA its constants into its L1 *arena*, then per tile (the tiling
plugin's ``attrs["tiling"]``: height tiles, output-channel chunks, depth-first
groups) DMA the input rows in, run the MVM/DWPU task, DMA the other DPU
streams in, run the DPU program, DMA the output rows back; tile operands
rotate through ``tile_slots`` L1 slots so consecutive tiles can overlap.

A depth-first group's intermediate results never exist whole: each one is a
*rolling* L1 buffer (:class:`_Rolling`) of only the rows live at once, the
consumer's input window plus the producer tile being written, found by
replaying the group's tile order (:func:`depth_first_order`). Row ``r`` sits at
ring slot ``r mod rows``; no unit reads the ring directly (the consumer's
input window is DMA'd into its tile slot, the producer's rows are DMA'd from
its output slot), so every MVM/DWPU/DPU operand stays contiguous and a window
that wraps is simply two DMA copies.

Nothing here has an address or a token yet: the recording goes to
:mod:`._finalize`, where the memory planner places every buffer and arena,
dependencies follow from the bytes each task touches, and the scheduler
orders the tasks. Every task is labelled (``stage``) with the ONNX nodes it
comes from (``propagate_span_information``).
"""

from __future__ import annotations

__all__ = ["record", "Emitted", "IoRecord", "depth_first_order", "rolling_rows", "frames_per_run",
           "PIPELINE_FRAMES", "pixel_copies", "transpose_copies"]

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from axdrive.errors import MemoryPlanError, UnsupportedOperatorError
from axdrive.ir import Graph, Node
from axdrive.operators import OperatorRegistry
from axdrive.ir.program_plan import SchedulePolicy
from axdrive_hw.program.model import Program, Ref
from axdrive_hw.target import Target

from ._layout import device_shape
from ._memory import Homes
from ._nodes import shared_zp
from ._padding import IO_EDGE
from ._recorder import Recorder
from ._rules_moves import is_hw_transpose, pixel_indices
from ._rules_spatial import ZERO_INSERTION, is_plain_depthwise, spatial_axis

PIPELINE_FRAMES = 2
"""Frames one run of a ``pipeline`` program carries (even, odd): each frame has its own hand-over buffers
between the stages, so stage ``k`` can take the next frame while stage ``k + 1`` still reads the current one
(double-buffered hand-overs). The task list is static, so alternating buffers means emitting both frames."""


def frames_per_run(policy: SchedulePolicy) -> int:
    """Frames along axis 0 of the model I/O of one program run: one per core in ``batch``, :data:`PIPELINE_FRAMES`
    in ``pipeline`` (on several cores), else 1."""
    if policy.cores > 1 and policy.multicore_mode == "batch":
        return policy.cores
    if policy.cores > 1 and policy.multicore_mode == "pipeline":
        return PIPELINE_FRAMES
    return 1

_ALIGN = 64
# work items that are DMA copies (or nothing), no unit
_MOVES = ("alias", "concat", "spatial_slice", "zero_insertion", "pixel_move", "hw_transpose")


@dataclass
class IoRecord:
    """How one model input/output crosses the host boundary (``host_io.json``)."""

    name: str
    layout: str  # "NHWC": the host transposes and pads; "NCHW": the device program does
    shape: list[int]  # the program buffer's shape
    channels: int
    pad_value: int

    def to_dict(self) -> dict[str, Any]:
        return {"layout": self.layout, "device_shape": self.shape, "channels": self.channels,
                "pad_value": self.pad_value}


@dataclass
class Emitted:
    """What the code generator produced: the program, the host side of its I/O, statistics and a
    per-layer summary (unit, tiles, L1 bytes, fused nodes) for the compile report."""

    program: Program | None
    io: dict[str, dict[str, IoRecord]]
    stats: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    recorder: Recorder | None = None


class _L1:
    """Bump allocation inside one layer's arena (its L1 working set on one core)."""

    def __init__(self) -> None:
        self.top = 0

    def take(self, nbytes: int) -> int:
        at = self.top
        self.top = -(-(at + nbytes) // _ALIGN) * _ALIGN
        return at


def _nbytes(shape: tuple[int, ...], dtype: str = "int8") -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def _oc_chunks(oc: int, tiles: int) -> list[tuple[int, int]]:
    """Output-channel tiles: whole PWORDs, as even as possible."""
    words = max(1, oc // _ALIGN)
    tiles = max(1, min(tiles, words))
    per = -(-words // tiles) * _ALIGN
    return [(o, min(o + per, oc)) for o in range(0, oc, per)]


def _unrolled(bounds: list[tuple[int, int]], step: int) -> list[tuple[int, int]]:
    """The first and last tile each split in two: a short prologue fills the pipeline sooner, a short
    epilogue drains it sooner (``unroll_prologue_epilogue``)."""
    out: list[tuple[int, int]] = []
    for k, (r0, r1) in enumerate(bounds):
        half = (r1 - r0) // 2 // step * step
        if (k == 0 or k == len(bounds) - 1) and half >= step and r1 - r0 - half >= step:
            out += [(r0, r0 + half), (r0 + half, r1)]
        else:
            out.append((r0, r1))
    return out


Copy = tuple[int, int, int, int, int, int]
"""One DMA ``copy2d``: (source byte offset, destination byte offset, rows, row bytes, source stride, destination
stride), offsets relative to the two tensors' homes."""


def _runs(idx: np.ndarray, contiguous: bool) -> list[tuple[int, int, int, int]]:
    """Greedy maximal runs ``(out_start, in_start, count, step)`` of an index list with a constant positive step
    (step 1 only when ``contiguous``); a run of one element has step 1. A DMA stride cannot be negative or
    shorter than a row, so a descending or repeated index starts a new run."""
    out: list[tuple[int, int, int, int]] = []
    i, n = 0, len(idx)
    while i < n:
        step = int(idx[i + 1] - idx[i]) if i + 1 < n else 1
        if step < 1 or (contiguous and step != 1):
            step = 1
        j = i + 1
        while j < n and int(idx[j] - idx[j - 1]) == step:
            j += 1
        out.append((i, int(idx[i]), j - i, step))
        i = j
    return out


def pixel_copies(rows: np.ndarray, cols: np.ndarray, w: int, c: int) -> list[Copy]:
    """DMA copies for ``out[i, j] = in[rows[i], cols[j]]`` of ``c``-byte pixels (input width ``w``, NHWC): the
    fewest of three shapes. (a) per run of rows with one step x per run of consecutive columns: a block of
    ``count x c`` bytes per row, source stride ``step x w x c``; (b) per output row x per run of columns with
    one step: pixels of ``c`` bytes, source stride ``step x c``; (c) per output column x per run of rows: pixels
    of ``c`` bytes, source stride ``step x w x c``. A plain row range is one copy; every other row and column
    (a stride-2 Slice) is ``min(H_out, W_out)`` copies; reversed axes cost one copy per row and per column."""
    wo, ho = len(cols), len(rows)
    row_runs, col_blocks, col_runs = _runs(rows, False), _runs(cols, True), _runs(cols, False)
    plans: list[list[Copy]] = [
        [(ri * w * c + ci * c, ro * wo * c + co * c, nr, nc * c, sr * w * c, wo * c)
         for ro, ri, nr, sr in row_runs for co, ci, nc, _ in col_blocks],
        [(int(rows[i]) * w * c + ci * c, i * wo * c + co * c, nc, c, sc * c, c)
         for i in range(ho) for co, ci, nc, sc in col_runs],
        [(ri * w * c + int(cols[j]) * c, ro * wo * c + j * c, nr, c, sr * w * c, wo * c)
         for j in range(wo) for ro, ri, nr, sr in row_runs],
    ]
    return min(plans, key=len)


def transpose_copies(h: int, w: int, c: int) -> list[Copy]:
    """DMA copies for the H/W transpose of an ``h x w`` map of ``c``-byte pixels (output ``w x h``): per input
    row ``j`` its ``w`` pixels to output column ``j`` (destination stride ``h x c``), or per output row ``i`` input
    column ``i`` (source stride ``w x c``), whichever are fewer: ``min(h, w)`` copies of ``max(h, w)`` pixels."""
    if h <= w:
        return [(j * w * c, j * c, w, c, c, h * c) for j in range(h)]
    return [(i * c, i * h * c, h, c, w * c, c) for i in range(w)]


@dataclass
class _Job:
    """One layer, planned: unit, tiles (rows x output-channel chunks), the core of every tile, and per core
    its arena, L1 operands and constants once :meth:`_Emitter.prepare` has run."""

    head: Node
    unit: "_Unit | None"
    out_name: str
    bounds: list[tuple[int, int]]
    chunks: list[tuple[int, int]]
    tile_cores: list[int]
    stage: str
    l1_bytes: int
    no: int = 0
    refs: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_tile: int = 0
    group: int | None = None  # the depth-first group it runs in
    rolling: dict[str, Any] | None = None  # its result's rolling L1 buffer in a depth-first group (report)


@dataclass(frozen=True)
class _Rolling:
    """The L1 ring of a depth-first intermediate: row ``r`` of the tensor lives at slot ``r % rows``."""

    ref: Ref
    rows: int  # slots in the ring
    height: int  # rows of the whole tensor
    row_bytes: int

    def spans(self, r0: int, r1: int) -> list[tuple[int, int, int]]:
        """``(byte offset in the ring, byte offset from r0, bytes)`` of rows ``r0..r1``: one piece, or two when
        the rows wrap around the ring's end."""
        out: list[tuple[int, int, int]] = []
        r = r0
        while r < r1:
            slot = r % self.rows
            n = min(r1 - r, self.rows - slot)
            out.append((self.ref.offset + slot * self.row_bytes, (r - r0) * self.row_bytes, n * self.row_bytes))
            r += n
        return out


RowWindow = Callable[[int, int], tuple[int, int]]  # a consumer tile's output rows -> the input rows it reads


def depth_first_order(bounds: list[list[tuple[int, int]]], windows: list[RowWindow | None]) -> list[tuple[int, int]]:
    """``(layer, tile)`` in the order a depth-first group emits them: the last layer's tiles in turn, each
    preceded by the earlier layers' tiles that produce the rows it and the layer's next tile read
    (``windows[k]`` maps layer ``k``'s output rows to the rows of layer ``k - 1`` it reads; ``None``: the
    same rows). Why one tile ahead: the units run their queues in order, so a producer tile queued before
    the consumer tile that waits on the previous one keeps the MVM and DPU busy meanwhile; it costs the
    rolling buffer one producer tile of rows."""
    nxt = [0] * len(bounds)
    produced = [0] * len(bounds)
    order: list[tuple[int, int]] = []

    def need(k: int, rows: int) -> None:
        while produced[k] < rows and nxt[k] < len(bounds[k]):
            r0, r1 = bounds[k][nxt[k]]
            if k > 0:
                ahead = bounds[k][min(nxt[k] + 1, len(bounds[k]) - 1)]
                need(k - 1, windows[k](*ahead)[1] if windows[k] else ahead[1])
            order.append((k, nxt[k]))
            nxt[k] += 1
            produced[k] = r1

    need(len(bounds) - 1, 1 << 62)
    return order


def rolling_rows(order: list[tuple[int, int]], producer: int, bounds: list[list[tuple[int, int]]],
                 window: RowWindow | None) -> int:
    """Ring rows the intermediate between layers ``producer`` and ``producer + 1`` needs in ``order``: at
    every producer tile, the rows from the consumer's next window start (or the tile's own start, when the
    consumer skips rows) to the tile's end. No row a consumer tile still reads is overwritten before it, so
    with this many slots every window reads the rows it expects (``tests/test_depth_first.py`` replays it)."""
    consumer = producer + 1
    nxt = 0
    rows = 1
    for k, t in order:
        if k == consumer:
            nxt = t + 1
        elif k == producer:
            p0, p1 = bounds[producer][t]
            if nxt < len(bounds[consumer]):
                c0, c1 = bounds[consumer][nxt]
                lo = window(c0, c1)[0] if window else c0
            else:
                lo = p0
            rows = max(rows, p1 - min(p0, lo))
    return rows


class _Emitter:
    """Walks the graph once, in order, recording each layer where its last node stands.

    Tasks are recorded without tokens and buffers without addresses (see
    :mod:`._recorder`): dependencies come from the bytes tasks touch once the
    memory plan is known. The schedule policy shapes the graph: L1 slots per
    tile operand (pipelining), prologue/epilogue unrolling, hoisted constant
    loads, and which core runs which tile (``batch``: a full copy per core;
    ``cooperative``: tiles round robin; ``pipeline``: each layer on its stage's core).
    ``batch`` and ``pipeline`` emit the graph once per frame of a run (:func:`frames_per_run`), each copy
    with activation homes of its own (``copy`` is the frame being emitted).
    """

    def __init__(self, graph: Graph, target: Target, homes: Homes, *, l1_bytes: int, io_on_host: bool,
                 spans: bool, policy: SchedulePolicy | None = None, extra_tiles: dict[str, int] | None = None,
                 ungrouped: frozenset[str] = frozenset(), forced: bool = False,
                 operators: OperatorRegistry | None = None) -> None:
        if operators is None:
            from axdrive.passes import default_operators

            operators = default_operators()
        self.operators = operators
        self.g = graph
        self.target = target
        self.homes = homes
        self.l1_bytes = l1_bytes
        self.io_on_host = io_on_host
        self.spans = spans
        self.policy = policy or SchedulePolicy(inter_operator_async=False, tile_slots=1, channel_slots=1)
        self.extra_tiles = dict(extra_tiles or {})
        self.ungrouped = ungrouped
        self.forced = forced
        self.batch = self.policy.multicore_mode == "batch" and self.policy.cores > 1
        self.cooperative = self.policy.multicore_mode == "cooperative" and self.policy.cores > 1
        self.pipeline = self.policy.multicore_mode == "pipeline" and self.policy.cores > 1
        self.b = Recorder(target, cores=self.policy.cores)
        self.core = 0
        self.copies = frames_per_run(self.policy)
        self.copy = 0  # the frame of the run being emitted (batch: the core's; pipeline: even or odd)
        self.home: dict[str, Ref] = {}
        self.rolling: dict[str, _Rolling] = {}
        self.const_refs: dict[str, Ref] = {}
        self.layer_no = 0
        self.io: dict[str, dict[str, IoRecord]] = {"inputs": {}, "outputs": {}}
        self.stats: dict[str, Any] = {"layers": 0, "tiled_layers": 0, "tiles": 0, "mvm_tasks": 0, "dwpu_tasks": 0,
                                      "dpu_tasks": 0, "dma_tasks": 0, "weight_sets": 0, "l1_peak_bytes": 0,
                                      "oc_tiled_layers": 0, "depth_groups": 0}
        self.layers: list[dict[str, Any]] = []
        self.users = graph.consumer_map()
        self.producers = graph.producers()

    # -- tasks -----------------------------------------------------------------------------------------------
    def _sync(self, stage: str) -> dict[str, Any]:
        """Only the label: tokens are derived from the bytes each task touches once buffers are placed."""
        return {"stage": stage}

    def _dma(self, src: Ref, dst: Ref, stage: str, *, rows: int = 1, row_bytes: int | None = None,
             src_stride: int | None = None, dst_stride: int | None = None) -> None:
        self.b.dma(self.core, src, dst, rows=rows, row_bytes=row_bytes, src_stride=src_stride, dst_stride=dst_stride,
                   **self._sync(stage))
        self.stats["dma_tasks"] += 1

    def _task(self, kind: str, op: str, inputs: dict[str, Ref], outputs: dict[str, Ref], params: dict[str, Any],
              stage: str) -> None:
        self.b.task(self.core, kind, op, inputs, outputs, params, **self._sync(stage))
        self.stats[f"{kind}_tasks"] += 1

    # -- buffers ---------------------------------------------------------------------------------------------
    def _constant(self, name: str, data: np.ndarray, level: str, *, pinned: bool = False) -> Ref:
        """A constant in its home; ``pinned`` for the classes whose home the config fixes (DPU code and
        tables, DWPU coefficients: ``dpu_instructions_home``, ``dpu_constants_home``, ``dwpu_instructions_home``),
        which the memory planner must not promote away from it."""
        if name not in self.const_refs:
            self.const_refs[name] = self.b.constant(name, np.ascontiguousarray(data), level, pinned=pinned)
        return self.const_refs[name]

    def _l1(self, base: str, shape: tuple[int, ...], dtype: str, alloc: _L1, arena: str) -> Ref:
        nbytes = _nbytes(shape, dtype)
        return self.b.buffer(f"{arena}/{base}", "l1", shape, dtype, core=self.core, arena=arena,
                             arena_offset=alloc.take(nbytes))

    def _home_name(self, name: str) -> str:
        if self.batch:
            return f"t/{name}@core{self.core}"
        return f"t/{name}@frame{self.copy}" if self.copies > 1 else f"t/{name}"

    def _tensor_home(self, name: str) -> Ref:
        if name not in self.home:
            shape = device_shape(self.g.tensors[name].shape)
            self.home[name] = self.b.buffer(self._home_name(name), self.homes.workspace, shape, "int8")
        return self.home[name]

    def _rows(self, name: str, r0: int, r1: int) -> Ref:
        """Rows ``r0..r1`` of a tensor's home (N = 1: contiguous bytes)."""
        ref = self._tensor_home(name)
        n, h, w, c = device_shape(self.g.tensors[name].shape)
        return Ref(ref.buffer, (n, r1 - r0, w, c), "int8", ref.offset + r0 * w * c)

    def _read_rows(self, name: str, r0: int, r1: int, dst: Ref, stage: str) -> None:
        """DMA rows ``r0..r1`` of a tensor into ``dst`` (contiguous): from its home, or from its rolling L1
        buffer in one or two pieces."""
        self._move_rows(name, r0, r1, dst, stage, into_tile=True)

    def _write_rows(self, name: str, r0: int, r1: int, src: Ref, stage: str) -> None:
        """DMA ``src`` (rows ``r0..r1`` of a tensor, contiguous) to the tensor's home or rolling L1 buffer."""
        self._move_rows(name, r0, r1, src, stage, into_tile=False)

    def _move_rows(self, name: str, r0: int, r1: int, tile: Ref, stage: str, *, into_tile: bool) -> None:
        """One DMA per contiguous piece between the tile ``tile`` and rows ``r0..r1`` of the tensor ``name``
        (its home: one piece; its rolling buffer: one or two, where the rows wrap), in either direction."""
        ring = self.rolling.get(name)
        if ring is None:
            rows = self._rows(name, r0, r1)
            pieces = [(Ref(tile.buffer, rows.shape, "int8", tile.offset), rows)]
        else:
            pieces = [(Ref(tile.buffer, (nbytes,), "int8", tile.offset + rel),
                       Ref(ring.ref.buffer, (nbytes,), "int8", at)) for at, rel, nbytes in ring.spans(r0, r1)]
        for tile_part, tensor_part in pieces:
            if into_tile:
                self._dma(tensor_part, tile_part, stage)
            else:
                self._dma(tile_part, tensor_part, stage)

    def _stage(self, node: Node) -> str:
        if self.spans and node.source:
            return f"{node.name} <- {', '.join(node.source)}"
        return node.name

    # -- model I/O ---------------------------------------------------------------------------------------------
    def _edges(self) -> tuple[dict[str, Node], dict[str, Node]]:
        ins = {n.inputs[0]: n for n in self.g.nodes if n.attrs.get(IO_EDGE) == "input"}
        outs = {n.outputs[0]: n for n in self.g.nodes if n.attrs.get(IO_EDGE) == "output"}
        return ins, outs

    def _batched(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """A model I/O buffer's shape: the frames of one run along axis 0 (``batch``: one per core)."""
        return (shape[0] * self.copies, *shape[1:])

    def _frame(self, ref: Ref, shape: tuple[int, ...]) -> Ref:
        """The emitted frame's part of a (batched) model I/O buffer."""
        return Ref(ref.buffer, tuple(shape), "int8", ref.offset + self.copy * _nbytes(tuple(shape)))

    def inputs(self, edges: dict[str, Node]) -> None:
        for name in self.g.inputs:
            t = self.g.tensors[name]
            inner = edges[name].outputs[0] if name in edges else name
            dshape = device_shape(self.g.tensors[inner].shape)
            zp = int(t.qparams.zero_point) if t.qparams is not None else 0
            real = int(t.shape[1])
            if self.io_on_host:
                if self.copy == 0:
                    self.b.input(name, self._batched(dshape), "int8", self.homes.io)
                    self.io["inputs"][name] = IoRecord(name, "NHWC", list(self._batched(dshape)), real, zp)
                self.home[inner] = self._frame(self.b.ref(name), dshape)
                continue
            if self.copy == 0:
                self.b.input(name, self._batched(tuple(t.shape)), "int8", self.homes.io)
                self.io["inputs"][name] = IoRecord(name, "NCHW", list(self._batched(tuple(t.shape))), real, zp)
            src = self._frame(self.b.ref(name), tuple(t.shape))
            dst = self._tensor_home(inner)
            self._to_nhwc(src, dst, real, dshape, zp, f"input {name}")

    def _to_nhwc(self, src: Ref, dst: Ref, real: int, dshape: tuple[int, ...], zp: int, stage: str) -> None:
        """Device-side layout change of a model input: one strided DMA per channel, then the padded
        lanes filled with the zero point by doubling copies of the first pixel's."""
        n, h, w, c = dshape
        hw = h * w
        for ch in range(real):
            self._dma(Ref(src.buffer, (hw,), "int8", src.offset + ch * hw), Ref(dst.buffer, (hw,), "int8", ch), stage,
                      rows=hw, row_bytes=1, src_stride=1, dst_stride=c)
        pad = c - real
        if pad <= 0:
            return
        fill = self._constant(f"pad_value/{zp}/{pad}", np.full(pad, zp, np.int8), self.homes.constants)
        self._dma(fill, Ref(dst.buffer, (pad,), "int8", real), stage)
        done = 1
        while done < hw:
            k = min(done, hw - done)
            self._dma(Ref(dst.buffer, (pad,), "int8", real), Ref(dst.buffer, (pad,), "int8", done * c + real), stage,
                      rows=k, row_bytes=pad, src_stride=c, dst_stride=c)
            done += k

    def outputs(self, edges: dict[str, Node]) -> list[tuple[str, str]]:
        """Declare output buffers; returns (inner tensor, model output) pairs still to be copied out."""
        pending = []
        for name in dict.fromkeys(self.g.outputs):
            t = self.g.tensors[name]
            inner = edges[name].inputs[0] if name in edges else name
            dshape = device_shape(self.g.tensors[inner].shape)
            zp = int(t.qparams.zero_point) if t.qparams is not None else 0
            if self.io_on_host and inner not in self.home:
                if self.copy == 0:
                    self.b.output(name, self._batched(dshape), "int8", self.homes.io)
                    self.io["outputs"][name] = IoRecord(name, "NHWC", list(self._batched(dshape)), int(t.shape[1]), zp)
                self.home[inner] = self._frame(self.b.ref(name), dshape)
            else:
                if self.copy == 0:
                    self.b.output(name, self._batched(tuple(t.shape)), "int8", self.homes.io)
                    self.io["outputs"][name] = IoRecord(name, "NCHW", list(self._batched(tuple(t.shape))),
                                                        int(t.shape[1]), zp)
                pending.append((inner, name))
        return pending

    def _from_nhwc(self, inner: str, name: str) -> None:
        src = self._tensor_home(inner)
        n, h, w, c = device_shape(self.g.tensors[inner].shape)
        real = int(self.g.tensors[name].shape[1])
        dst = self._frame(self.b.ref(name), tuple(self.g.tensors[name].shape))
        hw = h * w
        for ch in range(real):
            self._dma(Ref(src.buffer, (hw,), "int8", src.offset + ch), Ref(dst.buffer, (hw,), "int8",
                                                                             dst.offset + ch * hw),
                      f"output {name}", rows=hw, row_bytes=1, src_stride=c, dst_stride=1)

    # -- layers ------------------------------------------------------------------------------------------------
    def _node_core(self, node: Node) -> int:
        if self.pipeline:
            return int((node.attrs.get("schedule") or {}).get("core", 0))
        return self.core

    def alias(self, node: Node) -> None:
        self.core = self._node_core(node)
        src = self._tensor_home(node.inputs[0])
        out = node.outputs[0]
        if out in self.home:  # a model output: its own buffer, so copy
            self._dma(src, Ref(self.home[out].buffer, src.shape, "int8", self.home[out].offset), self._stage(node))
        else:
            self.home[out] = Ref(src.buffer, device_shape(self.g.tensors[out].shape), "int8", src.offset)

    def concat(self, node: Node) -> None:
        """Channel Concat of PWORD-aligned inputs on one grid: strided DMA copies into channel slices."""
        self.core = self._node_core(node)
        out = self._tensor_home(node.outputs[0])
        n, h, w, c = device_shape(self.g.tensors[node.outputs[0]].shape)
        offset = 0
        for x in node.inputs:
            src = self._tensor_home(x)
            ci = device_shape(self.g.tensors[x].shape)[3]
            self._dma(src, Ref(out.buffer, (n * h * w, ci), "int8", out.offset + offset), self._stage(node),
                      rows=n * h * w, row_bytes=ci, src_stride=ci, dst_stride=c)
            offset += ci
        self.stats["layers"] += 1

    def spatial_slice(self, node: Node) -> None:
        """Split/Slice along H or W (step 1): per output one DMA copy of its rows (H: contiguous bytes) or of
        its column range of every row (W: a strided copy), channel padding included."""
        self.core = self._node_core(node)
        x = node.inputs[0]
        src = self._tensor_home(x)
        n, h, w, c = device_shape(self.g.tensors[x].shape)
        axis = spatial_axis(self.g, node)
        size = h if axis == 2 else w
        if node.op == "Slice":
            start = int(self.g.constant(node.inputs[1]).reshape(-1)[0])
            starts = [min(max(start + size if start < 0 else start, 0), size)]
        else:
            starts, at = [], 0
            for name in node.outputs:
                starts.append(at)
                at += int(self.g.tensors[name].shape[axis]) if name else 0
        for name, first in zip(node.outputs, starts):
            if not name:
                continue
            dst = self._tensor_home(name)
            count = int(self.g.tensors[name].shape[axis])
            if axis == 2:
                nbytes = count * w * c
                self._dma(Ref(src.buffer, (nbytes,), "int8", src.offset + first * w * c),
                          Ref(dst.buffer, (nbytes,), "int8", dst.offset), self._stage(node))
            else:
                self._dma(Ref(src.buffer, (n * h, count * c), "int8", src.offset + first * c),
                          Ref(dst.buffer, (n * h, count * c), "int8", dst.offset), self._stage(node),
                          rows=n * h, row_bytes=count * c, src_stride=w * c, dst_stride=count * c)
        self.stats["layers"] += 1

    def _copies(self, node: Node, src: Ref, dst: Ref, plan: list[Copy]) -> None:
        """Emit a copy plan (:func:`pixel_copies`, :func:`transpose_copies`) from ``src``'s to ``dst``'s bytes."""
        stage = self._stage(node)
        for s_at, d_at, rows, row_bytes, s_stride, d_stride in plan:
            shape = (rows, row_bytes) if rows > 1 else (row_bytes,)
            self._dma(Ref(src.buffer, shape, "int8", src.offset + s_at),
                      Ref(dst.buffer, shape, "int8", dst.offset + d_at), stage, rows=rows, row_bytes=row_bytes,
                      src_stride=s_stride, dst_stride=d_stride)

    def pixel_move(self, node: Node) -> None:
        """A Slice (several axes, steps) or Gather over H/W, or an identity Transpose: whole pixels (channel
        padding included) copied by the fewest strided DMAs :func:`pixel_copies` finds."""
        self.core = self._node_core(node)
        x, y = node.inputs[0], node.outputs[0]
        rows, cols = pixel_indices(self.g, node)
        _n, _h, w, c = device_shape(self.g.tensors[x].shape)
        self._copies(node, self._tensor_home(x), self._tensor_home(y), pixel_copies(rows, cols, w, c))
        self.stats["layers"] += 1

    def hw_transpose(self, node: Node) -> None:
        """Transpose [0, 1, 3, 2]: output row ``i`` is input column ``i``; one strided DMA per output row or per
        input row, whichever are fewer (:func:`transpose_copies`)."""
        self.core = self._node_core(node)
        x, y = node.inputs[0], node.outputs[0]
        _n, h, w, c = device_shape(self.g.tensors[x].shape)
        self._copies(node, self._tensor_home(x), self._tensor_home(y), transpose_copies(h, w, c))
        self.stats["layers"] += 1

    def zero_insertion(self, node: Node) -> None:
        """A lowered ConvTranspose's zero insertion: the output filled with the zero point (one PWORD-row
        constant, then copies doubling the filled prefix), then the input pixels DMA'd to every
        ``stride``-th row and column: one copy for all rows when the column stride is 1, else one strided
        copy per input row or per input column, whichever are fewer."""
        self.core = self._node_core(node)
        x, y = node.inputs[0], node.outputs[0]
        src, dst = self._tensor_home(x), self._tensor_home(y)
        n, h, w, c = device_shape(self.g.tensors[x].shape)
        _n, hu, wu, _c = device_shape(self.g.tensors[y].shape)
        sh, sw = (int(v) for v in node.attrs[ZERO_INSERTION])
        zp = shared_zp(node.attrs["out_zero_point"])
        stage = self._stage(node)
        fill = self._constant(f"pad_value/{zp}/{c}", np.full(c, zp, np.int8), self.homes.constants)
        self._dma(fill, Ref(dst.buffer, (c,), "int8", dst.offset), stage)
        pixels, done = n * hu * wu, 1
        while done < pixels:
            k = min(done, pixels - done)
            self._dma(Ref(dst.buffer, (k * c,), "int8", dst.offset), Ref(dst.buffer, (k * c,), "int8",
                                                                          dst.offset + done * c), stage)
            done += k
        row_in, row_out = w * c, wu * c
        if sw == 1:
            self._dma(Ref(src.buffer, (h, row_in), "int8", src.offset), Ref(dst.buffer, (h, row_in), "int8",
                                                                            dst.offset), stage,
                      rows=h, row_bytes=row_in, src_stride=row_in, dst_stride=sh * row_out)
        elif h <= w:
            for i in range(h):
                self._dma(Ref(src.buffer, (w, c), "int8", src.offset + i * row_in),
                          Ref(dst.buffer, (w, c), "int8", dst.offset + i * sh * row_out), stage,
                          rows=w, row_bytes=c, src_stride=c, dst_stride=sw * c)
        else:
            for j in range(w):
                self._dma(Ref(src.buffer, (h, c), "int8", src.offset + j * c),
                          Ref(dst.buffer, (h, c), "int8", dst.offset + j * sw * c), stage,
                          rows=h, row_bytes=c, src_stride=row_in, dst_stride=sh * row_out)
        self.stats["layers"] += 1

    def job(self, head: Node) -> _Job:
        """Plan one layer: the tiling decision (``attrs["tiling"]``; more height tiles when the exact bytes do
        not fit, unless forced), prologue/epilogue unrolling, and the core of every tile."""
        g = self.g
        out_name = head.attrs.get("dpu_output", head.outputs[0])
        n, oh, ow, oc = device_shape(g.tensors[out_name].shape)
        unit = _unit_of(g, head, self.target) if self.operators.is_unit_head(head) else None
        tiling = head.attrs.get("tiling") or {}
        chunks = [(0, oc)]
        if (unit is not None and unit.op == "conv2d" and len(unit.channel_groups) <= 1
                and int(unit.params.get("groups", 1)) == 1
                and int(unit.params.get("icr_factor", 1)) == 1 and int(unit.params.get("swicr_pack", 1)) == 1):
            chunks = _oc_chunks(oc, int(tiling.get("oc_tiles", 1)))
        start = max(1, min(int(tiling.get("h_tiles", 1)) * 2 ** self.extra_tiles.get(head.name, 0), oh))
        plan = None
        for tiles in range(start, oh + 1):
            plan = self._plan(head, unit, out_name, tiles, chunks)
            if plan is not None:
                break
            if self.forced and not self.extra_tiles.get(head.name):
                plan = self._plan(head, unit, out_name, tiles, chunks, check=False)
                break
        if plan is None:
            raise MemoryPlanError(f"node {head.name!r}: its operands need more than the {self.l1_bytes} bytes of L1 "
                                  "even with one output row per tile")
        total, bounds = plan
        if self.policy.unroll_prologue_epilogue and len(bounds) > 1:
            bounds = _unrolled(bounds, unit.row_step if unit else 1)
        core = self._node_core(head)
        cores = [(k % self.policy.cores) if self.cooperative else core for k in range(len(bounds))]
        return _Job(head, unit, out_name, bounds, chunks, cores, self._stage(head), total)

    def _plan(self, head: Node, unit: "_Unit | None", out_name: str, tiles: int, chunks: list[tuple[int, int]],
              check: bool = True) -> tuple[int, list] | None:
        g = self.g
        n, oh, ow, oc = device_shape(g.tensors[out_name].shape)
        step = unit.row_step if unit else 1
        rows = -(-oh // tiles)
        rows = -(-rows // step) * step
        bounds = [(r, min(r + rows, oh)) for r in range(0, oh, rows)]
        if check and tiles > 1 and len(bounds) < tiles:
            return None  # rounding gave the split of a smaller tile count, already tried
        slots, cslots = self.policy.tile_slots, self.policy.channel_slots
        total = 0
        if unit:
            if len(chunks) > 1:
                per = max(o1 - o0 for o0, o1 in chunks)
                for a in unit.constants.values():
                    total += cslots * (-(-_nbytes((per, *a.shape[1:]), str(a.dtype)) // _ALIGN) * _ALIGN)
                total += cslots * (_nbytes(unit.out_tile_shape(rows)[:-1] + (per,)) + _ALIGN)
            else:
                total += sum(-(-_nbytes(a.shape, str(a.dtype)) // _ALIGN) * _ALIGN for a in unit.constants.values())
            in_rows = max(unit.in_rows(r0, r1)[1] - unit.in_rows(r0, r1)[0] for r0, r1 in bounds)
            total += slots * (_nbytes(unit.in_tile_shape(in_rows)) + _ALIGN)
            total += slots * (_nbytes(unit.out_tile_shape(rows)) + _ALIGN)
        program = head.attrs.get("dpu_program")
        if program is not None:
            code = head.attrs["dpu_code"]
            total += code.nbytes + _ALIGN
            for key in ("dpu_consts", "dpu_luts"):
                if head.attrs.get(key) is not None:
                    total += head.attrs[key].nbytes + _ALIGN
            streams = head.attrs["dpu_streams"][1 if unit else 0:]
            total += slots * (len(streams) + 1) * (_nbytes((n, rows, ow, oc)) + _ALIGN)
        return (total, bounds) if total <= self.l1_bytes or not check else None

    def prepare(self, job: _Job) -> None:
        """Per core that runs tiles of the layer: its arena, the constants DMA'd in, the tile slots."""
        self.layer_no += 1
        job.no = self.layer_no
        g, unit, head = self.g, job.unit, job.head
        n, oh, ow, oc = device_shape(g.tensors[job.out_name].shape)
        rows = max(r1 - r0 for r0, r1 in job.bounds)
        slots, cslots = self.policy.tile_slots, self.policy.channel_slots
        for core in dict.fromkeys(job.tile_cores):
            self.core = core
            arena = f"L{job.no}" + (f"@core{core}" if self.policy.cores > 1 else "")
            alloc = _L1()
            r: dict[str, Any] = {"arena": arena, "l1c": {}, "alloc": alloc, "used": 0}
            if unit:
                if len(job.chunks) == 1:
                    for key, data in unit.constants.items():
                        dwpu = unit.kind == "dwpu"
                        home = self.homes.dwpu_constants if dwpu else self.homes.constants
                        src = self._constant(f"{head.name}/{key}", data, home, pinned=dwpu)
                        r["l1c"][key] = self._l1(key, data.shape, str(data.dtype), alloc, arena)
                        self._dma(src, r["l1c"][key], job.stage)
                else:
                    per = max(o1 - o0 for o0, o1 in job.chunks)
                    r["wslots"] = [{key: self._l1(f"{key}#{s}", (per, *data.shape[1:]), str(data.dtype), alloc, arena)
                                    for key, data in unit.constants.items()} for s in range(cslots)]
                    r["yc"] = [self._l1(f"yc#{s}", unit.out_tile_shape(rows)[:-1] + (per,), "int8", alloc, arena)
                               for s in range(cslots)]
                in_rows = max(unit.in_rows(r0, r1)[1] - unit.in_rows(r0, r1)[0] for r0, r1 in job.bounds)
                r["x"] = [self._l1(f"x#{s}", unit.in_tile_shape(in_rows), "int8", alloc, arena) for s in range(slots)]
                r["y"] = [self._l1(f"y#{s}", unit.out_tile_shape(rows), "int8", alloc, arena) for s in range(slots)]
            if head.attrs.get("dpu_program") is not None:
                code = np.ascontiguousarray(head.attrs["dpu_code"], np.int32)
                r["l1c"]["code"] = self._l1("dpu_code", code.shape, "int32", alloc, arena)
                code_src = self._constant(f"{head.name}/dpu_code", code, self.homes.dpu_code, pinned=True)
                self._dma(code_src, r["l1c"]["code"], job.stage)
                for key in ("dpu_consts", "dpu_luts"):
                    data = head.attrs.get(key)
                    if data is not None:
                        r["l1c"][key] = self._l1(key, data.shape, str(data.dtype), alloc, arena)
                        src = self._constant(f"{head.name}/{key}", data, self.homes.dpu_constants, pinned=True)
                        self._dma(src, r["l1c"][key], job.stage)
                streams = head.attrs["dpu_streams"]
                r["s"] = [{s: self._l1(f"s{k}#{t}", (n, rows, ow, oc), "int8", alloc, arena)
                           for k, s in enumerate(streams) if not (unit and k == 0)} for t in range(slots)]
                r["out"] = [self._l1(f"out#{t}", (n, rows, ow, oc), "int8", alloc, arena) for t in range(slots)]
            job.refs[core] = r

    def tile(self, job: _Job) -> None:
        """Emit the job's next tile on its core."""
        t = job.next_tile
        job.next_tile += 1
        r0, r1 = job.bounds[t]
        core = job.tile_cores[t]
        self.core = core
        r = job.refs[core]
        unit, head, g = job.unit, job.head, self.g
        n, oh, ow, oc = device_shape(g.tensors[job.out_name].shape)
        slot = r["used"] % self.policy.tile_slots
        r["used"] += 1
        stage = job.stage if len(job.bounds) == 1 else f"{job.stage} [tile {t + 1}/{len(job.bounds)}]"
        h = r1 - r0
        last = None
        if unit:
            i0, i1 = unit.in_rows(r0, r1)
            x_ref = Ref(r["x"][slot].buffer, unit.in_tile_shape(i1 - i0), "int8", 0)
            self._read_rows(unit.x, i0, i1, x_ref, stage)
            y_ref = Ref(r["y"][slot].buffer, unit.out_tile_shape(h), "int8", 0)
            if len(job.chunks) == 1:
                unit.emit(self, x_ref, y_ref, r["l1c"], r0, r1, i0, stage)
            else:
                self._channel_tiles(job, r, unit, x_ref, y_ref, r0, r1, i0, stage)
            last = y_ref
        if head.attrs.get("dpu_program") is not None:
            refs = []
            for k, s in enumerate(head.attrs["dpu_streams"]):
                if unit and k == 0:
                    refs.append(Ref(r["y"][slot].buffer, (n, h, ow, oc), "int8", 0))
                    continue
                dst = Ref(r["s"][slot][s].buffer, (n, h, ow, oc), "int8", 0)
                self._dma(self._rows(s, r0, r1), dst, stage)
                refs.append(dst)
            last = Ref(r["out"][slot].buffer, (n, h, ow, oc), "int8", 0)
            self.b.dpu(core, refs, [last], r["l1c"]["code"], channels=oc, consts=r["l1c"].get("dpu_consts"),
                       luts=r["l1c"].get("dpu_luts"), **self._sync(stage))
            self.stats["dpu_tasks"] += 1
        self._write_rows(job.out_name, r0, r1, Ref(last.buffer, (n, h, ow, oc), "int8", 0), stage)

    def _channel_tiles(self, job: _Job, r: dict[str, Any], unit: "_Unit", x_ref: Ref, y_ref: Ref, r0: int, r1: int,
                       i0: int, stage: str) -> None:
        """Output-channel tiles of an MVM layer: per chunk its weights (and bias, requantization) DMA'd into a
        chunk slot, one MVM task into a chunk buffer, and a strided DMA into the tile's channel slice."""
        from axdrive_hw.kernels.mvm import plan_weight_sets

        spec = self.target.mvm
        n = y_ref.shape[0]
        h, w, oc = y_ref.shape[1], y_ref.shape[2], y_ref.shape[3]
        k_rows = int(np.prod(unit.constants["w"].shape[1:]))
        for j, (o0, o1) in enumerate(job.chunks):
            cs = j % self.policy.channel_slots
            width = o1 - o0
            l1c = {}
            for key, data in unit.constants.items():
                src = self._constant(f"{job.head.name}/{key}", data, self.homes.constants)
                row = _nbytes(data.shape[1:], str(data.dtype)) if data.ndim > 1 else np.dtype(data.dtype).itemsize
                shape = (width, *data.shape[1:])
                l1c[key] = Ref(r["wslots"][cs][key].buffer, shape, str(data.dtype), 0)
                self._dma(Ref(src.buffer, shape, str(data.dtype), o0 * row), l1c[key], stage)
            sets = len(plan_weight_sets(k_rows, width, spec.rows, spec.columns, spec.imc_blocks))
            sub = dataclasses.replace(unit, y_shape=(*unit.y_shape[:3], width), channel_groups=((0, width, sets),))
            yc = Ref(r["yc"][cs].buffer, (n, h, w, width), "int8", 0)
            sub.emit(self, x_ref, yc, l1c, r0, r1, i0, stage)
            self._dma(yc, Ref(y_ref.buffer, (n * h * w, width), "int8", y_ref.offset + o0), stage,
                      rows=n * h * w, row_bytes=width, src_stride=width, dst_stride=oc)

    def finish(self, job: _Job) -> None:
        """Declare the job's arenas (their size is known now) and count it."""
        for core, r in job.refs.items():
            self.b.buffer(r["arena"], "l1", (r["alloc"].top,), "uint8", core=core, kind="staging")
        self.stats["layers"] += 1
        self.stats["tiles"] += len(job.bounds)
        self.stats["tiled_layers"] += int(len(job.bounds) > 1)
        self.stats["oc_tiled_layers"] += int(len(job.chunks) > 1)
        self.stats["l1_peak_bytes"] = max(self.stats["l1_peak_bytes"], max(r["alloc"].top for r in job.refs.values()))
        if job.unit and job.unit.kind == "mvm":
            self.stats["weight_sets"] += job.unit.weight_sets
        self.layers.append({"node": job.head.name, "unit": job.unit.kind if job.unit else "dpu",
                            "tiles": len(job.bounds), "oc_tiles": len(job.chunks),
                            "cores": sorted(set(job.tile_cores)), "l1_bytes": max(r["alloc"].top
                                                                                for r in job.refs.values()),
                            "depth_group": job.group,
                            "frame": self.copy,  # the frame of the run this copy of the layer computes
                            "rolling": job.rolling,
                            "fused": list(job.head.attrs.get("dpu_tail", []))})

    @staticmethod
    def _windows(jobs: list[_Job]) -> list[RowWindow | None]:
        return [None] + [j.unit.in_rows if j.unit else None for j in jobs[1:]]

    def roll(self, jobs: list[_Job]) -> None:
        """Give each intermediate result of a depth-first group its rolling L1 buffer on the producer's core:
        as many rows as the group's tile order keeps live at once (see :func:`rolling_rows`)."""
        bounds = [j.bounds for j in jobs]
        windows = self._windows(jobs)
        order = depth_first_order(bounds, windows)
        for k, j in enumerate(jobs[:-1]):
            n, h, w, c = device_shape(self.g.tensors[j.out_name].shape)
            rows = min(h, rolling_rows(order, k, bounds, windows[k + 1]))
            self.core = self._node_core(j.head)
            ref = self.b.buffer(self._home_name(j.out_name), "l1", (n, rows, w, c), "int8", core=self.core,
                                pinned=True)
            self.rolling[j.out_name] = _Rolling(ref, rows, h, n * w * c)
            j.rolling = {"tensor": j.out_name, "rows": rows, "of_rows": h, "bytes": _nbytes((n, rows, w, c)),
                         "whole_bytes": _nbytes((n, h, w, c))}

    def group(self, jobs: list[_Job]) -> None:
        """Emit layers depth-first: each tile of a later layer right after the earlier layers produced the
        rows it reads (the intermediate results roll through their L1 buffers, see :meth:`roll`)."""
        for k, t in depth_first_order([j.bounds for j in jobs], self._windows(jobs)):
            assert jobs[k].next_tile == t, "depth-first order and emitted tiles disagree"
            self.tile(jobs[k])

    def run(self) -> Emitted:
        edges_in, edges_out = self._edges()
        heads = {n.name: n for n in self.g.nodes if n.attrs.get("dpu_tail")}
        work: list[tuple[str, Any]] = []
        for node in self.g.nodes:
            if node.attrs.get(IO_EDGE):
                continue
            if node.attrs.get("fused_into"):
                # a fused layer is emitted where its last node stands: its other streams exist by then
                head = heads[node.attrs["fused_into"]]
                if head.attrs["dpu_tail"][-1] == node.name:
                    work.append(("layer", head))
                continue
            if node.attrs.get("dpu_tail"):
                continue
            kind = node.attrs.get("integer_op")
            if self.operators.unit(node) == "view":  # the registry's unit: a new shape over the same bytes
                work.append(("alias", node))
            elif kind == "concat":
                work.append(("concat", node))
            elif node.attrs.get(ZERO_INSERTION):
                work.append(("zero_insertion", node))
            elif kind == "move" and node.op in ("Slice", "Split") and spatial_axis(self.g, node) is not None:
                work.append(("spatial_slice", node))
            elif kind == "move" and is_hw_transpose(self.g, node):
                work.append(("hw_transpose", node))
            elif kind == "move" and node.op in ("Slice", "Gather", "Transpose") and pixel_indices(self.g, node):
                work.append(("pixel_move", node))
            elif self.operators.is_unit_head(node) or node.attrs.get("dpu_program") is not None:
                work.append(("layer", node))
            else:
                raise UnsupportedOperatorError(f"{node.op} ({kind}) reached the code generator without a lowering "
                                               "(run lowering.validate_operators to list every such node)",
                                               node=node.name)
        # depth-first groups: consecutive layers with the same ``depth_group``
        items: list[tuple[str, Any]] = []
        for what, node in work:
            gid = (node.attrs.get("tiling") or {}).get("depth_group") if what == "layer" else None
            if gid is not None and node.name in self.ungrouped:
                gid = None
            if gid is not None and items and items[-1][0] == "group" and items[-1][1][0] == gid:
                items[-1][1][1].append(node)
            elif gid is not None:
                items.append(("group", (gid, [node])))
            else:
                items.append((what, node))
        items = [("layer", it[1][1][0]) if it[0] == "group" and len(it[1][1]) == 1 else it for it in items]
        for copy in range(self.copies):
            self.copy = copy
            core = copy if self.batch else 0
            self.core = core
            self.home = {}
            self.inputs(edges_in)
            pending = self.outputs(edges_out)
            self._items(items, base=copy * (len(items) + 1))
            for inner, name in pending:
                # a pipeline's output leaves from the stage that produced it: no hand-over back to core 0
                producer = self.producers.get(inner)
                self.core = self._node_core(producer) if self.pipeline and producer is not None else core
                self._from_nhwc(inner, name)
        return Emitted(None, self.io, self.stats, self.layers, recorder=self.b)

    def _items(self, items: list[tuple[str, Any]], base: int = 0) -> None:
        jobs: dict[int, list[_Job]] = {}

        def jobs_of(k: int) -> list[_Job]:
            if k not in jobs:
                what, obj = items[k]
                heads = [obj] if what == "layer" else obj[1] if what == "group" else []
                jobs[k] = [self.job(h) for h in heads]
                if what == "group":
                    # the intermediate results of a depth-first group roll through L1 buffers of a few rows
                    for j in jobs[k]:
                        j.group = obj[0]
                    self.roll(jobs[k])
                    self.stats["depth_groups"] += 1
            return jobs[k]

        prepared: set[int] = set()
        for k, (what, obj) in enumerate(items):
            self.b.item = base + k
            if what in _MOVES:
                self.b.layer = obj.name
                getattr(self, what)(obj)
                continue
            if k not in prepared:
                for j in jobs_of(k):
                    self.b.layer = j.head.name
                    self.prepare(j)
                prepared.add(k)
            if (self.policy.hoist_weight_loads and k + 1 < len(items) and items[k + 1][0] in ("layer", "group")
                    and k + 1 not in prepared
                    and sum(j.l1_bytes + (j.rolling or {}).get("bytes", 0) for j in jobs_of(k) + jobs_of(k + 1))
                    <= self.l1_bytes):
                # the next layer's constants load now, overlapping this layer's tiles (group_ifdw_tasks)
                self.b.item = base + k + 1
                for j in jobs_of(k + 1):
                    self.b.layer = j.head.name
                    self.prepare(j)
                prepared.add(k + 1)
                self.b.item = base + k
            self.b.layer = obj.name if what == "layer" else obj[1][0].name
            if what == "layer":
                j = jobs_of(k)[0]
                while j.next_tile < len(j.bounds):
                    self.tile(j)
            else:
                self.group(jobs_of(k))
            for j in jobs_of(k):
                self.finish(j)


# -- units ------------------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    """How a head node runs on the MVM or the DWPU, tile by tile."""

    kind: str  # "mvm" | "dwpu"
    op: str
    node: Node
    x: str
    constants: dict[str, np.ndarray]
    params: dict[str, Any]
    x_shape: tuple[int, int, int, int]
    y_shape: tuple[int, int, int, int]
    window: tuple[int, int, int] = (1, 1, 0)  # (kernel rows, stride, pad top) for row mapping
    dilation: int = 1
    row_step: int = 1
    upsample: int = 0  # resize factor along H (0: not a resize); -1: broadcast of one row
    weight_sets: int = 0  # over all of the layer's MVM tasks
    # MVM: one task per output-channel group (a layer whose weights exceed the IMC array is split), with
    # its own weight-set count
    channel_groups: tuple[tuple[int, int, int], ...] = ()  # (o0, o1, weight sets)

    def in_rows(self, r0: int, r1: int) -> tuple[int, int]:
        h = self.x_shape[1]
        if self.upsample == -1:
            return 0, 1
        if self.upsample:
            return r0 // self.upsample, -(-r1 // self.upsample)
        k, s, pt = self.window
        start = r0 * s - pt
        end = (r1 - 1) * s - pt + (k - 1) * self.dilation + 1
        return max(start, 0), min(end, h)

    def in_tile_shape(self, rows: int) -> tuple[int, ...]:
        n, _h, w, c = self.x_shape
        if self.op == "matmul":
            return (n, c)
        return (n, rows, w, c)

    def out_tile_shape(self, rows: int) -> tuple[int, ...]:
        n, _h, w, c = self.y_shape
        if self.op == "matmul":
            return (n, c)
        return (n, rows, w, c)

    def _pads(self, r0: int, r1: int) -> list[int]:
        k, s, pt = self.window
        start = r0 * s - pt
        end = (r1 - 1) * s - pt + (k - 1) * self.dilation + 1
        t, l, b, r = self.params.get("pads", [0, 0, 0, 0])
        return [max(0, -start), l, max(0, end - self.x_shape[1]), r]

    def emit(self, em: _Emitter, x: Ref, y: Ref, l1c: dict[str, Ref], r0: int, r1: int, i0: int, stage: str) -> None:
        params = dict(self.params)
        ins = {"x": x}
        for key in ("w", "bias", "multiplier", "shift"):
            if key in l1c:
                ins[key] = l1c[key]
        if "pads" in params and self.op != "matmul":
            params["pads"] = self._pads(r0, r1)
        if self.op == "resize_nearest":
            params = {}
        if self.kind != "mvm":
            em._task(self.kind, self.op, ins, {"y": y}, params, stage)
            return
        for o0, o1, sets in self.channel_groups:
            params["weight_sets"] = sets  # the IMC plan of this task's weights
            if len(self.channel_groups) > 1:
                params["y_channels"] = [o0, o1]  # this task computes (and writes) only these output channels
                group = {key: _channel_slice(ref, o0, o1) for key, ref in ins.items() if key != "x"}
                em._task(self.kind, self.op, {**ins, **group}, {"y": y}, dict(params), stage)
            else:
                em._task(self.kind, self.op, ins, {"y": y}, dict(params), stage)


def _channel_slice(ref: Ref, o0: int, o1: int) -> Ref:
    """Output channels ``o0..o1`` of a per-channel operand (weights OHWI or (O, K), bias, requantization):
    the leading axis, so the slice is contiguous."""
    row = int(np.prod(ref.shape[1:], dtype=np.int64)) * np.dtype(ref.dtype).itemsize
    return Ref(ref.buffer, (o1 - o0, *ref.shape[1:]), ref.dtype, ref.offset + o0 * row)


def _mvm_plan(node: Node, k: int, o: int, target: Target) -> tuple[dict[str, Any], tuple[tuple[int, int, int], ...]]:
    """The ICR/SWICR task parameters (``attrs["icr"]``, chosen by the ``icr`` plugin) and the output-channel
    groups, one task each, of an MVM layer with a ``K x O`` weight matrix."""
    from axdrive_hw.imc import output_channel_groups
    from axdrive_hw.kernels.mvm import plan_weight_sets

    spec = target.mvm
    icr = node.attrs.get("icr") or {}
    if int(icr.get("icr_factor", 1)) > 1 or int(icr.get("swicr_pack", 1)) > 1:
        # the icr plugin chose a replication that fits one weight set (the cycle model checks it again)
        keys = ("icr_factor", "icr_window", "swicr_pack", "swicr_channels")
        return {key: int(icr[key]) for key in keys if key in icr}, ((0, o, 1),)
    groups = tuple((o0, o1, len(plan_weight_sets(k, o1 - o0, spec.rows, spec.columns, spec.imc_blocks)))
                   for o0, o1 in output_channel_groups(k, o, spec))
    return {}, groups


def _requant_constants(node: Node, channels: int) -> dict[str, np.ndarray]:
    m = np.broadcast_to(np.asarray(node.attrs["requant_multiplier"], np.int64), (channels,))
    s = np.broadcast_to(np.asarray(node.attrs["requant_shift"], np.int64), (channels,))
    return {"multiplier": m.astype(np.int32), "shift": s.astype(np.int32)}


def _requant_params(node: Node) -> dict[str, Any]:
    return {"out_zp": shared_zp(node.attrs.get("out_zero_point", 0)),
            "qmin": max(shared_zp(node.attrs.get("clamp_min", -128)), -128),
            "qmax": min(shared_zp(node.attrs.get("clamp_max", 127)), 127)}


def _pads4(node: Node) -> list[int]:
    p = list(node.attrs.get("pads", [0, 0, 0, 0]))
    return [int(p[0]), int(p[1]), int(p[2]), int(p[3])]  # ONNX (top, left, bottom, right)


def _unit_of(g: Graph, node: Node, target: Target) -> _Unit:
    x, y = node.inputs[0], node.outputs[0]
    xs, ys = device_shape(g.tensors[x].shape), device_shape(g.tensors[y].shape)
    kind = node.attrs["integer_op"]
    if kind == "mac" and node.op in ("Gemm", "MatMul"):
        w = g.constant(node.inputs[1]).astype(np.int8)
        w = w if node.op == "Gemm" and node.attrs.get("transB", 0) else w.T
        bias = g.constant(node.input(2)) if node.op == "Gemm" and node.input(2) else np.zeros(w.shape[0], np.int32)
        consts = {"w": np.ascontiguousarray(w), "bias": np.asarray(bias, np.int32), **_requant_constants(node, w.shape[0])}
        _icr, groups = _mvm_plan(node, w.shape[1], w.shape[0], target)
        return _Unit("mvm", "matmul", node, x, consts,
                     {"x_zp": shared_zp(node.attrs.get("in_zero_point", 0)), **_requant_params(node)}, xs, ys,
                     weight_sets=sum(s for _a, _b, s in groups), channel_groups=groups)
    if kind == "mac":
        w = g.constant(node.inputs[1]).astype(np.int8)
        bias = np.asarray(g.constant(node.input(2)) if node.input(2) else np.zeros(w.shape[0]), np.int32)
        kh, kw = w.shape[2], w.shape[3]
        stride = [int(v) for v in node.attrs.get("strides", [1, 1])]
        dil = [int(v) for v in node.attrs.get("dilations", [1, 1])]
        pads = _pads4(node)
        base = {"x_zp": shared_zp(node.attrs.get("in_zero_point", 0)), "stride": stride, "pads": pads, "dilation": dil,
                **_requant_params(node)}
        window = (kh, stride[0], pads[0])
        groups = int(node.attrs.get("group", 1))
        if is_plain_depthwise(node, w.shape, xs[3]):
            consts = {"w": np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), "bias": bias,
                      **_requant_constants(node, w.shape[0])}
            return _Unit("dwpu", "depthwise", node, x, consts, base, xs, ys, window, dil[0])
        consts = {"w": np.ascontiguousarray(w.transpose(0, 2, 3, 1)), "bias": bias,
                  **_requant_constants(node, w.shape[0])}
        if groups > 1:
            # one task: OHWI weights with C/groups inputs; each group's K x O/groups matrix takes its own
            # weight sets (as the cycle model counts them); no ICR, no output-channel split (a task's
            # groups must cover all of x's channels)
            from axdrive_hw.kernels.mvm import plan_weight_sets

            spec = target.mvm
            sets = groups * len(plan_weight_sets(kh * kw * w.shape[1], w.shape[0] // groups, spec.rows,
                                                 spec.columns, spec.imc_blocks))
            return _Unit("mvm", "conv2d", node, x, consts, {**base, "groups": groups}, xs, ys, window, dil[0],
                         weight_sets=sets, channel_groups=((0, w.shape[0], sets),))
        icr, groups = _mvm_plan(node, kh * kw * w.shape[1], w.shape[0], target)
        return _Unit("mvm", "conv2d", node, x, consts, {**base, "groups": 1, **icr}, xs, ys, window, dil[0],
                     weight_sets=sum(s for _a, _b, s in groups), channel_groups=groups)
    if kind == "avgpool":
        if node.op == "GlobalAveragePool":
            kernel, stride, pads = [xs[1], xs[2]], [1, 1], [0, 0, 0, 0]
        else:
            kernel = [int(v) for v in node.attrs["kernel_shape"]]
            stride = [int(v) for v in node.attrs.get("strides", [1, 1])]
            pads = _pads4(node)
        c = xs[3]
        # the window sum of x - zp is a depthwise convolution with unit weights; its requantization is
        # the integer semantics' division by the window size (the DWPU's own average rounds differently)
        consts = {"w": np.ones((kernel[0], kernel[1], c), np.int8), "bias": np.zeros(c, np.int32),
                  **_requant_constants(node, c)}
        base = {"x_zp": shared_zp(node.attrs.get("in_zero_point", 0)), "stride": stride, "pads": pads, "dilation": [1, 1],
                **_requant_params(node)}
        return _Unit("dwpu", "depthwise", node, x, consts, base, xs, ys, (kernel[0], stride[0], pads[0]))
    if node.op == "MaxPool":
        kernel = [int(v) for v in node.attrs["kernel_shape"]]
        stride = [int(v) for v in node.attrs.get("strides", [1, 1])]
        pads = _pads4(node)
        return _Unit("dwpu", "maxpool", node, x, {}, {"kernel": kernel, "stride": stride, "pads": pads, "x_zp": 0,
                                                      "count_include_pad": False}, xs, ys,
                     (kernel[0], stride[0], pads[0]))
    if node.op == "Resize":
        f = ys[1] // xs[1]
        return _Unit("dwpu", "resize_nearest", node, x, {}, {}, xs, ys, row_step=f, upsample=f)
    if node.op == "Expand":
        return _Unit("dwpu", "resize_nearest", node, x, {}, {}, xs, ys, upsample=-1)
    raise UnsupportedOperatorError(f"{node.op} has no MVM/DWPU mapping", node=node.name)


def record(graph: Graph, target: Target, homes: Homes, *, l1_bytes: int, io_on_host: bool, spans: bool,
           policy: SchedulePolicy | None = None, extra_tiles: dict[str, int] | None = None,
           ungrouped: frozenset[str] = frozenset(), forced: bool = False,
           operators: OperatorRegistry | None = None) -> Emitted:
    """The recorded tasks and buffers for ``graph`` (legalized, DPU programs allocated); see :mod:`._finalize`.
    ``operators`` (default: the installed plugins' registry) says which unit runs each node."""
    return _Emitter(graph, target, homes, l1_bytes=l1_bytes, io_on_host=io_on_host, spans=spans, policy=policy,
                    extra_tiles=extra_tiles, ungrouped=ungrouped, forced=forced, operators=operators).run()
