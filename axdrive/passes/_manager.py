"""Running a resolved pipeline.

Each pass goes through the ``axdrive_pass_execute`` hook, so instruments wrap
it from outside; the innermost implementation (here) calls the pass and then
its sub-passes. A pass whose requirements were not provided by any pass that
actually ran is skipped, with the reason, instead of running on an IR that
lacks what it needs.
"""

from __future__ import annotations

__all__ = ["PassManager", "CorePassRunner"]

from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import AxdriveError, PluginError
from ._context import FIRST_SEGMENT, CompileSession, PassContext
from ._pass import Pass
from ._resolve import Pipeline, evaluate
from ._stash import Stash
from .hookspec import hookimpl


def _segment_of(session: CompileSession) -> str:
    """`` on device segment device2`` while a further segment is compiled (errors name it), else ``""``."""
    return f" on device segment {session.segment.name}" if session.segment is not None else ""


def _bound_logger(pass_: Pass) -> Any:
    import structlog

    return structlog.get_logger("axdrive.pass").bind()


@dataclass
class _Fork:
    """Where the pipeline forks for further device segments, and the state the first run had there."""

    index: int  # the first entry to run again for each segment
    stash: Stash
    provided: dict[str, list[str]]
    report: dict[str, Any]


class CorePassRunner:
    """The innermost ``axdrive_pass_execute``: run the pass, then its sub-passes."""

    def __init__(self, manager: "PassManager") -> None:
        self.manager = manager

    @hookimpl(trylast=True)
    def axdrive_pass_execute(self, pass_: Pass, ctx: PassContext) -> Mapping[str, Any]:
        stats: dict[str, Any] = {}
        if pass_.run is not None:
            result = pass_.run(ctx)
            if result:
                stats.update(result)
        for sub in pass_.subpasses:
            self.manager.run_pass(sub, ctx.session, disabled=self.manager.disabled)
        return stats


class PassManager:
    """Executes a :class:`Pipeline` for one :class:`CompileSession`."""

    def __init__(self, session: CompileSession, *, disabled: set[str] | None = None) -> None:
        self.session = session
        self.disabled = disabled or set()
        self._runner = CorePassRunner(self)
        session.host.pm.register(self._runner, name=f"axdrive.core-runner.{id(self)}")

    def close(self) -> None:
        self.session.host.pm.unregister(self._runner)

    def run(self, pipeline: Pipeline, *, stop_after: str | None = None) -> None:
        """Run every entry in order. ``stop_after`` (a pass name or a property a
        pass provides) ends the compile once that pass has run or the property
        has been provided; the rest is recorded as skipped, with the option.

        A pass that partitions the model into several device segments (appends
        :class:`~axdrive.passes.Segment` objects to ``session.segments``) forks
        the pipeline: once every entry has run for the first segment, the
        entries after that pass run again for each further segment (see
        :meth:`_run_segments`)."""
        self.session.pipeline = pipeline
        entries = list(pipeline)
        fork = self._run_entries(entries, stop_after)
        if fork is not None and self.session.segments:
            self._run_segments(entries, fork, stop_after)

    def _run_entries(self, entries: list[Any], stop_after: str | None) -> "_Fork | None":
        session = self.session
        stopped = False
        fork: _Fork | None = None
        for index, entry in enumerate(entries):
            if stopped:
                ctx = PassContext(session, entry.pass_, _bound_logger(entry.pass_))
                session.host.hook.axdrive_pass_skipped(pass_=entry.pass_, ctx=ctx, reason=f"--stop-after {stop_after}")
                continue
            self.run_pass(entry.pass_, session, enablement=entry.enablement)
            if stop_after is not None and (entry.name == stop_after or stop_after in session.provided):
                stopped = True
            if fork is None and session.segment is None and session.segments and not stopped:
                # the partitioning pass just ran: what every further segment starts from
                fork = _Fork(index + 1, session.stash.copy(), {k: list(v) for k, v in session.provided.items()},
                             dict(session.report))
                session.tracer.segment = FIRST_SEGMENT
        return fork

    def _run_segments(self, entries: list[Any], fork: "_Fork", stop_after: str | None) -> None:
        """Compile each further device segment with the passes after the partitioning one.

        Each segment starts from the stash, the provided properties and the
        report as the partitioning pass left them; its artifacts are named
        ``segment.prefix + name`` and its report sections go to the compile
        report's ``segments`` list. Spans carry the segment's name. The first
        segment's graph, stash and report are what the session holds after.
        """
        session = self.session
        main = (session.graph, session.stash, session.provided, session.report, session.artifacts)
        count = len(session.segments)
        try:
            for segment in session.segments:
                session.segment = segment
                session.graph = segment.graph
                session.stash = fork.stash.copy()
                session.provided = {k: list(v) for k, v in fork.provided.items()}
                session.report = dict(fork.report)
                session.artifacts = main[4].for_prefix(segment.prefix) if main[4] is not None else None
                session.tracer.segment = segment.name
                self._run_entries(entries[fork.index:], stop_after)
                if len(session.segments) != count:
                    raise PluginError(f"segment {segment.name}: a pass added device segments while a segment was "
                                      "being compiled; only the partitioning pass of the first run may")
                segment.final_graph = session.graph
                segment.report = {k: v for k, v in session.report.items()
                                  if k not in fork.report or v is not fork.report[k]}
        finally:
            session.graph, session.stash, session.provided, session.report, session.artifacts = main
            session.segment = None
            session.tracer.segment = None
        session.report["segments"] = [{"name": s.name, **s.report} for s in session.segments]

    def run_pass(self, pass_: Pass, session: CompileSession, *, enablement=None, disabled=None) -> None:
        hook = session.host.hook
        ctx = PassContext(session, pass_, _bound_logger(pass_))
        if enablement is None:
            enablement = evaluate(pass_, session.config, disabled or ())
        if not enablement.enabled:
            hook.axdrive_pass_skipped(pass_=pass_, ctx=ctx, reason=enablement.reason)
            return
        for req in pass_.requires:
            if req not in session.provided:
                providers = session.pipeline.providers_of(req) if session.pipeline else []
                why = f"requirement {req!r} not provided"
                if providers:
                    why += " (its provider " + ", ".join(providers) + " did not run)"
                hook.axdrive_pass_skipped(pass_=pass_, ctx=ctx, reason=why)
                return
        try:
            hook.axdrive_pass_execute(pass_=pass_, ctx=ctx)
        except AxdriveError as exc:
            if isinstance(exc, PluginError) or getattr(exc, "_axdrive_pass", None):
                raise
            # Keep the error's class (its exit code), but say where it happened.
            exc._axdrive_pass = pass_.name  # type: ignore[attr-defined]
            exc.args = (f"{pass_.name} ({pass_.plugin or '?'}){_segment_of(session)}: {exc}",)
            raise
        except Exception as exc:
            node = getattr(exc, "node", None)
            where = f", node {node!r}" if node else ""
            raise PluginError(
                f"pass {pass_.name!r} (plugin {pass_.plugin or '?'}){_segment_of(session)} failed{where}: "
                f"{type(exc).__name__}: {exc}",
                plugin=pass_.plugin,
                pass_name=pass_.name,
                node=node,
            ) from exc
        for prop in pass_.provides:
            session.provided.setdefault(prop, []).append(pass_.name)
