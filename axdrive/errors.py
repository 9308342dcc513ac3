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
    "short_repr",
    "clip_text",
    "did_you_mean",
    "InputFileError",
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
    "OutputError",
    "Interrupted",
]

import os
import reprlib
from dataclasses import dataclass


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` for an error message: one line of at most ``limit`` characters (what is cut is marked
    ``...``; a cut at the end of the line ends it with ``...``).

    The work is bounded whatever the value: strings and containers are cut *before* they are rendered
    (a 10 MB string, a million-item list or a 900-level nesting cost no more than a short one), so a hostile
    input cannot make the message that reports it huge or slow.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 512:
        text = f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    else:
        try:
            text = (_SHORT if limit <= _SHORT.maxstring else _long_repr(limit)).repr(value)
        except Exception:  # a __repr__ that raises; an int over the digit limit inside a container
            text = f"<{type(value).__name__}>"
    return clip_text(text.replace("\r", "\\r").replace("\n", "\\n"), limit)


def did_you_mean(value: object, choices: object) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``; bounded work for any ``value``."""
    import difflib

    names = [str(c) for c in choices]  # type: ignore[attr-defined]
    # a value over 2.4x the longest choice cannot reach the 0.6 ratio: skip difflib, whose cost grows with it
    if not names or len(str(value)) > 3 * max(len(n) for n in names):
        return ""
    close = difflib.get_close_matches(str(value), names, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def clip_text(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, ending with ``...`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _long_repr(limit: int) -> reprlib.Repr:
    r = reprlib.Repr()
    r.maxlevel, r.maxdict = 3, 6
    r.maxlist = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdeque = r.maxarray = 8
    r.maxstring = r.maxother = r.maxlong = limit
    return r


_SHORT = _long_repr(200)  # strings and reprs are cut to 200 characters before the final cut to ``limit``


class AxdriveError(Exception):
    """Base class. ``exit_code`` is what the CLI returns for it."""

    exit_code: int = 1


class UsageError(AxdriveError):
    """A command-line or API misuse (bad option, missing argument)."""

    exit_code = 2


class InputFileError(UsageError):
    """A user's input file refused before it is parsed: missing, unreadable, not a regular file, over its size
    limit. ``str()`` is ``PATH: REASON``; ``path`` and ``reason`` are kept for callers that word it their own way."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid configuration entry: which property, what value, what is allowed.

    The message shows the property name and the value cut to 80 characters (:func:`short_repr`), so a
    10 MB string or a deeply nested list in a config file gives a short line. ``prop="<file>"`` with no value
    (``...``) is a problem of the file as a whole and reads ``FILE: PROBLEM``.
    """

    prop: str
    value: object
    allowed: str
    source: str | None = None  # file the value came from, if any

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        prop = clip_text(str(self.prop).replace("\r", "\\r").replace("\n", "\\n"))
        if self.value is ...:  # no value to show (an unknown key, a malformed entry, the whole file)
            if self.prop == "<file>" and self.source:
                return f"{where}{self.allowed}"
            return f"{where}{prop}: {self.allowed}"
        return f"{where}{prop}={short_repr(self.value)} is invalid: {self.allowed}"


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
    """An operator the pipeline (or the hardware) cannot handle.

    ``reasons`` maps the ONNX node names of the user's model the error is about to why each cannot run:
    with host fallback on, the driver compiles again with those nodes on the host
    (:func:`axdrive.driver.compile`), so a back-end refusal the graph cleaner could not foresee costs a
    recompile, not the compile."""

    def __init__(self, message: str, *, file: str | None = None, node: str | None = None,
                 reasons: "dict[str, str] | None" = None):
        super().__init__(message, file=file, node=node)
        self.reasons = dict(reasons or {})


class CalibrationError(AxdriveError):
    """Calibration data is unusable (bad shape/dtype, NaN, empty folder, undecodable file)."""


class PassResolutionError(AxdriveError):
    """The pass pipeline cannot be ordered: a cycle or a requirement nobody provides. A usage error (exit 2):
    the set of plugins and options the user assembled cannot make a compiler."""

    exit_code = 2


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


class OutputError(AxdriveError):
    """An output could not be written (full disk, no permission, a path axdrive will not replace)."""


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) arrived: unwinds like ``KeyboardInterrupt`` so every ``finally`` cleans up.

    A ``BaseException``, not an ``AxdriveError``: no ``except Exception`` in a
    pass or plugin may swallow it. ``exit_code`` is 128 + the signal number, as
    shells report a process ended by that signal.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
