"""Files at axdrive's edge: what kind of file a path names, and reading a user's file with bounded work.

Why one module: every command that reads a file a user names (a config, a
pass dependency graph, arrays) and every command that writes one (``-o``)
must first know whether the path is a regular file, and a device, a FIFO or a
huge file must cost nothing. The readers here stat before they open and read
at most a limit; the writers (:mod:`axdrive.artifacts`) ask :func:`not_regular`
before they replace anything.
"""

from __future__ import annotations

__all__ = ["file_kind", "not_regular", "read_input_file", "format_bytes"]

import os
import stat
from pathlib import Path

from .errors import InputFileError, clip_text

_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a ``st_mode`` names, in words (``"a character device"``), for messages."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _FILE_KINDS if test(mode)), "a special file")


def not_regular(mode: int) -> str | None:
    """``None`` for a regular file, else the reason it is refused (``"is a FIFO (named pipe), not a regular file"``)."""
    if stat.S_ISREG(mode):
        return None
    return f"is {file_kind(mode)}, not a regular file"


def format_bytes(n: int | float) -> str:
    """``1.12 TiB``: byte counts in messages, binary units, three significant digits."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.3g} {unit}"
        value /= 1024
    return f"{value:.3g} PiB"  # pragma: no cover - the loop returns


def read_input_file(path: str | os.PathLike[str], *, limit: int, what: str) -> bytes:
    """The bytes of the user's input file ``path``, with bounded work whatever the path names.

    1. ``os.stat`` first, without opening: a directory, device (``/dev/zero``, ``/dev/urandom``, a tty), FIFO or
       socket is refused, its contents never touched (opening a FIFO would block, reading a device never ends);
    2. a size over ``limit`` bytes is refused (``what`` names the kind of file in the message, e.g.
       ``"a config file"``);
    3. the file is opened non-blocking and checked again on the open descriptor (a FIFO swapped in after the stat
       cannot block), then at most ``limit + 1`` bytes are read (a file that grows past the limit is refused too).

    Every refusal is an :class:`InputFileError` (exit code 2): ``PATH: no such file``, ``PATH: is a character
    device, not a regular file``, ``PATH: is 70,000,000 bytes, over the 64 MiB limit for ...``,
    ``PATH: cannot be read: Permission denied``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
        problem = not_regular(st.st_mode)
        if problem:
            raise InputFileError(p, problem)
        if st.st_size > limit:
            raise InputFileError(p, f"is {st.st_size:,} bytes, over the {format_bytes(limit)} limit for {what}")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(p, flags)
        try:
            problem = not_regular(os.fstat(fd).st_mode)
            if problem:
                raise InputFileError(p, problem)
            chunks: list[bytes] = []
            left = limit + 1
            want = min(max(st.st_size + 1, 1 << 16), left)
            while left > 0:
                chunk = os.read(fd, min(want, left))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
                want = 1 << 20
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise InputFileError(p, "no such file") from None
    except (OSError, ValueError) as exc:  # permission, a path through a non-directory, an embedded NUL
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputFileError(p, f"cannot be read: {clip_text(reason, 200)}") from None
    if left <= 0:
        raise InputFileError(p, f"is over the {format_bytes(limit)} limit for {what} (it grew while being read)")
    return b"".join(chunks)
