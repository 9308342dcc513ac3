"""Pass spans: one record per pass execution, nested by parent.

The tracer is always on (a span is two clock reads and a dict), because the
compile report needs per-pass wall time anyway; ``trace_tvm_passes`` only
decides whether the spans are *written out*. While a span is open, its id,
parent id, pass name and plugin are bound into structlog's context variables,
so every log line emitted inside a pass carries them.
"""

from __future__ import annotations

__all__ = ["Span", "Tracer"]

import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

_current_span: contextvars.ContextVar["Span | None"] = contextvars.ContextVar("axdrive_span", default=None)


@dataclass
class Span:
    id: int
    name: str
    plugin: str
    parent: int | None
    requires: tuple[str, ...]
    provides: tuple[str, ...]
    start_ns: int
    end_ns: int = 0
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict)
    worker: int = 0
    segment: str | None = None  # the device segment being compiled when the pass ran (partitioned models)

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


class Tracer:
    """Collects spans for one compile. Times are ns since the tracer started."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter_ns()
        self.spans: list[Span] = []
        #: the device segment new spans belong to (set by the pass manager while it compiles a further segment)
        self.segment: str | None = None

    def now(self) -> int:
        return time.perf_counter_ns() - self._t0

    @staticmethod
    def current() -> "Span | None":
        return _current_span.get()

    def _new(self, name: str, plugin: str, requires: tuple[str, ...], provides: tuple[str, ...]) -> Span:
        parent = _current_span.get()
        span = Span(
            id=len(self.spans),
            name=name,
            plugin=plugin,
            parent=parent.id if parent is not None else None,
            requires=tuple(requires),
            provides=tuple(provides),
            start_ns=self.now(),
            segment=self.segment,
        )
        self.spans.append(span)
        return span

    @contextmanager
    def span(self, name: str, *, plugin: str = "", requires=(), provides=()) -> Iterator[Span]:
        """Open a span; nested spans become its children. Marks it failed on error."""
        import structlog

        span = self._new(name, plugin, tuple(requires), tuple(provides))
        token = _current_span.set(span)
        try:
            with structlog.contextvars.bound_contextvars(
                span_id=span.id, parent_span_id=span.parent, pass_name=name, plugin=plugin
            ):
                yield span
        except BaseException as exc:
            span.status = "failed"
            span.reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            span.end_ns = self.now()
            _current_span.reset(token)

    def skipped(self, name: str, *, plugin: str = "", requires=(), provides=(), reason: str = "") -> Span:
        """Record a pass that did not run as a zero-length span with its reason."""
        span = self._new(name, plugin, tuple(requires), tuple(provides))
        span.end_ns = span.start_ns
        span.status = "skipped"
        span.reason = reason
        return span

    def requires_edges(self) -> list[tuple[int, int, str]]:
        """``(provider span, requirer span, property)``: for each requirement of a
        span, the most recent earlier span that provided it and ran."""
        edges = []
        for span in self.spans:
            for req in span.requires:
                provider = None
                for other in self.spans:
                    if other.id == span.id or other.start_ns > span.start_ns:
                        continue
                    if other.segment not in (None, span.segment):
                        continue  # another device segment's compile: not what this one ran on
                    if req in other.provides and other.status == "ok":
                        provider = other
                if provider is not None:
                    edges.append((provider.id, span.id, req))
        return edges
