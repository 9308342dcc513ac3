"""Options of plugins: what ``pytest_addoption`` is to pytest, ``axdrive_addoption`` is to axdrive.

Why not compiler properties: the 93 properties are the seed contract
(``../shared/spec``), the same for every installation. A plugin's knobs exist
only where the plugin is installed, so they live beside the properties,
namespaced by the plugin (``example.top``), declared with a type, a default and
a range, and checked as strictly: an unknown name gets a did-you-mean, a bad
value one line naming the option and what it accepts. The user sets them with
``axdrive compile --option example.top=5`` or an ``[options]`` table of the
config file; a pass reads ``ctx.options["example.top"]``; the manifest records
every declared option's value.
"""

from __future__ import annotations

__all__ = ["PluginOption", "resolve_options", "option_schema"]

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError, ConfigProblem, did_you_mean

_TYPES = ("bool", "int", "float", "str")


@dataclass(frozen=True)
class PluginOption:
    """One option a plugin declares: ``name`` (without the namespace), ``type`` (``bool``, ``int``, ``float`` or
    ``str``), ``default``, a one-line ``help``, and for numbers ``minimum`` / ``maximum``, for strings
    ``choices``. ``namespace`` defaults to the plugin's registered name (its entry point's name, or the module
    given to ``-p``); give it yourself to keep the option's name the same however the plugin is loaded."""

    name: str
    type: str
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    namespace: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"plugin option name {self.name!r} must be an identifier")
        if self.type not in _TYPES:
            raise ValueError(f"plugin option {self.name!r}: type {self.type!r} is not one of {', '.join(_TYPES)}")
        object.__setattr__(self, "choices", tuple(self.choices))
        self.check(self.default)  # a bad default is the plugin's bug: found when it registers

    @property
    def key(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    def allowed(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        bounds = [f">= {self.minimum:g}" if self.minimum is not None else "",
                  f"<= {self.maximum:g}" if self.maximum is not None else ""]
        limits = " and ".join(b for b in bounds if b)
        return f"{'an' if self.type == 'int' else 'a'} {self.type}" + (f" {limits}" if limits else "")

    def check(self, value: Any) -> Any:
        """The typed value of ``value`` (a string from the command line is parsed), or ValueError saying why not."""
        v = value
        if self.type == "bool":
            if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                v = v.strip().lower() in ("true", "1", "yes", "on")
            if not isinstance(v, bool):
                raise ValueError(f"must be {self.allowed()}")
        elif self.type in ("int", "float"):
            if isinstance(v, str):
                try:
                    v = int(v) if self.type == "int" else float(v)
                except ValueError:
                    raise ValueError(f"must be {self.allowed()}") from None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (self.type == "int" and not isinstance(v, int)):
                raise ValueError(f"must be {self.allowed()}")
            v = float(v) if self.type == "float" else v
            if v != v or v in (float("inf"), float("-inf")) or (self.minimum is not None and v < self.minimum) or \
                    (self.maximum is not None and v > self.maximum):
                raise ValueError(f"must be {self.allowed()}")
        else:
            if not isinstance(v, str) or (self.choices and v not in self.choices):
                raise ValueError(f"must be {self.allowed()}")
        return v


def resolve_options(declared: Mapping[str, PluginOption], given: Mapping[str, Any],
                    source: str | None = None) -> dict[str, Any]:
    """Every declared option's value (the default where not given), sorted by key; every problem in one
    :class:`ConfigError` (an unknown key with a did-you-mean, a bad value with what the option accepts)."""
    problems: list[ConfigProblem] = []
    values = {key: opt.default for key, opt in declared.items()}
    for key, raw in given.items():
        opt = declared.get(key)
        if opt is None:
            known = sorted(declared)
            hint = did_you_mean(key, known) or (f" (declared: {', '.join(known)})" if known else
                                                " (no installed plugin declares options)")
            problems.append(ConfigProblem(key, ..., f"unknown plugin option{hint}", source))
            continue
        try:
            values[key] = opt.check(raw)
        except ValueError as exc:
            problems.append(ConfigProblem(key, raw, str(exc), source))
    if problems:
        raise ConfigError(problems)
    return dict(sorted(values.items()))


def option_schema(declared: Mapping[str, PluginOption]) -> dict[str, Any]:
    """JSON Schema of the config file's ``[options]`` table for the declared options."""
    def one(opt: PluginOption) -> dict[str, Any]:
        kind = {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}[opt.type]
        doc: dict[str, Any] = {"type": kind, "default": opt.default, "description": opt.help}
        if opt.minimum is not None:
            doc["minimum"] = opt.minimum
        if opt.maximum is not None:
            doc["maximum"] = opt.maximum
        if opt.choices:
            doc["enum"] = list(opt.choices)
        return doc

    return {"type": "object", "additionalProperties": False,
            "description": "Options of installed plugins (NAMESPACE.NAME), beside the compiler properties.",
            "properties": {key: one(opt) for key, opt in sorted(declared.items())}}
