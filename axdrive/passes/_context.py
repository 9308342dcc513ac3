"""The state a compile carries and the view of it a pass gets.

``CompileSession`` holds everything of one compile (config, current IR,
stash, staged artifacts, report sections, tracer). ``PassContext`` is what a
pass receives: the session seen from one pass, with a logger already bound to
the pass's span so every line it logs carries the pass context.
"""

from __future__ import annotations

__all__ = ["FIRST_SEGMENT", "CompileSession", "PassContext", "Segment"]

from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from ._stash import Stash

if TYPE_CHECKING:  # pragma: no cover
    from ..artifacts import ArtifactStage
    from ..config import CompilerConfig
    from ..operators import OperatorRegistry
    from ..tracing import Tracer
    from ._pass import Pass
    from ._plugins import PluginHost
    from ._resolve import Pipeline


#: The name of a partitioned model's first device segment (its artifacts keep their plain names).
FIRST_SEGMENT = "device1"


@dataclass
class Segment:
    """One device segment of a partitioned model: a float graph the back-end passes compile on their own.

    A partitioning pass (the graph cleaner) keeps the first device segment in
    ``ctx.graph`` and appends the others to ``session.segments``; once the
    pipeline has run, the pass manager runs every pass after the partitioning
    one again for each further segment, with the stash and the provided
    properties as the partitioning pass left them, and the segment's artifacts
    named ``prefix + name`` (``device2.program.bin``). This is how TVM's
    partitioned functions and onnxruntime's execution providers compile each
    device subgraph on its own.
    """

    name: str  # "device1", "device2", ...
    graph: Any  # the segment's float graph (axdrive.ir.Graph)
    prefix: str = ""  # artifact name prefix ("" for the first segment)
    #: a float graph from the model's inputs to this segment's inputs (calibration runs it to see real
    #: activations at the segment's boundary); ``None`` when the inputs come from the model or host pre-processing
    feeder: Any = None
    final_graph: Any = None  # the IR once the segment's passes ran (for the manifest's I/O signature)
    report: dict[str, Any] = field(default_factory=dict)  # the report sections the segment's passes wrote


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
    #: further device segments to compile after the first (see :class:`Segment`); the one being compiled
    segments: list[Segment] = field(default_factory=list)
    segment: Segment | None = None
    #: how ``axdrive run`` chains the compiled parts, in order (host ONNX files and device segments), as the
    #: partitioning pass describes them; empty: one device part (the manifest says so)
    parts: list[dict[str, Any]] = field(default_factory=list)
    model_outputs: list[str] = field(default_factory=list)  # the model's outputs by name, in order, with ``parts``
    #: every declared plugin option's value, by ``namespace.name`` (``axdrive_addoption``; checked by the driver)
    plugin_options: dict[str, Any] = field(default_factory=dict)


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

    @property
    def options(self) -> Mapping[str, Any]:
        """Plugin options (``ctx.options["example.top"]``): every declared one, typed, defaults filled in."""
        return MappingProxyType(self.session.plugin_options)

    @property
    def operators(self) -> "OperatorRegistry":
        """The operator registry of this compile's plugins: which kernel, which unit, and why not."""
        return self.session.host.operators

    @property
    def segment(self) -> Segment | None:
        """The device segment being compiled, or ``None`` for the first (or only) one."""
        return self.session.segment

    def warn(self, message: str, **fields: Any) -> None:
        """A warning for the user: logged now and listed in the compile report."""
        where = f" [{self.session.segment.name}]" if self.session.segment is not None else ""
        self.session.warnings.append(f"{self.pass_.name}{where}: {message}")
        self.log.warning(message, **fields)
