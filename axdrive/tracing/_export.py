"""Writing spans as the pass-dependency graph and as a Chrome trace.

``pass_dependency_graph.json`` follows ``shared/spec/pass_dependency_graph.schema.json``.
``pass_trace.json`` is Chrome trace-event JSON (opens in Perfetto or
chrome://tracing): one complete ("X") event per span and flow arrows for the
requirement edges.
"""

from __future__ import annotations

__all__ = ["dependency_graph", "chrome_trace", "SCHEMA_ID"]

from typing import Any

from ._spans import Tracer

SCHEMA_ID = "axdrive.pass_dependency_graph/1"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    try:  # numpy scalars
        return value.item()
    except AttributeError:
        return str(value)


def dependency_graph(tracer: Tracer, *, model: str, config_sha256: str | None = None) -> dict[str, Any]:
    passes = []
    for s in tracer.spans:
        entry: dict[str, Any] = {
            "id": s.id,
            "name": s.name,
            "plugin": s.plugin,
            "start_ns": s.start_ns,
            "end_ns": s.end_ns,
            "parent": s.parent,
            "requires": list(s.requires),
            "provides": list(s.provides),
            "status": s.status,
            "worker": s.worker,
            "stats": _jsonable(s.stats),
        }
        if s.reason:
            entry["reason"] = s.reason
        if s.segment:
            entry["segment"] = s.segment
        passes.append(entry)
    edges = [{"from": s.parent, "to": s.id, "kind": "parent"} for s in tracer.spans if s.parent is not None]
    edges += [{"from": a, "to": b, "kind": "requires", "property": prop} for a, b, prop in tracer.requires_edges()]
    doc: dict[str, Any] = {"schema": SCHEMA_ID, "model": model, "passes": passes, "edges": edges}
    if config_sha256:
        doc["config_sha256"] = config_sha256
    return doc


def chrome_trace(tracer: Tracer, *, model: str) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": f"axdrive compile: {model}"}},
        {"ph": "M", "name": "thread_name", "pid": 0, "tid": 0, "args": {"name": "passes"}},
    ]
    by_id = {s.id: s for s in tracer.spans}
    for s in tracer.spans:
        args: dict[str, Any] = {"status": s.status, "plugin": s.plugin, "span_id": s.id}
        if s.reason:
            args["reason"] = s.reason
        if s.stats:
            args["stats"] = _jsonable(s.stats)
        if s.segment:
            args["segment"] = s.segment
        if s.status == "skipped":
            events.append({"ph": "i", "s": "t", "name": f"{s.name} (skipped)", "cat": "skipped",
                           "ts": s.start_ns / 1000, "pid": 0, "tid": s.worker, "args": args})
        else:
            events.append({"ph": "X", "name": s.name, "cat": s.status, "ts": s.start_ns / 1000,
                           "dur": max(s.duration_ns, 1) / 1000, "pid": 0, "tid": s.worker, "args": args})
    for flow_id, (a, b, prop) in enumerate(tracer.requires_edges()):
        src, dst = by_id[a], by_id[b]
        events.append({"ph": "s", "id": flow_id, "name": prop, "cat": "requires",
                       "ts": max(src.end_ns - 1, src.start_ns) / 1000, "pid": 0, "tid": src.worker})
        events.append({"ph": "f", "bp": "e", "id": flow_id, "name": prop, "cat": "requires",
                       "ts": dst.start_ns / 1000, "pid": 0, "tid": dst.worker})
    return {"traceEvents": events, "displayTimeUnit": "ms"}
