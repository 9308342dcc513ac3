"""Reading a ``pass_dependency_graph.json`` back: tree, DOT, critical path.

The tree is what TVM's pass timing or MLIR's ``-mlir-timing`` print: each
span with its wall time and share of the total, children indented.
The critical path is the chain along requirement edges whose summed pass time
is largest: the passes that bound compile time if independent ones ran in parallel.

:func:`load_graph` is the one door in: it refuses anything that is not a
well-formed graph (see its docstring) with one :class:`~axdrive.errors.UsageError`
line, so the formatters below only ever see a checked document and do bounded
work on it (no recursion, output proportional to the file).
"""

from __future__ import annotations

__all__ = ["load_graph", "format_tree", "format_dot", "critical_path", "format_critical_path",
           "MAX_GRAPH_BYTES", "MAX_JSON_DEPTH", "MAX_PASS_NESTING"]

import heapq
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import UsageError, clip_text, short_repr
from ..files import read_input_file
from ._export import SCHEMA_ID

#: the largest graph file read (a real compile writes a few hundred KiB)
MAX_GRAPH_BYTES = 64 << 20
#: JSON nesting allowed (the writer's files nest five levels: document, passes, pass, stats, a stat)
MAX_JSON_DEPTH = 100
#: pass spans nested inside each other (the tree and DOT indent by it)
MAX_PASS_NESTING = 64
_MAX_INT = 2**63 - 1  # ids and nanosecond times are 64-bit


def load_graph(path: str | Path) -> dict[str, Any]:
    """Read and check a pass dependency graph; any problem is one :class:`UsageError` line ``FILE: ...``.

    Bounded work on any input, in this order:

    1. the file: anything but a regular file (directory, ``/dev/zero``, ``/dev/urandom``, FIFO, socket) is
       refused without being opened; a file over :data:`MAX_GRAPH_BYTES` (64 MiB) without being read;
    2. JSON: a syntax error, non-UTF-8 text, or nesting deeper than :data:`MAX_JSON_DEPTH` levels;
    3. a document whose ``schema`` is not ``axdrive.pass_dependency_graph/1``;
    4. the JSON Schema of the contract (``pass_dependency_graph.schema.json``, shipped in this package): the
       first problem, named by its JSON path, e.g. ``passes[3].id: 'x' is not of type 'integer'``;
    5. the rules the schema cannot say: integers fit in 64 bits; pass ids are unique; every ``parent`` is the id
       of another pass and the parent relation has no cycle, at most :data:`MAX_PASS_NESTING` levels deep;
       every edge joins two existing passes and no edge joins a pass to itself; the ``requires`` edges have no
       cycle (the error names a pass on the cycle).

    Integral numbers written as floats (``3.0``, an integer for JSON Schema) are returned as ``int``.
    """
    p = Path(path)
    data = read_input_file(p, limit=MAX_GRAPH_BYTES, what="a pass dependency graph")
    try:
        doc = json.loads(data)
    except RecursionError:
        raise UsageError(f"{p}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer literal over 4300 digits
        raise UsageError(f"{p}: not JSON: {clip_text(' '.join(str(exc)[:1000].split()), 200)}") from None
    if _deeper_than(doc, MAX_JSON_DEPTH):
        raise UsageError(f"{p}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise UsageError(f"{p}: not an axdrive pass dependency graph (schema must be '{SCHEMA_ID}')")
    error = next(iter(_validator().iter_errors(doc)), None)
    if error is not None:
        where = _json_path(error.absolute_path)
        raise UsageError(f"{p}: {where + ': ' if where else ''}{_schema_message(error)}")
    problem = _semantic_problem(doc)
    if problem:
        raise UsageError(f"{p}: {problem}")
    return doc


# -- checking --------------------------------------------------------------------
def _deeper_than(doc: Any, limit: int) -> bool:
    """Whether JSON data nests more than ``limit`` containers deep (iterative: no recursion on hostile data)."""
    stack = [(doc, 1)] if isinstance(doc, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        items = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in items if isinstance(v, (dict, list)))
    return False


@lru_cache(maxsize=1)
def _validator() -> Any:
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files(__package__).joinpath("pass_dependency_graph.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _json_path(parts: Any) -> str:
    """``passes[3].id`` from jsonschema's ``deque(['passes', 3, 'id'])``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and len(part) <= 40:
            out += f".{part}" if out else part
        else:
            out += f"[{short_repr(part, 40)}]"
    return out


def _schema_message(error: Any) -> str:
    """jsonschema's message with the offending value cut to 80 characters (its own message shows it whole)."""
    kind, instance, expected = error.validator, error.instance, error.validator_value
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return f"{short_repr(instance)} is not of type {', '.join(repr(t) for t in types)}"
    if kind == "enum":
        return f"{short_repr(instance)} is not one of {', '.join(repr(v) for v in expected)}"
    if kind == "const":
        return f"{short_repr(instance)} was expected to be {expected!r}"
    if kind == "minimum":
        return f"{short_repr(instance)} is less than the minimum of {expected!r}"
    if kind == "required":  # the message names the missing key, from the schema
        return str(error.message)
    return clip_text(" ".join(str(error.message)[:1000].split()), 200)


def _int(value: Any) -> int:
    return value if isinstance(value, int) else int(value)  # the schema admits 3.0 as an integer


def _semantic_problem(doc: dict[str, Any]) -> str | None:
    """The first rule of the file format the JSON Schema cannot express that ``doc`` breaks, or ``None``.
    Normalises integral floats to ``int`` in place."""
    passes: list[dict[str, Any]] = doc["passes"]
    index: dict[int, int] = {}  # pass id -> position in passes
    for i, q in enumerate(passes):
        for key in ("id", "start_ns", "end_ns", "parent"):
            if q[key] is None:
                continue
            q[key] = value = _int(q[key])
            if not -_MAX_INT <= value <= _MAX_INT:
                return f"passes[{i}].{key}: {short_repr(value)} does not fit in 64 bits"
        if q["id"] in index:
            return (f"passes[{i}].id: {q['id']} is also the id of passes[{index[q['id']]}]; "
                    "pass ids must be unique")
        index[q["id"]] = i

    def name(pid: int) -> str:
        return f"pass {pid} ({short_repr(passes[index[pid]]['name'], 60)})"

    for i, q in enumerate(passes):
        parent = q["parent"]
        if parent is None:
            continue
        if parent == q["id"]:
            return f"passes[{i}].parent: {name(parent)} is its own parent"
        if parent not in index:
            return f"passes[{i}].parent: {parent} is not the id of any pass"
    # the parent relation: no cycle, bounded nesting (one walk up from each pass, each pass visited once)
    depth: dict[int, int] = {}
    for q in passes:
        chain: list[int] = []
        on_chain: set[int] = set()
        cur: int | None = q["id"]
        while cur is not None and cur not in depth:
            if cur in on_chain:
                loop = chain[chain.index(cur):]
                shown = " -> ".join(str(x) for x in loop[:8]) + (" -> ..." if len(loop) > 8 else f" -> {cur}")
                return f"passes[{index[cur]}].parent: the parents of {name(cur)} form a cycle ({shown})"
            chain.append(cur)
            on_chain.add(cur)
            cur = passes[index[cur]]["parent"]
        level = -1 if cur is None else depth[cur]
        for pid in reversed(chain):
            level += 1
            depth[pid] = level
            if level >= MAX_PASS_NESTING:
                return (f"passes[{index[pid]}]: {name(pid)} is nested {level + 1} levels deep; "
                        f"at most {MAX_PASS_NESTING} are allowed")
    succs: dict[int, list[int]] = {}
    waiting = dict.fromkeys(index, 0)
    for j, e in enumerate(doc["edges"]):
        for key in ("from", "to"):
            e[key] = value = _int(e[key])
            if value not in index:
                return f"edges[{j}].{key}: {short_repr(value)} is not the id of any pass"
        if e["from"] == e["to"]:
            return f"edges[{j}]: {name(e['from'])} has an edge to itself"
        if e["kind"] == "requires":
            succs.setdefault(e["from"], []).append(e["to"])
            waiting[e["to"]] += 1
    # the requires edges: no cycle (Kahn's algorithm; what is left over lies on or behind a cycle)
    ready = [pid for pid, n in waiting.items() if n == 0]
    done = 0
    while ready:
        pid = ready.pop()
        done += 1
        for nxt in succs.get(pid, ()):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    if done < len(index):
        pid = _on_a_cycle(succs, {q for q, n in waiting.items() if n > 0})
        return f"edges: the requires edges form a cycle through {name(pid)}"
    return None


def _on_a_cycle(succs: dict[int, list[int]], left: set[int]) -> int:
    """A pass on a cycle among ``left`` (the passes Kahn's algorithm could not order: each has a predecessor in
    ``left``, so walking predecessors must revisit one; walking successors within ``left`` does too)."""
    preds: dict[int, int] = {}
    for a, outs in succs.items():
        if a in left:
            for b in outs:
                if b in left:
                    preds.setdefault(b, a)
    cur = min(left)
    seen: set[int] = set()
    while cur not in seen:
        seen.add(cur)
        cur = preds[cur]
    return cur


# -- formatting ------------------------------------------------------------------
def _children(doc: dict[str, Any]) -> dict[int | None, list[dict[str, Any]]]:
    kids: dict[int | None, list[dict[str, Any]]] = {}
    for p in doc["passes"]:
        kids.setdefault(p["parent"], []).append(p)
    for v in kids.values():
        v.sort(key=lambda p: (p["start_ns"], p["id"]))
    return kids


def _line(text: Any) -> str:
    """A name or reason on one line of text output (a line break in it is shown as ``\\n``)."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


def _walk(kids: dict[int | None, list[dict[str, Any]]]) -> Any:
    """``(pass, depth, entering)`` in depth-first order, each pass entered then left (iterative, and each pass
    visited once even if a document that was not checked has a parent cycle)."""
    stack: list[tuple[dict[str, Any], int, bool]] = [(p, 0, True) for p in reversed(kids.get(None, []))]
    seen: set[int] = set()
    while stack:
        p, depth, entering = stack.pop()
        if not entering:
            yield p, depth, False
            continue
        if p["id"] in seen:
            continue
        seen.add(p["id"])
        yield p, depth, True
        stack.append((p, depth, False))
        stack.extend((c, depth + 1, True) for c in reversed(kids.get(p["id"], [])))


def format_tree(doc: dict[str, Any]) -> str:
    kids = _children(doc)
    top = kids.get(None, [])
    total = (max((p["end_ns"] for p in top), default=0) - min((p["start_ns"] for p in top), default=0)) or 1
    lines = [f"pass timing for {_line(doc.get('model', '?'))}: total {total / 1e6:.2f} ms",
             f"{'wall ms':>10} {'share':>6}  pass"]
    for p, depth, entering in _walk(kids):
        if not entering:
            continue
        dur = p["end_ns"] - p["start_ns"]
        status = "" if p["status"] == "ok" else f"  [{p['status']}{': ' + p['reason'] if p.get('reason') else ''}]"
        lines.append(f"{dur / 1e6:10.3f} {100 * dur / total:5.1f}%  {'  ' * depth}{_line(p['name'])}{_line(status)}"
                     f"{_stats(p.get('stats'))}")
    return "\n".join(lines)


#: At most this many statistics, each value at most this long, follow a pass's line in the tree.
STATS_SHOWN, STAT_CHARS = 8, 40


def _stats(stats: Any) -> str:
    """A pass's statistics after its line (``  nodes=63 removed=2``), bounded whatever the document holds."""
    if not isinstance(stats, dict) or not stats:
        return ""
    items = [f"{_line(k)[:STAT_CHARS]}={_line(v)[:STAT_CHARS]}" for k, v in list(stats.items())[:STATS_SHOWN]]
    more = f" (+{len(stats) - STATS_SHOWN} more)" if len(stats) > STATS_SHOWN else ""
    return "  " + " ".join(items) + more


def _dot(text: Any) -> str:
    """``text`` for the inside of a DOT double-quoted string: ``\\`` and ``"`` escaped, a line break as ``\\n``
    (a centred line in a label), so no name can end the string or the statement early."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return s.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def format_dot(doc: dict[str, Any]) -> str:
    """Graphviz DOT: top-level passes as boxes, a pass with sub-passes as a cluster around them, ``requires``
    edges as arrows labelled with the property. Every name, plugin, reason and property is escaped
    (:func:`_dot`); node IDs are ``n<pass id>``."""
    out = ["digraph passes {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    colors = {"ok": "black", "skipped": "gray60", "failed": "red"}
    kids = _children(doc)
    for p, depth, entering in _walk(kids):
        indent = "  " * (depth + 1)
        sub = kids.get(p["id"], [])
        if not entering:
            if sub:
                out.append(f"{indent}}}")
            continue
        dur = (p["end_ns"] - p["start_ns"]) / 1e6
        label = f"{_dot(p['name'])}\\n{_dot(p['plugin'])}\\n{dur:.2f} ms"
        if p["status"] != "ok":
            label += f"\\n{_dot(p['status'])}: {_dot(p.get('reason', ''))}"
        if sub:
            out.append(f'{indent}subgraph cluster_{p["id"]} {{ label="{_dot(p["name"])}";')
        out.append(f'{indent}  n{p["id"]} [label="{label}", color={colors.get(p["status"], "black")}'
                   + (", style=dashed" if p["status"] == "skipped" else "") + "];")
    for e in doc["edges"]:
        if e["kind"] == "requires":
            prop = e.get("property", "")
            prop = prop if isinstance(prop, str) else short_repr(prop)
            out.append(f'  n{e["from"]} -> n{e["to"]} [label="{_dot(prop)}"];')
    out.append("}")
    return "\n".join(out)


def critical_path(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Longest chain of top-level spans along requirement edges, by summed wall time.

    The rule, well-defined and terminating on any document: top-level passes are taken in a topological order
    of the ``requires`` edges between them, ties broken by ``(start_ns, id)``; a pass's best predecessor is
    one taken before it, so following predecessors always ends. :func:`load_graph` refuses duplicate ids,
    self-edges and cycles; in a document that did not go through it, a duplicate id counts once (its first
    pass), a self-edge is ignored, and when only passes on a cycle are left the earliest of them is taken next
    as if its remaining requirements were absent (the edges that close the cycle are ignored).
    Ties in length go to the chain ending at the lowest id.
    """
    top: dict[int, dict[str, Any]] = {}
    for p in doc["passes"]:
        if p["parent"] is None and p["id"] not in top:
            top[p["id"]] = p
    preds: dict[int, set[int]] = {i: set() for i in top}
    succs: dict[int, set[int]] = {i: set() for i in top}
    for e in doc["edges"]:
        a, b = e["from"], e["to"]
        if e["kind"] == "requires" and a in top and b in top and a != b:
            preds[b].add(a)
            succs[a].add(b)
    waiting = {i: len(preds[i]) for i in top}
    order = sorted(top, key=lambda i: (top[i]["start_ns"], i))
    rank = {i: n for n, i in enumerate(order)}
    heap = [rank[i] for i in top if not waiting[i]]
    heapq.heapify(heap)
    best: dict[int, tuple[int, int | None]] = {}
    forced = 0  # position in ``order`` of the next candidate to take when only cycles are left
    while len(best) < len(top):
        if heap:
            i = order[heapq.heappop(heap)]
            if i in best:
                continue
        else:
            while order[forced] in best:
                forced += 1
            i = order[forced]
        dur = top[i]["end_ns"] - top[i]["start_ns"]
        cand = max(((best[q][0], q) for q in preds[i] if q in best), default=(0, None))
        best[i] = (cand[0] + dur, cand[1])
        for s in succs[i]:
            waiting[s] -= 1
            if not waiting[s] and s not in best:
                heapq.heappush(heap, rank[s])
    if not best:
        return [], 0
    end = max(best, key=lambda i: (best[i][0], -i))
    total = best[end][0]
    chain = []
    cur: int | None = end
    while cur is not None:
        chain.append(top[cur])
        cur = best[cur][1]
    return list(reversed(chain)), total


def format_critical_path(doc: dict[str, Any]) -> str:
    chain, total = critical_path(doc)
    lines = [f"critical path: {len(chain)} passes, {total / 1e6:.3f} ms"]
    for p in chain:
        lines.append(f"  {(p['end_ns'] - p['start_ns']) / 1e6:10.3f} ms  {_line(p['name'])}")
    return "\n".join(lines)
