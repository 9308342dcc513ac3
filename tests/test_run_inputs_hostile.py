"""`axdrive run --input` on hostile and careless inputs: each is one error line naming the file or the input
(exit 2), or, for integer images, an explicit cast; never an internal error, never an allocation the file does
not justify.

The output directories are real compiles of the toy classifier of tests/_toy_models.py (well under a second
each): ``plain`` has the accelerator input ``x`` (quantized int8, NHWC padded with ``-128``, where a ``uint8``
array used to overflow), ``pre`` a ``host_preprocess.onnx`` taking float32 ``x``. Cases where memory is the
point run the CLI in a child process under an address-space limit (``_support.run_cli_limited``).
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
from _support import HOSTILE_AS_LIMIT, one_error_line, run_cli_limited
from _toy_models import classifier

from axdrive import driver
from axdrive.cli import main
from axdrive.config import CompilerConfig
from axdrive.errors import UsageError
from axdrive.inputs import InputSpec, check_input, read_array_file
from axdrive.runner import execute

pytest.importorskip("axdrive_hw")

SHAPE = (1, 3, 8, 8)


def _compile(root, preamble: str):
    cal = {"x": np.random.default_rng(0).random((4, *SHAPE[1:]), dtype=np.float32)}
    result = driver.compile(classifier(preamble), CompilerConfig(), output_dir=root / preamble, calibration=cal)
    return result.output_dir


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _compile(tmp_path_factory.mktemp("run_hostile"), "none")


@pytest.fixture(scope="module")
def pre(tmp_path_factory):
    out = _compile(tmp_path_factory.mktemp("run_hostile"), "normalise")
    assert (out / "host_preprocess.onnx").exists()
    return out


@pytest.fixture
def x():
    return np.random.default_rng(1).random(SHAPE, dtype=np.float32)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["run", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, out_dir, path, *words: str) -> str:
    code, stdout, err = _run(capsys, out_dir, "--input", path)
    assert code == 2, (stdout, err)
    assert "ran " not in stdout
    return one_error_line(err, *words)


def _forged_npy(shape=(1, 3, 400000, 256000)) -> bytes:
    """A .npy whose header declares ``shape`` float32 (default 1.12 TiB) followed by 64 bytes of data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + bytes(64)


# -- integers, NaN, shapes --------------------------------------------------------------------------------------
def test_uint8_image_for_a_float_input_is_cast_explicitly_and_runs_like_float32(plain, pre, tmp_path, capsys):
    pixels = np.random.default_rng(2).integers(0, 256, SHAPE).astype(np.uint8)
    for out_dir in (plain, pre):
        got, want = execute(out_dir, pixels), execute(out_dir, pixels.astype(np.float32))
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    np.save(tmp_path / "u8.npy", pixels)
    code, stdout, err = _run(capsys, plain, "--input", tmp_path / "u8.npy")  # was: OverflowError
    assert code == 0 and err == "" and "outputs:" in stdout


def test_integers_that_would_round_in_float32_are_refused_naming_the_input(plain, tmp_path, capsys):
    big = np.full(SHAPE, 2**24 + 1, np.int32)
    np.save(tmp_path / "big.npy", big)
    _refused(capsys, plain, tmp_path / "big.npy", "input 'x'", "192 int32 value(s) (e.g. 16777217)",
             "do not convert exactly to float32")


def test_an_int8_array_for_a_quantized_input_is_taken_as_already_quantized(plain, x):
    import json

    from axdrive.runner import quantize

    (entry,) = json.loads((plain / "manifest.json").read_text())["inputs"]
    q = quantize(x, entry["quantization"])
    np.testing.assert_array_equal(execute(plain, q, core_only=True)["prob"], execute(plain, x, core_only=True)["prob"])


@pytest.mark.parametrize("bad, words", [
    (np.float32(0.5), ["input 'x': got a 0-d array (one float32 number), expected float32[1, 3, 8, 8]"]),
    (np.zeros((3, 8, 8), np.float32), ["input 'x': expected 4-D shape [1, 3, 8, 8]", "got 3-D [3, 8, 8]"]),
    (np.zeros((1, 3, 8, 9), np.float32), ["input 'x'", "got [1, 3, 8, 9] (axis 3 is 9, expected 8)"]),
    (np.zeros((0, 3, 8, 8), np.float32), ["input 'x': got an empty array float32[0, 3, 8, 8] (axis 0 has size 0)"]),
    (np.ones(SHAPE, bool), ["input 'x': got bool values, expected float32 or int8 (already quantized) values"]),
    (np.ones(SHAPE, np.complex64), ["input 'x': got complex64 values"]),
], ids=["0-d", "rank", "dim", "empty", "bool", "complex"])
def test_arrays_of_the_wrong_kind_name_the_input_expected_and_got(plain, tmp_path, capsys, bad, words):
    np.save(tmp_path / "bad.npy", bad)
    _refused(capsys, plain, tmp_path / "bad.npy", *words)


def test_a_batch_of_frames_along_axis_0_is_still_accepted(plain):
    frames = np.random.default_rng(4).random((3, *SHAPE[1:]), dtype=np.float32)
    assert execute(plain, frames)["prob"].shape == (3, 5)


def test_nan_and_inf_in_an_input_are_an_error_with_their_counts(plain, pre, x, tmp_path, capsys):
    x[0, 0, 0, :2] = np.nan
    x[0, 1, 1, 1] = -np.inf
    np.save(tmp_path / "nan.npy", x)
    for out_dir in (plain, pre):  # was: plausible outputs and a numpy warning
        _refused(capsys, out_dir, tmp_path / "nan.npy", "input 'x': 2 NaN and 1 Inf value(s) among its 192")
    with pytest.raises(UsageError, match="input 'x': 2 NaN and 1 Inf"):  # the API too
        execute(plain, {"x": x})


def test_the_host_part_input_is_checked_against_host_preprocess_onnx(pre, tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.zeros((1, 3, 4, 4), np.float32))
    _refused(capsys, pre, tmp_path / "w.npy", "input 'x': expected shape [1, 3, 8, 8]",
             "got [1, 3, 4, 4] (axis 2 is 4, expected 8)")


# -- files ------------------------------------------------------------------------------------------------------
def test_a_pickled_object_array_in_an_npz_is_refused_naming_file_and_member(plain, tmp_path, capsys):
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    _refused(capsys, plain, tmp_path / "obj.npz", f"--input {tmp_path / 'obj.npz'}: member 'x.npy'",
             "Python objects", "not read")


def test_a_forged_npy_header_is_refused_before_allocating_under_a_memory_limit(plain, tmp_path):
    (tmp_path / "huge.npy").write_bytes(_forged_npy())  # 1.12 TiB declared, 64 bytes present
    proc = run_cli_limited("run", str(plain), "--input", str(tmp_path / "huge.npy"))
    assert proc.returncode == 2, proc.stderr  # was: internal error (MemoryError)
    one_error_line(proc.stderr, f"--input {tmp_path / 'huge.npy'}", "float32[1, 3, 400000, 256000] (1.12 TiB)",
                   "the file holds 64 bytes of data")


def test_a_forged_header_inside_an_npz_member_is_refused_under_a_memory_limit(plain, tmp_path):
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("x.npy", _forged_npy())
    proc = run_cli_limited("run", str(plain), "--input", str(tmp_path / "huge.npz"))
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, "huge.npz: member 'x.npy'", "(1.12 TiB)", "the member holds 64 bytes of data")


def test_a_normal_run_fits_the_same_memory_limit(plain, x, tmp_path):
    """The limit above is not what refuses the forged files: a real run succeeds under it."""
    np.save(tmp_path / "x.npy", x)
    proc = run_cli_limited("run", str(plain), "--input", str(tmp_path / "x.npy"), limit_bytes=HOSTILE_AS_LIMIT)
    assert proc.returncode == 0, proc.stderr


def test_an_npz_member_whose_zip_directory_claims_more_than_deflate_can_give_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, x=np.zeros(SHAPE, np.float32))
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 0xFFFF0000)  # uncompressed size in the central directory
    path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match=r"member 'x.npy': the zip directory declares 4 GiB uncompressed from .*forg"):
        read_array_file(path)


def test_truncated_unreadable_and_special_files_are_one_line_each(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros(SHAPE, np.float32))
    whole = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(whole[:-100])
    with pytest.raises(UsageError, match=r"t\.npy: the \.npy header declares float32\[1, 3, 8, 8\] \(768 bytes\) but "
                                         r"the file holds 668 bytes"):
        read_array_file(tmp_path / "t.npy")
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    with pytest.raises(UsageError, match=r"junk\.npy: not a \.npy array"):
        read_array_file(tmp_path / "junk.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK not a zip")
    with pytest.raises(UsageError, match=r"junk\.npz: not a readable \.npz \(zip\) file"):
        read_array_file(tmp_path / "junk.npz")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(UsageError, match=r"d\.npy: is a directory, not a regular file"):
        read_array_file(tmp_path / "d.npy")
    with pytest.raises(UsageError, match=r"nope\.npy: no such file"):
        read_array_file(tmp_path / "nope.npy")


def test_fortran_order_and_npz_arrays_read_back_exactly(tmp_path):
    a = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4))
    np.save(tmp_path / "f.npy", a)
    np.testing.assert_array_equal(read_array_file(tmp_path / "f.npy"), a)
    np.savez_compressed(tmp_path / "z.npz", a=a, b=np.arange(5, dtype=np.uint8))
    got = read_array_file(tmp_path / "z.npz")
    assert sorted(got) == ["a", "b"] and np.array_equal(got["a"], a) and got["b"].dtype == np.uint8


def test_output_file_that_is_a_directory_is_refused_before_running(plain, x, tmp_path, capsys):
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "res").mkdir()
    code, stdout, err = _run(capsys, plain, "--input", tmp_path / "x.npy", "-o", tmp_path / "res")
    assert code == 2 and stdout == ""  # nothing ran
    one_error_line(err, f"-o {tmp_path / 'res'}: is a directory")


# -- the rules, without a compile -------------------------------------------------------------------------------
def test_integer_inputs_of_an_integer_input_must_fit_and_floats_are_refused():
    spec = InputSpec("ids", np.dtype(np.int8), (1, 4))
    assert check_input("ids", np.array([[1, 2, 3, -4]], np.int64), spec).dtype == np.int8
    with pytest.raises(UsageError, match=r"input 'ids': int64 values in \[0, 300\] do not fit int8 \[-128, 127\]"):
        check_input("ids", np.array([[0, 1, 2, 300]]), spec)
    with pytest.raises(UsageError, match="input 'ids': got float32 values, expected int8 values"):
        check_input("ids", np.zeros((1, 4), np.float32), spec)


def test_float16_targets_use_their_own_exact_integer_range():
    spec = InputSpec("h", np.dtype(np.float16), (1, 2))
    assert check_input("h", np.array([[255, 2048]], np.int32), spec).dtype == np.float16
    with pytest.raises(UsageError, match=r"1 int32 value\(s\) \(e.g. 2049\) do not convert exactly to float16"):
        check_input("h", np.array([[1, 2049]], np.int32), spec)
