"""The output directory never costs a user a file: ownership, crash-safe commits, hostile paths.

Every case of the output-directory safety issue is here, tried the way a user (or a hostile file) would:
the CLI in a child process where exit codes, single error lines or signals matter, ``driver.compile``
in-process where only the files matter. Kill-at-every-step and random SIGKILL trials are in
``test_output_dir_faults.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from _support import listing, run_cli
from _toy_models import classifier
from axdrive import driver
from axdrive.artifacts import atomic_write_bytes, protected_paths
from axdrive.config import CompilerConfig
from axdrive.errors import UsageError
from axdrive.outdir import STORE, OutputDir, committed_dir, owned_entry


def _digest(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (links not followed) with its sha256: what a user would miss."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in files:
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                continue
            found[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _visible(out: Path) -> dict[str, bytes]:
    """What a reader of ``out`` sees: each top-level file (through its link) with its bytes."""
    return {n: (out / n).read_bytes() for n in listing(out) if (out / n).is_file()}


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A user's folder: the toy model, calibration data, an input, and a precious file of theirs."""
    onnx.save(classifier("normalise"), tmp_path / "m.onnx")
    np.save(tmp_path / "cal.npy", np.random.default_rng(0).uniform(0, 255, (4, 3, 8, 8)).astype(np.float32))
    np.save(tmp_path / "x.npy", np.random.default_rng(1).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32))
    (tmp_path / "thesis.tex").write_text("years of work\n")
    return tmp_path


def _compile(work: Path, out: Path | str, **props) -> driver.CompileResult:
    cfg = CompilerConfig()
    for k, v in props.items():
        setattr(cfg, k, v)
    return driver.compile(work / "m.onnx", cfg, output_dir=out, calibration=str(work / "cal.npy"))


def _cli(work: Path, *args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return run_cli("compile", str(work / "m.onnx"), "--calibration", str(work / "cal.npy"), *args,
                   cwd=cwd or work, env=env)


def _one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("axdrive: error: "), proc.stderr
    assert "internal error" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- the layout ------------------------------------------------------------------------------------------------
def test_artifacts_are_links_into_the_store_and_read_like_files(work: Path) -> None:
    res = _compile(work, work / "out")
    out = work / "out"
    assert listing(out) == sorted(res.artifacts)
    for name in listing(out):
        assert owned_entry(out, name) == "current" and (out / name).is_file()
        assert Path(os.path.realpath(out / name)).parent == committed_dir(out)
    owner = json.loads((out / STORE / "owner.json").read_text())
    assert owner["schema"] == "axdrive.output_dir/1" and len(owner["id"]) == 32


def test_a_second_compile_leaves_exactly_its_own_files_and_one_generation(work: Path) -> None:
    out = work / "out"
    _compile(work, out, trace_tvm_passes=True, quantized_graph_export=True)
    second = _compile(work, out, quantized_graph_export=False)
    assert listing(out) == sorted(second.artifacts)
    assert "pass_trace.json" not in listing(out) and "quantized_graph.json" not in listing(out)
    store = sorted(os.listdir(out / STORE))
    assert [e for e in store if e.startswith("gen-")] == [committed_dir(out).name]
    assert not [e for e in store if e.startswith(("staging-", "fail-"))]


def test_same_compile_twice_gives_byte_identical_artifacts(work: Path) -> None:
    a, b = _compile(work, work / "a"), _compile(work, work / "b")
    assert set(a.artifacts) == set(b.artifacts)
    same = {n for n in a.artifacts if n != "compile_report.json"}
    assert all((work / "a" / n).read_bytes() == (work / "b" / n).read_bytes() for n in same)


# -- data loss: remove_output_dir ------------------------------------------------------------------------------
def test_remove_output_dir_at_the_parent_of_the_cwd_refuses_and_touches_nothing(work: Path) -> None:
    _compile(work, work)  # an earlier compile right in the user's folder: its manifest proves nothing
    sub = work / "sub"
    sub.mkdir()
    (sub / "notes.txt").write_text("mine")
    before = _digest(work)
    proc = _cli(work, "-o", "..", "--set", "remove_output_dir=true", cwd=sub)
    _one_error_line(proc, 2, "remove_output_dir", "an ancestor of the current directory")
    assert _digest(work) == before


def test_remove_output_dir_refuses_the_current_directory(work: Path) -> None:
    out = work / "out"
    _compile(work, out)
    before = _digest(work)
    proc = _cli(work, "-o", ".", "--set", "remove_output_dir=true", cwd=out)
    _one_error_line(proc, 2, "it is the current directory")
    assert _digest(work) == before


def test_output_in_the_models_folder_never_deletes_the_model_or_the_users_files(work: Path) -> None:
    _compile(work, work)
    before = {k: v for k, v in _digest(work).items() if not k.startswith(STORE)}
    with pytest.raises(UsageError, match="remove_output_dir: refusing .* it is a folder holding the model"):
        _compile(work, work, remove_output_dir=True)
    second = _compile(work, work)  # without remove_output_dir: a normal recompile beside the user's files
    assert {k: v for k, v in _digest(work).items() if not k.startswith(STORE)} == before
    assert set(second.artifacts) <= set(listing(work))


def test_a_foreign_manifest_is_neither_trusted_nor_replaced(work: Path) -> None:
    out = work / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"manifest_version": 3}')
    (out / "data.csv").write_text("1,2,3\n")
    before = _digest(out)
    with pytest.raises(UsageError, match=r"remove_output_dir: .*did not write \(data.csv, manifest.json\)"):
        _compile(work, out, remove_output_dir=True)
    proc = _cli(work, "-o", str(out))
    _one_error_line(proc, 2, "'manifest.json'", "exists and axdrive did not write it")
    assert _digest(out) == before and listing(out) == ["data.csv", "manifest.json"]
    assert not (out / STORE).exists()  # the refused compile took back the store it had made


def test_a_manifest_or_ledger_naming_user_files_gets_none_of_them_deleted(work: Path) -> None:
    out = work / "out"
    _compile(work, out)
    current = committed_dir(out)
    # a hostile store: the committed folder's ledger and manifest name the user's file, inside and outside
    (out / "thesis.tex").write_text("years of work\n")
    with open(current / ".ledger", "a") as ledger:
        ledger.write("thesis.tex\n../thesis.tex\n")
    manifest = json.loads((current / "manifest.json").read_text())
    manifest["artifacts"] += [{"name": "thesis.tex", "sha256": "0" * 64}, {"name": "../../thesis.tex"}]
    (current / "manifest.json").write_text(json.dumps(manifest))
    _compile(work, out)
    _compile(work, out, remove_output_dir=False)
    assert (out / "thesis.tex").read_text() == "years of work\n" and (work / "thesis.tex").is_file()


def test_a_file_a_user_dropped_into_the_store_is_kept_with_its_folder(work: Path) -> None:
    out = work / "out"
    _compile(work, out)
    old = committed_dir(out)
    (old / "mine.txt").write_text("not axdrive's")
    _compile(work, out)
    assert (old / "mine.txt").read_text() == "not axdrive's"  # the old generation stays, holding it
    assert committed_dir(out) != old and not (old / "program.bin").exists()


def test_remove_output_dir_refuses_a_home_directory_from_the_password_database(work: Path, monkeypatch) -> None:
    home = work / "realhome"
    _compile(work, home)  # holds only axdrive's files, so only the home rule can refuse it
    monkeypatch.setenv("HOME", "/tmp")
    real = pwd.getpwall()
    monkeypatch.setattr(pwd, "getpwall", lambda: [*real, pwd.struct_passwd(("alice", "x", 4242, 4242, "", str(home),
                                                                           "/bin/sh"))])
    before = _digest(home)
    with pytest.raises(UsageError, match="the home directory of user 'alice'"):
        _compile(work, home, remove_output_dir=True)
    assert _digest(home) == before


def test_remove_output_dir_refuses_a_mount_point(work: Path, monkeypatch) -> None:
    out = work / "mnt"
    _compile(work, out)
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda p: Path(p) == out.resolve() or real(p))
    with pytest.raises(UsageError, match="it is a mount point"):
        _compile(work, out, remove_output_dir=True)


def test_remove_output_dir_refuses_a_real_tmpfs_mount_point_holding_only_axdrive_files(work: Path) -> None:
    """The same on a real mount, made in a private mount namespace (``unshare -m``) so nothing outside sees it."""
    import shutil as sh

    if os.geteuid() != 0 or not sh.which("unshare") or not sh.which("mount"):
        pytest.skip("mounting a tmpfs needs root and util-linux's unshare and mount")
    mnt = work / "mnt"
    mnt.mkdir()
    axdrive = f"{sys.executable} -m axdrive compile {work / 'm.onnx'} --calibration {work / 'cal.npy'} -o {mnt}"
    script = (f"mount -t tmpfs -o size=64m none {mnt} || exit 77; {axdrive} >/dev/null || exit 3; "
              f"{axdrive} --set remove_output_dir=true; echo rc=$?; ls {mnt}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if proc.returncode == 77 or "unshare failed" in proc.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()[:200]}")
    assert "rc=2" in proc.stdout and "manifest.json" in proc.stdout, proc.stdout + proc.stderr
    assert "remove_output_dir: refusing to clean" in proc.stderr and "it is a mount point" in proc.stderr


def test_remove_output_dir_refuses_the_folder_holding_the_calibration_data(work: Path) -> None:
    data = work / "out"
    _compile(work, data)
    np.save(data / "cal.npy", np.load(work / "cal.npy"))
    cfg = CompilerConfig(remove_output_dir=True)
    with pytest.raises(UsageError, match="the calibration data"):
        driver.compile(work / "m.onnx", cfg, output_dir=data, calibration=str(data / "cal.npy"))


# -- data loss: names -----------------------------------------------------------------------------------------
def test_a_model_named_like_an_artifact_compiled_into_its_own_folder_is_not_overwritten(work: Path) -> None:
    folder = work / "models"
    folder.mkdir()
    model = folder / "quantized_model.onnx"
    model.write_bytes((work / "m.onnx").read_bytes())
    before = model.read_bytes()
    proc = run_cli("compile", str(model), "-o", str(folder), "--calibration", str(work / "cal.npy"))
    _one_error_line(proc, 2, "'quantized_model.onnx'", "did not write it")
    assert model.read_bytes() == before and listing(folder) == ["quantized_model.onnx"]


def test_a_dump_name_equal_to_a_host_part_is_an_error_naming_both_writers(work: Path) -> None:
    out = work / "out"
    _compile(work, out)
    before = _visible(out)
    proc = _cli(work, "-o", str(out), "--set", "graph_cleaner_dump_core_onnx=host_preprocess.onnx")
    line = _one_error_line(proc, 2, "'host_preprocess.onnx' is written twice")
    assert "graph_cleaner_dump_core_onnx" in line and "graph_cleaner.split" in line
    assert _visible(out) == before  # the good compile is exactly as it was


# -- writes by axdrive run ---------------------------------------------------------------------------------------
@pytest.fixture
def compiled(work: Path) -> Path:
    _compile(work, work / "out")
    return work / "out"


def _run(compiled: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    def child() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([sys.executable, "-m", "axdrive", "run", str(compiled), "--input",
                           str(compiled.parent / "x.npy"), *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=child)


def test_run_refuses_to_turn_a_character_device_into_a_file(compiled: Path, tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    for target in (tmp_path / "null", Path("/dev/null")):
        proc = _run(compiled, "-o", str(target))
        _one_error_line(proc, 2, str(target), "is a character device")
        assert stat.S_ISCHR(os.stat(target).st_mode)


def test_run_refuses_a_fifo_and_a_directory_as_output(compiled: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    _one_error_line(_run(compiled, "-o", str(tmp_path / "pipe")), 2, "pipe")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)
    _one_error_line(_run(compiled, "-o", str(tmp_path)), 2, "directory")


def test_run_profile_refuses_a_special_file_where_the_trace_goes(compiled: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "profile.txt")
    proc = _run(compiled, "-o", str(tmp_path / "y.npz"), "--profile", "B")
    _one_error_line(proc, 2, "profile.txt", "is a FIFO")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_run_outputs_follow_the_umask(compiled: Path, tmp_path: Path, umask: int) -> None:
    proc = _run(compiled, "-o", str(tmp_path / "y.npz"), umask=umask)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(tmp_path / "y.npz").st_mode) == 0o666 & ~umask


def test_a_replaced_output_keeps_its_mode_and_a_link_keeps_pointing(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = tmp_path / "link.bin"
    link.symlink_to(target.name)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["data.bin", "link.bin"]  # no temp file left


def test_run_output_at_its_own_input_or_an_artifact_is_refused(compiled: Path) -> None:
    x = compiled.parent / "x.npy"
    before = x.read_bytes()
    _one_error_line(_run(compiled, "-o", str(x)), 2, "refusing to overwrite the run's input")
    assert x.read_bytes() == before
    program = (compiled / "program.bin").read_bytes()
    _one_error_line(_run(compiled, "-o", str(compiled / "program.bin")), 2, "an artifact of")
    assert (compiled / "program.bin").read_bytes() == program


def test_protected_paths_catch_another_spelling_and_a_hard_link(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    os.link(model, tmp_path / "hard.onnx")
    with protected_paths({model: "the model"}):
        for spelling in (tmp_path / "." / "m.onnx", tmp_path / "hard.onnx"):
            with pytest.raises(UsageError, match="the model"):
                atomic_write_bytes(spelling, b"x")
    assert model.read_bytes() == b"model"


# -- reading: the manifest vouches for every file ----------------------------------------------------------------
def test_run_refuses_an_unlisted_host_part_in_one_line(compiled: Path) -> None:
    stray = committed_dir(compiled) / "host_postprocess.onnx"
    stray.write_bytes((compiled / "host_preprocess.onnx").read_bytes())
    _one_error_line(_run(compiled), 2, "host_postprocess.onnx", "does not list")


def test_run_refuses_an_artifact_changed_after_the_compile(compiled: Path) -> None:
    pre = compiled / "host_preprocess.onnx"
    pre.write_bytes(pre.read_bytes() + b"\0")
    _one_error_line(_run(compiled), 1, "host_preprocess.onnx", "differs from the manifest")


def test_a_store_pointer_out_of_the_store_is_not_followed(compiled: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "manifest.json").write_text('{"schema": "axdrive.manifest/1"}')
    pointer = compiled / STORE / "current"
    pointer.unlink()
    pointer.symlink_to(elsewhere)
    assert committed_dir(compiled) == compiled  # read as a directory without a store: its own files
    before = _digest(elsewhere)
    _compile(compiled.parent, compiled)  # the next compile repairs the store and touches nothing out of it
    assert _digest(elsewhere) == before and committed_dir(compiled).parent == compiled / STORE


def test_a_users_own_file_named_like_a_host_part_beside_the_links_is_never_run(work: Path) -> None:
    out = work / "out"
    _compile(work, out, run_graph_cleaner=False)
    (out / "host_postprocess.onnx").write_bytes(b"not a model")  # the user's file, not in the store
    proc = _run(out)
    assert proc.returncode == 0, proc.stderr


# -- failures ----------------------------------------------------------------------------------------------------
def _failing(work: Path, out: Path, **props) -> str:
    """A compile that fails in a pass (an infeasible L1 limit); returns its one-line error."""
    props = {"l1_constraint": 1024, **props}
    with pytest.raises(Exception) as info:
        _compile(work, out, **props)
    return str(info.value)


def test_a_failed_compile_leaves_the_good_one_exactly_and_its_files_beside_it(work: Path) -> None:
    out = work / "out"
    _compile(work, out, trace_tvm_passes=True)
    before, digest = _visible(out), {k: v for k, v in _digest(out).items()}
    _failing(work, out, trace_tvm_passes=True, save_error_artifact=True)
    failed = {"error_artifact.zip", "failed.pass_dependency_graph.json", "failed.pass_trace.json"}
    assert set(listing(out)) == set(before) | failed
    assert {n: b for n, b in _visible(out).items() if n not in failed} == before
    assert all(v == _digest(out).get(k) for k, v in digest.items())
    doc = json.loads((out / "failed.pass_dependency_graph.json").read_text())
    assert any(p["status"] == "failed" for p in doc["passes"])
    # the next good compile drops the failure's files: they belong to no compile it lists
    _compile(work, out)
    assert not failed & set(listing(out))


def test_a_failed_compile_into_a_new_path_leaves_no_folder_behind(work: Path) -> None:
    out = work / "new" / "deeper"
    _failing(work, out)
    assert not (work / "new").exists()
    _failing(work, out, save_error_artifact=True)
    assert listing(out) == ["error_artifact.zip"]


@pytest.mark.parametrize("case", ["unsupported", "calibration", "memory"])
def test_save_error_artifact_never_changes_the_error(work: Path, case: str, tmp_path: Path) -> None:
    args = {"unsupported": ("--set", "run_graph_cleaner=false", "--set", "validate_operators=true"),
            "calibration": (),
            "memory": ("--set", "l1_constraint=1024")}[case]
    model, cal = work / "m.onnx", work / "cal.npy"
    if case == "unsupported":
        model = _unsupported_model(tmp_path)
    if case == "calibration":
        cal = tmp_path / "wrong.npy"
        np.save(cal, np.zeros((2, 3, 9, 9), np.float32))
    errors = []
    for save in ("false", "true"):
        proc = run_cli("compile", str(model), "--calibration", str(cal), "-o", str(tmp_path / f"o{save}"), *args,
                       "--set", f"save_error_artifact={save}")
        errors.append(_one_error_line(proc, proc.returncode))
        assert proc.returncode in (1, 2)
    assert errors[0] == errors[1]
    assert listing(tmp_path / "otrue") == ["error_artifact.zip"]


def _unsupported_model(folder: Path) -> Path:
    from onnx import helper

    from _toy_models import toy_model

    path = folder / "hard.onnx"
    onnx.save(toy_model([helper.make_node("Hardmax", ["x"], ["y"], axis=1)], {}), path)
    return path


@pytest.mark.parametrize("case", ["good-compile", "failing-compile-with-error-zip"])
def test_a_full_disk_gives_one_clean_line_and_keeps_the_good_compile(work: Path, case: str) -> None:
    import resource

    out = work / "out"
    _compile(work, out)
    before = _visible(out)
    # a file-size limit: every write past it fails with EFBIG, as writes fail on a full disk
    size = 20_000 if case == "good-compile" else 1_000
    model = work / "m.onnx" if case == "good-compile" else _unsupported_model(work)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    proc = subprocess.run([sys.executable, "-m", "axdrive", "compile", str(model), "--calibration",
                           str(work / "cal.npy"), "-o", str(out), "--set",
                           f"save_error_artifact={'false' if case == 'good-compile' else 'true'}"],
                          capture_output=True, text=True, timeout=300, preexec_fn=limit, cwd=work)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("axdrive: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "internal error" not in proc.stderr, proc.stderr
    if case == "good-compile":
        assert "cannot write" in errors[0] and "File too large" in errors[0], proc.stderr
    else:  # the original error, not the ZIP's; the ZIP's failure is a warning
        assert "found nothing to run on the accelerator" in errors[0], proc.stderr
        assert "could not write the failure files" in proc.stderr
    assert _visible(out) == before
    assert not [e for e in os.listdir(out / STORE) if e.startswith(("staging-", "fail-"))]


# -- hostile -o paths --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["under-a-file", "dangling-link", "long-name", "is-a-file", "foreign-store"])
def test_a_hostile_output_path_gets_one_line(work: Path, case: str) -> None:
    if case == "under-a-file":
        out, needle = work / "thesis.tex" / "out", "is a file, not a directory"
    elif case == "dangling-link":
        (work / "link").symlink_to(work / "missing")
        out, needle = work / "link", "symlink to a missing path"
    elif case == "long-name":
        out, needle = work / ("x" * 300), "longer than 255 bytes"
    elif case == "is-a-file":
        out, needle = work / "thesis.tex", "exists and is not a directory"
    else:
        out = work / "theirs"
        (out / STORE).mkdir(parents=True)
        (out / STORE / "owner.json").write_text('{"tool": "someone else"}')
        needle = "is not axdrive's"
    before = _digest(work)
    _one_error_line(_cli(work, "-o", str(out)), 2, needle)
    assert _digest(work) == before and not (work / "missing").exists()


def test_an_unwritable_output_directory_gets_one_line(work: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = work / "ro"
    ro.mkdir(mode=0o555)
    _one_error_line(_cli(work, "-o", str(ro)), 2, "cannot write")


# -- signals -----------------------------------------------------------------------------------------------------
def _staging(out: Path) -> list[str]:
    try:
        return [e for e in os.listdir(out / STORE) if e.startswith("staging-")]
    except FileNotFoundError:
        return []


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_clean_up_and_exit_with_the_shell_code(work: Path, sig: int, code: int) -> None:
    out = work / "out"
    _compile(work, out)
    before = _visible(out)
    proc = subprocess.Popen([sys.executable, "-m", "axdrive", "compile", str(work / "m.onnx"), "--calibration",
                             str(work / "cal.npy"), "-o", str(out), "--set", "quantization_scheme=per_tensor_min_max"],
                            stderr=subprocess.PIPE, text=True, cwd=work)
    deadline = time.monotonic() + 120
    while not _staging(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code and len(lines) == 1 and "interrupted" in lines[0], err
    assert _visible(out) == before and not _staging(out)


def test_a_staging_folder_left_by_a_kill_is_removed_by_the_next_compile(work: Path) -> None:
    out = work / "out"
    _compile(work, out)
    stale = out / STORE / "staging-deadbeefdeadbeef"
    stale.mkdir()
    (stale / ".ledger").write_text("program.bin\n")
    (stale / "program.bin").write_bytes(b"half")
    (stale / ".lock").touch()  # nobody holds it: its compile is gone
    _compile(work, out)
    assert not stale.exists()


def test_a_live_compiles_staging_folder_is_left_alone(work: Path) -> None:
    out = work / "out"
    live = OutputDir(out)
    stage = live.open()
    stage.write_text("note.txt", "in progress")
    _compile(work, out)  # another compile into the same directory meanwhile
    assert (stage.staging / "note.txt").read_text() == "in progress"
    live.abandon()
    assert not stage.staging.exists()


def test_artifact_names_are_plain_visible_file_names(work: Path) -> None:
    stage = OutputDir(work / "o").open()
    for bad in ("../x", "a/b", "", "..", ".hidden", STORE, "x" * 300):
        with pytest.raises(ValueError):
            stage.path(bad)


def test_writing_under_a_file_is_one_output_error_line(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError) as info:
        atomic_write_bytes(tmp_path / "f" / "g", b"")
    assert "\n" not in str(info.value) and "cannot write" in str(info.value)
