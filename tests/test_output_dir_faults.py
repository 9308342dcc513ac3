"""Fault injection: a compile SIGKILLed at any point of its commit leaves the old compile or the new one.

Two ways to kill:

* **at every step**: a child process counts the filesystem calls (rename, replace, symlink, unlink,
  rmdir) the commit makes and SIGKILLs itself at the N-th, for every N (a sample in the default suite);
* **at random**: the CLI is killed a random 0-4 ms after the staged manifest appears, which is where
  the commit runs (5 trials in the default suite, 50 in the slow one).

After each kill: the directory holds the old compile or the new one, byte for byte as a clean compile
writes it, every listed hash matches, the user's file is untouched, ``axdrive run`` gives that compile's
outputs bit-exactly, and the next compile leaves no trace of the killed one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from _support import listing
from _toy_models import classifier
from axdrive import driver
from axdrive.artifacts import sha256_file
from axdrive.config import CompilerConfig
from axdrive.outdir import STORE, committed_dir, owned_entry
from axdrive.runner import execute

OLD = {}
NEW = {"quantization_scheme": "per_tensor_min_max", "trace_tvm_passes": True}  # other bytes, other names


def _cfg(props: dict) -> CompilerConfig:
    cfg = CompilerConfig()
    for k, v in props.items():
        setattr(cfg, k, v)
    return cfg


def _sets(props: dict) -> list[str]:
    return [a for k, v in props.items() for a in ("--set", f"{k}={str(v).lower()}")]


class World:
    """The user's folder, pristine old and new compiles, and what each gives on the same input."""

    def __init__(self, root: Path) -> None:
        self.root = root
        onnx.save(classifier("normalise"), root / "m.onnx")
        np.save(root / "cal.npy", np.random.default_rng(0).uniform(0, 255, (4, 3, 8, 8)).astype(np.float32))
        self.x = np.random.default_rng(1).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
        self.expected = {}
        for tag, props in (("old", OLD), ("new", NEW)):
            out = root / f"pristine-{tag}"
            driver.compile(root / "m.onnx", _cfg(props), output_dir=out, calibration=str(root / "cal.npy"))
            (out / "thesis.tex").write_text("years of work\n")
            manifest = (out / "manifest.json").read_bytes()
            self.expected[manifest] = (tag, set(listing(out)), dict(execute(out, {"x": self.x})))

    def fresh(self, name: str) -> Path:
        """A copy of the old compile, with the user's file beside it: the state before each kill."""
        out = self.root / name
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(self.root / "pristine-old", out, symlinks=True)
        return out

    def check(self, out: Path) -> str:
        """The invariant after a kill; returns which compile the directory holds."""
        folder = committed_dir(out)
        manifest_bytes = (folder / "manifest.json").read_bytes()
        assert manifest_bytes in self.expected, "the committed manifest is neither the old nor the new compile's"
        tag, names, outputs = self.expected[manifest_bytes]
        manifest = json.loads(manifest_bytes)
        for entry in manifest["artifacts"]:
            assert sha256_file(folder / entry["name"]) == entry["sha256"], entry["name"]
        # what resolves is exactly that compile's set (a dangling link, left mid-commit, is no file)
        resolving = {n for n in listing(out) if (out / n).exists()}
        assert resolving == names, (tag, resolving ^ names)
        for n in resolving - {"thesis.tex"}:
            assert owned_entry(out, n) == "current" and Path(os.path.realpath(out / n)).parent == folder
        assert (out / "thesis.tex").read_text() == "years of work\n"
        got = execute(out, {"x": self.x})
        assert set(got) == set(outputs) and all(np.array_equal(got[k], outputs[k]) for k in got)
        return tag

    def recompile_cleans(self, out: Path) -> None:
        driver.compile(self.root / "m.onnx", _cfg(NEW), output_dir=out, calibration=str(self.root / "cal.npy"))
        assert self.check(out) == "new"
        store = os.listdir(out / STORE)
        assert not [e for e in store if e.startswith(("staging-", "fail-", "current.tmp", "link.tmp"))], store
        assert [e for e in store if e.startswith("gen-")] == [committed_dir(out).name]
        assert all((out / n).exists() for n in listing(out)), "a dangling link survived the next compile"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("faults"))


# -- kill at the N-th filesystem step of the commit ---------------------------------------------------------------
_CHILD = textwrap.dedent("""
    import os, signal, sys
    import axdrive.outdir as outdir
    from axdrive.cli import main

    kill_at, counter_file = int(sys.argv[1]), sys.argv[2]
    state = {"in_commit": False, "n": 0}
    for name in ("rename", "replace", "symlink", "unlink", "rmdir"):
        real = getattr(os, name)
        def step(*a, _real=real, **k):
            if state["in_commit"]:
                state["n"] += 1
                if state["n"] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return _real(*a, **k)
        setattr(os, name, step)
    commit = outdir.OutputDir.commit
    def counted(self):
        state["in_commit"] = True
        try:
            return commit(self)
        finally:
            state["in_commit"] = False
            with open(counter_file, "w") as f:
                f.write(str(state["n"]))
    outdir.OutputDir.commit = counted
    sys.exit(main(sys.argv[3:]))
""")


def _kill_at(world: World, out: Path, n: int) -> subprocess.CompletedProcess:
    counter = world.root / "steps.txt"
    args = [sys.executable, "-c", _CHILD, str(n), str(counter), "compile", str(world.root / "m.onnx"),
            "--calibration", str(world.root / "cal.npy"), "-o", str(out), *_sets(NEW)]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def _commit_steps(world: World) -> int:
    out = world.fresh("count")
    proc = _kill_at(world, out, 10**9)
    assert proc.returncode == 0, proc.stderr
    return int((world.root / "steps.txt").read_text())


def _every_step(world: World, steps: list[int]) -> set[str]:
    seen = set()
    for n in steps:
        out = world.fresh(f"step{n}")
        proc = _kill_at(world, out, n)
        assert proc.returncode == -signal.SIGKILL, (n, proc.stderr)
        seen.add(world.check(out))
        world.recompile_cleans(out)
    return seen


def test_a_kill_at_sampled_steps_of_the_commit_leaves_old_or_new(world: World) -> None:
    total = _commit_steps(world)
    assert total > 10  # the commit is many steps: the kills below land inside it
    steps = sorted({1, 3, total // 3, (2 * total) // 3, total})  # 3: a temp link made, not yet renamed
    assert _every_step(world, steps) == {"old", "new"}


@pytest.mark.slow
def test_a_kill_at_every_step_of_the_commit_leaves_old_or_new(world: World) -> None:
    total = _commit_steps(world)
    assert _every_step(world, list(range(1, total + 1))) == {"old", "new"}


# -- kill at a random moment around the commit -------------------------------------------------------------------
def _random_kills(world: World, trials: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen = []
    for trial in range(trials):
        out = world.fresh(f"random{seed}-{trial}")
        proc = subprocess.Popen([sys.executable, "-m", "axdrive", "compile", str(world.root / "m.onnx"),
                                 "--calibration", str(world.root / "cal.npy"), "-o", str(out), *_sets(NEW)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        store = out / STORE
        while proc.poll() is None and time.monotonic() < deadline:
            if any((store / e / "manifest.json").exists() for e in os.listdir(store) if e.startswith("staging-")):
                break
        time.sleep(rng.uniform(0, 0.004))
        proc.kill()
        proc.wait(timeout=60)
        seen.append(world.check(out))
        world.recompile_cleans(out)
    return seen


def test_random_kills_around_the_commit_leave_old_or_new(world: World) -> None:
    _random_kills(world, 5, seed=1)


@pytest.mark.slow
def test_fifty_random_kills_around_the_commit_leave_old_or_new(world: World) -> None:
    seen = _random_kills(world, 50, seed=2)
    assert "old" in seen or "new" in seen
