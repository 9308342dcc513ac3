"""Dumps the IR around passes, as MLIR's ``--mlir-print-ir-before/after(-change, -failure)`` do.

``--dump-ir DIR`` (API: ``dump_ir_dir``), optionally narrowed to some passes
with ``--dump-ir-pass NAME``. Two ways to write:

- every selected pass: ``DIR/NNN-<pass>.before.txt`` and ``.after.txt``;
- ``--dump-ir-changed`` (``dump_ir_changed=True``): only the passes that changed
  the IR, each as one unified diff ``DIR/NNN-<pass>.diff`` (MLIR's
  ``-mlir-print-ir-after-change``), so a 30-pass compile leaves the handful of
  files where something happened.

Either way a pass that fails leaves ``DIR/NNN-<pass>.failed.txt``: the IR as the
failing pass left it and the diff from the IR it was given (MLIR's
``-mlir-print-ir-after-failure``). NNN is the span id, so the files sort in
execution order. Each file is written atomically.
"""

from __future__ import annotations

__all__ = ["IRDumpInstrument", "ir_diff"]

import difflib
from pathlib import Path

from ..artifacts import atomic_write_text
from ..passes.hookspec import hookimpl


def _dump(graph) -> str:  # type: ignore[no-untyped-def]
    if graph is None:
        return "<no IR yet>\n"
    dump = getattr(graph, "dump", None)
    return dump() if callable(dump) else repr(graph)


def ir_diff(before: str, after: str, name: str) -> str:
    """The unified diff between two IR dumps, labelled with the pass (empty when nothing changed)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"before {name}", tofile=f"after {name}"))


class IRDumpInstrument:
    @hookimpl(wrapper=True)
    def axdrive_pass_execute(self, pass_, ctx):  # type: ignore[no-untyped-def]
        opts = ctx.session.options
        target = opts.get("dump_ir_dir")
        only = opts.get("dump_ir_passes")
        if not target or (only and pass_.name not in only):
            return (yield)
        changed_only = bool(opts.get("dump_ir_changed"))
        span = ctx.session.tracer.current()
        out = Path(target)
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{span.id if span else 0:03d}-{pass_.name}"
        before = _dump(ctx.graph)
        if not changed_only:
            atomic_write_text(stem.with_name(stem.name + ".before.txt"), before)
        try:
            stats = yield
        except BaseException:
            after = _dump(ctx.graph)
            atomic_write_text(stem.with_name(stem.name + ".failed.txt"),
                              after + "\n" + (ir_diff(before, after, pass_.name) or "(the IR did not change)\n"))
            raise
        after = _dump(ctx.graph)
        if not changed_only:
            atomic_write_text(stem.with_name(stem.name + ".after.txt"), after)
        elif after != before:
            atomic_write_text(stem.with_name(stem.name + ".diff"), ir_diff(before, after, pass_.name))
        return stats
