"""The command line: exit codes, one-line errors, the generated reference."""

from __future__ import annotations

import json
import os

import pytest

from _support import REPO, run_cli

TESTS = str(REPO / "tests")
# the toy plugin only, loaded with -p as a user would load their own module
TOY_ENV = {"AXDRIVE_DISABLE_PLUGIN_AUTOLOAD": "1", "AXDRIVE_DISABLE_BUILTIN_PLUGINS": "1", "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "toy.onnx"
    p.write_bytes(b"toy")
    return p


def test_help_and_version_exit_0_and_no_command_exits_2():
    assert run_cli("--help").returncode == 0
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("axdrive ")
    assert run_cli().returncode == 2


def test_compile_with_a_plugin_loaded_by_p_writes_artifacts_and_prints_a_summary(model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "-p", "_toy", "--set", "trace_tvm_passes=true", env=TOY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "passes ran" in proc.stdout and "manifest.json" in proc.stdout
    assert {"manifest.json", "compile_report.json", "pass_dependency_graph.json", "pass_trace.json", "toy.txt"} <= {
        p.name for p in out.iterdir() if p.is_file()}
    tree = run_cli("trace", str(out / "pass_dependency_graph.json"))
    assert tree.returncode == 0 and "toy.group.a" in tree.stdout
    crit = run_cli("trace", str(out / "pass_dependency_graph.json"), "--format", "critical-path")
    assert crit.returncode == 0 and crit.stdout.startswith("critical path:")
    dot = run_cli("trace", str(out / "pass_dependency_graph.json"), "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph")


def test_disable_pass_is_recorded_as_skipped_with_the_option(model, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "-p", "_toy", "--disable-pass", "toy.count", env=TOY_ENV)
    assert proc.returncode == 0, proc.stderr
    rows = {p["name"]: p for p in json.loads((out / "manifest.json").read_text())["pipeline"]}
    assert rows["toy.count"] == {"name": "toy.count", "plugin": "_toy", "status": "skipped",
                                 "reason": "--disable-pass toy.count"}


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["compile", "{model}"], 2, "output_dir is not set"),
        (["compile", "{model}", "-o", "{out}", "--set", "aipu_cores_used=9"], 2, "aipu_cores_used=9 is invalid"),
        (["compile", "{model}", "-o", "{out}", "--set", "nosuch=1"], 2, "nosuch: unknown property"),
        (["compile", "{model}", "-o", "{out}", "--input-shape", "images=1xAx3"], 2, "--input-shape 'images=1xAx3'"),
        (["compile", "{missing}", "-o", "{out}"], 1, "missing.onnx: no such file"),
        (["compile", "{model}", "-o", "{out}", "-p", "no_such_module_xyz"], 1, "-p no_such_module_xyz: cannot import"),
        (["compile", "{model}", "-o", "{out}", "--disable-pass", "toy.cuont"], 2, "did you mean 'toy.count'"),
        (["trace", "{model}"], 2, "not JSON"),
    ],
)
def test_errors_are_one_line_on_stderr_with_the_documented_exit_code(model, tmp_path, args, code, words):
    fill = {"model": str(model), "out": str(tmp_path / "o"), "missing": str(tmp_path / "missing.onnx")}
    argv = [a.format(**fill) for a in args]
    if argv[0] == "compile":
        argv += ["-p", "_toy"]
    proc = run_cli(*argv, env=TOY_ENV)
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("axdrive: error: ") and words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_a_crashing_plugin_exits_1_naming_plugin_pass_and_node_and_verbose_adds_the_traceback(model, tmp_path, monkeypatch):
    (tmp_path / "crashplug.py").write_text("from _toy import Crasher\n_c = Crasher()\naxdrive_passes = _c.axdrive_passes\n")
    env = dict(TOY_ENV, PYTHONPATH=str(tmp_path) + os.pathsep + TOY_ENV["PYTHONPATH"])
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "o"), "-p", "_toy", "-p", "crashplug", env=env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("axdrive: error: pass 'crash.boom' (plugin crashplug) failed, node 'conv_1': "
                                   "ZeroDivisionError: scale of zero")
    verbose = run_cli("compile", str(model), "-o", str(tmp_path / "o"), "-p", "_toy", "-p", "crashplug", "-v", env=env)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_passes_lists_plugins_and_the_resolved_pipeline_with_reasons():
    proc = run_cli("passes", "-p", "_toy", "--set", "enable_icr=false", env=TOY_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "_toy" in proc.stdout and "skip toy.icr_only" in proc.stdout and "[enable_icr=false]" in proc.stdout
    doc = json.loads(run_cli("passes", "-p", "_toy", "--format", "json", env=TOY_ENV).stdout)
    names = [p["name"] for p in doc["pipeline"]]
    assert names.index("toy.load") < names.index("toy.drop_relu") < names.index("toy.group")
    assert {"from": "toy.load", "to": "toy.drop_relu", "property": "graph_loaded"} in doc["edges"]
    dot = run_cli("passes", "-p", "_toy", "--format", "dot", env=TOY_ENV)
    assert dot.stdout.startswith("digraph pipeline")


def test_cli_reference_in_docs_is_current():
    from axdrive.cli._reference import cli_reference

    assert (REPO / "docs" / "cli.md").read_text() == cli_reference(), "docs/cli.md is stale: run `make docs`"


def test_dump_ir_changed_writes_a_diff_only_for_passes_that_changed_the_ir_and_the_failure(tmp_path):
    """MLIR's print-ir-after-change and -after-failure: on the toy compiler, toy.drop_relu changes the IR (one
    diff removing the Relu) and the counting passes do not (no file); a crashing pass leaves its IR."""
    from _support import run_cli
    from test_cli import TOY_ENV

    model = tmp_path / "m.onnx"
    model.write_bytes(b"toy")
    dumps = tmp_path / "ir"
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "-p", "_toy", "--dump-ir", str(dumps),
                   "--dump-ir-changed", env=TOY_ENV)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in dumps.iterdir())
    assert [f.split("-", 1)[1] for f in files] == ["toy.load.diff", "toy.drop_relu.diff"], files
    diff = next(dumps.glob("*toy.drop_relu.diff")).read_text()
    assert "--- before toy.drop_relu" in diff and "-relu_0 = Relu" in diff
    (tmp_path / "crashplug.py").write_text("from _toy import Crasher\n_c = Crasher()\naxdrive_passes = _c.axdrive_passes\n")
    env = dict(TOY_ENV, PYTHONPATH=str(tmp_path) + ":" + TOY_ENV["PYTHONPATH"])
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out2"), "-p", "_toy", "-p", "crashplug",
                   "--dump-ir", str(tmp_path / "ir2"), "--dump-ir-changed", env=env)
    assert proc.returncode == 1
    (failed,) = (tmp_path / "ir2").glob("*crash.boom.failed.txt")
    assert "conv_0 = Conv" in failed.read_text() and "(the IR did not change)" in failed.read_text()
