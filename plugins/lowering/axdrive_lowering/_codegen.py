"""``lowering.emit_program``: the legalized graph as an AIPU task list.

Execution model (single core, layer by layer; tiling and memory planning
across layers are a later pass's job): every activation has a home buffer
(``workspace_memory_pool``; model I/O in ``io_memory_pool``), every constant
one too (``constant_memory_pool``, DPU tables in ``dpu_constants_home``, DPU
code in ``dpu_instructions_home``, DWPU coefficients in
``dwpu_instructions_home``). A *layer* (a head node plus its fused DPU tail,
see :mod:`._dpu_programs`) is emitted as: DMA its constants into L1, then per
height tile DMA the input rows in, run the MVM/DWPU task, DMA the other DPU
streams in, run the DPU program, DMA the output rows back. L1 is reused from
address 0 by every layer; a layer whose operands do not fit is split into
more height tiles until they do. Each task waits for the one before it
(hardware tokens), which is what makes the reuse safe.

Every task is labelled (``stage``) with the ONNX nodes it comes from
(``propagate_span_information``) so program.json and profiles point back at
the model.
"""

from __future__ import annotations

__all__ = ["emit", "Emitted", "IoRecord"]

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axdrive.errors import MemoryPlanError, UnsupportedOperatorError
from axdrive.ir import Graph, Node
from axdrive_hw.program.model import Program, ProgramBuilder, Ref
from axdrive_hw.target import Target

from ._dpu_programs import is_head
from ._layout import device_shape
from ._memory import Homes
from ._padding import IO_EDGE

_ALIGN = 64
_ALIAS_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


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

    program: Program
    io: dict[str, dict[str, IoRecord]]
    stats: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)


class _L1:
    """Bump allocation inside one layer's share of L1."""

    def __init__(self) -> None:
        self.top = 0

    def take(self, nbytes: int) -> int:
        at = self.top
        self.top = -(-(at + nbytes) // _ALIGN) * _ALIGN
        return at


def _nbytes(shape: tuple[int, ...], dtype: str = "int8") -> int:
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


class _Emitter:
    """Walks the graph once, in order, emitting each layer where its last node stands."""

    def __init__(self, graph: Graph, target: Target, homes: Homes, *, l1_bytes: int, io_on_host: bool,
                 spans: bool) -> None:
        self.g = graph
        self.target = target
        self.homes = homes
        self.l1_bytes = l1_bytes
        self.io_on_host = io_on_host
        self.spans = spans
        self.b = ProgramBuilder(target, cores=1)
        self.home: dict[str, Ref] = {}
        self.const_refs: dict[str, Ref] = {}
        self.count = 0
        self.layer_no = 0
        self.io: dict[str, dict[str, IoRecord]] = {"inputs": {}, "outputs": {}}
        self.stats: dict[str, Any] = {"layers": 0, "tiled_layers": 0, "tiles": 0, "mvm_tasks": 0, "dwpu_tasks": 0,
                                      "dpu_tasks": 0, "dma_tasks": 0, "weight_sets": 0, "l1_peak_bytes": 0}
        self.layers: list[dict[str, Any]] = []
        self.users = graph.consumer_map()
        self.producers = graph.producers()

    # -- tasks -----------------------------------------------------------------------------------------------
    def _sync(self, stage: str) -> dict[str, Any]:
        """Each task waits for the previous one: layer-by-layer order is what makes L1 reuse safe."""
        kw: dict[str, Any] = {"signal": (self.count + 1,), "stage": stage}
        if self.count:
            kw["wait"] = (self.count,)
        self.count += 1
        return kw

    def _dma(self, src: Ref, dst: Ref, stage: str, *, rows: int = 1, row_bytes: int | None = None,
             src_stride: int | None = None, dst_stride: int | None = None) -> None:
        self.b.dma(0, src, dst, rows=rows, row_bytes=row_bytes, src_stride=src_stride, dst_stride=dst_stride,
                   **self._sync(stage))
        self.stats["dma_tasks"] += 1

    def _task(self, kind: str, op: str, inputs: dict[str, Ref], outputs: dict[str, Ref], params: dict[str, Any],
              stage: str) -> None:
        self.b.task(0, kind, op, inputs, outputs, params, **self._sync(stage))
        self.stats[f"{kind}_tasks"] += 1

    # -- buffers ---------------------------------------------------------------------------------------------
    def _constant(self, name: str, data: np.ndarray, level: str) -> Ref:
        if name not in self.const_refs:
            self.const_refs[name] = self.b.constant(name, np.ascontiguousarray(data), level)
        return self.const_refs[name]

    def _l1(self, base: str, shape: tuple[int, ...], dtype: str, alloc: _L1) -> Ref:
        name = f"L{self.layer_no}/{base}"
        nbytes = _nbytes(shape, dtype)
        return self.b.buffer(name, "l1", shape, dtype, address=alloc.take(nbytes))

    def _tensor_home(self, name: str) -> Ref:
        if name not in self.home:
            shape = device_shape(self.g.tensors[name].shape)
            self.home[name] = self.b.buffer(f"t/{name}", self.homes.workspace, shape, "int8")
        return self.home[name]

    def _rows(self, name: str, r0: int, r1: int) -> Ref:
        """Rows ``r0..r1`` of a tensor's home (N = 1: contiguous bytes)."""
        ref = self._tensor_home(name)
        n, h, w, c = device_shape(self.g.tensors[name].shape)
        return Ref(ref.buffer, (n, r1 - r0, w, c), "int8", ref.offset + r0 * w * c)

    def _stage(self, node: Node) -> str:
        if self.spans and node.source:
            return f"{node.name} <- {', '.join(node.source)}"
        return node.name

    # -- model I/O ---------------------------------------------------------------------------------------------
    def _edges(self) -> tuple[dict[str, Node], dict[str, Node]]:
        ins = {n.inputs[0]: n for n in self.g.nodes if n.attrs.get(IO_EDGE) == "input"}
        outs = {n.outputs[0]: n for n in self.g.nodes if n.attrs.get(IO_EDGE) == "output"}
        return ins, outs

    def inputs(self, edges: dict[str, Node]) -> None:
        for name in self.g.inputs:
            t = self.g.tensors[name]
            inner = edges[name].outputs[0] if name in edges else name
            dshape = device_shape(self.g.tensors[inner].shape)
            zp = int(t.qparams.zero_point) if t.qparams is not None else 0
            real = int(t.shape[1])
            if self.io_on_host:
                self.home[inner] = self.b.input(name, dshape, "int8", self.homes.io)
                self.io["inputs"][name] = IoRecord(name, "NHWC", list(dshape), real, zp)
                continue
            src = self.b.input(name, tuple(t.shape), "int8", self.homes.io)
            self.io["inputs"][name] = IoRecord(name, "NCHW", list(t.shape), real, zp)
            dst = self._tensor_home(inner)
            self._to_nhwc(src, dst, real, dshape, zp, f"input {name}")

    def _to_nhwc(self, src: Ref, dst: Ref, real: int, dshape: tuple[int, ...], zp: int, stage: str) -> None:
        """Device-side layout change of a model input: one strided DMA per channel, then the padded
        lanes filled with the zero point by doubling copies of the first pixel's."""
        n, h, w, c = dshape
        hw = h * w
        for ch in range(real):
            self._dma(Ref(src.buffer, (hw,), "int8", ch * hw), Ref(dst.buffer, (hw,), "int8", ch), stage,
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
                self.home[inner] = self.b.output(name, dshape, "int8", self.homes.io)
                self.io["outputs"][name] = IoRecord(name, "NHWC", list(dshape), int(t.shape[1]), zp)
            else:
                self.b.output(name, tuple(t.shape), "int8", self.homes.io)
                self.io["outputs"][name] = IoRecord(name, "NCHW", list(t.shape), int(t.shape[1]), zp)
                pending.append((inner, name))
        return pending

    def _from_nhwc(self, inner: str, name: str) -> None:
        src = self._tensor_home(inner)
        n, h, w, c = device_shape(self.g.tensors[inner].shape)
        real = int(self.g.tensors[name].shape[1])
        dst = self.b.ref(name)
        hw = h * w
        for ch in range(real):
            self._dma(Ref(src.buffer, (hw,), "int8", src.offset + ch), Ref(dst.buffer, (hw,), "int8", ch * hw),
                      f"output {name}", rows=hw, row_bytes=1, src_stride=c, dst_stride=1)

    # -- layers ------------------------------------------------------------------------------------------------
    def alias(self, node: Node) -> None:
        src = self._tensor_home(node.inputs[0])
        out = node.outputs[0]
        if out in self.home:  # a model output: its own buffer, so copy
            self._dma(src, Ref(self.home[out].buffer, src.shape, "int8", self.home[out].offset), self._stage(node))
        else:
            self.home[out] = Ref(src.buffer, device_shape(self.g.tensors[out].shape), "int8", src.offset)

    def concat(self, node: Node) -> None:
        """Channel Concat of PWORD-aligned inputs on one grid: strided DMA copies into channel slices."""
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

    def layer(self, head: Node) -> None:
        """One head node and its fused DPU tail, tiled over output rows until L1 holds it."""
        self.layer_no += 1
        g = self.g
        out_name = head.attrs.get("dpu_output", head.outputs[0])
        n, oh, ow, oc = device_shape(g.tensors[out_name].shape)
        unit = _unit_of(g, head) if is_head(head) else None
        for tiles in range(1, oh + 1):
            plan = self._plan(head, unit, out_name, tiles)
            if plan is not None:
                break
        else:
            raise MemoryPlanError(f"node {head.name!r}: its operands need more than the {self.l1_bytes} bytes of L1 "
                                  "even with one output row per tile")
        alloc, bounds = plan
        self._emit_layer(head, unit, out_name, bounds)
        self.stats["layers"] += 1
        self.stats["tiles"] += len(bounds)
        self.stats["tiled_layers"] += int(len(bounds) > 1)
        self.stats["l1_peak_bytes"] = max(self.stats["l1_peak_bytes"], alloc)
        self.layers.append({"node": head.name, "unit": unit.kind if unit else "dpu", "tiles": len(bounds),
                            "l1_bytes": alloc, "fused": list(head.attrs.get("dpu_tail", []))})

    def _plan(self, head: Node, unit: "_Unit | None", out_name: str, tiles: int) -> tuple[int, list] | None:
        g = self.g
        n, oh, ow, oc = device_shape(g.tensors[out_name].shape)
        step = unit.row_step if unit else 1
        rows = -(-oh // tiles)
        rows = -(-rows // step) * step
        bounds = [(r, min(r + rows, oh)) for r in range(0, oh, rows)]
        if tiles > 1 and len(bounds) < tiles:
            return None  # rounding gave the split of a smaller tile count, already tried
        total = 0
        if unit:
            total += sum(-(-_nbytes(a.shape, str(a.dtype)) // _ALIGN) * _ALIGN for a in unit.constants.values())
            in_rows = max(unit.in_rows(r0, r1)[1] - unit.in_rows(r0, r1)[0] for r0, r1 in bounds)
            total += _nbytes(unit.in_tile_shape(in_rows)) + _ALIGN
            total += _nbytes(unit.out_tile_shape(rows)) + _ALIGN
        program = head.attrs.get("dpu_program")
        if program is not None:
            code = head.attrs["dpu_code"]
            total += code.nbytes + _ALIGN
            for key in ("dpu_consts", "dpu_luts"):
                if head.attrs.get(key) is not None:
                    total += head.attrs[key].nbytes + _ALIGN
            streams = head.attrs["dpu_streams"][1 if unit else 0:]
            total += (len(streams) + 1) * (_nbytes((n, rows, ow, oc)) + _ALIGN)
        return (total, bounds) if total <= self.l1_bytes else None

    def _emit_layer(self, head: Node, unit: "_Unit | None", out_name: str, bounds: list[tuple[int, int]]) -> None:
        g = self.g
        stage = self._stage(head)
        alloc = _L1()
        n, oh, ow, oc = device_shape(g.tensors[out_name].shape)
        rows = max(r1 - r0 for r0, r1 in bounds)
        l1c: dict[str, Ref] = {}
        if unit:
            for key, data in unit.constants.items():
                home = self.homes.dwpu_constants if unit.kind == "dwpu" else self.homes.constants
                src = self._constant(f"{head.name}/{key}", data, home)
                l1c[key] = self._l1(key, data.shape, str(data.dtype), alloc)
                self._dma(src, l1c[key], stage)
            in_rows = max(unit.in_rows(r0, r1)[1] - unit.in_rows(r0, r1)[0] for r0, r1 in bounds)
            x_l1 = self._l1("x", unit.in_tile_shape(in_rows), "int8", alloc)
            y_l1 = self._l1("y", unit.out_tile_shape(rows), "int8", alloc)
        program = head.attrs.get("dpu_program")
        if program is not None:
            code = np.ascontiguousarray(head.attrs["dpu_code"], np.int32)
            l1c["code"] = self._l1("dpu_code", code.shape, "int32", alloc)
            self._dma(self._constant(f"{head.name}/dpu_code", code, self.homes.dpu_code), l1c["code"], stage)
            for key in ("dpu_consts", "dpu_luts"):
                data = head.attrs.get(key)
                if data is not None:
                    l1c[key] = self._l1(key, data.shape, str(data.dtype), alloc)
                    self._dma(self._constant(f"{head.name}/{key}", data, self.homes.dpu_constants), l1c[key], stage)
            streams = head.attrs["dpu_streams"]
            s_l1 = {s: self._l1(f"s{k}", (n, rows, ow, oc), "int8", alloc) for k, s in enumerate(streams)
                    if not (unit and k == 0)}
            o_l1 = self._l1("out", (n, rows, ow, oc), "int8", alloc)
        for t, (r0, r1) in enumerate(bounds):
            tstage = stage if len(bounds) == 1 else f"{stage} [tile {t + 1}/{len(bounds)}]"
            h = r1 - r0
            if unit:
                i0, i1 = unit.in_rows(r0, r1)
                x_ref = Ref(x_l1.buffer, unit.in_tile_shape(i1 - i0), "int8", 0)
                self._dma(unit.source_rows(self, i0, i1), x_ref, tstage)
                y_ref = Ref(y_l1.buffer, unit.out_tile_shape(h), "int8", 0)
                unit.emit(self, x_ref, y_ref, l1c, r0, r1, i0, tstage)
                last = y_ref
            if program is not None:
                refs = []
                for k, s in enumerate(streams):
                    if unit and k == 0:
                        refs.append(Ref(y_l1.buffer, (n, h, ow, oc), "int8", 0))
                        continue
                    dst = Ref(s_l1[s].buffer, (n, h, ow, oc), "int8", 0)
                    self._dma(self._rows(s, r0, r1), dst, tstage)
                    refs.append(dst)
                last = Ref(o_l1.buffer, (n, h, ow, oc), "int8", 0)
                self.b.dpu(0, refs, [last], l1c["code"], channels=oc, consts=l1c.get("dpu_consts"),
                           luts=l1c.get("dpu_luts"), **self._sync(tstage))
                self.stats["dpu_tasks"] += 1
            out_rows = self._rows(out_name, r0, r1)
            self._dma(Ref(last.buffer, out_rows.shape, "int8", 0), out_rows, tstage)
        if unit and unit.kind == "mvm":
            self.stats["weight_sets"] += unit.weight_sets

    def run(self) -> Emitted:
        edges_in, edges_out = self._edges()
        self.inputs(edges_in)
        pending = self.outputs(edges_out)
        heads = {n.name: n for n in self.g.nodes if n.attrs.get("dpu_tail")}
        for node in self.g.nodes:
            if node.attrs.get(IO_EDGE):
                continue
            if node.attrs.get("fused_into"):
                # a fused layer is emitted where its last node stands: its other streams exist by then
                head = heads[node.attrs["fused_into"]]
                if head.attrs["dpu_tail"][-1] == node.name:
                    self.layer(head)
                continue
            if node.attrs.get("dpu_tail"):
                continue
            kind = node.attrs.get("integer_op")
            if kind == "move" and node.op in _ALIAS_OPS:
                self.alias(node)
            elif kind == "concat":
                self.concat(node)
            elif is_head(node) or node.attrs.get("dpu_program") is not None:
                self.layer(node)
            else:
                raise UnsupportedOperatorError(f"{node.op} ({kind}) reached the code generator without a lowering "
                                               "(run lowering.validate_operators to list every such node)",
                                               node=node.name)
        for inner, name in pending:
            self._from_nhwc(inner, name)
        return Emitted(self.b.build(), self.io, self.stats, self.layers)


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
    weight_sets: int = 0

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

    def source_rows(self, em: _Emitter, i0: int, i1: int) -> Ref:
        ref = em._rows(self.x, i0, i1)
        return Ref(ref.buffer, self.in_tile_shape(i1 - i0), "int8", ref.offset)

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
        if self.kind == "mvm":
            params["weight_sets"] = self.weight_sets  # the IMC plan (4 blocks x 512 rows x 128 columns per set)
        em._task(self.kind, self.op, ins, {"y": y}, params, stage)


def _requant_constants(node: Node, channels: int) -> dict[str, np.ndarray]:
    m = np.broadcast_to(np.asarray(node.attrs["requant_multiplier"], np.int64), (channels,))
    s = np.broadcast_to(np.asarray(node.attrs["requant_shift"], np.int64), (channels,))
    return {"multiplier": m.astype(np.int32), "shift": s.astype(np.int32)}


def _requant_params(node: Node) -> dict[str, Any]:
    return {"out_zp": int(node.attrs.get("out_zero_point", 0)),
            "qmin": max(int(node.attrs.get("clamp_min", -128)), -128),
            "qmax": min(int(node.attrs.get("clamp_max", 127)), 127)}


def _pads4(node: Node) -> list[int]:
    p = list(node.attrs.get("pads", [0, 0, 0, 0]))
    return [int(p[0]), int(p[1]), int(p[2]), int(p[3])]  # ONNX (top, left, bottom, right)


def _unit_of(g: Graph, node: Node) -> _Unit:
    from axdrive_hw.kernels.mvm import plan_weight_sets

    x, y = node.inputs[0], node.outputs[0]
    xs, ys = device_shape(g.tensors[x].shape), device_shape(g.tensors[y].shape)
    kind = node.attrs["integer_op"]
    if kind == "mac" and node.op in ("Gemm", "MatMul"):
        w = g.constant(node.inputs[1]).astype(np.int8)
        w = w if node.op == "Gemm" and node.attrs.get("transB", 0) else w.T
        bias = g.constant(node.input(2)) if node.op == "Gemm" and node.input(2) else np.zeros(w.shape[0], np.int32)
        consts = {"w": np.ascontiguousarray(w), "bias": np.asarray(bias, np.int32), **_requant_constants(node, w.shape[0])}
        sets = len(plan_weight_sets(w.shape[1], w.shape[0], 512, 128, 4))
        return _Unit("mvm", "matmul", node, x, consts,
                     {"x_zp": int(node.attrs.get("in_zero_point", 0)), **_requant_params(node)}, xs, ys,
                     weight_sets=sets)
    if kind == "mac":
        w = g.constant(node.inputs[1]).astype(np.int8)
        bias = np.asarray(g.constant(node.input(2)) if node.input(2) else np.zeros(w.shape[0]), np.int32)
        kh, kw = w.shape[2], w.shape[3]
        stride = [int(v) for v in node.attrs.get("strides", [1, 1])]
        dil = [int(v) for v in node.attrs.get("dilations", [1, 1])]
        pads = _pads4(node)
        base = {"x_zp": int(node.attrs.get("in_zero_point", 0)), "stride": stride, "pads": pads, "dilation": dil,
                **_requant_params(node)}
        window = (kh, stride[0], pads[0])
        if int(node.attrs.get("group", 1)) > 1:
            consts = {"w": np.ascontiguousarray(w[:, 0].transpose(1, 2, 0)), "bias": bias,
                      **_requant_constants(node, w.shape[0])}
            return _Unit("dwpu", "depthwise", node, x, consts, base, xs, ys, window, dil[0])
        consts = {"w": np.ascontiguousarray(w.transpose(0, 2, 3, 1)), "bias": bias,
                  **_requant_constants(node, w.shape[0])}
        sets = len(plan_weight_sets(kh * kw * w.shape[1], w.shape[0], 512, 128, 4))
        return _Unit("mvm", "conv2d", node, x, consts, {**base, "groups": 1}, xs, ys, window, dil[0],
                     weight_sets=sets)
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
        base = {"x_zp": int(node.attrs.get("in_zero_point", 0)), "stride": stride, "pads": pads, "dilation": [1, 1],
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


def emit(graph: Graph, target: Target, homes: Homes, *, l1_bytes: int, io_on_host: bool, spans: bool) -> Emitted:
    """The program for ``graph`` (legalized, DPU programs allocated)."""
    return _Emitter(graph, target, homes, l1_bytes=l1_bytes, io_on_host=io_on_host, spans=spans).run()

