"""Channel data movement as computation: Split/Slice -> selection convs, Concat -> shifted residual
adds (``rewrite_concat_to_resadd``), 1x1 broadcasts -> Expand. Each keeps run_integer bit-identical."""

from __future__ import annotations

import numpy as np
from onnx import helper

from _codegen_support import int8_core
from _toy_models import toy_model

from axdrive.ir.rewrite import rewrite
from axdrive.reference import run_integer
from axdrive_lowering._rules_channels import BROADCAST_RULES, CONCAT_RULES, SLICE_RULES, mark_unaligned_concats, \
    UNALIGNED_CONCAT_RULES

RNG = np.random.default_rng(11)


def _model(nodes, inits, shape=(1, 3, 8, 8)):
    return toy_model(nodes, inits, x_shape=shape)


def _w(*shape):
    return RNG.normal(0, 0.3, shape).astype(np.float32)


def assert_same_outputs(a, b, n=3):
    for seed in range(n):
        feeds = {"x": np.random.default_rng(seed).integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)}
        ra, rb = run_integer(a, feeds), run_integer(b, feeds)
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)


def split_concat():
    """conv -> Split(8, 12) -> [a, conv(b)] -> Concat(a, b, conv(b), maxpool(b))."""
    return _model([helper.make_node("Conv", ["x", "w1"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Split", ["c", "split"], ["a", "b"], axis=1),
                   helper.make_node("Conv", ["b", "w2"], ["d"], pads=[1, 1, 1, 1]),
                   helper.make_node("MaxPool", ["b"], ["m"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                   helper.make_node("Concat", ["a", "b", "d", "m"], ["y"], axis=1)],
                  {"w1": _w(20, 3, 3, 3), "split": np.array([8, 12], np.int64), "w2": _w(16, 12, 3, 3)})


def test_a_channel_split_becomes_one_selection_conv_per_output(tmp_path):
    core = int8_core(split_concat(), tmp_path)
    lowered = core.copy()
    assert rewrite(lowered, SLICE_RULES) == {"channel_slice_to_selection": 1}
    assert not any(n.op == "Split" for n in lowered.nodes)
    selections = [n for n in lowered.nodes if n.name.startswith("Split") or n.outputs[0] in ("a", "b")]
    assert len(selections) == 2 and all(n.op == "Conv" for n in selections)
    lowered.verify()
    assert_same_outputs(core, lowered)


def test_a_concat_becomes_shifted_selection_convs_and_identity_adds(tmp_path):
    core = int8_core(split_concat(), tmp_path)
    lowered = core.copy()
    assert rewrite(lowered, CONCAT_RULES) == {"concat_to_resadd": 1}
    assert not any(n.op == "Concat" for n in lowered.nodes)
    adds = [n for n in lowered.nodes if n.op == "Add"]
    assert len(adds) == 3  # four inputs, three adds
    assert all(lowered.tensors[n.outputs[0]].shape[1] == 8 + 12 + 16 + 12 for n in adds)
    lowered.verify()
    assert_same_outputs(core, lowered)


def test_a_concat_input_from_a_private_conv_on_the_output_grid_folds_into_its_weights(tmp_path):
    model = _model([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                    helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]),
                    helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], {"w1": _w(8, 3, 3, 3), "w2": _w(4, 3, 3, 3)})
    core = int8_core(model, tmp_path)
    lowered = core.copy()
    rewrite(lowered, CONCAT_RULES)
    convs = [n for n in lowered.nodes if n.op == "Conv"]
    assert len(convs) == 2, "both inputs are private convs aligned to the Concat grid: no selection conv"
    assert all(lowered.constant(c.inputs[1]).shape[0] == 12 for c in convs)
    assert_same_outputs(core, lowered)


def test_an_aligned_concat_of_whole_pwords_on_one_grid_stays_for_dma_copies(tmp_path):
    model = _model([helper.make_node("Conv", ["x", "w1"], ["a"]),
                    helper.make_node("Conv", ["x", "w2"], ["b"]),
                    helper.make_node("Concat", ["a", "b"], ["y"], axis=1)], {"w1": _w(64, 3, 1, 1), "w2": _w(64, 3, 1, 1)})
    core = int8_core(model, tmp_path)
    mark_unaligned_concats(core)
    assert rewrite(core, UNALIGNED_CONCAT_RULES) == {"concat_unaligned_to_resadd": 0}
    split = int8_core(split_concat(), tmp_path / "s")
    mark_unaligned_concats(split)
    assert rewrite(split, UNALIGNED_CONCAT_RULES) == {"concat_unaligned_to_resadd": 1}


def test_a_one_by_one_operand_of_an_elementwise_node_is_broadcast_with_expand(tmp_path):
    model = _model([helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
                    helper.make_node("GlobalAveragePool", ["a"], ["g"]),
                    helper.make_node("Sigmoid", ["g"], ["s"]),
                    helper.make_node("Mul", ["a", "s"], ["y"])], {"w1": _w(8, 3, 3, 3)})
    core = int8_core(model, tmp_path)
    lowered = core.copy()
    assert rewrite(lowered, BROADCAST_RULES) == {"broadcast_to_expand": 1}
    expand = next(n for n in lowered.nodes if n.op == "Expand")
    assert lowered.tensors[expand.outputs[0]].shape == (1, 8, 8, 8)
    assert_same_outputs(core, lowered)
