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


# -- a plugin's own options (axdrive_addoption), beside the compiler properties ----------------------------------
def test_the_example_plugins_option_is_set_from_the_cli_and_a_config_file_and_recorded(tmp_path):
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "--stop-after", "graph_optimized", "--option",
                   "example.top=1", "--set", "trace_tvm_passes=true")
    assert proc.returncode == 0, proc.stderr
    census = next(p for p in json.loads((out / "pass_dependency_graph.json").read_text())["passes"]
                  if p["name"] == "example.op_census")
    assert census["stats"]["most_common"] == "Conv"  # 3 Conv, 2 Relu: the one most common
    assert json.loads((out / "manifest.json").read_text())["plugin_options"] == {"example.top": 1}
    (tmp_path / "cfg.toml").write_text('[options.example]\ntop = 2\n')
    proc = run_cli("compile", str(model), "-o", str(out), "--stop-after", "graph_optimized", "--config",
                   str(tmp_path / "cfg.toml"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["plugin_options"] == {"example.top": 2}
    shown = json.loads(run_cli("config", "show", "--config", str(tmp_path / "cfg.toml")).stdout)
    assert shown["options"] == {"example.top": 2} and shown["aipu_cores_used"] == 1
    schema = json.loads(run_cli("config", "schema").stdout)["properties"]["options"]["properties"]["example.top"]
    assert schema == {"type": "integer", "default": 3, "minimum": 0, "maximum": 100,
                      "description": "how many of the most common operators the census names"}


def test_an_unknown_or_bad_plugin_option_is_one_line_before_anything_is_written(tmp_path):
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    for value, words in (("example.tpo=2", "example.tpo: unknown plugin option (did you mean 'example.top'?)"),
                         ("example.top=x", "example.top='x' is invalid: must be an int >= 0 and <= 100"),
                         ("top", "--option 'top': expected NAMESPACE.NAME=VALUE")):
        proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "--option", value)
        assert proc.returncode == 2 and words in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
        assert not (tmp_path / "out").exists()
    (tmp_path / "cfg.toml").write_text('[options]\n"example.top" = 101\n')
    proc = run_cli("config", "validate", str(tmp_path / "cfg.toml"))
    assert proc.returncode == 2 and "example.top=101 is invalid" in proc.stderr


def test_a_plugin_declares_options_once_with_a_valid_default():
    import pytest

    from axdrive.errors import PluginError
    from axdrive.passes import PluginHost, PluginOption, hookimpl

    with pytest.raises(ValueError, match="type 'list' is not one of bool, int, float, str"):
        PluginOption("x", "list", [])
    with pytest.raises(ValueError, match="must be an int >= 1"):
        PluginOption("x", "int", 0, minimum=1)

    class Bad:
        @hookimpl
        def axdrive_addoption(self):
            return ["x"]

    host = PluginHost()
    host.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="plugin 'bad' returned str from axdrive_addoption"):
        host.options
