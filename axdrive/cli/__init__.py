"""The ``axdrive`` command line.

Only ``argparse`` is imported at start-up; each subcommand imports what it
needs when it runs, so ``axdrive --help`` stays fast (see
``benchmarks/bench_cli_startup.py``). Errors are one line on stderr and an exit
code: 0 success, 1 compile/run failure, 2 usage or configuration error;
``--verbose`` adds the traceback.
"""

from __future__ import annotations

__all__ = ["main", "build_parser"]

import argparse
import signal
import sys
from typing import Sequence

from ..errors import Interrupted
from ._parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    previous = _on_sigterm_unwind()
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("axdrive: interrupted (SIGINT); nothing was committed after the interruption", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"axdrive: {exc}; nothing was committed after the interruption", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return 0
    except Exception as exc:  # map to one line + exit code
        from ..errors import AxdriveError

        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exc()
        if isinstance(exc, AxdriveError):
            message = " ".join(str(exc).split("\n")) if not getattr(exc, "problems", None) else str(exc)
            print(f"axdrive: error: {message}", file=sys.stderr)
            return exc.exit_code
        print(f"axdrive: internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


def _on_sigterm_unwind() -> object | None:
    """SIGTERM unwinds the command like Ctrl-C does (every ``finally`` runs, staging is dropped) instead of
    killing it mid-write; returns the previous handler (``None`` off the main thread, where none can be set)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupted)
