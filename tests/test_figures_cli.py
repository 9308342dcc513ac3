"""`axdrive run --figures` and `execute(..., figures=True)`: the runtime draws, the core hands the SVG on.

Uses the hand-written toy output directory of test_runner (conv + sigmoid on the device, softmax on the host).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from _support import run_cli

from axdrive.cli import main
from axdrive.errors import UsageError
from axdrive.runner import execute

pytest.importorskip("axdrive_hw")
from test_runner import Toy, write_output_dir  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
FILES = ["memory_map_ddr.svg", "memory_map_l1.svg", "timeline.svg"]  # the toy has no L2 buffers


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    out = write_output_dir(root / "out", Toy())
    x = np.random.default_rng(1).uniform(-4, 3.8, (1, 6, 6, 5)).astype(np.float32)
    np.save(root / "x.npy", x)
    return out, root / "x.npy"


def test_run_figures_writes_one_svg_per_level_with_buffers_and_the_timeline(toy_dir, tmp_path):
    out, x = toy_dir
    figs = tmp_path / "figs" / "nested"  # created, parents too
    proc = run_cli("run", str(out), "--input", str(x), "--figures", str(figs))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in figs.iterdir()) == FILES  # no temp files left behind
    assert f"wrote figures into {figs}: memory_map_l1.svg" in proc.stdout
    for name in FILES:
        root = ET.fromstring((figs / name).read_text())
        assert root.tag == f"{SVG}svg"
    tasks = ET.fromstring((figs / "timeline.svg").read_text()).find(f".//{SVG}g[@id='tasks']")
    assert len(tasks.findall(f"{SVG}rect")) == 10  # the toy's 10 tasks, each wider than a pixel
    buffers = ET.fromstring((figs / "memory_map_l1.svg").read_text()).find(f".//{SVG}g[@id='buffers']")
    assert len(buffers.findall(f"{SVG}rect")) == 9  # x, w, bias, mult, shift, code, luts in L1; acc; act
    host = ET.fromstring((figs / "timeline.svg").read_text()).find(f".//{SVG}g[@id='host']")
    assert len(host.findall(f"{SVG}rect")) == 2  # the input upload and the output download


def test_execute_returns_the_figures_and_they_are_deterministic(toy_dir):
    out, x = toy_dir
    first = execute(out, np.load(x), figures=True).figures
    again = execute(out, np.load(x), figures=True).figures
    assert sorted(first) == FILES and first == again
    assert execute(out, np.load(x)).figures is None  # drawn only when asked


@pytest.mark.parametrize("bad", ["file", "under_file"])
def test_a_bad_figures_dir_is_one_usage_error_line_before_the_run(toy_dir, tmp_path, capsys, bad):
    out, x = toy_dir
    (tmp_path / "f").write_text("not a directory")
    target = tmp_path / "f" if bad == "file" else tmp_path / "f" / "sub"
    code = main(["run", str(out), "--input", str(x), "--figures", str(target)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # refused before running
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"axdrive: error: --figures {target}: ")


def test_a_runtime_whose_results_draw_nothing_is_a_usage_error(toy_dir, tmp_path, monkeypatch):
    """The figures come through the runtime hook; a runtime without ``figures()`` says so in one line."""
    out, x = toy_dir
    (tmp_path / "plain_runtime.py").write_text(
        "import numpy as np\n"
        "from types import SimpleNamespace\n"
        "from axdrive.passes import hookimpl\n\n"
        "class Plain:\n"
        "    distribution = 'plain-npu'\n"
        "    def run(self, output_dir, inputs, *, config, profile):\n"
        "        return SimpleNamespace(outputs={'feat': np.zeros((1, 6, 6, 7), np.int8)}, report={},\n"
        "                               trace_lines=None, chrome_trace=None)\n\n"
        "@hookimpl\n"
        "def axdrive_runtime(target):\n"
        "    return Plain() if target == 'plain_v1' else None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plain = write_output_dir(tmp_path / "plain", Toy(), target="plain_v1")
    assert "feat" in execute(plain, np.load(x), plugins=["plain_runtime"], core_only=True)
    with pytest.raises(UsageError, match="the runtime of plain-npu for target 'plain_v1' draws no figures"):
        execute(plain, np.load(x), plugins=["plain_runtime"], figures=True)
