"""Running a resolved pipeline.

Each pass goes through the ``axdrive_pass_execute`` hook, so instruments wrap
it from outside; the innermost implementation (here) calls the pass and then
its sub-passes. A pass whose requirements were not provided by any pass that
actually ran is skipped, with the reason, instead of running on an IR that
lacks what it needs.
"""

from __future__ import annotations

__all__ = ["PassManager", "CorePassRunner"]

from typing import Any, Mapping

from ..errors import AxdriveError, PluginError
from ._context import CompileSession, PassContext
from ._pass import Pass
from ._resolve import Pipeline, evaluate
from .hookspec import hookimpl


def _bound_logger(pass_: Pass) -> Any:
    import structlog

    return structlog.get_logger("axdrive.pass").bind()


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
        has been provided; the rest is recorded as skipped, with the option."""
        self.session.pipeline = pipeline
        stopped = False
        for entry in pipeline:
            if stopped:
                ctx = PassContext(self.session, entry.pass_, _bound_logger(entry.pass_))
                self.session.host.hook.axdrive_pass_skipped(pass_=entry.pass_, ctx=ctx,
                                                            reason=f"--stop-after {stop_after}")
                continue
            self.run_pass(entry.pass_, self.session, enablement=entry.enablement)
            if stop_after is not None and (entry.name == stop_after or stop_after in self.session.provided):
                stopped = True

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
            exc.args = (f"{pass_.name} ({pass_.plugin or '?'}): {exc}",)
            raise
        except Exception as exc:
            node = getattr(exc, "node", None)
            where = f", node {node!r}" if node else ""
            raise PluginError(
                f"pass {pass_.name!r} (plugin {pass_.plugin or '?'}) failed{where}: {type(exc).__name__}: {exc}",
                plugin=pass_.plugin,
                pass_name=pass_.name,
                node=node,
            ) from exc
        for prop in pass_.provides:
            session.provided.setdefault(prop, []).append(pass_.name)
