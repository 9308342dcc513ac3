"""compile(): artifacts on success, nothing half-written on failure, traces
and error artifacts when asked, presets, skips with reasons."""

from __future__ import annotations

import json
import zipfile

import jsonschema
import pytest

import _toy
from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.errors import ConfigError, PassResolutionError, PluginError, UsageError
from _support import SPEC, listing


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "toy.onnx"
    p.write_bytes(b"toy model bytes")
    return p


@pytest.fixture
def toy_host(host):
    host.register(_toy, name="toy", distribution="axdrive-toy")
    return host


def cfg(**kw):
    c = CompilerConfig()
    for k, v in kw.items():
        setattr(c, k, v)
    return c


def test_successful_compile_writes_manifest_report_and_pass_artifacts(toy_host, model, tmp_path):
    out = tmp_path / "out"
    res = driver.compile(model, cfg(), output_dir=out, plugins=toy_host)
    assert listing(out) == ["compile_report.json", "manifest.json", "toy.txt"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["artifacts"] == [{"name": "toy.txt", "sha256": res.session.artifacts and manifest["artifacts"][0]["sha256"]}]
    assert manifest["reports"] == ["compile_report.json"]
    assert manifest["model"]["file"] == "toy.onnx" and len(manifest["model"]["sha256"]) == 64
    assert [p["name"] for p in manifest["pipeline"]][:2] == ["toy.load", "toy.count"]
    report = json.loads((out / "compile_report.json").read_text())
    # toy.count only requires graph_loaded, so the (phase, name) tie-break puts it before toy.drop_relu
    assert report["toy"] == {"nodes": 3}
    assert (out / "toy.txt").read_text() == "conv_0 = Conv\nconv_1 = Conv\n"


def test_pass_disabled_by_config_and_its_dependents_are_skipped_with_reasons(toy_host, model, tmp_path):
    res = driver.compile(model, cfg(enable_icr=False, trace_tvm_passes=True), output_dir=tmp_path / "o", plugins=toy_host)
    doc = json.loads((tmp_path / "o" / "pass_dependency_graph.json").read_text())
    by = {p["name"]: p for p in doc["passes"]}
    assert by["toy.icr_only"]["status"] == "skipped" and by["toy.icr_only"]["reason"] == "enable_icr=false"
    assert by["toy.after_icr"]["status"] == "skipped"
    assert "'icr_done' not provided" in by["toy.after_icr"]["reason"] and "toy.icr_only" in by["toy.after_icr"]["reason"]
    assert {p["status"] for p in res.manifest["pipeline"] if p["name"] == "toy.load"} == {"ok"}


def test_trace_files_are_valid_and_subpasses_nest_inside_their_group(toy_host, model, tmp_path):
    driver.compile(model, cfg(trace_tvm_passes=True), output_dir=tmp_path / "o", plugins=toy_host)
    doc = json.loads((tmp_path / "o" / "pass_dependency_graph.json").read_text())
    jsonschema.validate(doc, json.loads((SPEC / "pass_dependency_graph.schema.json").read_text()))
    by = {p["name"]: p for p in doc["passes"]}
    grp = by["toy.group"]
    for child in ("toy.group.a", "toy.group.b"):
        assert by[child]["parent"] == grp["id"]
        assert grp["start_ns"] <= by[child]["start_ns"] <= by[child]["end_ns"] <= grp["end_ns"]
    assert by["toy.drop_relu"]["stats"] == {"removed": 1}
    req = {(e["from"], e["to"]) for e in doc["edges"] if e["kind"] == "requires"}
    assert (by["toy.load"]["id"], by["toy.drop_relu"]["id"]) in req
    assert (by["toy.drop_relu"]["id"], grp["id"]) in req
    trace = json.loads((tmp_path / "o" / "pass_trace.json").read_text())
    assert any(e.get("name") == "toy.group" and e["ph"] == "X" for e in trace["traceEvents"])


def test_crashing_plugin_fails_with_one_line_naming_plugin_pass_and_node(toy_host, model, tmp_path):
    toy_host.register(_toy.Crasher(), name="crash", distribution="axdrive-crash")
    out = tmp_path / "o"
    with pytest.raises(PluginError) as err:
        driver.compile(model, cfg(trace_tvm_passes=True), output_dir=out, plugins=toy_host)
    msg = str(err.value)
    assert "\n" not in msg
    assert "pass 'crash.boom' (plugin axdrive-crash) failed, node 'conv_1': ZeroDivisionError: scale of zero" == msg
    # nothing half-written; the trace is there, with the failure marked
    # beside, not in place of, a good compile's: the failure's trace has names no good compile writes
    assert listing(out) == ["failed.pass_dependency_graph.json", "failed.pass_trace.json"]
    doc = json.loads((out / "failed.pass_dependency_graph.json").read_text())
    failed = [p for p in doc["passes"] if p["status"] == "failed"]
    assert [p["name"] for p in failed] == ["crash.boom"] and "scale of zero" in failed[0]["reason"]


def test_save_error_artifact_writes_a_zip_with_randomized_model_config_error_and_log(toy_host, model, tmp_path):
    toy_host.register(_toy.Crasher(), name="crash", distribution="axdrive-crash")
    out = tmp_path / "o"
    with pytest.raises(PluginError):
        driver.compile(model, cfg(save_error_artifact=True), output_dir=out, plugins=toy_host)
    assert listing(out) == ["error_artifact.zip"]
    with zipfile.ZipFile(out / "error_artifact.zip") as z:
        names = set(z.namelist())
        assert {"error.txt", "config.json", "log.jsonl", "pass_dependency_graph.json", "README.txt"} <= names
        assert "scale of zero" in z.read("error.txt").decode()
        assert json.loads(z.read("config.json"))["save_error_artifact"] is True
        assert "loaded toy graph" in z.read("log.jsonl").decode()


def test_verifier_names_the_pass_that_left_the_ir_invalid(toy_host, model, tmp_path):
    toy_host.register(_toy.Corrupter(), name="corrupt", distribution="axdrive-corrupt")
    with pytest.raises(PluginError, match=r"pass 'corrupt.break_ir' \(plugin axdrive-corrupt\) left an invalid IR: .*node 'conv_0'.*dangling input"):
        driver.compile(model, cfg(), output_dir=tmp_path / "o", plugins=toy_host, verify=True)
    # without the verifier the same compile goes through (the toy passes ignore the flag)
    driver.compile(model, cfg(), output_dir=tmp_path / "o2", plugins=toy_host, verify=False)


def test_presets_fill_only_properties_the_user_did_not_set(toy_host, model, tmp_path):
    toy_host.register(_toy.Presets(), name="presets", distribution="axdrive-presets")
    c = cfg(model_name="toy-fast", frequency=600_000_000)
    res = driver.compile(model, c, output_dir=tmp_path / "o", plugins=toy_host)
    conf = res.manifest["config"]
    assert conf["aipu_cores_used"] == 4 and conf["multicore_mode"] == "batch"
    assert conf["frequency"] == 600_000_000
    assert res.manifest["presets"] == [{"plugin": "axdrive-presets", "properties": {"aipu_cores_used": 4, "multicore_mode": "batch"}}]
    assert c.aipu_cores_used == 1  # the caller's config is not mutated


def test_same_inputs_and_config_give_byte_identical_artifacts(toy_host, model, tmp_path):
    for d in ("a", "b"):
        driver.compile(model, cfg(trace_tvm_passes=True), output_dir=tmp_path / d, plugins=toy_host)
    for name in ("manifest.json", "toy.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_invalid_config_fails_before_anything_is_written(toy_host, model, tmp_path):
    c = cfg()
    c.l1_constraint = 10 * 2**20  # larger than l1_size_used: a cross-property error
    with pytest.raises(ConfigError, match="l1_constraint"):
        driver.compile(model, c, output_dir=tmp_path / "o", plugins=toy_host)
    assert not (tmp_path / "o").exists()


def test_missing_output_dir_and_missing_model_are_clear_errors(toy_host, model, tmp_path):
    from axdrive.errors import ModelError, UsageError

    with pytest.raises(UsageError, match="output_dir is not set"):
        driver.compile(model, cfg(), plugins=toy_host)
    with pytest.raises(ModelError, match="nope.onnx: no such file"):
        driver.compile(tmp_path / "nope.onnx", cfg(), output_dir=tmp_path / "o", plugins=toy_host)


def test_unknown_disable_pass_is_a_resolution_error(toy_host, model, tmp_path):
    with pytest.raises(PassResolutionError, match="did you mean 'toy.count'"):
        driver.compile(model, cfg(), output_dir=tmp_path / "o", plugins=toy_host, disable_passes=["toy.cuont"])


def test_dump_ir_writes_before_and_after_text_for_selected_passes(toy_host, model, tmp_path):
    dump = tmp_path / "ir"
    driver.compile(model, cfg(), output_dir=tmp_path / "o", plugins=toy_host, dump_ir_dir=dump,
                   dump_ir_passes=["toy.drop_relu"])
    files = sorted(p.name for p in dump.iterdir())
    assert len(files) == 2 and files[0].endswith("toy.drop_relu.after.txt")
    before = next(dump.glob("*.before.txt")).read_text()
    after = next(dump.glob("*.after.txt")).read_text()
    assert "relu_0 = Relu" in before and "relu_0" not in after


def test_stop_after_ends_the_compile_at_a_pass_or_a_property_and_records_the_rest(toy_host, model, tmp_path):
    res = driver.compile(model, cfg(), output_dir=tmp_path / "a", plugins=toy_host, stop_after="toy.drop_relu")
    rows = {p["name"]: p for p in res.report["passes"]}
    assert rows["toy.drop_relu"]["status"] == "ok"
    assert rows["toy.group"]["status"] == "skipped" and rows["toy.group"]["reason"] == "--stop-after toy.drop_relu"
    res = driver.compile(model, cfg(), output_dir=tmp_path / "b", plugins=toy_host, stop_after="graph_loaded")
    assert [p["name"] for p in res.report["passes"] if p["status"] == "ok"] == ["toy.load"]
    with pytest.raises(UsageError, match=r"--stop-after 'toy.drop_relus' names no pass .* \(did you mean 'toy.drop_relu'\?\)"):
        driver.compile(model, cfg(), output_dir=tmp_path / "c", plugins=toy_host, stop_after="toy.drop_relus")
