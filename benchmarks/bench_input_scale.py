"""The calibration scale check's signal across the corpus: the first layer's ratio R at the right input scale,
and with the input multiplied by 1/255 and by 255 (see docs/quantization.md, "Is the calibration data scaled
right?"). The warning band must separate the groups on every model; this prints the table the band was chosen
from and writes ``results/input_scale.json``.

    python benchmarks/bench_input_scale.py
"""

from __future__ import annotations

import tempfile

from _common import report
from bench_placement import REAL

from axdrive import driver
from axdrive.calibration import load_images
from axdrive.config import CompilerConfig
from axdrive.models import CALIBRATION_PHOTOS, fetch_model, fetch_photos
from axdrive_quantizer._input_scale import BAND, input_scale

FACTORS = (1.0, 1 / 255, 255.0)


def main() -> None:
    photos = fetch_photos(CALIBRATION_PHOTOS)
    rows = []
    for name, (inp, shape, pre) in REAL.items():
        with tempfile.TemporaryDirectory() as tmp:
            res = driver.compile(fetch_model(name), CompilerConfig(), output_dir=tmp, input_shapes={inp: shape},
                                 stop_after="frontend.optimize")
        x = load_images(photos, shape, pre)
        ratios = [input_scale(res.graph, {inp: x * k})["ratio"] for k in FACTORS]
        inside = [BAND[0] <= r <= BAND[1] for r in ratios]
        rows.append([name, *ratios, "yes" if inside == [True, False, False] else "NO"])
    report("input_scale", "python benchmarks/bench_input_scale.py",
           ["model", "R right scale", "R x 1/255", "R x 255", f"band {BAND} separates"], rows,
           {"band": list(BAND), "samples": len(photos)})


if __name__ == "__main__":
    main()
