"""structlog set-up: readable console lines by default, JSON for machines.

Every line carries the pass context bound by the tracer (span id, parent,
pass, plugin). A capture processor also keeps the compile's records so a
failed compile can put its log in the error artifact.
"""

from __future__ import annotations

__all__ = ["configure", "capture"]

import contextvars
import logging
import sys
from contextlib import contextmanager
from typing import Any, Iterator

_capture: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("axdrive_log_capture", default=None)
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
           "error": logging.ERROR, "exception": logging.ERROR, "critical": logging.CRITICAL}


def _capture_processor(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    sink = _capture.get()
    if sink is not None:
        sink.append({k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v)) for k, v in event.items()})
    return event


def _level_filter(level: int) -> Any:
    """Drop events below ``level`` *after* they were captured, so the error
    artifact's log has the compile's info lines even when the console is quiet."""
    import structlog

    def processor(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if _LEVELS.get(method, logging.INFO) < level:
            raise structlog.DropEvent
        return event

    return processor


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a program that
    swaps stderr after calling the CLI in-process (a test harness, a notebook) must not leave the loggers
    writing to a closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: str = "console", level: str = "warning", stream: Any = None) -> None:
    """Configure structlog for the CLI or the API (idempotent).

    Lines at ``info`` and above are always processed (and captured for the
    error artifact); ``level`` only decides what reaches ``stream``.
    """
    import structlog

    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _capture_processor,
            _level_filter(_LEVELS.get(level, logging.WARNING)),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(min(logging.INFO, _LEVELS.get(level, logging.WARNING))),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),
        cache_logger_on_first_use=False,
    )


@contextmanager
def capture(sink: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Collect log records emitted in this context into ``sink``."""
    token = _capture.set(sink)
    try:
        yield sink
    finally:
        _capture.reset(token)
