"""Dumps the IR before and after selected passes (MLIR's ``--print-ir-*``).

Enabled with ``--dump-ir DIR`` (all passes) and ``--dump-ir-pass NAME``
(only those). Files are ``DIR/NNN-<pass>.before.txt`` / ``.after.txt``, where
NNN is the span id, so the files sort in execution order.
"""

from __future__ import annotations

__all__ = ["IRDumpInstrument"]

from pathlib import Path

from ..passes.hookspec import hookimpl


def _dump(graph) -> str:  # type: ignore[no-untyped-def]
    if graph is None:
        return "<no IR yet>\n"
    dump = getattr(graph, "dump", None)
    return dump() if callable(dump) else repr(graph)


class IRDumpInstrument:
    @hookimpl(wrapper=True)
    def axdrive_pass_execute(self, pass_, ctx):  # type: ignore[no-untyped-def]
        opts = ctx.session.options
        target = opts.get("dump_ir_dir")
        only = opts.get("dump_ir_passes")
        if not target or (only and pass_.name not in only):
            return (yield)
        span = ctx.session.tracer.current()
        stem = f"{span.id if span else 0:03d}-{pass_.name}"
        out = Path(target)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.before.txt").write_text(_dump(ctx.graph))
        stats = yield
        (out / f"{stem}.after.txt").write_text(_dump(ctx.graph))
        return stats
