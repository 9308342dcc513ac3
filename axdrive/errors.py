"""The error hierarchy every part of axdrive raises.

Why one module: the CLI maps each class to an exit code and prints
``str(error)`` as a single line, so every error must say *what* is wrong and
*where* (file, node, property, allowed range) in its message. Tracebacks are
only shown with ``--verbose``.

Exit codes (``../shared/spec/interfaces.md``): 1 compile/run failure,
2 usage or configuration error.
"""

from __future__ import annotations

__all__ = [
    "AxdriveError",
    "UsageError",
    "ConfigError",
    "ConfigProblem",
    "ModelError",
    "UnsupportedOperatorError",
    "CalibrationError",
    "PassResolutionError",
    "PluginError",
    "MemoryPlanError",
    "ProgramFormatError",
    "SimulationError",
]

from dataclasses import dataclass


class AxdriveError(Exception):
    """Base class. ``exit_code`` is what the CLI returns for it."""

    exit_code: int = 1


class UsageError(AxdriveError):
    """A command-line or API misuse (bad option, missing argument)."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid configuration entry: which property, what value, what is allowed."""

    prop: str
    value: object
    allowed: str
    source: str | None = None  # file the value came from, if any

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        if self.value is ...:  # no value to show (an unknown key, a malformed entry)
            return f"{where}{self.prop}: {self.allowed}"
        return f"{where}{self.prop}={self.value!r} is invalid: {self.allowed}"


class ConfigError(UsageError):
    """One or more invalid configuration values, all reported at once."""

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem):
        if isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems: list[ConfigProblem] = list(problems)
        if len(self.problems) == 1:
            msg = str(self.problems[0])
        else:
            msg = f"{len(self.problems)} config errors: " + "; ".join(str(p) for p in self.problems)
        super().__init__(msg)


class ModelError(AxdriveError):
    """The input model is malformed or cannot be imported.

    ``node`` is the ONNX node name (or tensor name) where the problem is, when known.
    """

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None):
        self.file = file
        self.node = node
        parts = []
        if file:
            parts.append(str(file))
        if node:
            parts.append(f"node {node!r}")
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class UnsupportedOperatorError(ModelError):
    """An operator the pipeline (or the hardware) cannot handle."""


class CalibrationError(AxdriveError):
    """Calibration data is unusable (bad shape/dtype, NaN, empty folder, undecodable file)."""


class PassResolutionError(AxdriveError):
    """The pass pipeline cannot be ordered: a cycle or a requirement nobody provides."""


class PluginError(AxdriveError):
    """A pass plugin raised. The message names plugin, pass and model node where known."""

    def __init__(self, message: str, *, plugin: str | None = None, pass_name: str | None = None,
                 node: str | None = None):
        self.plugin = plugin
        self.pass_name = pass_name
        self.node = node
        super().__init__(message)


class MemoryPlanError(AxdriveError):
    """Memory limits cannot be met: names layer, memory level, bytes needed/available, property."""


class ProgramFormatError(AxdriveError):
    """A ``program.bin`` / ``program.json`` is corrupt, truncated or of an unknown version."""


class SimulationError(AxdriveError):
    """The simulated AIPU stopped: out-of-bounds or uninitialised access, overlap; names task and address."""
