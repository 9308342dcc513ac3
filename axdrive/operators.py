"""The supported-operators report: for each ONNX operator, what axdrive does with it, from every plugin.

Like Arm Vela's ``--supported-ops-report``: per operator, whether the float
reference runs it (a numpy kernel, or onnxruntime for any other standard
operator), whether an int8 kernel quantizes it, and whether and on which unit
the AIPU runs it, with each constraint in words. The core knows the float
side; the int8 and AIPU columns are what the installed plugins declare through
the ``axdrive_operator_support`` hook (the frontend's rewrites, the quantizer and the lowering today; a
third-party plugin that lowers a new operator adds its line the same way).
The same plugins answer ``axdrive_host_reason`` for a node of a real model:
the report is the general statement, ``axdrive ops MODEL`` the verdict for
one model.
"""

from __future__ import annotations

__all__ = ["MAC_OPS", "MOVE_OPS", "VIEW_OPS", "UNIT_MOVES", "OperatorSupport", "operator_report", "format_report"]

import json
from dataclasses import dataclass
from typing import Any

# -- operator classes: what an ONNX operator *is*, stated once for every stage that needs it -----------------
#: Multiply-accumulates against a weight operand (input 1): the work the MVM does, what MAC counts measure,
#: where the graph cleaner's tail search starts, what the quantizer requantizes per output channel.
MAC_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
#: Operators that only move or select values (every output element is some input element, or padding): their
#: int8 output keeps the input's grid, and on the AIPU they are DMA copies, views or unit moves.
MOVE_OPS = frozenset({"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Slice", "Split", "Gather",
                      "MaxPool", "GlobalMaxPool", "Identity", "Dropout", "DepthToSpace", "SpaceToDepth",
                      "Resize", "Pad", "Tile", "Expand"})
#: Moves that keep the elements in memory order: a new shape over the same bytes (no copy when the layout allows).
VIEW_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
#: Moves an AIPU compute unit performs (the DWPU's max-pool, nearest upsampling and broadcast), not DMA:
#: each starts a layer of its own, so tiling and code generation must agree on them.
UNIT_MOVES = frozenset({"MaxPool", "Resize", "Expand"})


@dataclass(frozen=True)
class OperatorSupport:
    """What one plugin says about one operator.

    ``role`` is ``"rewrite"`` (a pass replaces it before quantization), ``"int8"`` (an integer kernel
    quantizes it) or ``"aipu"`` (a unit runs it);
    ``summary`` is one line (``"MVM conv2d, requantization fused"``); ``constraints`` are the conditions
    in words, each one the user can check on their model. ``kind`` names an integer kernel (``"lut"``):
    an int8 entry says which kernel quantizes ``op``; an AIPU entry with an empty ``op`` says how a unit
    runs *every* operator quantized by that kernel, so a plugin that lowers tables need not list the
    operators another plugin turns into tables.
    """

    op: str
    role: str
    summary: str
    constraints: tuple[str, ...] = ()
    domain: str = ""
    kind: str = ""


def operator_report(host: Any) -> list[dict[str, Any]]:
    """One row per operator any part of axdrive knows, sorted by name."""
    import onnx

    from .reference import supported_ops

    entries: list[OperatorSupport] = [e for said in host.hook.axdrive_operator_support() for e in (said or [])]
    numpy_ops = set(supported_ops())
    ops = sorted(numpy_ops | {e.op for e in entries if e.op and e.domain == ""})
    rows = []
    for op in ops:
        row: dict[str, Any] = {"op": op, "float": "numpy" if op in numpy_ops else
                               "onnxruntime" if onnx.defs.has(op) else "none"}
        said = {role: [e for e in entries if e.op == op and e.domain == "" and e.role == role]
                for role in ("rewrite", "int8", "aipu")}
        if not said["aipu"]:  # by the kernel that quantizes it
            kinds = {e.kind for e in said["int8"] if e.kind}
            said["aipu"] = [e for e in entries if not e.op and e.role == "aipu" and e.kind in kinds]
        for role, found in said.items():
            row[role] = [{"summary": e.summary, "constraints": list(e.constraints)} for e in found]
        rows.append(row)
    return rows


def _cell(said: list[dict[str, Any]]) -> str:
    if not said:
        return "no"
    return "; ".join(e["summary"] + (" (" + "; ".join(e["constraints"]) + ")" if e["constraints"] else "")
                     for e in said)


def format_report(rows: list[dict[str, Any]], fmt: str = "text") -> str:
    """The report as ``text`` (one block per operator), ``md`` (a table) or ``json``."""
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    on_device = sum(1 for r in rows if r["aipu"])
    footer = ("Every other standard ONNX operator loads, runs in onnxruntime while compiling, and stays on the host "
              "in float (host fallback).")
    if fmt == "md":
        out = ["# Supported operators", "",
               "Generated by `axdrive ops --format md` from the installed plugins; do not edit by hand.", "",
               f"{len(rows)} operators with a numpy kernel, an int8 kernel or an AIPU mapping; {on_device} run on the "
               f"AIPU. {footer} Whether a node of *your* model runs on the AIPU, and why not: `axdrive ops MODEL`.", "",
               "| operator | float reference | before quantization | int8 | on the AIPU |", "|---|---|---|---|---|"]
        for r in rows:
            rewrite = _cell(r["rewrite"]) if r["rewrite"] else ""
            out.append(f"| {r['op']} | {r['float']} | {rewrite} | {_cell(r['int8'])} | {_cell(r['aipu'])} |"
                       .replace("\n", " "))
        return "\n".join(out) + "\n"
    out = [f"{len(rows)} operators ({on_device} on the AIPU). {footer}"]
    for r in rows:
        rewrite = f"; rewritten: {_cell(r['rewrite'])}" if r["rewrite"] else ""
        out.append(f"{r['op']}: float {r['float']}{rewrite}; int8: {_cell(r['int8'])}; AIPU: {_cell(r['aipu'])}")
    return "\n".join(out) + "\n"
