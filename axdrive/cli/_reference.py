"""The Markdown CLI reference, generated from the argparse definitions.

``docs/cli.md`` is this function's output; a test fails when it is stale
(regenerate with ``python -m axdrive.cli._reference > docs/cli.md``).
"""

from __future__ import annotations

__all__ = ["cli_reference"]

import argparse

from ._parser import build_parser

_INTRO = """# CLI reference

Generated from the argument parser (`python -m axdrive.cli._reference > docs/cli.md`); do not edit by hand.

`axdrive` and `python -m axdrive` are the same program. Exit codes: **0** success, **1** compile or run
failure, **2** usage or configuration error. Errors are one line on stderr; `-v` adds the traceback and
debug logging. Environment: `AXDRIVE_DISABLE_PLUGIN_AUTOLOAD=1` (no entry-point plugins; load with `-p`),
`AXDRIVE_CACHE` (model and photo cache, default `~/.cache/axdrive`), `AXDRIVE_VERIFY=1` (IR verifier after every pass).
"""


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _section(path: str, parser: argparse.ArgumentParser, out: list[str]) -> None:
    subs = _subparsers(parser)
    if not subs or any(a.option_strings or a.dest not in ("==SUPPRESS==",) for a in parser._actions
                       if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))):
        usage = parser.format_usage().replace("usage: ", "").strip()
        out.append(f"## `{path}`\n")
        if parser.description:
            out.append(parser.description + "\n")
        out.append(f"```\n{' '.join(usage.split())}\n```\n")
        rows = []
        for a in parser._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = ", ".join(a.option_strings) if a.option_strings else (a.metavar or a.dest)
            if a.choices and not a.option_strings:
                name = a.metavar or a.dest
            extra = ""
            if a.choices:
                extra += " Choices: " + ", ".join(f"`{c}`" for c in a.choices) + "."
            if a.default not in (None, [], False, argparse.SUPPRESS) and a.option_strings:
                extra += f" Default: `{a.default}`."
            rows.append(f"| `{name}` | {(a.help or '').replace('|', '/')}{extra} |")
        if rows:
            out.append("| argument | meaning |\n|---|---|")
            out.extend(rows)
            out.append("")
    for name, sub in subs:
        _section(f"{path} {name}", sub, out)


def cli_reference() -> str:
    parser = build_parser()
    out = [_INTRO]
    for name, sub in _subparsers(parser):
        _section(f"axdrive {name}", sub, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    import sys

    sys.stdout.write(cli_reference())
