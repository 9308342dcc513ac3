"""The pipeline order follows requires/provides, deterministically; cycles and
missing providers are errors that name what is wrong."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np

import pytest
from hypothesis import given, settings, strategies as st

from axdrive.errors import PassResolutionError
from axdrive.passes import Pass, Phase, order_passes, resolve_pipeline, when


def _noop(ctx):
    return None


def mk(name, requires=(), provides=(), phase=Phase.OPTIMIZE, **kw):
    return Pass(name=name, run=_noop, requires=tuple(requires), provides=tuple(provides), phase=phase, **kw)


@st.composite
def dags(draw):
    n = draw(st.integers(1, 25))
    passes = []
    for i in range(n):
        reqs = draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=4, unique=True)) if i else []
        phase = draw(st.sampled_from(list(Phase)))
        passes.append(mk(f"p{i:02d}", requires=[f"prop{j}" for j in reqs], provides=[f"prop{i}"], phase=phase))
    return passes


def assert_valid_order(order, passes):
    pos = {p.name: i for i, p in enumerate(order)}
    assert sorted(pos) == sorted(p.name for p in passes)
    providers = {prop: p.name for p in passes for prop in p.provides}
    for p in passes:
        for req in p.requires:
            assert pos[providers[req]] < pos[p.name], f"{providers[req]} must precede {p.name}"


@given(dags(), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_random_requirement_dags_give_a_valid_order_independent_of_discovery_order(passes, rnd):
    order, edges = order_passes(passes)
    assert_valid_order(order, passes)
    shuffled = list(passes)
    rnd.shuffle(shuffled)
    assert [p.name for p in order_passes(shuffled)[0]] == [p.name for p in order]
    assert all(a != b for a, b, _ in edges)


@given(dags(), st.data())
@settings(max_examples=100, deadline=None)
def test_adding_a_back_edge_creates_a_cycle_that_is_reported_by_name(passes, data):
    if len(passes) < 2:
        return
    order, _ = order_passes(passes)
    # make an early pass require what a later pass (that depends on it, directly or not) provides
    later = data.draw(st.integers(1, len(order) - 1))
    earlier = data.draw(st.integers(0, later - 1))
    a, b = order[earlier], order[later]
    # chain: b requires a's property, a requires b's property -> cycle a <-> b at least
    a2 = mk(a.name, requires=a.requires + b.provides, provides=a.provides, phase=a.phase)
    b2 = mk(b.name, requires=b.requires + a.provides, provides=b.provides, phase=b.phase)
    broken = [a2 if p.name == a.name else b2 if p.name == b.name else p for p in passes]
    with pytest.raises(PassResolutionError) as err:
        order_passes(broken)
    msg = str(err.value)
    assert msg.startswith("cycle in pass requirements: ")
    assert a.name in msg and b.name in msg


def test_cycle_in_requirements_is_an_error_naming_the_cycle():
    passes = [mk("x.a", requires=["c_out"], provides=["a_out"]), mk("x.b", requires=["a_out"], provides=["b_out"]),
              mk("x.c", requires=["b_out"], provides=["c_out"]), mk("x.d", provides=["d_out"])]
    with pytest.raises(PassResolutionError, match=r"cycle in pass requirements: x\.a -\[a_out\]-> x\.b, x\.b -\[b_out\]-> x\.c, x\.c -\[c_out\]-> x\.a"):
        order_passes(passes)


def test_requirement_with_no_provider_names_the_requirement_and_the_distribution():
    p = mk("lowering.emit", requires=["quantized"]).with_plugin("axdrive-lowering")
    with pytest.raises(PassResolutionError) as err:
        order_passes([p])
    msg = str(err.value)
    assert "'lowering.emit' (axdrive-lowering) requires 'quantized'" in msg
    assert "axdrive-quantizer" in msg


def test_missing_provider_that_is_blocked_says_so():
    p = mk("lowering.emit", requires=["quantized"])
    with pytest.raises(PassResolutionError, match=r"blocked \(-p no:quantizer\)"):
        order_passes([p], blocked=["quantizer"])


def test_ties_are_broken_by_phase_then_name():
    passes = [mk("z.emit", phase=Phase.EMIT), mk("b.import", phase=Phase.IMPORT), mk("a.import", phase=Phase.IMPORT),
              mk("m.quant", phase=Phase.QUANTIZE)]
    assert [p.name for p in order_passes(passes)[0]] == ["a.import", "b.import", "m.quant", "z.emit"]


def test_requirements_win_over_phase():
    passes = [mk("early", requires=["late_out"], phase=Phase.IMPORT), mk("late", provides=["late_out"], phase=Phase.EMIT)]
    assert [p.name for p in order_passes(passes)[0]] == ["late", "early"]


def test_duplicate_pass_names_are_an_error_naming_both_plugins():
    with pytest.raises(PassResolutionError, match="defined twice: by one and by two"):
        order_passes([mk("x").with_plugin("one"), mk("x").with_plugin("two")])


def test_pass_disabled_by_config_carries_the_flag_as_reason():
    cfg = SimpleNamespace(run_graph_cleaner=False)
    pipe = resolve_pipeline([mk("cleaner.split", enabled=when("run_graph_cleaner"))], cfg)
    (entry,) = pipe.entries
    assert not entry.enablement.enabled
    assert entry.enablement.reason == "run_graph_cleaner=false"


def test_disable_pass_option_skips_the_pass_and_names_the_option():
    pipe = resolve_pipeline([mk("a.one"), mk("a.two")], SimpleNamespace(), disabled=["a.two"])
    verdicts = {e.name: (e.enablement.enabled, e.enablement.reason) for e in pipe}
    assert verdicts == {"a.one": (True, "always"), "a.two": (False, "--disable-pass a.two")}


def test_disable_pass_with_an_unknown_name_is_an_error_with_a_suggestion():
    with pytest.raises(PassResolutionError, match=r"'a.tow' \(did you mean 'a.two'\?\)"):
        resolve_pipeline([mk("a.one"), mk("a.two")], SimpleNamespace(), disabled=["a.tow"])


def test_a_pass_needs_a_run_function_or_subpasses():
    with pytest.raises(ValueError, match="neither a run function nor sub-passes"):
        Pass(name="empty")


def test_order_is_stable_across_many_shuffles_of_a_real_sized_pipeline():
    rnd = random.Random(7)
    passes = [mk(f"s{i}", requires=[f"o{i-1}"] if i else [], provides=[f"o{i}"], phase=rnd.choice(list(Phase)))
              for i in range(30)]
    passes += [mk(f"free{i}", phase=rnd.choice(list(Phase))) for i in range(10)]
    ref = [p.name for p in order_passes(passes)[0]]
    for _ in range(20):
        rnd.shuffle(passes)
        assert [p.name for p in order_passes(passes)[0]] == ref


def test_a_pass_the_config_disables_may_require_what_nothing_provides():
    cfg = SimpleNamespace(enable_icr=False)
    passes = [mk("a.one", provides=["x"]), mk("b.icr", requires=["from_blocked_plugin"], enabled=when("enable_icr"))]
    pipe = resolve_pipeline(passes, cfg)
    assert [(e.name, e.enablement.enabled) for e in pipe] == [("a.one", True), ("b.icr", False)]
    with pytest.raises(PassResolutionError, match="requires 'from_blocked_plugin', which no installed pass provides"):
        resolve_pipeline(passes, SimpleNamespace(enable_icr=True))


# -- before= / after=: ordering a plugin's pass without a data dependency ----------------------------------------
def test_before_a_property_puts_a_pass_on_the_float_graph_even_with_a_later_phase(tmp_path):
    """The issue's case: a pass of phase LEGALIZE meant for the float graph. ``before=("quantized",)`` puts it
    before whatever quantizes, ``after=("graph_cleaned",)`` after the placement, and it sees float nodes."""
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from axdrive.passes import Phase, PluginHost, compiler_pass, hookimpl
    from test_byom import _three_convs

    seen = {}

    @compiler_pass("mine.look", phase=Phase.LEGALIZE, before=("quantized",), after=("graph_cleaned",))
    def look(ctx):
        """Record what the graph holds."""
        seen["quantized"] = any("integer_op" in n.attrs for n in ctx.graph.nodes)

    class Plugin:
        @hookimpl
        def axdrive_passes(self):
            return [look]

    host = PluginHost()
    host.register(Plugin(), name="mine")
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(_three_convs(tmp_path), CompilerConfig(), output_dir=tmp_path / "out", calibration=cal,
                         plugins=host)
    names = res.pipeline
    assert names.index("graph_cleaner.split") < names.index("mine.look") < names.index("quantizer.quantize")
    assert seen == {"quantized": False}


def test_ordering_names_are_validated_and_a_contradiction_is_a_cycle(host):
    from axdrive.errors import PassResolutionError
    from axdrive.passes import compiler_pass, order_passes

    @compiler_pass("x.load", provides=("graph_loaded",))
    def load(ctx):
        """Load."""

    @compiler_pass("x.a", requires=("graph_loaded",), before=("x.lod",))
    def a(ctx):
        """Misspelt."""

    with pytest.raises(PassResolutionError, match=r"pass 'x.a' \(unknown plugin\) is to run before 'x.lod', which "
                                                  r"names no installed pass .* \(did you mean 'x.load'\?\)"):
        order_passes([load, a])

    @compiler_pass("x.b", requires=("graph_loaded",), before=("graph_loaded",))
    def b(ctx):
        """Needs what it wants to precede."""

    with pytest.raises(PassResolutionError, match=r"cycle in pass requirements: "):
        order_passes([load, b])
    order, edges = order_passes([load, a.__class__(**{**a.__dict__, "before": ("x.load",), "requires": ()})])
    assert [p.name for p in order] == ["x.a", "x.load"] and ("x.a", "x.load", "before x.load") in edges
