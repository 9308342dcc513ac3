"""Plugin discovery through entry points, -p loading and blocking, autoload
switch, and plugins that misbehave."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from axdrive.errors import PluginError
from axdrive.passes import AUTOLOAD_ENV, PluginHost


def make_dist(root, dist, module, body, ep_name=None):
    """Install a one-module distribution the way pip would: module + dist-info."""
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[axdrive.passes]\n{ep_name or module} = {module}\n")
    (info / "top_level.txt").write_text(module + "\n")
    (info / "RECORD").write_text("")


GOOD = """
    from axdrive.passes import compiler_pass, hookimpl

    @compiler_pass("fake.hello", provides=("hello",))
    def hello(ctx):
        '''Say hello.'''
        return {"greeted": 1}

    @hookimpl
    def axdrive_passes():
        return [hello]
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for name in ("fakeplug", "brokenplug", "badreturn"):
        sys.modules.pop(name, None)


def test_entry_point_plugins_are_discovered_with_distribution_and_version(site, monkeypatch):
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    make_dist(site, "axdrive-fake", "fakeplug", GOOD, ep_name="fake")
    host = PluginHost()
    info = host.info("fake")
    assert (info.distribution, info.version, info.source) == ("axdrive-fake", "1.2.3", "entry-point")
    (p,) = [p for p in host.passes() if p.name == "fake.hello"]
    assert p.plugin == "axdrive-fake" and p.summary == "Say hello."


def test_blocking_by_name_keeps_an_installed_plugin_out(site, monkeypatch):
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    make_dist(site, "axdrive-fake", "fakeplug", GOOD, ep_name="fake")
    host = PluginHost.from_args(["no:fake"])
    assert host.info("fake") is None
    assert "fake.hello" not in [p.name for p in host.passes()]


def test_autoload_can_be_switched_off_by_environment_and_p_loads_explicitly(site, monkeypatch):
    make_dist(site, "axdrive-fake", "fakeplug", GOOD, ep_name="fake")
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    assert "fake.hello" not in [p.name for p in PluginHost().passes()]
    host = PluginHost.from_args(["fakeplug"])
    assert host.info("fakeplug").source == "-p"
    assert "fake.hello" in [p.name for p in host.passes()]


def test_a_plugin_that_fails_to_import_is_named_with_its_distribution(site, monkeypatch):
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    make_dist(site, "axdrive-broken", "brokenplug", "raise RuntimeError('missing libfoo')\n", ep_name="broken")
    with pytest.raises(PluginError, match=r"plugin 'broken' \(distribution 'axdrive-broken'\) failed to import: RuntimeError: missing libfoo; block it with -p no:broken"):
        PluginHost()
    # and blocking it is the way out
    assert PluginHost.from_args(["no:broken"]).info("broken") is None


def test_p_with_a_module_that_does_not_exist_is_a_plugin_error(host):
    with pytest.raises(PluginError, match=r"-p no_such_axdrive_plugin: cannot import plugin module"):
        host.load_module("no_such_axdrive_plugin")


def test_a_plugin_returning_something_that_is_not_a_pass_is_named(site, host):
    (site / "badreturn.py").write_text(
        "from axdrive.passes import hookimpl\n@hookimpl\ndef axdrive_passes():\n    return ['oops']\n")
    host.load_module("badreturn")
    with pytest.raises(PluginError, match=r"plugin 'badreturn' returned str from axdrive_passes\(\)"):
        host.passes()


def test_a_plugin_whose_pass_list_raises_is_named(host):
    class Bad:
        from axdrive.passes import hookimpl

        @hookimpl
        def axdrive_passes(self):
            raise KeyError("config")

    host.register(Bad(), name="bad", distribution="axdrive-bad")
    with pytest.raises(PluginError, match=r"plugin 'axdrive-bad' failed in axdrive_passes\(\): KeyError"):
        host.passes()


def test_blocking_a_plugin_nobody_installed_is_a_usage_error_with_did_you_mean():
    """A misspelt ``-p no:NAME`` would leave the plugin it meant running, silently."""
    from axdrive.errors import UsageError

    with pytest.raises(UsageError, match=r"-p no:quantiser: no plugin is named 'quantiser' \(did you mean 'quantizer'\?\)"):
        PluginHost.from_args(["no:quantiser"])
    assert PluginHost.from_args(["no:axdrive-quantizer"]).info("quantizer") is None  # a distribution name works too


def test_compile_takes_the_config_as_a_mapping_or_a_file_and_checks_it(tmp_path):
    import numpy as np
    import onnx

    from _toy_models import classifier
    from axdrive import driver
    from axdrive.errors import ConfigError, UsageError

    onnx.save(classifier(), tmp_path / "m.onnx")
    cal = {"x": np.random.default_rng(0).uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "m.onnx", {"compiler_mode": "quantize_only"}, output_dir=tmp_path / "a",
                         calibration=cal)
    assert res.manifest["config"]["compiler_mode"] == "quantize_only" and "program.bin" not in res.artifacts
    (tmp_path / "c.toml").write_text('compiler_mode = "quantize_only"\n')
    res = driver.compile(tmp_path / "m.onnx", tmp_path / "c.toml", output_dir=tmp_path / "b", calibration=cal)
    assert res.manifest["config"]["compiler_mode"] == "quantize_only"
    with pytest.raises(ConfigError, match="compiler_mod: unknown property; did you mean 'compiler_mode'"):
        driver.compile(tmp_path / "m.onnx", {"compiler_mod": "quantize_only"}, output_dir=tmp_path / "c")
    with pytest.raises(UsageError, match="config must be a CompilerConfig, a mapping of properties or a config "
                                         "file path, got int"):
        driver.compile(tmp_path / "m.onnx", 5, output_dir=tmp_path / "d")


# -- autoload keeps axdrive's own passes; a compile that cannot make what its mode promises stops first ----------
def test_autoload_off_keeps_the_built_in_passes_and_drops_third_party_ones(site, monkeypatch):
    """As ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` keeps pytest's built-in plugins: the compiler still compiles."""
    from axdrive.passes import BUILTIN_ENV

    make_dist(site, "axdrive-fake", "fakeplug", GOOD, ep_name="fake")
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    monkeypatch.delenv(BUILTIN_ENV, raising=False)
    names = [p.name for p in PluginHost().passes()]
    assert "frontend.load" in names and "lowering.emit_program" in names and "fake.hello" not in names
    monkeypatch.setenv(BUILTIN_ENV, "1")
    assert PluginHost().passes() == []  # an empty registry, for testing one pass alone
    assert [p.name for p in PluginHost.from_args(["fakeplug"]).passes()] == ["fake.hello"]


@pytest.mark.parametrize("args, words", [
    (["--disable-pass", "frontend.load"], "needs 'graph_loaded', and nothing in this pipeline will provide it: "
                                          "frontend.load is off (--disable-pass frontend.load)"),
    (["--disable-pass", "quantizer.write_qdq"], "needs 'qdq_model_written'"),
    (["--set", "compiler_mode=quantize_only", "--disable-pass", "quantizer.quantize"], "needs 'quantized'"),
])
def test_a_compile_that_cannot_make_what_its_mode_promises_stops_before_it_starts(tmp_path, args, words):
    from _support import run_cli
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), *args)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
    # asking for less is fine: --stop-after lifts the promise
    ok = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "--stop-after", "graph_cleaned",
                 "--disable-pass", "quantizer.write_qdq")
    assert ok.returncode == 0, ok.stderr


def test_a_requirement_nobody_provides_is_a_usage_error_with_did_you_mean(host):
    from axdrive.errors import PassResolutionError
    from axdrive.passes import compiler_pass, order_passes

    @compiler_pass("mine.a", provides=("graph_loaded",))
    def a(ctx):
        """Provide."""

    @compiler_pass("mine.b", requires=("graph_loded",))
    def b(ctx):
        """Misspelt requirement."""

    with pytest.raises(PassResolutionError, match=r"requires 'graph_loded', which no installed pass provides "
                                                  r"\(did you mean 'graph_loaded'\?\)") as info:
        order_passes([a, b])
    assert info.value.exit_code == 2


def test_compiles_in_two_processes_with_different_hash_seeds_are_byte_identical(tmp_path):
    import json

    from _support import run_cli
    from test_byom import _three_convs

    model = _three_convs(tmp_path)
    manifests = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        proc = run_cli("compile", str(model), "-o", str(out), "--host-node", "conv2", env={"PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        manifests.append(json.loads((out / "manifest.json").read_text()))
    assert manifests[0]["artifacts"] == manifests[1]["artifacts"]
    assert (tmp_path / "out1" / "manifest.json").read_bytes() == (tmp_path / "out2" / "manifest.json").read_bytes()
