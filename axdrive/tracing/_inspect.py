"""Reading a ``pass_dependency_graph.json`` back: tree, DOT, critical path.

The tree is what TVM's pass timing or MLIR's ``-mlir-timing`` print: each
span with its wall time and share of the total, children indented.
The critical path is the chain along requirement edges whose summed pass time
is largest: the passes that bound compile time if independent ones ran in parallel.
"""

from __future__ import annotations

__all__ = ["load_graph", "format_tree", "format_dot", "critical_path", "format_critical_path"]

import json
from pathlib import Path
from typing import Any

from ..errors import UsageError


def load_graph(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{p}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != "axdrive.pass_dependency_graph/1":
        raise UsageError(f"{p}: not an axdrive pass dependency graph (schema must be 'axdrive.pass_dependency_graph/1')")
    for key in ("passes", "edges"):
        if not isinstance(doc.get(key), list):
            raise UsageError(f"{p}: missing or invalid '{key}' list")
    return doc


def _children(doc: dict[str, Any]) -> dict[int | None, list[dict[str, Any]]]:
    kids: dict[int | None, list[dict[str, Any]]] = {}
    for p in doc["passes"]:
        kids.setdefault(p["parent"], []).append(p)
    for v in kids.values():
        v.sort(key=lambda p: (p["start_ns"], p["id"]))
    return kids


def format_tree(doc: dict[str, Any]) -> str:
    kids = _children(doc)
    top = kids.get(None, [])
    total = (max((p["end_ns"] for p in top), default=0) - min((p["start_ns"] for p in top), default=0)) or 1
    lines = [f"pass timing for {doc.get('model', '?')}: total {total / 1e6:.2f} ms",
             f"{'wall ms':>10} {'share':>6}  pass"]

    def walk(p: dict[str, Any], depth: int) -> None:
        dur = p["end_ns"] - p["start_ns"]
        status = "" if p["status"] == "ok" else f"  [{p['status']}{': ' + p['reason'] if p.get('reason') else ''}]"
        lines.append(f"{dur / 1e6:10.3f} {100 * dur / total:5.1f}%  {'  ' * depth}{p['name']}{status}")
        for c in kids.get(p["id"], []):
            walk(c, depth + 1)

    for p in top:
        walk(p, 0)
    return "\n".join(lines)


def format_dot(doc: dict[str, Any]) -> str:
    out = ["digraph passes {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    colors = {"ok": "black", "skipped": "gray60", "failed": "red"}
    kids = _children(doc)

    def emit(p: dict[str, Any], indent: str) -> None:
        dur = (p["end_ns"] - p["start_ns"]) / 1e6
        label = f"{p['name']}\\n{p['plugin']}\\n{dur:.2f} ms"
        if p["status"] != "ok":
            label += f"\\n{p['status']}: {p.get('reason', '')}".replace('"', "'")
        sub = kids.get(p["id"], [])
        if sub:
            out.append(f'{indent}subgraph cluster_{p["id"]} {{ label="{p["name"]}";')
        out.append(f'{indent}  n{p["id"]} [label="{label}", color={colors.get(p["status"], "black")}'
                   + (", style=dashed" if p["status"] == "skipped" else "") + "];")
        for c in sub:
            emit(c, indent + "  ")
        if sub:
            out.append(f"{indent}}}")

    for p in kids.get(None, []):
        emit(p, "  ")
    for e in doc["edges"]:
        if e["kind"] == "requires":
            out.append(f'  n{e["from"]} -> n{e["to"]} [label="{e.get("property", "")}"];')
    out.append("}")
    return "\n".join(out)


def critical_path(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Longest chain of top-level spans along requirement edges, by wall time."""
    by_id = {p["id"]: p for p in doc["passes"]}
    top = [p for p in doc["passes"] if p["parent"] is None]
    preds: dict[int, list[int]] = {p["id"]: [] for p in top}
    for e in doc["edges"]:
        if e["kind"] == "requires" and e["to"] in preds and e["from"] in preds:
            preds[e["to"]].append(e["from"])
    best: dict[int, tuple[int, int | None]] = {}
    for p in sorted(top, key=lambda p: (p["start_ns"], p["id"])):
        dur = p["end_ns"] - p["start_ns"]
        cand = max(((best[q][0], q) for q in preds[p["id"]] if q in best), default=(0, None))
        best[p["id"]] = (cand[0] + dur, cand[1])
    if not best:
        return [], 0
    end = max(best, key=lambda i: (best[i][0], -i))
    total = best[end][0]
    chain = []
    cur: int | None = end
    while cur is not None:
        chain.append(by_id[cur])
        cur = best[cur][1]
    return list(reversed(chain)), total


def format_critical_path(doc: dict[str, Any]) -> str:
    chain, total = critical_path(doc)
    lines = [f"critical path: {len(chain)} passes, {total / 1e6:.3f} ms"]
    for p in chain:
        lines.append(f"  {(p['end_ns'] - p['start_ns']) / 1e6:10.3f} ms  {p['name']}")
    return "\n".join(lines)
