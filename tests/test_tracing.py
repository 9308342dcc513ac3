"""Spans nest, their intervals contain their children's, log lines inside a
pass carry its context, and the exports follow their formats."""

from __future__ import annotations

import json

import jsonschema
import pytest
import structlog
from hypothesis import given, settings, strategies as st

from axdrive.tracing import (Tracer, chrome_trace, critical_path, dependency_graph, format_critical_path, format_dot,
                             format_tree, load_graph)
from axdrive.errors import UsageError

from _support import SPEC


@st.composite
def span_trees(draw, depth=0):
    n = draw(st.integers(0, 3 if depth < 3 else 0))
    return [(f"p{depth}_{i}", draw(span_trees(depth + 1))) for i in range(n)]


def run_tree(tracer, tree, fail_at=None):
    for name, kids in tree:
        with tracer.span(name, plugin="t", requires=(), provides=(name,)):
            run_tree(tracer, kids)


def schema():
    return json.loads((SPEC / "pass_dependency_graph.schema.json").read_text())


@given(st.lists(span_trees(), min_size=1, max_size=3))
@settings(max_examples=60, deadline=None)
def test_span_intervals_contain_their_childrens(forest):
    tracer = Tracer()
    for tree in forest:
        run_tree(tracer, tree)
    by_id = {s.id: s for s in tracer.spans}
    for s in tracer.spans:
        assert s.end_ns >= s.start_ns
        if s.parent is not None:
            parent = by_id[s.parent]
            assert parent.id < s.id
            assert parent.start_ns <= s.start_ns and s.end_ns <= parent.end_ns
    # siblings do not overlap: passes run one after another
    for a in tracer.spans:
        for b in tracer.spans:
            if a.id < b.id and a.parent == b.parent:
                assert a.end_ns <= b.start_ns


def test_a_failing_span_is_marked_failed_with_the_error_and_still_closed():
    tracer = Tracer()
    with pytest.raises(RuntimeError):
        with tracer.span("outer"):
            with tracer.span("inner"):
                raise RuntimeError("kernel exploded\nsecond line")
    outer, inner = tracer.spans
    assert (inner.status, inner.reason) == ("failed", "kernel exploded")
    assert outer.status == "failed" and outer.end_ns >= inner.end_ns


def test_log_lines_inside_a_span_carry_span_and_pass_context():
    tracer = Tracer()
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        with tracer.span("frontend.load", plugin="axdrive-frontend"):
            with tracer.span("frontend.sub", plugin="axdrive-frontend"):
                structlog.get_logger().info("hello")
        structlog.get_logger().info("outside")
    inside, outside = logs
    assert inside["pass_name"] == "frontend.sub" and inside["plugin"] == "axdrive-frontend"
    assert inside["span_id"] == 1 and inside["parent_span_id"] == 0
    assert "pass_name" not in outside


def test_dependency_graph_is_valid_against_the_shared_schema_with_requires_and_parent_edges():
    tracer = Tracer()
    with tracer.span("a.load", provides=("graph_loaded",)):
        pass
    tracer.skipped("a.skip", requires=("graph_loaded",), reason="run_graph_cleaner=false")
    with tracer.span("a.group", requires=("graph_loaded",)):
        with tracer.span("a.child", provides=("x",)) as child:
            child.stats = {"nodes_removed": 3}
    doc = dependency_graph(tracer, model="m", config_sha256="abc")
    jsonschema.validate(doc, schema())
    kinds = {(e["from"], e["to"], e["kind"]) for e in doc["edges"]}
    assert (0, 2, "requires") in kinds and (0, 1, "requires") in kinds
    assert (2, 3, "parent") in kinds
    skipped = doc["passes"][1]
    assert skipped["status"] == "skipped" and skipped["reason"] == "run_graph_cleaner=false"
    assert doc["passes"][3]["stats"] == {"nodes_removed": 3}


def test_chrome_trace_has_a_complete_event_per_span_and_flow_arrows_for_requires():
    tracer = Tracer()
    with tracer.span("a", provides=("p",)):
        pass
    with tracer.span("b", requires=("p",)):
        pass
    events = chrome_trace(tracer, model="m")["traceEvents"]
    assert [e["name"] for e in events if e["ph"] == "X"] == ["a", "b"]
    starts = [e for e in events if e["ph"] == "s"]
    finishes = [e for e in events if e["ph"] == "f"]
    assert len(starts) == len(finishes) == 1 and starts[0]["id"] == finishes[0]["id"]
    assert starts[0]["ts"] <= finishes[0]["ts"]
    json.dumps(events)  # serialisable


def _doc(spans, edges=()):
    passes = [{"id": i, "name": n, "plugin": "t", "start_ns": s, "end_ns": e, "parent": par, "requires": [],
               "status": st} for i, (n, s, e, par, st) in enumerate(spans)]
    return {"schema": "axdrive.pass_dependency_graph/1", "model": "m", "passes": passes,
            "edges": [{"from": a, "to": b, "kind": "requires"} for a, b in edges]}


def test_critical_path_follows_requires_edges_and_sums_durations():
    doc = _doc([("load", 0, 10, None, "ok"), ("cheap", 10, 11, None, "ok"), ("quant", 11, 111, None, "ok"),
                ("emit", 111, 121, None, "ok")], edges=[(0, 1), (0, 2), (2, 3)])
    chain, total = critical_path(doc)
    assert [p["name"] for p in chain] == ["load", "quant", "emit"] and total == 120
    assert "3 passes" in format_critical_path(doc)


def test_tree_and_dot_show_nesting_and_skips():
    doc = _doc([("group", 0, 100, None, "ok"), ("child", 10, 60, 0, "ok"), ("off", 100, 100, None, "skipped")])
    doc["passes"][2]["reason"] = "enable_icr=false"
    tree = format_tree(doc)
    assert "%  group" in tree and "%    child" in tree  # children indented under their parent
    assert "[skipped: enable_icr=false]" in tree
    dot = format_dot(doc)
    assert dot.startswith("digraph") and "cluster_0" in dot and "style=dashed" in dot


def test_loading_something_that_is_not_a_dependency_graph_is_a_usage_error(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "other"}')
    with pytest.raises(UsageError, match="not an axdrive pass dependency graph"):
        load_graph(bad)
    bad.write_text("{oops")
    with pytest.raises(UsageError, match="not JSON"):
        load_graph(bad)


def test_log_lines_follow_the_current_stderr_after_it_is_swapped(monkeypatch):
    """The CLI configures logging once; a caller that swaps stderr afterwards (a test harness, a notebook
    cell) must get the lines on the new stream, not an error from the old, closed one."""
    import io

    import structlog

    from axdrive.logging import configure

    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure(level="warning")
    first.close()
    monkeypatch.setattr("sys.stderr", second)
    structlog.get_logger("axdrive.test").warning("still heard")
    assert "still heard" in second.getvalue()


def test_the_tree_shows_each_pass_statistics_bounded():
    from axdrive.tracing._inspect import STATS_SHOWN, _stats

    assert _stats({"nodes": 63, "removed": 2}) == "  nodes=63 removed=2"
    many = {f"k{i}": "v" * 100 for i in range(STATS_SHOWN + 3)}
    line = _stats(many)
    assert line.endswith("(+3 more)") and "v" * 41 not in line and "\n" not in _stats({"a\nb": "c\nd"})
    assert _stats(None) == _stats({}) == ""
