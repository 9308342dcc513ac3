"""The pass API: what a plugin uses to contribute compiler passes.

See :mod:`axdrive.passes.hookspec` for the hooks and ``docs/writing-a-pass-plugin.md``
for a walk-through.
"""

from ._context import FIRST_SEGMENT, CompileSession, PassContext, Segment
from ._pass import Enablement, Pass, Phase, all_of, always, compiler_pass, pass_group, when, when_mode, when_not
from ._manager import PassManager
from ._options import PluginOption, option_schema, resolve_options
from ._plugins import (AUTOLOAD_ENV, BUILTIN_DISTRIBUTIONS, BUILTIN_ENV, ENTRY_POINT_GROUP, PluginHost, PluginInfo,
                       default_operators)
from ._resolve import Pipeline, PipelineEntry, WELL_KNOWN_PROVIDERS, evaluate, order_passes, resolve_pipeline
from ._stash import Stash, StashKey
from .hookspec import hookimpl, hookspec

__all__ = [
    "AUTOLOAD_ENV",
    "BUILTIN_DISTRIBUTIONS",
    "BUILTIN_ENV",
    "CompileSession",
    "ENTRY_POINT_GROUP",
    "FIRST_SEGMENT",
    "Enablement",
    "Pass",
    "PassContext",
    "PassManager",
    "Phase",
    "Pipeline",
    "PipelineEntry",
    "PluginHost",
    "PluginInfo",
    "PluginOption",
    "Segment",
    "Stash",
    "StashKey",
    "WELL_KNOWN_PROVIDERS",
    "all_of",
    "always",
    "compiler_pass",
    "default_operators",
    "evaluate",
    "hookimpl",
    "hookspec",
    "option_schema",
    "order_passes",
    "pass_group",
    "resolve_options",
    "resolve_pipeline",
    "when",
    "when_mode",
    "when_not",
]
