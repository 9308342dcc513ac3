"""Calibration input: every kind of bad data fails with one line naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from axdrive.calibration import ImagePreprocessing, load_calibration, load_images
from axdrive.errors import CalibrationError
from axdrive.models import fetch_photos

SHAPES = {"x": (1, 3, 8, 16)}


def test_npy_batch_is_accepted_and_a_single_sample_gets_a_batch_axis(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3, 8, 16), np.float32))
    np.save(tmp_path / "one.npy", np.ones((3, 8, 16), np.float64))
    assert load_calibration(tmp_path / "a.npy", SHAPES)["x"].shape == (4, 3, 8, 16)
    one = load_calibration(tmp_path / "one.npy", SHAPES)["x"]
    assert one.shape == (1, 3, 8, 16) and one.dtype == np.float32


def test_wrong_shape_names_file_input_and_expected_shape(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3, 9, 16), np.float32))
    with pytest.raises(CalibrationError, match=r"a\.npy: x has shape \(4, 3, 9, 16\), expected \(N, 3, 8, 16\)"):
        load_calibration(tmp_path / "a.npy", SHAPES)


def test_non_numeric_dtype_is_rejected(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a"]]))
    with pytest.raises(CalibrationError, match=r"s\.npy: x has dtype <U1, expected a numeric array"):
        load_calibration(tmp_path / "s.npy", SHAPES)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_rejected_with_its_index(tmp_path, bad):
    a = np.zeros((2, 3, 8, 16), np.float32)
    a[1, 2, 3, 4] = bad
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(CalibrationError, match=r"contains NaN or inf \(first at index \(1, 2, 3, 4\)\)"):
        load_calibration(tmp_path / "a.npy", SHAPES)


def test_empty_batch_is_rejected(tmp_path):
    np.save(tmp_path / "e.npy", np.zeros((0, 3, 8, 16), np.float32))
    with pytest.raises(CalibrationError, match="no samples"):
        load_calibration(tmp_path / "e.npy", SHAPES)


def test_npz_must_name_every_model_input(tmp_path):
    np.savez(tmp_path / "a.npz", y=np.zeros((1, 3, 8, 16), np.float32))
    with pytest.raises(CalibrationError, match=r"a\.npz: no array for model input\(s\) \['x'\] \(it has \['y'\]\)"):
        load_calibration(tmp_path / "a.npz", SHAPES)


def test_empty_folder_and_undecodable_image_are_named(tmp_path):
    with pytest.raises(CalibrationError, match="folder has no images"):
        load_calibration(tmp_path, SHAPES)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(CalibrationError, match=r"broken\.png: cannot decode image"):
        load_calibration(tmp_path, SHAPES)


def test_truncated_npy_is_a_read_error_naming_the_file(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((4, 3, 8, 16), np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(CalibrationError, match=r"t\.npy: cannot read array file"):
        load_calibration(tmp_path / "t.npy", SHAPES)


def test_unknown_file_kind_and_missing_path(tmp_path):
    (tmp_path / "a.csv").write_text("1,2")
    with pytest.raises(CalibrationError, match="unsupported calibration file"):
        load_calibration(tmp_path / "a.csv", SHAPES)
    with pytest.raises(CalibrationError, match="no such file or folder"):
        load_calibration(tmp_path / "nope", SHAPES)


def test_real_photos_are_resized_normalised_and_laid_out_as_asked(tmp_path):
    photos = fetch_photos(["astronaut.png", "page.png"])  # page.png is grayscale
    pre = ImagePreprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = load_images(photos, (1, 3, 48, 192), pre)
    assert x.shape == (2, 3, 48, 192) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    nhwc = load_images(photos, (1, 48, 192, 3), ImagePreprocessing(layout="NHWC", mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_array_equal(nhwc.transpose(0, 3, 1, 2), x)
    bgr = load_images(photos[:1], (1, 3, 48, 192), ImagePreprocessing(channel_order="BGR", mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_array_equal(bgr[0], x[0, ::-1])
    lb = load_images(photos[:1], (1, 3, 48, 192), ImagePreprocessing(resize="letterbox"))
    assert np.isclose(lb[0, :, :, 0], 114 / 255).all()  # astronaut is square: padded left and right


def test_invalid_preprocessing_options_are_rejected():
    with pytest.raises(CalibrationError, match="layout 'CHW' is invalid"):
        ImagePreprocessing(layout="CHW")
    with pytest.raises(CalibrationError, match="unknown preprocessing option"):
        ImagePreprocessing.from_mapping({"sizee": 3})
    assert ImagePreprocessing.from_mapping({"mean": "0.5", "std": "0.5,0.5,0.5"}).mean == (0.5, 0.5, 0.5)
