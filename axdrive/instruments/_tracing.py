"""Opens a span around every pass (outermost wrapper) and records skips."""

from __future__ import annotations

__all__ = ["TracingInstrument"]

from typing import Any, Mapping

from ..passes.hookspec import hookimpl


class TracingInstrument:
    @hookimpl(wrapper=True, tryfirst=True)
    def axdrive_pass_execute(self, pass_, ctx):  # type: ignore[no-untyped-def]
        tracer = ctx.session.tracer
        with tracer.span(pass_.name, plugin=pass_.plugin, requires=pass_.requires, provides=pass_.provides) as span:
            ctx.log.debug("pass started")
            stats: Mapping[str, Any] | None = yield
            span.stats = dict(stats or {})
            ctx.log.debug("pass finished", duration_ms=round((tracer.now() - span.start_ns) / 1e6, 3), **{
                f"stat_{k}": v for k, v in span.stats.items() if isinstance(v, (int, float, str))
            })
            return stats

    @hookimpl
    def axdrive_pass_skipped(self, pass_, ctx, reason: str) -> None:  # type: ignore[no-untyped-def]
        ctx.session.tracer.skipped(
            pass_.name, plugin=pass_.plugin, requires=pass_.requires, provides=pass_.provides, reason=reason
        )
        ctx.log.debug("pass skipped", pass_name=pass_.name, reason=reason)
