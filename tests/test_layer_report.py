"""The per-layer performance report: the cycle model's timeline per layer, beside bounds computed by hand here
from the target description (``aipu_v1``: 4 x 512 x 128 IMC cells, 8-bit serial, 32,768 MACs per cycle; two
64-byte/cycle DMA channels per core)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from _support import run_cli

PEAK = 4 * 512 * 128 // 8
DMA_RATE = 64 * 2


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from test_byom import _three_convs

    tmp = tmp_path_factory.mktemp("report")
    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    return driver.compile(_three_convs(tmp), CompilerConfig(), output_dir=tmp / "out", calibration=cal)


def test_each_layer_has_its_model_macs_and_the_bounds_the_target_allows(compiled) -> None:
    perf = compiled.report["layer_performance"]
    rows = {r["layer"]: r for r in perf["rows"]}
    # conv1 3->8 3x3 on 8x8, conv2 8->8 3x3, conv3 8->4 1x1: the model's MACs, not the 64-lane padded ones
    macs = {"conv1": 8 * 8 * 8 * 3 * 9, "conv2": 8 * 8 * 8 * 8 * 9, "conv3": 8 * 8 * 4 * 8}
    by_source = {r["source"]: r for r in rows.values()}
    for name, expected in macs.items():
        row = by_source[name]
        assert row["macs"] == expected and row["mvm_macs_executed"] > expected  # padding makes the array do more
        assert row["mvm_bound"] == round(expected / PEAK, 2)
        assert row["dma_bound"] == round(row["dma_bytes"] / DMA_RATE, 2)
        assert row["bound_cycles"] == max(row["mvm_bound"], row["dma_bound"])
        assert row["span_cycles"] >= row["bound_cycles"]  # nothing beats its bound
    totals = perf["totals"]
    assert totals["cycles"] == compiled.report["performance"]["estimated_cycles"]
    assert totals["sum_of_bounds"] == pytest.approx(sum(r["bound_cycles"] for r in perf["rows"]))
    assert totals["mvm_peak_macs_per_cycle"] == PEAK and totals["macs"] == sum(macs.values())


def test_the_csv_artifact_and_axdrive_report_agree(compiled) -> None:
    from axdrive_hw.layer_report import COLUMNS

    out = compiled.output_dir
    rows = list(csv.DictReader(io.StringIO((out / "layer_performance.csv").read_text())))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(compiled.report["layer_performance"]["rows"])
    proc = run_cli("report", str(out), "--format", "json", "--sort", "macs", "--top", "2")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["macs"] for r in doc["rows"]] == sorted((int(r["macs"]) for r in rows), reverse=True)[:2]
    text = run_cli("report", str(out))
    assert text.returncode == 0 and "cycles per frame" in text.stdout and "bound_ratio" in text.stdout
    assert run_cli("report", str(out), "--format", "csv").stdout.splitlines()[0] == ",".join(COLUMNS)
    md = run_cli("report", str(out), "--format", "md", "--sort", "order").stdout.splitlines()
    assert md[2].startswith("| order | layer |") and len(md) == 4 + len(rows)  # head, blank, header, rule, rows
    bad = run_cli("report", str(out), "--top", "-1")
    assert bad.returncode == 2 and "--top -1: give a count >= 0" in bad.stderr


def test_a_directory_without_a_program_is_one_line(tmp_path) -> None:
    from axdrive import driver
    from axdrive.config import CompilerConfig
    from test_byom import _three_convs

    cal = {"x": np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    driver.compile(_three_convs(tmp_path), CompilerConfig(compiler_mode="quantize_only"), output_dir=tmp_path / "q",
                   calibration=cal)
    proc = run_cli("report", str(tmp_path / "q"))
    assert proc.returncode == 2 and "no per-layer performance (a lowering mode writes it" in proc.stderr


def test_a_depthwise_layer_runs_on_the_dwpu_and_has_no_mvm_bound(tmp_path) -> None:
    """3x3 depthwise on 8 channels of 8x8: 8*8*8*9 = 4,608 MACs, all the DWPU's; the array computes none."""
    import onnx
    from onnx import helper

    from _toy_models import toy_model
    from axdrive import driver
    from axdrive.config import CompilerConfig

    rng = np.random.default_rng(1)
    inits = {"w1": (rng.standard_normal((8, 3, 1, 1)) * 0.3).astype(np.float32),
             "dw": (rng.standard_normal((8, 1, 3, 3)) * 0.3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="pw"),
             helper.make_node("Conv", ["c", "dw"], ["y"], group=8, pads=[1, 1, 1, 1], name="dw")]
    onnx.save(toy_model(nodes, inits), tmp_path / "dw.onnx")
    cal = {"x": rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    res = driver.compile(tmp_path / "dw.onnx", CompilerConfig(), output_dir=tmp_path / "out", calibration=cal)
    (row,) = [r for r in res.report["layer_performance"]["rows"] if r["source"] == "dw"]
    assert "dwpu" in row["units"] and "mvm" not in row["units"]
    assert row["macs"] == 8 * 8 * 8 * 9 and row["mvm_macs_executed"] == 0
    assert row["mvm_bound"] == 0.0 and row["mvm_utilization"] == 0.0 and row["dwpu_cycles"] > 0
