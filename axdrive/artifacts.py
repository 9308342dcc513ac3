"""The output directory: staged writes, atomic commit, manifest, error ZIP.

Nothing a compile writes appears under its final name until the compile has
succeeded: files are written into a hidden staging folder inside the output
directory (same filesystem, so ``os.replace`` is atomic) and renamed into
place at the end. Artifacts of an earlier compile in the same directory that
this compile did not produce are removed at commit, so the directory always
matches its ``manifest.json``.
"""

from __future__ import annotations

__all__ = [
    "ArtifactStage",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_json",
    "sha256_file",
    "prepare_output_dir",
    "REPORT_FILES",
]

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import UsageError

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


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same directory + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _looks_dangerous(path: Path) -> str | None:
    resolved = path.resolve()
    if resolved == Path(resolved.anchor):
        return "it is the filesystem root"
    if resolved == Path.home().resolve():
        return "it is the home directory"
    if resolved == Path.cwd().resolve():
        return "it is the current directory"
    return None


def prepare_output_dir(output_dir: str | Path, *, remove: bool) -> Path:
    """Create ``output_dir``; with ``remove`` (``remove_output_dir``) empty it first.

    Refuses to delete anything that does not look like an axdrive output
    directory (no ``manifest.json``), and never ``/``, the home directory or the
    current directory, whatever they contain.
    """
    out = Path(output_dir)
    if remove and out.exists():
        danger = _looks_dangerous(out)
        if danger:
            raise UsageError(f"remove_output_dir: refusing to delete {out}: {danger}")
        if not out.is_dir():
            raise UsageError(f"remove_output_dir: {out} is not a directory")
        if any(out.iterdir()) and not (out / "manifest.json").is_file():
            raise UsageError(
                f"remove_output_dir: refusing to delete {out}: it has no manifest.json, so it is not an axdrive output directory"
            )
        shutil.rmtree(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"output_dir {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return out


class ArtifactStage:
    """Collects a compile's files in a staging folder until :meth:`commit`."""

    def __init__(self, output_dir: str | Path) -> None:
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=".axdrive-staging-", dir=self.output_dir))
        self._names: list[str] = []

    # -- writing -------------------------------------------------------------
    def path(self, name: str) -> Path:
        """A path in the staging folder for writers that need one (e.g. onnx.save)."""
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ValueError(f"artifact names are plain file names, got {name!r}")
        if name not in self._names:
            self._names.append(name)
        return self.staging / name

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def write_text(self, name: str, text: str) -> Path:
        return self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, canonical_json(obj))

    def write_onnx(self, name: str, model: Any) -> Path:
        """Serialise an ``onnx.ModelProto`` deterministically."""
        return self.write_bytes(name, model.SerializeToString(deterministic=True))

    @property
    def names(self) -> list[str]:
        return [n for n in self._names if (self.staging / n).exists()]

    def sha256(self, name: str) -> str:
        return sha256_file(self.staging / name)

    # -- finishing -----------------------------------------------------------
    def commit(self) -> list[Path]:
        """Move every staged file to its final name; drop stale artifacts of an earlier compile."""
        previous: set[str] = set()
        manifest = self.output_dir / "manifest.json"
        if manifest.is_file():
            try:
                old = json.loads(manifest.read_text())
                previous = {a["name"] for a in old.get("artifacts", []) if isinstance(a, dict) and "name" in a}
            except (json.JSONDecodeError, OSError, TypeError):
                previous = set()
        names = self.names
        # manifest last, so a reader never sees a manifest naming files not yet in place
        ordered = sorted(names, key=lambda n: n == "manifest.json")
        moved = []
        for name in ordered:
            os.replace(self.staging / name, self.output_dir / name)
            moved.append(self.output_dir / name)
        for stale in sorted(previous - set(names)):
            target = self.output_dir / stale
            if "/" not in stale and target.is_file():
                target.unlink()
        self.discard()
        return moved

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
