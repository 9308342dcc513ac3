"""``axdrive trace FILE`` on hostile input: bounded work and one error line, never a hang or an internal error.

Each hostile case runs the real command in a child process under an address-space limit and a timeout, and
expects exit code 2 with exactly one line on stderr, ``axdrive: error: FILE: PROBLEM``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from axdrive.tracing import Tracer, critical_path, dependency_graph, format_dot
from axdrive.tracing._inspect import MAX_GRAPH_BYTES, MAX_JSON_DEPTH, MAX_PASS_NESTING

from _support import REPO, SPEC, refused, run_cli_limited

# measured: `axdrive trace` (argparse, json, jsonschema) runs within 256 MiB of address space; twice that leaves
# room, and is far below what reading /dev/zero or expanding a hostile file would take
ADDRESS_SPACE = 512 << 20
TIMEOUT_S = 60


def run_limited(*args: str):
    """``python -m axdrive ARGS`` under the address-space limit, no stdin, killed after ``TIMEOUT_S``."""
    return run_cli_limited(*args, limit_bytes=ADDRESS_SPACE, timeout=TIMEOUT_S)


def real_graph() -> dict:
    """A graph as a compile writes it: nesting, a skipped pass, requires and parent edges, stats."""
    tracer = Tracer()
    with tracer.span("frontend.load", plugin="axdrive", provides=("graph_loaded",)):
        pass
    tracer.skipped("frontend.clean", plugin="axdrive", requires=("graph_loaded",), reason="run_graph_cleaner=false")
    with tracer.span("quantizer.group", plugin="axdrive", requires=("graph_loaded",), provides=("quantized",)):
        with tracer.span("quantizer.calibrate", plugin="axdrive") as child:
            child.stats = {"images": 3}
    with tracer.span("lowering.emit", plugin="axdrive", requires=("quantized",)):
        pass
    return dependency_graph(tracer, model="m.onnx", config_sha256="abc")


def write(tmp_path: Path, doc, name: str = "g.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# -- the contract ----------------------------------------------------------------
def test_the_shipped_schema_is_the_contracts_schema_byte_for_byte():
    """The runtime validates against the copy in the package; it must be the contract's file. Fails (does not
    skip) when ../shared/spec is missing: the contract check must not pass silently."""
    spec = SPEC / "pass_dependency_graph.schema.json"
    assert spec.is_file(), f"{spec} is missing: the contract (shared/spec) must be beside the checkout"
    shipped = REPO / "axdrive" / "tracing" / "pass_dependency_graph.schema.json"
    assert shipped.read_bytes() == spec.read_bytes(), f"copy {spec} to {shipped}"


@pytest.mark.parametrize("fmt", ["tree", "dot", "critical-path"])
def test_a_graph_written_by_axdrive_loads_and_prints_in_every_format(tmp_path, fmt):
    path = write(tmp_path, real_graph())
    proc = run_limited("trace", str(path), "--format", fmt)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert "quantizer.calibrate" in proc.stdout or fmt == "critical-path"
    if fmt == "critical-path":
        assert proc.stdout.startswith("critical path: 3 passes")


# -- what the path names -----------------------------------------------------------
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_trace_refuses_a_character_device_without_reading_it(device):
    refused(run_limited("trace", device), device, "is a character device, not a regular file")


def test_trace_refuses_a_symlink_to_a_device(tmp_path):
    link = tmp_path / "graph.json"
    link.symlink_to("/dev/zero")
    refused(run_limited("trace", str(link)), link, "is a character device")


def test_trace_refuses_a_fifo_without_opening_it(tmp_path):
    """Opening a FIFO nobody writes to blocks forever: the timeout would catch it."""
    fifo = tmp_path / "graph.json"
    os.mkfifo(fifo)
    refused(run_limited("trace", str(fifo)), fifo, "is a FIFO (named pipe), not a regular file")


def test_trace_refuses_a_directory(tmp_path):
    refused(run_limited("trace", str(tmp_path)), tmp_path, "is a directory, not a regular file")


def test_trace_refuses_a_file_over_the_size_cap_without_reading_it(tmp_path):
    big = tmp_path / "graph.json"
    with open(big, "wb") as f:
        f.truncate(MAX_GRAPH_BYTES + 1)  # sparse: no disk used, and reading it would take the whole cap
    refused(run_limited("trace", str(big)), big, f"is {MAX_GRAPH_BYTES + 1:,} bytes, over the 64 MiB limit for a pass "
            "dependency graph")


def test_trace_says_no_such_file(tmp_path):
    refused(run_limited("trace", str(tmp_path / "nope.json")), tmp_path / "nope.json", "no such file")


# -- what the file holds -----------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"\xff\xfe\x00garbage", b"toy", os.urandom(4096)],
                         ids=["empty", "not-utf8", "text", "random-bytes"])
def test_trace_refuses_bytes_that_are_not_json(tmp_path, body):
    path = tmp_path / "g.json"
    path.write_bytes(body)
    refused(run_limited("trace", str(path)), path, "not JSON")


def test_trace_refuses_an_integer_literal_too_long_to_convert(tmp_path):
    graph = real_graph()
    graph["passes"][0]["start_ns"] = 123456789
    doc = json.dumps(graph).replace("123456789", "9" * 5000, 1)
    refused(run_limited("trace", str(write(tmp_path, doc))), tmp_path / "g.json", "not JSON")


def test_trace_refuses_5000_levels_of_json_nesting(tmp_path):
    path = write(tmp_path, "[" * 5000 + "]" * 5000)
    refused(run_limited("trace", str(path)), path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def test_trace_refuses_nesting_the_parser_accepts_but_the_cap_does_not(tmp_path):
    doc = real_graph()
    doc["passes"][3]["stats"] = json.loads("[" * 150 + "]" * 150)
    refused(run_limited("trace", str(write(tmp_path, doc))), tmp_path / "g.json", "JSON nested deeper than")


def test_trace_refuses_a_document_of_another_schema(tmp_path):
    refused(run_limited("trace", str(write(tmp_path, {"schema": "other"}))), tmp_path / "g.json",
            "not an axdrive pass dependency graph")


def _broken(tmp_path: Path, edit) -> subprocess.CompletedProcess:
    doc = copy.deepcopy(real_graph())
    edit(doc)
    return run_limited("trace", str(write(tmp_path, doc)), "--format", "critical-path")


def test_trace_names_the_json_path_of_a_missing_key(tmp_path):
    proc = _broken(tmp_path, lambda d: d["passes"][1].pop("end_ns"))
    refused(proc, tmp_path / "g.json", "passes[1]: 'end_ns' is a required property")


def test_trace_names_the_json_path_of_a_missing_top_level_key(tmp_path):
    refused(_broken(tmp_path, lambda d: d.pop("edges")), tmp_path / "g.json", ": 'edges' is a required property")


def test_trace_names_the_json_path_and_type_of_a_mistyped_key(tmp_path):
    proc = _broken(tmp_path, lambda d: d["passes"][3].__setitem__("id", "x"))
    refused(proc, tmp_path / "g.json", "passes[3].id: 'x' is not of type 'integer'")


def test_trace_names_a_bad_status_and_a_bad_edge_kind(tmp_path):
    refused(_broken(tmp_path, lambda d: d["passes"][0].__setitem__("status", "meh")), tmp_path / "g.json",
            "passes[0].status: 'meh' is not one of 'ok', 'skipped', 'failed'")
    refused(_broken(tmp_path, lambda d: d["edges"][0].__setitem__("kind", 7)), tmp_path / "g.json",
            "edges[0].kind: 7 is not one of 'requires', 'parent'")


def test_trace_cuts_a_huge_mistyped_value_in_its_error_line(tmp_path):
    line = refused(_broken(tmp_path, lambda d: d["passes"][2].__setitem__("start_ns", "9" * 1_000_000)),
                   tmp_path / "g.json", "passes[2].start_ns: '9999", "...", "is not of type 'integer'")
    assert len(line) < 300


def test_trace_refuses_a_time_over_64_bits(tmp_path):
    refused(_broken(tmp_path, lambda d: d["passes"][0].__setitem__("end_ns", 10**30)), tmp_path / "g.json",
            "passes[0].end_ns: 1000000000000000000000000000000 does not fit in 64 bits")


def test_trace_refuses_a_duplicate_pass_id_and_a_self_edge_without_looping(tmp_path):
    """The 300-byte file that made the critical path loop forever."""
    p = {"name": "a", "plugin": "", "start_ns": 0, "end_ns": 5, "parent": None, "requires": [], "status": "ok"}
    doc = {"schema": "axdrive.pass_dependency_graph/1", "model": "m", "passes": [dict(p, id=0), dict(p, id=0)],
           "edges": [{"from": 0, "to": 0, "kind": "requires"}]}
    path = write(tmp_path, doc)
    assert path.stat().st_size < 400
    refused(run_limited("trace", str(path), "--format", "critical-path"), path,
            "passes[1].id: 0 is also the id of passes[0]; pass ids must be unique")


def test_trace_refuses_a_self_edge(tmp_path):
    refused(_broken(tmp_path, lambda d: d["edges"].append({"from": 4, "to": 4, "kind": "requires"})),
            tmp_path / "g.json", "has an edge to itself", "pass 4 ('lowering.emit')")


def test_trace_refuses_an_edge_to_a_pass_that_does_not_exist(tmp_path):
    refused(_broken(tmp_path, lambda d: d["edges"].append({"from": 0, "to": 99, "kind": "requires"})),
            tmp_path / "g.json", ".to: 99 is not the id of any pass")


def test_trace_refuses_a_cycle_of_requires_edges_naming_a_pass_on_it(tmp_path):
    proc = _broken(tmp_path, lambda d: d["edges"].append({"from": 4, "to": 2, "kind": "requires"}))
    line = refused(proc, tmp_path / "g.json", "edges: the requires edges form a cycle through pass")
    assert "quantizer.group" in line or "lowering.emit" in line


def test_trace_refuses_a_pass_that_is_its_own_parent(tmp_path):
    refused(_broken(tmp_path, lambda d: d["passes"][2].__setitem__("parent", 2)), tmp_path / "g.json",
            "passes[2].parent: pass 2 ('quantizer.group') is its own parent")


def test_trace_refuses_a_cycle_in_parents(tmp_path):
    def edit(d):
        d["passes"][0]["parent"] = 1
        d["passes"][1]["parent"] = 0

    refused(_broken(tmp_path, edit), tmp_path / "g.json", "form a cycle (0 -> 1 -> 0)")


def test_trace_refuses_a_parent_that_does_not_exist(tmp_path):
    refused(_broken(tmp_path, lambda d: d["passes"][3].__setitem__("parent", 42)), tmp_path / "g.json",
            "passes[3].parent: 42 is not the id of any pass")


def test_trace_refuses_passes_nested_deeper_than_the_cap(tmp_path):
    n = MAX_PASS_NESTING + 1
    p = {"name": "x", "plugin": "", "start_ns": 0, "end_ns": 0, "requires": [], "status": "ok"}
    doc = {"schema": "axdrive.pass_dependency_graph/1", "model": "m",
           "passes": [dict(p, id=i, parent=i - 1 if i else None) for i in range(n)], "edges": []}
    refused(run_limited("trace", str(write(tmp_path, doc))), tmp_path / "g.json",
            f"is nested {n} levels deep; at most {MAX_PASS_NESTING} are allowed")


# -- the output ----------------------------------------------------------------------
def _dot_strings(text: str) -> list[str]:
    """The quoted strings of DOT text, decoded as Graphviz decodes a label (``\\"`` a quote, ``\\\\`` a backslash,
    ``\\n`` a line break); asserts every string closes on the line it opens on."""
    out: list[str] = []
    for line in text.splitlines():
        i, n = 0, len(line)
        while i < n:
            if line[i] != '"':
                i += 1
                continue
            i += 1
            buf = []
            while True:
                assert i < n, f"unterminated string in DOT line: {line!r}"
                c = line[i]
                if c == "\\":
                    assert i + 1 < n, f"dangling backslash in DOT line: {line!r}"
                    buf.append({"n": "\n", '"': '"', "\\": "\\"}.get(line[i + 1], "\\" + line[i + 1]))
                    i += 2
                elif c == '"':
                    i += 1
                    break
                else:
                    buf.append(c)
                    i += 1
            out.append("".join(buf))
    return out


def test_dot_escapes_quotes_backslashes_and_newlines_in_every_name(tmp_path):
    nasty = 'say "hi"\\ to\nthe "graph" \\'
    doc = real_graph()
    doc["passes"][2]["name"] = nasty  # a pass with a sub-pass: a cluster label and a node label
    doc["passes"][3]["plugin"] = 'plug"in\\'
    doc["passes"][1]["reason"] = 'off "because"\nreasons\\'
    doc["edges"][-1]["property"] = 'prop"\\\n'
    proc = run_limited("trace", str(write(tmp_path, doc)), "--format", "dot")
    assert proc.returncode == 0, proc.stderr
    dot = proc.stdout
    assert '\\"' in dot and dot.count("{") == dot.count("}")
    strings = _dot_strings(dot)  # every quoted string closes on its own line
    assert nasty in strings  # the cluster label, decoded, is the name
    assert any(s.startswith(nasty + "\n") for s in strings)  # the node label
    assert any('plug"in\\' in s for s in strings) and any('off "because"\nreasons\\' in s for s in strings)
    assert 'prop"\\\n' in strings
    assert len([line for line in dot.splitlines() if " [label=" in line and "->" not in line]) == 5


def test_format_dot_gives_every_pass_one_node_statement():
    dot = format_dot(real_graph())
    assert dot.startswith("digraph passes {") and dot.endswith("}")
    assert sorted(line.split()[0] for line in dot.splitlines() if "[label=" in line and "->" not in line) == [
        "n0", "n1", "n2", "n3", "n4"]


_LOOPING = """
import sys
from axdrive.tracing import critical_path
p = {"name": "a", "plugin": "", "start_ns": 0, "end_ns": 5, "parent": None, "requires": [], "status": "ok"}
doc = {"passes": [dict(p, id=0), dict(p, id=0, end_ns=9), dict(p, id=1, start_ns=5, end_ns=7),
                  dict(p, id=2, start_ns=7, end_ns=8)],
       "edges": [{"from": a, "to": b, "kind": "requires"} for a, b in [(0, 0), (0, 1), (1, 2), (2, 1)]]}
chain, total = critical_path(doc)
print([q["id"] for q in chain], total)
"""


def test_critical_path_terminates_on_a_document_that_was_not_checked():
    """The API on a hand-made dict (no load_graph): duplicate id, self-edge and a cycle still end, by the rule in
    its docstring: the first pass of an id counts, the self-edge is ignored, the cycle is entered at its
    earliest pass."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    proc = subprocess.run([sys.executable, "-c", _LOOPING], capture_output=True, text=True, timeout=TIMEOUT_S,
                          preexec_fn=limit)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[0,", "1,", "2]", "8"]


def test_critical_path_of_a_checked_graph_follows_the_requires_edges():
    chain, total = critical_path(real_graph())
    assert [p["name"] for p in chain] == ["frontend.load", "quantizer.group", "lowering.emit"]
    assert total == sum(p["end_ns"] - p["start_ns"] for p in chain)
