"""The output directory only ever holds complete files of one compile."""

from __future__ import annotations

import json
import os

import pytest

from axdrive.artifacts import ArtifactStage, atomic_write_bytes, canonical_json, prepare_output_dir
from axdrive.errors import UsageError


def test_staged_files_appear_only_at_commit(tmp_path):
    stage = ArtifactStage(tmp_path)
    stage.write_text("program.json", "{}")
    assert not (tmp_path / "program.json").exists()
    stage.write_json("manifest.json", {"artifacts": [{"name": "program.json"}]})
    stage.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "program.json"]


def test_discard_leaves_nothing_behind(tmp_path):
    stage = ArtifactStage(tmp_path)
    stage.write_text("program.bin", "x")
    stage.discard()
    assert list(tmp_path.iterdir()) == []


def test_commit_removes_artifacts_of_an_earlier_compile_that_this_one_did_not_produce(tmp_path):
    first = ArtifactStage(tmp_path)
    first.write_text("program.bin", "old")
    first.write_json("manifest.json", {"artifacts": [{"name": "program.bin"}]})
    first.commit()
    (tmp_path / "notes.txt").write_text("user file")  # not ours: must survive
    second = ArtifactStage(tmp_path)
    second.write_text("quantized_model.onnx", "new")
    second.write_json("manifest.json", {"artifacts": [{"name": "quantized_model.onnx"}]})
    second.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "notes.txt", "quantized_model.onnx"]


def test_artifact_names_must_be_plain_file_names(tmp_path):
    stage = ArtifactStage(tmp_path)
    for bad in ("../x", "a/b", "", ".."):
        with pytest.raises(ValueError):
            stage.path(bad)
    stage.discard()


def test_atomic_write_replaces_whole_files_and_leaves_no_temp(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"1" * 1000)
    atomic_write_bytes(target, b"2")
    assert target.read_bytes() == b"2"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_canonical_json_is_byte_identical_for_equal_content():
    a = canonical_json({"b": 1, "a": [1.5, "x"], "c": {"z": None, "y": True}})
    b = canonical_json({"c": {"y": True, "z": None}, "a": [1.5, "x"], "b": 1})
    assert a == b and a.endswith("\n")
    with pytest.raises(ValueError):
        canonical_json({"nan": float("nan")})


def test_remove_output_dir_empties_an_axdrive_output_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"artifacts": []}))
    (out / "program.bin").write_text("x")
    prepare_output_dir(out, remove=True)
    assert out.is_dir() and list(out.iterdir()) == []


def test_remove_output_dir_refuses_a_directory_without_manifest(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(UsageError, match="no manifest.json"):
        prepare_output_dir(out, remove=True)
    assert (out / "thesis.tex").exists()


@pytest.mark.parametrize("which", ["home", "cwd", "root"])
def test_remove_output_dir_refuses_root_home_and_cwd_even_with_a_manifest(tmp_path, monkeypatch, which):
    home = tmp_path / "home"
    home.mkdir()
    (home / "manifest.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    target = {"home": home, "cwd": ".", "root": "/"}[which]
    with pytest.raises(UsageError, match="refusing to delete"):
        prepare_output_dir(target, remove=True)
    assert (home / "manifest.json").exists()
