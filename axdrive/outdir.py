"""The output directory: what axdrive owns in it, and how a compile replaces the last one.

Layout of an output directory ``DIR`` (``-o DIR``)::

    DIR/manifest.json       -> .axdrive/current/manifest.json     one symlink per artifact
    DIR/program.bin         -> .axdrive/current/program.bin
    DIR/error_artifact.zip  -> .axdrive/failed/error_artifact.zip (after a failed compile)
    DIR/.axdrive/owner.json    the ownership marker (a random id), written when axdrive made the store
    DIR/.axdrive/current    -> gen-<id>     the committed compile: switching this one link is the commit
    DIR/.axdrive/failed     -> fail-<id>    the last failed compile's trace and error ZIP
    DIR/.axdrive/gen-<id>/     one compile's files, and ``.ledger``: the names it wrote
    DIR/.axdrive/staging-<id>/ a compile in progress (its ``.lock`` is held while the compile lives)

The ownership rule (``docs/cli.md`` states it for users):

* An entry of ``DIR`` is axdrive's only if it is a symlink whose text is
  exactly ``.axdrive/current/NAME`` or ``.axdrive/failed/NAME``, ``NAME``
  being the entry's own name. Only such entries are ever replaced or
  removed; every other file in ``DIR`` is the user's and is never touched. A
  name a compile needs that stands in ``DIR`` as a user's file stops that
  compile, naming the file.
* ``DIR/.axdrive`` is axdrive's only if it is a real directory holding a
  valid ``owner.json``. A folder in it is removed name by name from its
  ledger (written before each file is created); anything not in the ledger
  stays, and so does the folder.
* ``DIR`` itself is never removed, except a ``DIR`` this very compile created
  and left empty because it failed.

A reader resolves ``.axdrive/current`` once (:func:`committed_dir`) and reads
every file from that folder, so it sees either the old compile or the new
one, never a mix; a SIGKILL at any point of a commit leaves one of the two.
What a killed compile left (a staging folder, a folder no pointer names, a
dangling link) is cleaned by the next compile into the same directory.
"""

from __future__ import annotations

__all__ = ["OutputDir", "committed_dir", "owned_entry", "STORE", "FAILURE_FILES"]

import contextlib
import errno
import fcntl
import json
import os
import pwd
import secrets
import signal
import stat
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .artifacts import LEDGER, ArtifactStage, check_artifact_name
from .errors import OutputError, UsageError

STORE = ".axdrive"
OWNER = "owner.json"
OWNER_SCHEMA = "axdrive.output_dir/1"
CURRENT, FAILED = "current", "failed"
_LOCK = "lock"
_STAGE_LOCK = ".lock"

#: What a failed compile leaves, under names no successful compile writes (the issue's "beside it, under
#: names that cannot be mistaken for the good compile's").
FAILURE_FILES = {"error_artifact.zip": "error_artifact.zip",
                 "pass_dependency_graph.json": "failed.pass_dependency_graph.json",
                 "pass_trace.json": "failed.pass_trace.json"}


def _link_text(pointer: str, name: str) -> str:
    return f"{STORE}/{pointer}/{name}"


def owned_entry(out: str | Path, name: str) -> str | None:
    """``"current"`` or ``"failed"`` if ``out/name`` is axdrive's link through that pointer, else ``None``."""
    try:
        text = os.readlink(Path(out) / name)
    except OSError:
        return None
    for pointer in (CURRENT, FAILED):
        if text == _link_text(pointer, name):
            return pointer
    return None


def committed_dir(out: str | Path) -> Path:
    """The folder that holds ``out``'s committed compile, resolved once.

    For a directory without a store (written by an older axdrive, or by hand)
    it is ``out`` itself: reading never harms anything.
    """
    out = Path(out)
    try:
        text = os.readlink(out / STORE / CURRENT)
    except OSError:
        return out
    # only a folder of the store itself: a pointer elsewhere (a hostile store) is not followed
    return out / STORE / text if "/" not in text and text not in ("", ".", "..") else out


def _log() -> Any:
    import structlog

    return structlog.get_logger("axdrive.outdir")


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done: a commit's few renames are never cut in half by a
    handler (a SIGKILL still can, and the layout is built so that this leaves a consistent state).

    The handlers are swapped for one that only notes the signal, and the
    noted signal is handed to the original handler after the block. Blocking
    the signal with ``pthread_sigmask`` would not do: the kernel then delivers
    it to another thread (Numba's, onnxruntime's), and Python still runs the
    handler in the main thread at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in watched}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if caught:
            handler = old[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _protected_dirs(inputs: Mapping[str, Any]) -> dict[Path, str]:
    """Directories ``remove_output_dir`` refuses, each with what it is."""
    found: dict[Path, str] = {Path("/"): "the filesystem root"}
    homes = [(pw.pw_dir, f"the home directory of user {pw.pw_name!r}") for pw in pwd.getpwall() if pw.pw_dir]
    if os.environ.get("HOME"):
        homes.append((os.environ["HOME"], "the home directory ($HOME)"))
    for home, what in homes:
        found.setdefault(Path(os.path.realpath(home)), what)
    cwd = Path.cwd().resolve()
    found.setdefault(cwd, "the current directory")
    for parent in cwd.parents:
        found.setdefault(parent, "an ancestor of the current directory")
    for what, value in inputs.items():
        if not isinstance(value, (str, Path)):
            continue
        p = Path(os.path.realpath(value))
        if p.is_dir():
            found.setdefault(p, what)
        for parent in p.parents:
            found.setdefault(parent, f"a folder holding {what} ({value})")
    return found


class OutputDir:
    """One compile's hold on its output directory: checks, staging, commit, failure files.

    ``inputs`` maps a description to a path the compile reads (``{"the model":
    path, "the calibration data": path}``): with ``remove`` (the
    ``remove_output_dir`` property) a directory holding or containing one of
    them is refused, as is the current directory, a home directory, ``/`` or a
    mount point.
    """

    def __init__(self, path: str | Path, *, remove: bool = False, inputs: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.remove = remove
        self.inputs = dict(inputs or {})
        self.created: list[Path] = []
        self.store_created = False
        self.stage: ArtifactStage | None = None
        self._staging: Path | None = None
        self._stage_lock_fd: int | None = None

    # -- opening ---------------------------------------------------------------------------------------
    def open(self, early_names: Iterable[str] = ()) -> ArtifactStage:
        """Check ``DIR``, create what is missing, clean what a killed compile left, and start staging.

        ``early_names`` are artifact names known before the compile runs
        (``manifest.json``, user dump names): a user's file under one of them
        stops the compile now rather than after calibration.
        """
        self._check_path()
        if self.remove:
            self._check_removable()
        with _signals_deferred():  # a signal lands before or after, never between creating a folder and noting it
            self._make_dirs()
            try:
                self._open_store()
                for name in early_names:
                    problem = self.foreign(name)
                    if problem:
                        raise UsageError(f"artifact {name!r}: {problem}")
                with self._locked():
                    self._reconcile()
                    self._staging = self._new_folder("staging")
                self.stage = ArtifactStage(self._staging, is_foreign=self.foreign)
                return self.stage
            except BaseException:
                self.abandon()
                raise

    def _check_path(self) -> None:
        out = self.path
        where = f"output_dir {out}"
        if os.path.islink(out) and not out.exists():
            raise UsageError(f"{where}: is a symlink to a missing path ({os.readlink(out)})")
        for part in [out, *out.parents]:
            if len(part.name.encode()) > 255:
                raise UsageError(f"{where}: the name {part.name[:40]!r}... is longer than 255 bytes")
        if len(os.fsencode(str(out.absolute()))) >= 4096:
            raise UsageError(f"{where}: the path is longer than the system allows (4096 bytes)")
        if out.exists() and not out.is_dir():
            raise UsageError(f"{where}: exists and is not a directory")
        parent = out
        while not os.path.lexists(parent) and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{where}: {parent} is a file, not a directory")

    def _check_removable(self) -> None:
        out = Path(os.path.realpath(self.path))
        if not out.exists():
            return
        danger = _protected_dirs(self.inputs).get(out)
        if danger is None and os.path.ismount(out):
            danger = "a mount point"
        if danger:
            raise UsageError(f"remove_output_dir: refusing to clean {self.path}: it is {danger}")
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise UsageError(f"remove_output_dir: {self.path} holds entries axdrive did not write ({shown}); it removes "
                             "only its own files: move them, or choose another -o, or turn remove_output_dir off")

    def foreign_entries(self) -> list[str]:
        """Entries of ``DIR`` that are not axdrive's (sorted)."""
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []
        return [n for n in names if n != STORE and owned_entry(self.path, n) is None]

    def _make_dirs(self) -> None:
        missing = []
        p = self.path
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                raise UsageError(f"output_dir {self.path}: cannot create {d}: {exc.strerror or exc}") from None
            self.created.append(d)

    def _open_store(self) -> None:
        store = self.path / STORE
        if not os.path.lexists(store):
            try:
                store.mkdir()
            except OSError as exc:
                raise UsageError(f"output_dir {self.path}: cannot write: {exc.strerror or exc}") from None
            self.store_created = True
            owner = {"schema": OWNER_SCHEMA, "id": secrets.token_hex(16),
                     "note": "this folder and every DIR entry that links into it are written by axdrive"}
            tmp = store / f".{OWNER}.tmp"
            tmp.write_text(json.dumps(owner, indent=1) + "\n")
            os.replace(tmp, store / OWNER)
            return
        problem = self._store_problem(store)
        if problem:
            raise UsageError(f"output_dir {self.path}: {store} exists but {problem}; axdrive will not touch it "
                             "(choose another -o, or remove it yourself)")

    @staticmethod
    def _store_problem(store: Path) -> str | None:
        st = os.lstat(store)
        if not stat.S_ISDIR(st.st_mode):
            return "is not a directory"
        try:
            owner = json.loads((store / OWNER).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return f"has no readable {OWNER}"
        ident = owner.get("id") if isinstance(owner, dict) else None
        if owner.get("schema") != OWNER_SCHEMA or not isinstance(ident, str) or len(ident) != 32:
            return f"its {OWNER} is not axdrive's"
        return None

    # -- what is whose ---------------------------------------------------------------------------------
    def foreign(self, name: str) -> str | None:
        """Why ``DIR/name`` may not become an artifact, or ``None`` if it is free or axdrive's own."""
        p = self.path / name
        if name == STORE:
            return f"{p} is axdrive's store"
        if not os.path.lexists(p) or owned_entry(self.path, name) is not None:
            return None
        return (f"{p} exists and axdrive did not write it; it will not replace it "
                "(move it, rename the artifact, or choose another -o)")

    # -- locks and folders in the store ----------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.path / STORE / _LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _new_folder(self, kind: str) -> Path:
        """A new ``kind-<id>`` folder in the store with its ``.lock`` held by this process (call locked)."""
        folder = self.path / STORE / f"{kind}-{secrets.token_hex(8)}"
        folder.mkdir()
        fd = os.open(folder / _STAGE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if kind == "staging":
            self._stage_lock_fd = fd
        else:
            os.close(fd)
        (folder / LEDGER).touch()
        return folder

    @staticmethod
    def _abandoned(folder: Path) -> bool:
        """A staging folder whose compile is gone: nobody holds its lock (or it never got one)."""
        try:
            fd = os.open(folder / _STAGE_LOCK, os.O_RDWR)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    @staticmethod
    def _ledger(folder: Path) -> list[str]:
        try:
            lines = (folder / LEDGER).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return []
        names = []
        for line in lines:
            try:
                check_artifact_name(line)
            except ValueError:
                continue
            names.append(line)
        return names

    def _remove_folder(self, folder: Path) -> None:
        """Remove a store folder by its ledger; leave (and say) whatever axdrive did not write."""
        for name in [*self._ledger(folder), LEDGER, _STAGE_LOCK]:
            p = folder / name
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                if not stat.S_ISDIR(os.lstat(p).st_mode):
                    p.unlink()
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                left = ", ".join(sorted(os.listdir(folder))[:5])
                _log().warning("left a folder of the store: it holds files axdrive did not write",
                               folder=str(folder), files=left)
            else:
                raise

    def _pointer(self, pointer: str) -> str | None:
        """The folder name ``.axdrive/<pointer>`` links to, if it is one of the store's folders."""
        try:
            text = os.readlink(self.path / STORE / pointer)
        except OSError:
            return None
        return text if "/" not in text and (self.path / STORE / text).is_dir() else None

    def _switch(self, pointer: str, folder: str | None) -> None:
        """Point ``.axdrive/<pointer>`` at ``folder`` (or remove it) in one atomic step."""
        link = self.path / STORE / pointer
        if folder is None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            return
        tmp = self.path / STORE / f"{pointer}.tmp-{secrets.token_hex(8)}"
        os.symlink(folder, tmp)
        os.replace(tmp, link)

    def _reconcile(self) -> None:
        """Make ``DIR`` match the two pointers: links to names the pointed folders lack go, unreferenced
        folders go, abandoned staging folders go (call locked)."""
        store = self.path / STORE
        live = {CURRENT: self._pointer(CURRENT), FAILED: self._pointer(FAILED)}
        for pointer, folder in live.items():
            if folder is None:
                self._switch(pointer, None)
        have = {p: (set(self._ledger(store / f)) if f else set()) for p, f in live.items()}
        for entry in sorted(os.listdir(self.path)):
            pointer = owned_entry(self.path, entry)
            if pointer is not None and (entry not in have[pointer] or not (store / pointer / entry).is_file()):
                (self.path / entry).unlink()
        for entry in sorted(os.listdir(store)):
            p = store / entry
            if entry.startswith((f"{CURRENT}.tmp-", f"{FAILED}.tmp-", "link.tmp-")) and os.path.islink(p):
                p.unlink()
            elif entry.startswith(("gen-", "fail-")) and entry not in live.values():
                self._remove_folder(p)
            elif entry.startswith("staging-") and p.is_dir() and self._abandoned(p):
                self._remove_folder(p)

    def _publish(self, pointer: str, names: Iterable[str]) -> None:
        """Link ``DIR/name`` through ``pointer`` for each name (before the switch: dangling until then)."""
        for name in names:
            link = self.path / name
            if owned_entry(self.path, name) == pointer:
                continue
            tmp = self.path / STORE / f"link.tmp-{secrets.token_hex(8)}"
            os.symlink(_link_text(pointer, name), tmp)
            os.replace(tmp, link)

    # -- finishing -------------------------------------------------------------------------------------
    def commit(self) -> list[Path]:
        """Make the staged compile the directory's content in one switch; returns the artifacts' paths.

        Order: every name checked free, files and folders flushed, the staging
        folder renamed to ``gen-<id>``, links created, ``current`` switched
        (the commit point), then everything of earlier compiles and failures
        the new one does not list removed.
        """
        stage = self.stage
        assert stage is not None, "commit() before open()"
        names = stage.names
        out = self.path
        with self._locked(), _signals_deferred():
            for name in names:
                problem = self.foreign(name)
                if problem:
                    raise UsageError(f"artifact {name!r}: {problem}")
            for name in names:
                _fsync_path(stage.staging / name)
            _fsync_path(stage.staging)
            gen = out / STORE / ("gen-" + stage.staging.name.split("-", 1)[1])
            try:
                os.rename(stage.staging, gen)
                self._publish(CURRENT, names)
                self._switch(CURRENT, gen.name)
                self._switch(FAILED, None)
                _fsync_path(out / STORE)
                _fsync_path(out)
            except OSError as exc:
                raise OutputError(f"output_dir {out}: cannot commit: {exc.strerror or exc}") from None
            self._release_stage()
            self.stage = self._staging = None
            self._reconcile()
        return [out / n for n in names]

    def write_failure(self, files: Mapping[str, bytes]) -> list[Path]:
        """Keep a failed compile's trace and error ZIP beside the last good compile, under the names of
        :data:`FAILURE_FILES`; the good compile stays exactly as it was. Returns the paths written."""
        written = []
        with self._locked(), _signals_deferred():
            folder = self._new_folder("fail")
            try:
                names = []
                for stored, data in files.items():
                    name = FAILURE_FILES.get(stored, stored)
                    problem = self.foreign(name)
                    if problem:
                        _log().warning("failure file not written", file=name, reason=problem)
                        continue
                    with open(folder / LEDGER, "a", encoding="utf-8") as ledger:
                        ledger.write(name + "\n")
                    (folder / name).write_bytes(data)
                    _fsync_path(folder / name)
                    names.append(name)
                _fsync_path(folder)
                self._publish(FAILED, names)
                self._switch(FAILED, folder.name)
                written = [self.path / n for n in names]
            except BaseException:
                self._reconcile()
                raise
            self._reconcile()
        return written

    def _release_stage(self) -> None:
        if self._stage_lock_fd is not None:
            os.close(self._stage_lock_fd)
            self._stage_lock_fd = None

    def abandon(self) -> None:
        """Drop the staging folder; if this compile created ``DIR`` (or its store) and nothing is kept,
        remove those again, so a failed compile leaves no empty folder behind."""
        with _signals_deferred():
            store = self.path / STORE
            if self._staging is not None and self._staging.exists():
                self._remove_folder(self._staging)
            self.stage = self._staging = None
            self._release_stage()
            if self.store_created and store.is_dir() and not self._pointer(CURRENT) and not self._pointer(FAILED):
                self._remove_store(store)
            for d in reversed(self.created):
                with contextlib.suppress(OSError):
                    d.rmdir()

    def _remove_store(self, store: Path) -> None:
        with contextlib.suppress(OSError):
            for entry in os.listdir(store):
                if entry.startswith("staging-") and self._abandoned(store / entry):
                    self._remove_folder(store / entry)
        for name in (OWNER, _LOCK):
            with contextlib.suppress(OSError):
                (store / name).unlink()
        with contextlib.suppress(OSError):
            store.rmdir()
