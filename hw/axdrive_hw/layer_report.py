"""Where a frame's cycles go, layer by layer: the cycle model's timeline summed per layer, beside lower bounds.

Why per layer: a whole-frame figure ("260 frames/s, MVM 3 % busy") says the
program is far from the hardware's limits, not where. Summing the timeline's
task records by the layer they belong to (the ``stage`` name code generation
gives every task: ``HEAD <- ONNX SOURCE [tile i/n]``) and setting each layer
beside what the target description allows for its work shows which layers
take the frame and which unit holds them.

The bounds are exact consequences of the target description (``aipu_v1.toml``):

- MVM: the layer's multiply-accumulates *as the model has them* (before
  channel padding; ``macs``) at the array's peak (``imc_blocks x rows x
  columns / activation_bits`` MACs per cycle). ``mvm_macs_executed`` is what
  the array computed, padding included: the gap between the two is work the
  padding adds. A layer that does not use the MVM (a depthwise convolution
  runs on the DWPU) has no MVM bound: its ``macs`` are the DWPU's work;
- DMA: the bytes its copies move at the core's DMA channels together
  (``dma.core_channel_bandwidth x dma.core_channels_dual``).

The layer's bound is the larger of the two; ``bound_ratio`` is its span over
that bound. The DPU and DWPU have no bound here: how many instructions an
element takes is decided by the register allocator, and the report gives their
busy cycles as measured.
"""

from __future__ import annotations

__all__ = ["layer_performance", "COLUMNS", "to_csv"]

import csv
import io
from typing import Any, Mapping

#: The columns of ``layer_performance.csv``, in order.
COLUMNS = ("order", "layer", "source", "units", "tasks", "macs", "mvm_macs_executed", "dma_bytes", "mvm_cycles",
           "dwpu_cycles",
           "dpu_cycles", "dma_cycles", "span_cycles", "mvm_bound", "dma_bound", "bound_cycles", "bound_ratio",
           "bounded_by", "mvm_utilization", "share")
_UNITS = ("mvm", "dwpu", "dpu", "dma")


def _layer_of(stage: str | None) -> tuple[str, str]:
    """``(layer, source)`` of a task's stage name (``HEAD <- SOURCE [tile i/n]``)."""
    if not stage:
        return "(no stage name)", ""
    head, _, source = stage.partition(" <- ")
    return head.strip(), source.split(" [tile ", 1)[0].strip()


def layer_performance(timeline: Any, target: Any, model_macs: Mapping[str, int] | None = None) -> dict[str, Any]:
    """``{"columns": [...], "rows": [...], "totals": {...}}``: per layer, in the order its first task starts, its work, busy
    cycles per unit, span, bounds and share of the frame (see the module); the totals compare the frame's
    cycles with the sum of the layers' bounds. ``model_macs`` (layer head -> MACs before padding) gives the
    model's work (a layer it does not name was made by the lowering: 0); without it, the executed MACs stand in."""
    peak = float(target.mvm.peak_macs_per_cycle)
    channels = max(1, int(target.dma.core_channels_dual))
    dma_rate = float(target.dma.core_channel_bandwidth * channels)
    layers: dict[str, dict[str, Any]] = {}
    for r in timeline.records:
        name, source = _layer_of(r.stage)
        row = layers.setdefault(name, {"layer": name, "source": source, "units": set(), "tasks": 0, "macs": 0,
                                       "dma_bytes": 0, "first": r.start, "last": r.end,
                                       **{f"{u}_cycles": 0.0 for u in _UNITS}})
        unit = "dma" if r.unit.startswith("dma") or r.unit == "sysdma" else r.unit
        row["units"].add(unit)
        row["tasks"] += 1
        if unit == "mvm":  # the DWPU's depthwise MACs are not the array's work
            row["macs"] += int(r.macs)
        if unit == "dma":
            row["dma_bytes"] += int(r.nbytes)
        row[f"{unit}_cycles"] = row.get(f"{unit}_cycles", 0.0) + (r.end - r.start)
        row["first"], row["last"] = min(row["first"], r.start), max(row["last"], r.end)
    frame = float(timeline.cycles) or 1.0
    rows = []
    for order, row in enumerate(sorted(layers.values(), key=lambda x: (x["first"], x["layer"]))):
        span = row["last"] - row["first"]
        # a layer the lowering made (a concatenation's selection convolution) has no MACs of the model's
        row["model_macs"] = row["macs"] if model_macs is None else int(model_macs.get(row["layer"], 0))
        on_mvm = "mvm" in row["units"]
        mvm_bound, dma_bound = (row["model_macs"] / peak if on_mvm else 0.0), row["dma_bytes"] / dma_rate
        bound = max(mvm_bound, dma_bound)
        busy = {u: row[f"{u}_cycles"] for u in _UNITS}
        rows.append({
            "order": order, "layer": row["layer"], "source": row["source"], "units": "+".join(sorted(row["units"])),
            "tasks": row["tasks"], "macs": row["model_macs"], "mvm_macs_executed": row["macs"],
            "dma_bytes": row["dma_bytes"],
            **{f"{u}_cycles": int(busy[u]) for u in _UNITS}, "span_cycles": int(span),
            "mvm_bound": round(mvm_bound, 2), "dma_bound": round(dma_bound, 2), "bound_cycles": round(bound, 2),
            "bound_ratio": round(span / bound, 2) if bound > 0 else None,
            "bounded_by": max(busy, key=lambda u: (busy[u], u)),
            "mvm_utilization": round(row["model_macs"] / (span * peak), 5) if span > 0 and on_mvm else 0.0,
            "share": round(span / frame, 5)})
    bounds = sum(r["bound_cycles"] for r in rows)
    totals = {"cycles": int(timeline.cycles), "layers": len(rows), "macs": sum(r["macs"] for r in rows),
              "sum_of_bounds": round(bounds, 2),
              "cycles_over_bounds": round(timeline.cycles / bounds, 2) if bounds > 0 else None,
              "mvm_peak_macs_per_cycle": int(peak), "dma_bytes_per_cycle": int(dma_rate)}
    return {"columns": list(COLUMNS), "rows": rows, "totals": totals}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as ``layer_performance.csv`` (:data:`COLUMNS`, one line per layer)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return out.getvalue()
