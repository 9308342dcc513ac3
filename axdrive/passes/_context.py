"""The state a compile carries and the view of it a pass gets.

``CompileSession`` holds everything of one compile (config, current IR,
stash, staged artifacts, report sections, tracer). ``PassContext`` is what a
pass receives: the session seen from one pass, with a logger already bound to
the pass's span so every line it logs carries the pass context.
"""

from __future__ import annotations

__all__ = ["CompileSession", "PassContext"]

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._stash import Stash

if TYPE_CHECKING:  # pragma: no cover
    from ..artifacts import ArtifactStage
    from ..config import CompilerConfig
    from ..tracing import Tracer
    from ._pass import Pass
    from ._plugins import PluginHost
    from ._resolve import Pipeline


@dataclass
class CompileSession:
    """One compile. Created by the driver; plugins read it through hooks."""

    config: "CompilerConfig"
    host: "PluginHost"
    tracer: "Tracer"
    artifacts: "ArtifactStage | None" = None
    model: Any = None  # the path or ModelProto the user gave
    model_path: Path | None = None
    inputs: dict[str, Any] = field(default_factory=dict)  # e.g. calibration=..., input_shapes=...
    options: dict[str, Any] = field(default_factory=dict)  # driver options: verify, dump_ir_dir, ...
    graph: Any = None  # the current IR (axdrive.ir.Graph once loaded)
    stash: Stash = field(default_factory=Stash)
    report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pipeline: "Pipeline | None" = None
    provided: dict[str, list[str]] = field(default_factory=dict)  # property -> passes that ran and provide it
    log_records: list[dict[str, Any]] = field(default_factory=list)


class PassContext:
    """What a pass sees. ``ctx.graph`` may be reassigned to replace the IR."""

    __slots__ = ("session", "pass_", "log")

    def __init__(self, session: CompileSession, pass_: "Pass", log: Any) -> None:
        self.session = session
        self.pass_ = pass_
        self.log = log

    @property
    def config(self) -> "CompilerConfig":
        return self.session.config

    @property
    def graph(self) -> Any:
        return self.session.graph

    @graph.setter
    def graph(self, value: Any) -> None:
        self.session.graph = value

    @property
    def stash(self) -> Stash:
        return self.session.stash

    @property
    def artifacts(self) -> "ArtifactStage":
        if self.session.artifacts is None:
            raise RuntimeError("this compile has no output directory to write artifacts to")
        return self.session.artifacts.for_writer(f"pass {self.pass_.name}")

    @property
    def report(self) -> dict[str, Any]:
        """Sections of ``compile_report.json``; a pass adds its own keys."""
        return self.session.report

    @property
    def inputs(self) -> dict[str, Any]:
        return self.session.inputs

    def warn(self, message: str, **fields: Any) -> None:
        """A warning for the user: logged now and listed in the compile report."""
        self.session.warnings.append(f"{self.pass_.name}: {message}")
        self.log.warning(message, **fields)
