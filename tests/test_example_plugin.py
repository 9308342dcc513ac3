"""The out-of-tree example plugin, installed from examples/ like a third-party
distribution, is found through its entry point and takes part in a real compile."""

from __future__ import annotations

import json

import jsonschema

from _support import SPEC, run_cli


def test_example_plugin_is_listed_with_its_distribution_and_pass():
    proc = run_cli("passes", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    plugins = {p["distribution"]: p for p in doc["plugins"]}
    assert plugins["axdrive-example-plugin"]["passes"] == ["example.op_census"]
    (entry,) = [p for p in doc["pipeline"] if p["name"] == "example.op_census"]
    assert entry["plugin"] == "axdrive-example-plugin" and entry["requires"] == ["graph_loaded"]
    names = [p["name"] for p in doc["pipeline"]]
    assert names.index("frontend.load") < names.index("example.op_census")


def test_blocking_the_example_plugin_removes_its_pass():
    proc = run_cli("passes", "--format", "json", "-p", "no:example")
    assert "example.op_census" not in [p["name"] for p in json.loads(proc.stdout)["pipeline"]]


def test_real_model_compile_runs_the_example_pass_and_traces_it(ppocr_model, tmp_path):
    out = tmp_path / "out"
    # the quantizer is blocked to keep this about plugin discovery, not calibration time
    proc = run_cli("compile", str(ppocr_model), "-o", str(out), "--input-shape", "x=1x3x48x192",
                   "--set", "trace_tvm_passes=true", "--set", "compiler_mode=quantize_only", "-p", "no:quantizer")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "pass_dependency_graph.json").read_text())
    jsonschema.validate(doc, json.loads((SPEC / "pass_dependency_graph.schema.json").read_text()))
    by = {p["name"]: p for p in doc["passes"]}
    for name in ("frontend.load", "frontend.check", "frontend.shape_infer"):
        assert by[name]["status"] == "ok"
    census = by["example.op_census"]
    assert census["status"] == "ok" and census["plugin"] == "axdrive-example-plugin"
    assert census["stats"]["nodes"] > 100 and json.loads((out / "op_census.json").read_text())["Conv"] == 53
    assert any(e["kind"] == "requires" and e["to"] == census["id"] and e["from"] == by["frontend.load"]["id"]
               for e in doc["edges"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert "axdrive-example-plugin" in {p["distribution"] for p in manifest["plugins"]}
