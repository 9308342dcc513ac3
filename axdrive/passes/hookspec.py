"""The plugin contract: every hook a pass plugin may implement.

This module is the whole interface between the axdrive core and its plugins,
in the manner of pytest's ``hookspec.py``. The core defines these hooks and
runs them; every compiler pass, including the built-in ones, arrives through
them from a distribution registered in the ``axdrive.passes`` entry-point
group (or loaded explicitly with ``-p MODULE``).

A minimal plugin module::

    from axdrive.passes import hookimpl, compiler_pass, Phase

    @compiler_pass("example.count_ops", requires=("graph_loaded",),
                   provides=("op_histogram",), phase=Phase.OPTIMIZE)
    def count_ops(ctx):
        '''Count nodes per operator type.'''
        hist = {}
        for node in ctx.graph.nodes:
            hist[node.op] = hist.get(node.op, 0) + 1
        return {"nodes": sum(hist.values()), "op_types": len(hist)}

    @hookimpl
    def axdrive_passes():
        return [count_ops]

and in its ``pyproject.toml``::

    [project.entry-points."axdrive.passes"]
    example = "axdrive_example_plugin"

Hooks are called with keyword arguments; an implementation may accept any
subset of the parameters listed. ``firstresult`` hooks stop at the first
non-``None`` answer. Instruments (timing, IR dumps, the verifier) are
``wrapper=True`` implementations of :func:`axdrive_pass_execute`; they wrap
every pass from the outside, so passes never time or print themselves.
"""

from __future__ import annotations

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CompilerConfig
    from ._context import CompileSession, PassContext
    from ..ir import Graph, Node
    from ..operators import OperatorRegistry, OperatorRule
    from ..runner import DeviceRuntime
    from ._options import PluginOption
    from ._pass import Pass

PROJECT_NAME = "axdrive"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def axdrive_passes() -> "list[Pass]":
    """Return the passes this plugin contributes.

    Called once per plugin when the pass registry is built (for ``axdrive
    passes`` and for every compile). Each returned :class:`~axdrive.passes.Pass`
    is stamped with the plugin's distribution name. Pass names must be unique
    across all plugins; a duplicate is an error naming both plugins.
    """


@hookspec
def axdrive_config_presets(model_name: str) -> "Mapping[str, Any] | None":
    """Return config presets for ``model_name`` (or ``None`` if you have none).

    Called once per compile, before the pipeline is resolved, when
    ``model_name`` is not empty. The presets only fill properties the user did
    not set explicitly; they are validated like user input and recorded in the
    manifest under ``presets`` with the plugin that gave them. When several
    plugins answer, later-registered plugins are applied first, so the earliest
    registered wins for a property both set.
    """


@hookspec
def axdrive_configure(config: "CompilerConfig") -> None:
    """Check plugin-specific combinations of the resolved config.

    Called once per compile after presets are applied and before any pass
    runs. Raise :class:`axdrive.errors.ConfigError` to reject the config; the
    compile then fails with exit code 2 before any output is written.
    """


@hookspec
def axdrive_compile_start(session: "CompileSession") -> None:
    """Called when a compile starts, after the pipeline is resolved and before
    its first pass. ``session.pipeline`` is the resolved pipeline."""


@hookspec
def axdrive_compile_finish(session: "CompileSession", error: "BaseException | None") -> None:
    """Called when a compile ends, successfully (``error is None``) or not.

    Runs before artifacts are committed to their final names (so an
    implementation may still add files through ``session.artifacts``) and
    before the trace files are written.
    """


@hookspec
def axdrive_host_reason(graph: "Graph", node: "Node", config: "CompilerConfig",
                        operators: "OperatorRegistry") -> "str | None":
    """Why ``node`` of the float ``graph`` cannot run on the accelerator, or ``None`` if you see no reason.

    Asked of every plugin for every node by a partitioning pass (the graph
    cleaner's ``graph_cleaner.split``) before quantization; every answer is
    collected. A node with a reason runs on the host in float, in a host part
    of its own between the device segments around it, and the reason is what the
    compile report and ``axdrive run`` users read, so say it in the user's
    terms: ``"LSTM has no integer kernel"``, ``"output rank 3; the AIPU stores
    NCHW or NC tensors"``. ``operators`` is the compile's operator registry:
    the built-in quantizer answers from its ``int8`` rules and the lowering from
    its ``aipu`` rules, so a plugin that only adds an operator registers rules
    (``axdrive_operators``) and need not answer here; this hook is for reasons
    the registry cannot state (a policy, a budget). ``config`` is the compile's configuration (the built-in lowering answers
    in ``quantize_only`` too, so that mode's core is what a later
    ``lower_only`` compile lowers; not in ``lower_only``, whose QDQ model places
    nothing anew).
    """


@hookspec
def axdrive_addoption() -> "list[PluginOption] | None":
    """Return the options this plugin adds, beside the compiler properties (``pytest_addoption`` for axdrive).

    Each :class:`axdrive.passes.PluginOption` is namespaced by the plugin's
    name: the example plugin (entry point ``example``) declaring ``top`` gets
    ``example.top``. Users set it with ``--option example.top=5`` or an
    ``[options]`` table of the config file; passes read
    ``ctx.options["example.top"]``; ``axdrive config show`` and
    ``axdrive config schema`` list it; the manifest records its value.
    """


@hookspec
def axdrive_promises(config: "CompilerConfig") -> "Iterable[str] | None":
    """Return the properties a compile with ``config`` must provide for this plugin's product to exist.

    The built-in plugins promise what ``compiler_mode`` says a compile writes:
    the frontend a loaded graph, the quantizer a quantized graph and
    ``quantized_model.onnx`` in a quantizing mode, the lowering a program in a
    lowering mode. Before anything runs, every promised property must have an
    enabled pass in the pipeline that provides it; otherwise the compile stops
    with one line naming the property, the mode and what took its provider
    away (``--disable-pass``, ``-p no:``, a predicate). ``--stop-after`` lifts
    the check: the user asked for less.
    """


@hookspec
def axdrive_operators() -> "list[OperatorRule]":
    """Return this plugin's rules for ONNX operators: the entries of the operator registry.

    Each :class:`axdrive.operators.OperatorRule` says, for one operator, that
    a pass rewrites it before quantization (``role="rewrite"``), that an
    integer kernel quantizes it (``"int8"``, ``kind=`` the kernel), or that a
    unit of the AIPU runs it (``"aipu"``, ``unit=``), under constraints that
    are words and predicates at once (:class:`axdrive.operators.Constraint`).
    The built-in plugins register theirs this way; the registry
    (``ctx.operators``) is what the quantizer dispatches on, what lowering
    validates against, what tiling and code generation ask for a node's unit,
    what places a node on the host, and what ``axdrive ops`` prints. Rules of
    a plugin registered later (``-p``) are tried first.
    """


@hookspec(firstresult=True)
def axdrive_pass_execute(pass_: "Pass", ctx: "PassContext") -> "Mapping[str, Any] | None":
    """Execute one pass and return its statistics.

    The core's own implementation (registered last, so it is the innermost
    call) runs ``pass_.run(ctx)`` followed by the pass's sub-passes. Other
    plugins implement this hook with ``@hookimpl(wrapper=True)`` to
    *instrument* every pass from outside, e.g.::

        @hookimpl(wrapper=True)
        def axdrive_pass_execute(pass_, ctx):
            before = len(ctx.graph.nodes)
            stats = yield              # the pass runs here; exceptions propagate
            ctx.log.info("nodes", before=before, after=len(ctx.graph.nodes))
            return stats

    Built-in instruments: pass tracing (spans and structlog context), IR dump
    before/after a pass (``--dump-ir``), and the IR verifier in debug mode.
    """


@hookspec
def axdrive_pass_skipped(pass_: "Pass", ctx: "PassContext", reason: str) -> None:
    """Called instead of :func:`axdrive_pass_execute` for a pass that does not
    run: disabled by the config (``reason`` names the flag), by
    ``--disable-pass``, or because none of the providers of one of its
    requirements ran."""


@hookspec(firstresult=True)
def axdrive_runtime(target: str) -> "DeviceRuntime | None":
    """Return the host runtime that executes compiled programs for ``target``,
    or ``None`` if this plugin has none for it.

    Called by ``axdrive run`` (:func:`axdrive.run`) once per run, with the
    target name the output directory records (``manifest.json`` ``"target"``,
    ``aipu_v1`` when none is recorded). The first non-``None`` answer wins. It
    is a hook, not an import, so the core never depends on a hardware
    distribution: without one installed, ``axdrive run`` fails with one line
    naming the target and the distribution to install.

    The answer must satisfy :class:`axdrive.runner.DeviceRuntime`: a
    ``distribution`` name and ``run(output_dir, inputs, *, config, profile)``
    returning an object with ``outputs`` (device tensors by name), ``report``
    (cycles, seconds, per-unit busy), ``trace_lines`` and ``chrome_trace``
    (``None`` unless ``profile`` names levels), and optionally a method
    ``figures()`` returning the run's figures as ``{file name: SVG text}``
    (``axdrive run --figures`` writes them; a result without it makes that
    option a usage error). ``axdrive-hw`` answers for its built-in targets::

        @hookimpl
        def axdrive_runtime(target):
            if target not in builtin_targets():
                return None
            from axdrive_hw.runtime import AipuRuntime   # heavy: imported only when asked

            return AipuRuntime(target)

    Keep the module that implements this hook light to import (it is loaded
    for every compile); import the runtime itself inside the implementation.
    """
