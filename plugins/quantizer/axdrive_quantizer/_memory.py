"""How much memory calibrating a graph takes, estimated from its static shapes before any data is loaded.

Why before: a model declaring an input of 1x3x100000x100000 (or fixed to it by
``--input-shape``) passes import and shape inference on shapes alone, then the
calibration loads photos resized to it and runs the float executor, and the
process grows until the OOM killer ends it (24 GB on the reference machine)
or, under a memory limit, dies of a bare ``MemoryError``. The estimate below
refuses such a compile in milliseconds with one line naming the largest
tensor and the bytes, at the start of ``quantizer.calibrate``.

The estimate (documented in docs/reliability.md, "Inputs to compile and run")::

    need = batch x peak_per_sample + 2 x resident_samples x input_bytes_per_sample
           + activations x 32 KiB (the observer's histograms)

* ``peak_per_sample``: the float executor's working set for one sample, the
  largest, over the nodes in execution order, of the activations still alive
  (computed and read later, as :func:`axdrive.reference.run_float` keeps
  them) plus the node's outputs, plus scratch: a convolution's im2col matrix
  (output positions x input channels x kernel taps) and padded input copy,
  and for every node three output-sized temporaries (the kernel's result
  before its final copy, the observer's histogram indices). Tensors count in
  their dtype (float32 for activations).
* ``batch``: the calibration batch :func:`~axdrive_quantizer._calibration._batch_size`
  would choose (1 once one sample's activations exceed 256 MiB).
* ``resident_samples``: the samples held while calibrating (the 8 sample photos,
  or 1 for data loaded from a file: its reader checks the file itself against
  the free memory); x2 because loading stacks or converts them once.

It is compared with :func:`axdrive.inputs.available_memory_bytes` (free memory,
cgroup and ``RLIMIT_AS`` room). With ``compiler_mode=quantize_and_lower`` the
device must also hold the program's inputs and outputs in DDR, at least one
byte per element: more than ``min(ddr_size_used, ddr_size_max, ddr_constraint)
- ddr_size_reserved`` is refused too, naming the largest of them.
"""

from __future__ import annotations

__all__ = ["MemoryEstimate", "estimate_calibration", "check_calibration_memory", "check_device_io"]

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from axdrive.errors import MemoryPlanError
from axdrive.inputs import available_memory_bytes, format_bytes
from axdrive.ir import Graph

from ._observe import NBINS

#: Output-sized temporaries per node besides its outputs: the kernel's result before its final copy and the
#: observer's per-element work (histogram bin indices are int64, twice a float32 activation).
TEMPORARIES_PER_OUTPUT = 3
#: What the observer keeps per activation whatever the data: a histogram of NBINS int64 counts, and its
#: edges and scratch when it grows (x2).
OBSERVER_BYTES_PER_TENSOR = 2 * NBINS * 8


@dataclass(frozen=True)
class MemoryEstimate:
    """The calibration's estimated host memory, and what dominates it."""

    need: int  # bytes in all
    peak_per_sample: int  # the float executor's working set for one sample
    peak_node: str  # the node where it peaks
    largest: str  # the largest activation (or input)
    largest_bytes: int
    batch: int
    resident: int  # bytes of calibration samples held

    def to_stats(self) -> dict[str, Any]:
        return {"estimated_memory_bytes": self.need, "estimated_peak_per_sample_bytes": self.peak_per_sample}


def _nbytes(t: Any) -> int:
    if t.shape is None:
        return 0
    count = 1
    for d in t.shape:
        count *= int(d)
    itemsize = np.dtype(t.dtype).itemsize if t.dtype is not None else 4
    return count * itemsize


def _conv_scratch(graph: Graph, node: Any, nbytes: Mapping[str, int]) -> int:
    """im2col rows (output positions x input channels x kernel taps) and the padded input copy."""
    x, y = graph.tensors.get(node.inputs[0]), graph.tensors.get(node.outputs[0])
    w = graph.tensors.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or y is None or w is None or not x.shape or not y.shape or not w.shape or len(y.shape) < 3:
        return 0
    positions = int(np.prod(y.shape[2:], dtype=object)) * int(y.shape[0])
    taps = int(np.prod(w.shape[2:], dtype=object))
    itemsize = np.dtype(x.dtype).itemsize if x.dtype is not None else 4
    return positions * int(x.shape[1]) * taps * itemsize + nbytes.get(node.inputs[0], 0)


def estimate_calibration(graph: Graph, *, samples: int, input_bytes: int, batch: int) -> MemoryEstimate:
    """The estimate of the module doc for ``graph`` (the calibrated core).

    ``samples``: calibration samples held at once; ``input_bytes``: bytes of one
    sample of the model's inputs (before any host pre-processing); ``batch``:
    the samples one float run takes."""
    nbytes = {name: _nbytes(t) for name, t in graph.tensors.items() if t.data is None}
    last_use: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        for name in node.inputs:
            last_use[name] = i
    keep = set(graph.outputs)
    live = {name for name in graph.inputs}
    current = sum(nbytes.get(name, 0) for name in live)
    peak, peak_node = current, "(inputs)"
    for i, node in enumerate(graph.nodes):
        outs = [o for o in node.outputs if o and o in nbytes]
        out_bytes = sum(nbytes[o] for o in outs)
        scratch = TEMPORARIES_PER_OUTPUT * max((nbytes[o] for o in outs), default=0)
        if node.op in ("Conv", "ConvTranspose") and len(node.inputs) > 1:
            scratch += _conv_scratch(graph, node, nbytes)
        if current + out_bytes + scratch > peak:
            peak, peak_node = current + out_bytes + scratch, node.name
        current += out_bytes
        live.update(outs)
        for name in set(node.inputs):
            if name in live and last_use.get(name) == i and name not in keep:
                live.discard(name)
                current -= nbytes.get(name, 0)
    largest = max(nbytes, key=lambda n: nbytes[n], default="")
    batch = max(1, batch)
    resident = 2 * samples * input_bytes
    observer = OBSERVER_BYTES_PER_TENSOR * len(nbytes)
    return MemoryEstimate(batch * peak + resident + observer, peak, peak_node, largest, nbytes.get(largest, 0), batch,
                          resident)


def check_calibration_memory(graph: Graph, *, samples: int, input_bytes: int, batch: int,
                             available: int | None = None) -> MemoryEstimate:
    """:func:`estimate_calibration`, refused with one :class:`MemoryPlanError` line when it exceeds ``available``
    (default: :func:`axdrive.inputs.available_memory_bytes`)."""
    est = estimate_calibration(graph, samples=samples, input_bytes=input_bytes, batch=batch)
    room = available_memory_bytes() if available is None else available
    if room is not None and est.need > room:
        t = graph.tensors.get(est.largest)
        what = f"{est.largest!r} {t.describe()}" if t is not None else repr(est.largest)
        raise MemoryPlanError(
            f"calibrating needs about {format_bytes(est.need)} of host memory, more than the {format_bytes(room)} "
            f"available: the largest tensor is {what} ({format_bytes(est.largest_bytes)} per sample) and the float "
            f"executor's working set peaks at {format_bytes(est.peak_per_sample)} per sample at node "
            f"{est.peak_node!r} (batch {est.batch}); fix smaller input shapes (--input-shape) or compile on a "
            "machine with more memory")
    return est


def _ddr_capacity(cfg: Any) -> tuple[int, str]:
    """DDR bytes the program's buffers may use, and the properties that bound it."""
    used, top, reserved = int(cfg.ddr_size_used), int(cfg.ddr_size_max), int(cfg.ddr_size_reserved)
    size, prop = (used, "ddr_size_used") if used <= top else (top, "ddr_size_max")
    cap, text = size - reserved, f"{prop}={size:,} minus ddr_size_reserved={reserved:,}"
    limit = getattr(cfg, "ddr_constraint", None)
    if limit is not None and int(limit) < cap:
        cap, text = int(limit), f"ddr_constraint={int(limit):,}"
    return max(cap, 0), text


def check_device_io(graph: Graph, cfg: Any, names: Sequence[str]) -> None:
    """Refuse a program whose inputs and outputs (``names``), at one byte per element (int8, before any
    channel padding), cannot all be in the device's DDR at once: the lowering would fail only after calibration."""
    sizes = {}
    for name in names:
        t = graph.tensors.get(name)
        if t is not None and t.shape is not None:
            sizes[name] = int(np.prod(t.shape, dtype=object))
    total = sum(sizes.values())
    cap, text = _ddr_capacity(cfg)
    if total > cap:
        name = max(sizes, key=lambda n: sizes[n])
        kind = "input" if name in graph.inputs else "output"
        shape = list(graph.tensors[name].shape or ())
        raise MemoryPlanError(
            f"the program's inputs and outputs need at least {format_bytes(total)} of device DDR as int8, more than "
            f"the {format_bytes(cap)} usable ({text}); the largest is {kind} {name!r} {shape} "
            f"({format_bytes(sizes[name])}): give a smaller --input-shape or raise ddr_size_used/ddr_size_max")
