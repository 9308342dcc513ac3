"""``lowering.validate_operators``: every node the AIPU cannot run, named, with its reason, in one error."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from _toy_models import toy_model

from axdrive import driver
from axdrive.config import CompilerConfig
from axdrive.errors import UnsupportedOperatorError


def _unsupported_model():
    """A conv the AIPU runs, then three nodes it cannot: a Transpose moving the channels (a layout change of
    every element), a Softmax over the width (the DPU reduces over channels only), a Gather with a scalar
    index (it removes an axis: rank 3)."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "idx": np.array(2, np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1], name="to_nhwc"),
             helper.make_node("Softmax", ["t"], ["s"], axis=3, name="softmax"),
             helper.make_node("Gather", ["s", "idx"], ["y"], axis=1, name="pick")]
    return toy_model(nodes, inits, name="bad")


def _compile(tmp_path, **props):
    cfg = CompilerConfig()
    cfg.run_graph_cleaner = False
    for k, v in props.items():
        setattr(cfg, k, v)
    cal = {"x": np.random.default_rng(1).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}
    return driver.compile(_unsupported_model(), cfg, output_dir=tmp_path / "out", calibration=cal)


def test_every_unsupported_node_is_listed_with_its_name_and_reason_in_one_line(tmp_path):
    with pytest.raises(UnsupportedOperatorError) as info:
        _compile(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert "3 nodes cannot run on the AIPU" in message
    assert "'to_nhwc' (Transpose: Transpose perm [0, 2, 3, 1] moves the channels" in message
    assert "'softmax' (Softmax: Softmax over axis 3 of a rank-4 tensor; the DPU reduces over the channels" in message
    assert "host" in message
    assert "'pick' (Gather: a scalar index removes the gathered axis" in message
    assert "'conv'" not in message
    assert message.index("'to_nhwc'") < message.index("'softmax'") < message.index("'pick'")


def test_nothing_is_written_when_validation_fails(tmp_path):
    with pytest.raises(UnsupportedOperatorError):
        _compile(tmp_path)
    assert not (tmp_path / "out" / "program.bin").exists()


def test_validation_is_skipped_in_quantize_only_mode(tmp_path):
    r = _compile(tmp_path, compiler_mode="quantize_only")
    assert "lowering.validate_operators" in r.pipeline
    assert not (r.output_dir / "program.bin").exists()
