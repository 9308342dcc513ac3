"""Finding and loading pass plugins.

Plugins are found through the ``axdrive.passes`` entry-point group, exactly
like pytest's ``pytest11``. As in pytest, a user can load a module explicitly
(``-p MODULE``), block an installed plugin (``-p no:NAME``), and switch off
autoloading of third-party plugins with the environment variable
``AXDRIVE_DISABLE_PLUGIN_AUTOLOAD=1``: axdrive's own distributions
(:data:`BUILTIN_DISTRIBUTIONS`) still load, as pytest's built-in plugins do.
Built-in instruments are registered as internal plugins the same way.
"""

from __future__ import annotations

__all__ = ["PluginHost", "PluginInfo", "ENTRY_POINT_GROUP", "AUTOLOAD_ENV", "BUILTIN_ENV", "BUILTIN_DISTRIBUTIONS", "default_operators"]

import importlib
import os
from dataclasses import dataclass, replace
from importlib import metadata
from typing import TYPE_CHECKING, Any, Iterable

import pluggy

from ..errors import PluginError, PassResolutionError
from . import hookspec
from ._options import PluginOption
from ._pass import Pass

if TYPE_CHECKING:  # pragma: no cover
    from ..operators import OperatorRegistry

ENTRY_POINT_GROUP = "axdrive.passes"
AUTOLOAD_ENV = "AXDRIVE_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_ENV = "AXDRIVE_DISABLE_BUILTIN_PLUGINS"
#: axdrive's own pass distributions: the compiler itself, split into plugins. They load whether or not
#: autoloading is on (``AXDRIVE_DISABLE_PLUGIN_AUTOLOAD=1`` stops third-party entry points only, as
#: ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` keeps pytest's built-in plugins); ``-p no:NAME`` still blocks one.
BUILTIN_DISTRIBUTIONS = frozenset({
    "axdrive-frontend", "axdrive-graph-cleaner", "axdrive-quantizer", "axdrive-lowering", "axdrive-icr",
    "axdrive-dpu-alloc", "axdrive-tiling", "axdrive-memplan", "axdrive-scheduler", "axdrive-hw"})


def _canonical(name: str) -> str:
    """A distribution name as packaging compares them (``axdrive_frontend`` == ``axdrive-frontend``)."""
    return name.lower().replace("_", "-").replace(".", "-")


@dataclass(frozen=True)
class PluginInfo:
    """A registered plugin: its registration name, distribution and version."""

    name: str
    distribution: str
    version: str
    source: str  # "entry-point", "-p", "internal"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


class PluginHost:
    """The pluggy plugin manager plus the bookkeeping axdrive needs around it."""

    def __init__(
        self,
        *,
        load: Iterable[str] = (),
        block: Iterable[str] = (),
        autoload: bool | None = None,
        internal: bool = True,
        builtin: bool | None = None,
    ) -> None:
        """``autoload``: load third-party entry points (default: unless ``AXDRIVE_DISABLE_PLUGIN_AUTOLOAD``);
        ``builtin``: load axdrive's own pass distributions (default: unless ``AXDRIVE_DISABLE_BUILTIN_PLUGINS``,
        which leaves an empty registry for testing a pass in isolation)."""
        self.pm = pluggy.PluginManager(hookspec.PROJECT_NAME)
        self.pm.add_hookspecs(hookspec)
        self.blocked: set[str] = set(block)
        self.plugins: list[PluginInfo] = []
        self._passes: list[Pass] | None = None
        self._operators: Any = None
        self._options: Any = None
        if autoload is None:
            autoload = not _truthy(os.environ.get(AUTOLOAD_ENV))
        self.autoload = autoload
        if builtin is None:
            builtin = not _truthy(os.environ.get(BUILTIN_ENV))
        self.builtin = builtin
        for name in self.blocked:
            self.pm.set_blocked(name)
        if internal:
            from ..instruments import internal_plugins

            for name, plugin in internal_plugins():
                self._register(plugin, PluginInfo(name, "axdrive", _version("axdrive"), "internal"))
        if autoload or builtin:
            self._load_entry_points(builtin=builtin, third_party=autoload)
        for module_name in load:
            self.load_module(module_name)
        self._check_blocked(load)

    def _check_blocked(self, load: Iterable[str]) -> None:
        """``-p no:NAME`` must name a plugin (an entry point, its distribution, an internal plugin or a module
        given with ``-p``): a misspelt block would otherwise leave the plugin running, silently."""
        if not self.blocked:
            return
        from ..errors import UsageError, did_you_mean
        from ..instruments import internal_plugins

        known = {name for name, _ in internal_plugins()} | set(load) | {p.name for p in self.plugins}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            known |= {ep.name, ep.dist.name if ep.dist is not None else ep.module}
        for name in sorted(self.blocked - known):
            raise UsageError(f"-p no:{name}: no plugin is named {name!r}{did_you_mean(name, sorted(known))}")

    @classmethod
    def from_args(cls, plugin_args: Iterable[str] = ()) -> "PluginHost":
        """Build from ``-p`` arguments: ``MODULE`` loads, ``no:NAME`` blocks."""
        load, block = [], []
        for arg in plugin_args:
            if arg.startswith("no:"):
                block.append(arg[3:])
            else:
                load.append(arg)
        return cls(load=load, block=block)

    # -- loading ---------------------------------------------------------
    def _register(self, plugin: Any, info: PluginInfo) -> None:
        if self.pm.is_blocked(info.name):
            return
        self.pm.register(plugin, name=info.name)
        self.plugins.append(info)
        self._passes = None
        self._operators = None
        self._options = None

    def _load_entry_points(self, *, builtin: bool, third_party: bool) -> None:
        """The ``axdrive.passes`` entry points of axdrive's own distributions (``builtin``) and of the others
        (``third_party``): autoload off keeps the built-in ones, as pytest's does."""
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
        for ep in eps:
            dist = ep.dist.name if ep.dist is not None else ep.module
            if ep.name in self.blocked or dist in self.blocked:
                continue
            if not (builtin if _canonical(dist) in BUILTIN_DISTRIBUTIONS else third_party):
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # the plugin's own import error
                raise PluginError(
                    f"plugin {ep.name!r} (distribution {dist!r}) failed to import: "
                    f"{type(exc).__name__}: {exc}; block it with -p no:{ep.name}",
                    plugin=dist,
                ) from exc
            version = ep.dist.version if ep.dist is not None else "0"
            self._register(plugin, PluginInfo(ep.name, dist, version, "entry-point"))

    def load_module(self, module_name: str) -> None:
        """``-p MODULE``: import and register a module as a plugin."""
        if self.pm.has_plugin(module_name):
            return
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(
                f"-p {module_name}: cannot import plugin module: {type(exc).__name__}: {exc}",
                plugin=module_name,
            ) from exc
        dist = _distribution_of(module_name)
        self._register(module, PluginInfo(module_name, dist or module_name, _version(dist) if dist else "0", "-p"))

    def register(self, plugin: Any, name: str, distribution: str | None = None, *, internal: bool = False) -> None:
        """Register an in-process plugin object (tests, the Python API).

        ``internal`` marks axdrive's own helpers that watch a compile without
        changing it (the CLI's progress display): like the built-in hook
        implementations they are not listed in the manifest, so the CLI and
        the Python API write byte-identical manifests."""
        source = "internal" if internal else "api"
        self._register(plugin, PluginInfo(name, distribution or name, _version("axdrive") if internal else "0", source))

    # -- queries ---------------------------------------------------------
    @property
    def hook(self) -> Any:
        return self.pm.hook

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def passes(self) -> list[Pass]:
        """All passes contributed by registered plugins, stamped with their distribution."""
        if self._passes is not None:
            return self._passes
        result: list[Pass] = []
        seen: dict[str, str] = {}
        for dist, _, contributed in self._contributions("axdrive_passes", Pass, "axdrive.passes.Pass"):
            for p in contributed:
                if p.name in seen:
                    raise PassResolutionError(f"pass {p.name!r} is defined twice: by {seen[p.name]} and by {dist}")
                seen[p.name] = dist
                result.append(p.with_plugin(dist))
        self._passes = result
        return result

    @property
    def options(self) -> "dict[str, PluginOption]":
        """Every option the registered plugins declare (``axdrive_addoption``), by ``namespace.name``."""
        if self._options is not None:
            return self._options
        declared: dict[str, PluginOption] = {}
        for dist, name, answer in self._contributions("axdrive_addoption", PluginOption,
                                                      "axdrive.passes.PluginOption"):
            for opt in answer:
                opt = opt if opt.namespace else replace(opt, namespace=name)
                if opt.key in declared:
                    raise PluginError(f"plugin option {opt.key!r} is declared twice", plugin=dist)
                declared[opt.key] = opt
        self._options = dict(sorted(declared.items()))
        return self._options

    @property
    def operators(self) -> "OperatorRegistry":
        """The operator registry of the registered plugins (``axdrive_operators``), built once."""
        if self._operators is not None:
            return self._operators
        from ..operators import OperatorRule, build_registry

        # in call order, as pluggy calls any hook (the latest registered first): a plugin loaded with ``-p``
        # comes before the built-in ones, so its rule for an operator they also handle is tried first
        answers = [(dist, rules) for dist, _, rules in reversed(
            self._contributions("axdrive_operators", OperatorRule, "axdrive.operators.OperatorRule"))]
        try:
            self._operators = build_registry(answers)
        except (TypeError, ValueError) as exc:
            raise PluginError(f"operator registry: {exc}") from exc
        return self._operators

    def _contributions(self, hook: str, kind: type, kind_name: str) -> list[tuple[str, str, list[Any]]]:
        """``(distribution, plugin name, items)`` per implementation of the list-returning ``hook``, in
        registration order, each item checked to be a ``kind``: a plugin that raises or returns something else
        is one :class:`PluginError` naming it."""
        out = []
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            info = self.info(impl.plugin_name)
            dist = info.distribution if info else impl.plugin_name
            try:
                items = list(impl.function() or ())
            except Exception as exc:
                raise PluginError(f"plugin {dist!r} failed in {hook}(): {type(exc).__name__}: {exc}",
                                  plugin=dist) from exc
            for item in items:
                if not isinstance(item, kind):
                    raise PluginError(f"plugin {dist!r} returned {type(item).__name__} from {hook}(), expected "
                                      f"{kind_name}", plugin=dist)
            out.append((dist, impl.plugin_name, items))
        return out

    def presets(self, model_name: str) -> list[tuple[str, dict[str, Any]]]:
        """``(plugin, presets)`` answers for ``model_name``, earliest-registered last."""
        answers = []
        for impl in self.pm.hook.axdrive_config_presets.get_hookimpls():
            value = impl.function(*[{"model_name": model_name}[a] for a in impl.argnames])
            if value:
                info = self.info(impl.plugin_name)
                answers.append((info.distribution if info else impl.plugin_name, dict(value)))
        return answers


def _version(dist: str | None) -> str:
    if not dist:
        return "0"
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "0"


def _distribution_of(module_name: str) -> str | None:
    top = module_name.split(".")[0]
    mapping = metadata.packages_distributions()
    dists = mapping.get(top)
    return dists[0] if dists else None


_DEFAULT: list[Any] = []


def default_operators() -> "OperatorRegistry":
    """The operator registry of the installed plugins, for code that runs outside a compile (tests, tools).

    Inside a pass, use ``ctx.operators``: it honours the compile's ``-p`` and ``-p no:`` choices."""
    if not _DEFAULT:
        _DEFAULT.append(PluginHost().operators)
    return _DEFAULT[0]
