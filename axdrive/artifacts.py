"""Writing files without harming the user's: atomic replacement, canonical JSON,
hashes, and the staging folder a compile writes its artifacts into.

Every file axdrive writes goes through a temp file in the target's own
directory and one ``os.replace``, so a reader never sees half a file. Before
that, :func:`writable_target` decides whether the target may be replaced at
all: only a regular file or a new path, never a device, FIFO, socket or
directory, and never a file the current command reads (the model, the
calibration data, a run's inputs: see :func:`protected_paths`). A new file gets
the mode the umask gives (``0666 & ~umask``), a replaced one keeps its mode.

A compile's artifacts are collected by an :class:`ArtifactStage`; where the
stage lives and how it becomes the output directory's new content is
:mod:`axdrive.outdir`'s concern.
"""

from __future__ import annotations

__all__ = [
    "ArtifactStage",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_json",
    "check_artifact_name",
    "protected_paths",
    "sha256_file",
    "writable_target",
    "REPORT_FILES",
]

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from .errors import OutputError, UsageError
from .files import file_kind

#: Files whose content includes wall-clock times: listed in the manifest, but
#: without a hash, because no two compiles produce them byte-identically.
REPORT_FILES = ("compile_report.json", "pass_dependency_graph.json", "pass_trace.json")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline."""
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False, default=_default) + "\n"


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- files the current command must not replace ------------------------------------------------------
_PROTECTED: ContextVar[tuple[tuple[int, int, str], ...]] = ContextVar("axdrive_protected_paths", default=())


@contextlib.contextmanager
def protected_paths(paths: Mapping[str | Path, str]) -> Iterator[None]:
    """Within the block, no atomic write replaces any of ``paths`` (``{path: what it is}``).

    Files are recognised by device and inode, so another spelling of the same
    path, a symlink to it or a hard link is caught too. The driver protects the
    model and the calibration data, ``axdrive run`` its inputs and the compiled
    artifacts it reads: ``-o`` pointed at one of them is refused, not obeyed.
    """
    entries = []
    for p, what in paths.items():
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode):
            entries.append((st.st_dev, st.st_ino, f"{what} ({p})"))
    token = _PROTECTED.set(_PROTECTED.get() + tuple(entries))
    try:
        yield
    finally:
        _PROTECTED.reset(token)


def protected_reason(st: os.stat_result) -> str | None:
    """What the file behind ``st`` is, if the current command must not replace it."""
    for dev, ino, what in _PROTECTED.get():
        if st.st_dev == dev and st.st_ino == ino:
            return what
    return None


def writable_target(path: str | Path) -> Path:
    """The file an atomic write to ``path`` will replace, or a one-line :class:`UsageError`.

    A symlink is followed (the link stays; the file it names is replaced), so
    ``-o`` at a link writes where the user's link points. The target must be a
    regular file or not exist yet, and must not be a protected file.
    """
    p = Path(path)
    try:
        real = Path(os.path.realpath(p))
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise UsageError(f"{p}: cannot write: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{p}: is {file_kind(st.st_mode)}; axdrive writes only regular files or new paths")
    what = protected_reason(st)
    if what:
        raise UsageError(f"{p}: refusing to overwrite {what}, which this command reads")
    return real


_UMASK: int | None = None


def _umask() -> int:
    """The process umask (read once; ``os.umask`` can only be read by setting it)."""
    global _UMASK
    if _UMASK is None:
        current = os.umask(0o022)
        os.umask(current)
        _UMASK = current
    return _UMASK


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory + one rename.

    Checked by :func:`writable_target` first; an ``OSError`` (full disk, no
    permission, a parent that is a file) becomes a one-line :class:`OutputError`
    and leaves neither the temp file nor a changed target behind.
    """
    target = writable_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


# -- a compile's staged artifacts -------------------------------------------------------------------
def check_artifact_name(name: str) -> None:
    """Artifact names are plain, visible file names: no folder, no ``..``, no leading dot."""
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name or "\0" in name
            or name.startswith(".") or len(name.encode()) > 255):
        raise ValueError(f"artifact names are plain file names (no folder, no leading dot), got {name!r}")


#: Name of the ledger each staging folder keeps: the names it was asked to write, one a line, recorded
#: *before* the file is created, so whoever removes the folder later knows exactly what axdrive put there.
LEDGER = ".ledger"


class ArtifactStage:
    """A compile's files, collected in a staging folder until the output directory commits them.

    Each name is claimed once: a second writer of the same name in one compile
    (a user's dump name equal to a built-in artifact, two plugins) is an error
    naming both, and so is a name that stands in the output directory as
    something axdrive did not write (``is_foreign``). Passes get a view bound
    to their own name (:meth:`for_writer`), so the error says who wrote what.
    """

    def __init__(self, staging: str | Path, *, is_foreign: Callable[[str], str | None] | None = None,
                 writer: str = "axdrive") -> None:
        self.staging = Path(staging)
        self._claims: dict[str, str] = {}
        self._is_foreign = is_foreign or (lambda name: None)
        self._writer = writer
        self._prefix = ""

    def for_writer(self, writer: str) -> "ArtifactStage":
        """The same stage, with claims attributed to ``writer`` (a pass or a property name)."""
        view = object.__new__(ArtifactStage)
        view.__dict__.update(self.__dict__)
        view._writer = writer
        return view

    def for_prefix(self, prefix: str) -> "ArtifactStage":
        """The same stage, with every name a writer gives stored as ``prefix + name``.

        A model the graph cleaner splits into several device segments runs the
        back-end passes once per segment; each pass writes ``program.bin`` as
        always, and the second segment's copy lands as ``device2.program.bin``.
        """
        if prefix:
            check_artifact_name(prefix)
        view = object.__new__(ArtifactStage)
        view.__dict__.update(self.__dict__)
        view._prefix = prefix
        return view

    @property
    def prefix(self) -> str:
        """What this view puts before every name (``""`` for the compile's own names)."""
        return self._prefix

    # -- writing -------------------------------------------------------------
    def path(self, name: str) -> Path:
        """Claim ``name`` and return its path in the staging folder (for writers that need a path)."""
        check_artifact_name(name)
        name = self._prefix + name
        first = self._claims.get(name)
        if first is not None:
            raise UsageError(f"artifact {name!r} is written twice in one compile: by {first} and by {self._writer}; "
                             "give one of them another file name")
        foreign = self._is_foreign(name)
        if foreign:
            raise UsageError(f"artifact {name!r} (written by {self._writer}): {foreign}")
        self._claims[name] = self._writer
        with open(self.staging / LEDGER, "a", encoding="utf-8") as ledger:
            ledger.write(name + "\n")
        return self.staging / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        try:
            p.write_bytes(data)
        except OSError as exc:  # a full disk, a file-size limit: one line, and the commit never happens
            raise OutputError(f"artifact {name!r}: cannot write it into {self.staging.parent.parent}: "
                              f"{exc.strerror or exc}") from None
        return p

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, canonical_json(obj))

    def write_onnx(self, name: str, model: Any) -> Path:
        """Serialise an ``onnx.ModelProto`` deterministically."""
        return self.write_bytes(name, model.SerializeToString(deterministic=True))

    # -- reading what earlier passes staged -------------------------------------
    def staged(self, name: str) -> Path:
        """The path of an artifact an earlier pass of this compile wrote (``KeyError`` if none did)."""
        name = self._prefix + name
        if name not in self._claims or not (self.staging / name).is_file():
            raise KeyError(name)
        return self.staging / name

    @property
    def names(self) -> list[str]:
        return [n for n in self._claims if (self.staging / n).exists()]

    def sha256(self, name: str) -> str:
        return sha256_file(self.staging / name)
