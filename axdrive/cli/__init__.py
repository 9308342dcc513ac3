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
import sys
from typing import Sequence

from ._parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("axdrive: interrupted", file=sys.stderr)
        return 130
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
