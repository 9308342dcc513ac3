"""The calibration input pipeline: how photos become model inputs, from the CLI, a config file and the API; the
one-line summary of what calibration loaded; the warning when its scale is off; and ``axdrive run --input PHOTO``
preprocessing as the compile did.

Photos here are solid colours or fixed patterns, so every expected input value is known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from PIL import Image

from _support import run_cli
from _toy_models import toy_model
from axdrive.calibration import ImagePreprocessing, load_calibration, load_images
from axdrive.errors import CalibrationError

RGB = (200, 100, 50)


def _solid(path: Path, size=(20, 10), colour=RGB) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def _folder(tmp_path: Path, n: int = 3) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _model(tmp_path: Path, weight_scale: float = 1.0, bias: bool = True, name: str = "m.onnx") -> Path:
    """conv (with a bias of the size a batch-normalised layer has for inputs in [0, 1] / weight_scale) -> relu
    -> conv. ``weight_scale=1/255``: the same model trained on pixels in [0, 255]."""
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.3 * weight_scale).astype(np.float32)
    inits = {"w": w, "w2": (rng.standard_normal((4, 8, 1, 1)) * 0.3).astype(np.float32)}
    if bias:
        inits["b"] = (rng.standard_normal(8) * 0.5).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="first"),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Conv", ["r", "w2"], ["y"])]
    onnx.save(toy_model(nodes, inits, x_shape=(1, 3, 16, 16)), tmp_path / name)
    return tmp_path / name


# -- the pipeline, on known pixels ---------------------------------------------------------------------------------
@pytest.mark.parametrize("options, expected", [
    ({}, [v / 255 for v in RGB]),
    ({"channel_order": "BGR"}, [v / 255 for v in RGB[::-1]]),
    ({"scale": "1"}, list(RGB)),
    ({"mean": "0.5", "std": "0.25"}, [(v / 255 - 0.5) / 0.25 for v in RGB]),
    ({"scale": "1", "mean": "100,100,100", "std": "2,4,5"}, [(200 - 100) / 2, (100 - 100) / 4, (50 - 100) / 5]),
])
def test_each_step_of_the_pipeline_gives_the_values_it_says(tmp_path, options, expected) -> None:
    x = load_images([_solid(tmp_path / "s.png")], (1, 3, 8, 8), ImagePreprocessing.from_mapping(options))
    assert x.shape == (1, 3, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0].reshape(3, -1), np.repeat(np.float32(expected)[:, None], 64, axis=1), rtol=1e-6)


def test_letterbox_keeps_the_aspect_and_pads_with_the_pad_value(tmp_path) -> None:
    """A 20x10 photo into 8x8: 8x4 of photo, centred, and two bands of 2 rows of pad_value."""
    x = load_images([_solid(tmp_path / "s.png")], (1, 3, 8, 8),
                    ImagePreprocessing.from_mapping({"resize": "letterbox", "pad_value": "0", "scale": "1"}))
    np.testing.assert_array_equal(x[0, :, :2], 0)
    np.testing.assert_array_equal(x[0, :, 6:], 0)
    np.testing.assert_array_equal(x[0, 0, 2:6], 200)
    gray = load_images([_solid(tmp_path / "s.png")], (1, 3, 8, 8), ImagePreprocessing(resize="letterbox", scale=1.0))
    np.testing.assert_array_equal(gray[0, :, :2], 114)


def test_nhwc_layout_and_integer_pixels(tmp_path) -> None:
    x = load_images([_solid(tmp_path / "s.png")], (1, 8, 8, 3),
                    ImagePreprocessing.from_mapping({"layout": "nhwc", "scale": "0.999", "dtype": "uint8"}))
    assert x.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(x[0, 0, 0], [200, 100, 50])  # 199.8, 99.9, 49.95 rounded to uint8 pixels


@pytest.mark.parametrize("options, message", [
    ({"scal": "1"}, "unknown preprocessing option 'scal' (did you mean 'scale'?)"),
    ({"scale": "x"}, "preprocessing scale 'x' is invalid: not a number"),
    ({"scale": "-1"}, "preprocessing scale -1.0 is invalid: a positive number"),
    ({"pad_value": "300"}, "preprocessing pad_value 300 is invalid: an integer in [0, 255]"),
    ({"mean": "1,2"}, "preprocessing mean (1.0, 2.0) is invalid: 1 or 3 finite numbers"),
    ({"resize": "crop"}, "preprocessing resize 'crop' is invalid: bilinear or letterbox"),
    ({"transform": "prep:f"}, "preprocessing transform 'prep:f' is invalid: FILE.py:FUNCTION"),
    ({"transform": "prep.py:f", "scale": "1"}, "replaces the built-in steps; it cannot be combined with scale"),
])
def test_a_bad_option_is_one_line_naming_it(options, message) -> None:
    with pytest.raises(CalibrationError) as info:
        ImagePreprocessing.from_mapping(options)
    assert message in str(info.value) and "\n" not in str(info.value)


# -- a transform of the user's own -------------------------------------------------------------------------------
_TRANSFORM = """
import numpy as np

def to_input(image, shape):
    # the centre crop of the photo, BGR, in [-1, 1]
    h, w = shape[2], shape[3]
    top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    crop = image[top:top + h, left:left + w, ::-1]
    return crop.transpose(2, 0, 1).astype(np.float32) / 127.5 - 1

def wrong_shape(image, shape):
    return np.zeros((3, 2, 2), np.float32)

def broken(image, shape):
    raise ValueError("no such colour")
"""


def test_a_transform_file_makes_the_inputs_and_every_failure_is_one_line(tmp_path) -> None:
    (tmp_path / "prep.py").write_text(_TRANSFORM)
    photo = tmp_path / "p.png"
    pixels = np.random.default_rng(3).integers(0, 256, (12, 14, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(photo)
    x = load_images([photo], (1, 3, 8, 8), ImagePreprocessing(transform=f"{tmp_path / 'prep.py'}:to_input"))
    want = pixels[2:10, 3:11, ::-1].transpose(2, 0, 1).astype(np.float32) / 127.5 - 1
    np.testing.assert_array_equal(x[0], want)
    for spec, message in [(f"{tmp_path / 'prep.py'}:wrong_shape", "returned float32 (3, 2, 2), expected numbers of "
                                                                    "shape (3, 8, 8)"),
                          (f"{tmp_path / 'prep.py'}:broken", "failed: ValueError: no such colour"),
                          (f"{tmp_path / 'prep.py'}:missing", "has no function 'missing'"),
                          (f"{tmp_path / 'none.py'}:f", "none.py: no such file")]:
        with pytest.raises(CalibrationError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_images([photo], (1, 3, 8, 8), ImagePreprocessing(transform=spec))


# -- from the CLI and a config file, recorded, used by axdrive run ------------------------------------------------
def test_cli_flags_over_the_config_table_calibrate_record_and_run_a_photo_as_calibrated(tmp_path) -> None:
    model, photos = _model(tmp_path), _folder(tmp_path)
    (tmp_path / "cfg.toml").write_text('[preprocessing]\nresize = "letterbox"\npad_value = 0\nscale = 1.0\n')
    out = tmp_path / "out"
    proc = run_cli("compile", str(model), "-o", str(out), "--calibration", str(photos), "--config",
                   str(tmp_path / "cfg.toml"), "--preprocess", "scale=1/255", "--preprocess", "channel_order=BGR")
    assert proc.returncode == 0, proc.stderr
    # the one-line summary: letterboxing 32x24 into 16x16 leaves rows of pad value 0 in every channel
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("calibration:")]
    assert f"3 samples from {photos}; x 3x16x16: channels [0, " in line and "first layer at " in line
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"] == {"input": "x", "shape": [1, 3, 16, 16], "resize": "letterbox", "pad_value": 0,
                                         "channel_order": "BGR", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0],
                                         "std": [1.0, 1.0, 1.0], "layout": "NCHW", "dtype": "float32"}
    report = json.loads((out / "compile_report.json").read_text())
    assert report["calibration"]["samples"] == 3 and report["calibration"]["inputs"]["x"]["channel_ranges"][0][0] == 0
    # axdrive run --input PHOTO: the same outputs as the array the recorded pipeline makes of it
    photo = sorted(photos.iterdir())[0]
    x = load_images([photo], (1, 3, 16, 16), ImagePreprocessing(resize="letterbox", pad_value=0,
                                                                 channel_order="BGR"))
    np.save(tmp_path / "x.npy", x)
    a = run_cli("run", str(out), "--input", str(photo), "-o", str(tmp_path / "a.npz"))
    b = run_cli("run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "b.npz"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["y"], np.load(tmp_path / "b.npz")["y"])


def test_a_config_table_with_an_unknown_key_or_a_bad_value_is_refused_before_anything_runs(tmp_path) -> None:
    model = _model(tmp_path)
    (tmp_path / "cfg.toml").write_text('[preprocessing]\nscal = 1.0\n')
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "--config", str(tmp_path / "cfg.toml"))
    assert proc.returncode == 2 and "preprocessing.scal" in proc.stderr and "did you mean 'scale'" in proc.stderr
    (tmp_path / "cfg.toml").write_text('[preprocessing]\nchannel_order = "GBR"\n')
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "--config", str(tmp_path / "cfg.toml"))
    assert proc.returncode == 2 and "channel_order 'GBR' is invalid: RGB or BGR" in proc.stderr
    assert not (tmp_path / "out").exists()
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "out"), "--preprocess", "scale")
    assert proc.returncode == 2 and "--preprocess 'scale': expected KEY=VALUE" in proc.stderr


def test_run_refuses_a_photo_for_a_compile_calibrated_on_arrays_and_a_changed_transform(tmp_path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    model, photos = _model(tmp_path), _folder(tmp_path)
    photo = str(sorted(photos.iterdir())[0])
    cal = np.random.default_rng(0).uniform(0, 1, (2, 3, 16, 16)).astype(np.float32)
    driver.compile(model, CompilerConfig(), output_dir=tmp_path / "arrays", calibration=cal)
    proc = run_cli("run", str(tmp_path / "arrays"), "--input", photo)
    assert proc.returncode == 2 and "records no image preprocessing (it was calibrated on arrays)" in proc.stderr
    (tmp_path / "prep.py").write_text(_TRANSFORM)
    spec = f"{tmp_path / 'prep.py'}:to_input"
    res = driver.compile(model, CompilerConfig(), output_dir=tmp_path / "t", calibration=photos,
                         preprocessing={"transform": spec})
    assert res.manifest["preprocessing"]["transform"] == spec
    assert run_cli("run", str(tmp_path / "t"), "--input", photo).returncode == 0
    (tmp_path / "prep.py").write_text(_TRANSFORM + "\n# edited\n")
    proc = run_cli("run", str(tmp_path / "t"), "--input", photo)
    assert proc.returncode == 2 and "is not the file the compile used (its sha256 changed" in proc.stderr


# -- is the calibration data scaled as the model was trained? -----------------------------------------------------
@pytest.mark.parametrize("weight_scale, scale, verdict", [
    (1.0, "1/255", None),                       # trained on [0, 1], given [0, 1]
    (1.0, "1", "looks too large"),              # trained on [0, 1], given [0, 255]
    (1 / 255, "1", None),                       # trained on [0, 255], given [0, 255]
    (1 / 255, "1/255", "looks too small"),      # trained on [0, 255], given [0, 1]: the YOLOX case
])
def test_the_first_layer_says_when_the_calibration_scale_is_off(tmp_path, weight_scale, scale, verdict) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig

    res = driver.compile(_model(tmp_path, weight_scale), CompilerConfig(), output_dir=tmp_path / "out",
                         calibration=_folder(tmp_path), preprocessing={"scale": scale})
    said = [w for w in res.report["warnings"] if "first layer 'first'" in w]
    assert not any("all values are integers" in w for w in res.report["warnings"])  # the user chose the scale
    ratio = res.report["calibration"]["input_scale"]["ratio"]
    if verdict is None:
        assert said == [] and 0.04 <= ratio <= 10, (ratio, said)
    else:
        assert len(said) == 1 and verdict in said[0], (ratio, said)


def test_no_bias_no_signal_and_a_first_layer_behind_other_nodes_is_reached(tmp_path) -> None:
    from axdrive.ir import Graph, Node, Tensor
    from axdrive_quantizer._input_scale import input_scale

    f32 = np.dtype(np.float32)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    b = np.full(4, 2.0, np.float32)
    tensors = {"x": Tensor("x", (1, 3, 4, 4), f32), "h": Tensor("h", (1, 3, 4, 4), f32),
               "y": Tensor("y", (1, 4, 4, 4), f32), "w": Tensor("w", w.shape, f32, w), "b": Tensor("b", (4,), f32, b),
               "k": Tensor("k", (), f32, np.asarray(2.0, np.float32))}
    g = Graph("g", [Node("half", "Div", ["x", "k"], ["h"]), Node("conv", "Conv", ["h", "w", "b"], ["y"])], tensors,
              ["x"], ["y"], 17)
    x = rng.uniform(0, 1, (2, 3, 4, 4)).astype(np.float32)
    found = input_scale(g, {"x": x})
    u = np.einsum("oc,nchw->nohw", w[:, :, 0, 0].astype(np.float64), x / 2.0)
    spread = np.sqrt(np.mean(u.transpose(1, 0, 2, 3).reshape(4, -1).std(axis=1) ** 2))
    assert found["node"] == "conv" and found["ratio"] == pytest.approx(spread / 2.0, rel=1e-3)
    g.nodes[1].inputs = ["h", "w"]
    assert input_scale(g, {"x": x}) is None


def test_the_summary_gives_the_count_shape_and_each_channels_range(tmp_path) -> None:
    """Two solid photos, (200, 100, 50) and (10, 20, 30), scaled by 1/255: each channel's range is known."""
    from axdrive_quantizer._calibration import summarize

    folder = tmp_path / "solid"
    folder.mkdir()
    _solid(folder / "a.png")
    _solid(folder / "b.png", colour=(10, 20, 30))
    doc = summarize(load_calibration(folder, {"x": (1, 3, 4, 4)}), "solid", None)
    assert doc["samples"] == 2 and doc["inputs"]["x"]["shape"] == [3, 4, 4]
    expected = [[lo / 255, hi / 255] for lo, hi in ((10, 200), (20, 100), (30, 50))]
    np.testing.assert_allclose(doc["inputs"]["x"]["channel_ranges"], expected, rtol=1e-5)
    np.testing.assert_allclose(doc["inputs"]["x"]["range"], [10 / 255, 200 / 255], rtol=1e-5)
    wide = summarize({"f": np.zeros((2, 64, 4), np.float32)}, "arrays", None)
    assert "channel_ranges" not in wide["inputs"]["f"]  # not image planes: one range

def test_a_config_tables_transform_is_relative_to_the_file_and_the_flag_replaces_the_tables_steps(tmp_path) -> None:
    model, photos = _model(tmp_path), _folder(tmp_path)
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "prep.py").write_text(_TRANSFORM)
    (conf / "cfg.toml").write_text('[preprocessing]\ntransform = "prep.py:to_input"\n')
    elsewhere = tmp_path / "run_here"
    elsewhere.mkdir()
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "a"), "--calibration", str(photos), "--config",
                   str(conf / "cfg.toml"), cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr  # found beside the config file, not in the working directory
    (conf / "cfg2.toml").write_text('[preprocessing]\nresize = "letterbox"\n')
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "b"), "--calibration", str(photos), "--config",
                   str(conf / "cfg2.toml"), "--transform", f"{conf / 'prep.py'}:to_input")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["preprocessing"]["transform"].endswith(
        "prep.py:to_input")
    proc = run_cli("compile", str(model), "-o", str(tmp_path / "c"), "--preprocess", "scale=1/0")
    assert proc.returncode == 2 and "preprocessing scale '1/0' is invalid: not a number" in proc.stderr
