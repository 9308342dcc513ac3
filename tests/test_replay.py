"""Repeated runs of one compiled program in one process replay the recorded schedule without the memory-map
checks, reuse the previous run's buffers and let the DPU interpreter write its output in place: the outputs
must be exactly those of a fresh, fully checked run in a new process."""

from __future__ import annotations

import numpy as np

from _lowered import lower, quantized
from _support import run_cli

from axdrive.calibration import ImagePreprocessing, load_images
from axdrive.models import EVALUATION_PHOTOS, fetch_photos
from axdrive.runner import execute


def test_replayed_runs_equal_fresh_checked_runs(tmp_path):
    qdq, feeds = quantized("ppocr", tmp_path)
    (name, _x), = feeds.items()
    out = tmp_path / "lowered"
    lower(qdq, out, feeds)  # its own run is the checked, recording one
    photos = load_images(fetch_photos(EVALUATION_PHOTOS[:2]), (1, 3, 48, 192),
                         ImagePreprocessing(resize="bilinear")).astype(np.float32)
    a, b = photos[0:1], photos[1:2]
    first_a = dict(execute(out, {name: a}))
    replay_b = dict(execute(out, {name: b}))
    replay_a = dict(execute(out, {name: a}))
    for k in first_a:
        np.testing.assert_array_equal(replay_a[k], first_a[k], err_msg=k)
    np.save(tmp_path / "b.npy", b)
    done = run_cli("run", str(out), "--input", str(tmp_path / "b.npy"), "-o", str(tmp_path / "b.npz"))
    assert done.returncode == 0, done.stderr
    fresh_b = dict(np.load(tmp_path / "b.npz"))
    assert set(fresh_b) == set(replay_b)
    for k in fresh_b:
        np.testing.assert_array_equal(replay_b[k], fresh_b[k], err_msg=k)
