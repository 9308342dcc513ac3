"""Progress display for long compiles: an in-process plugin wrapping each pass."""

from __future__ import annotations

__all__ = ["Progress"]

from ..passes.hookspec import hookimpl


class Progress:
    """Shows the running pass on a TTY (rich status line); silent otherwise."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.status = None
        self.enabled = self.console.is_terminal

    def start(self) -> None:
        if self.enabled:
            self.status = self.console.status("compiling")
            self.status.start()

    def stop(self) -> None:
        if self.status is not None:
            self.status.stop()

    # a plugin like any other: wraps each pass
    @hookimpl(wrapper=True)
    def axdrive_pass_execute(self, pass_, ctx):  # type: ignore[no-untyped-def]
        if self.status is not None:
            self.status.update(f"[bold]{pass_.name}[/bold] ({pass_.plugin})")
        return (yield)
