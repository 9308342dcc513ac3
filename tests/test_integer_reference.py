"""The integer reference executor: each ``integer_op`` computes exactly the
formula of axdrive.numerics (int64 accumulation, int32 saturation, round-half-up
requantization), checked against direct numpy on small hand-built graphs."""

from __future__ import annotations

import numpy as np
import pytest

from axdrive.errors import ModelError, UsageError
from axdrive.ir import Graph, Node, QParams, Tensor
from axdrive.numerics import INT32_MAX, apply_lut, quantize_multiplier, requantize, saturate_int32
from axdrive.reference import run_integer
from axdrive.reference.integer import softmax_exp_table

RNG = np.random.default_rng(7)


def _graph(nodes, inputs: dict, outputs: dict, consts: dict | None = None) -> Graph:
    g = Graph("t", nodes, {}, list(inputs), list(outputs), 17)
    for name, (shape, dtype) in {**inputs, **outputs}.items():
        g.tensors[name] = Tensor(name, shape, dtype, None, QParams.per_tensor(0.1, 0))
    for name, value in (consts or {}).items():
        g.tensors[name] = Tensor.constant(name, value)
    return g


def _int8(shape):
    return RNG.integers(-128, 128, shape).astype(np.int8)


def test_conv_mac_is_int64_accumulation_saturated_then_requantized_per_channel():
    x, w = _int8((1, 3, 5, 5)), _int8((4, 3, 3, 3))
    bias = RNG.integers(-5000, 5000, 4).astype(np.int32)
    m, s = quantize_multiplier(np.array([0.002, 0.003, 0.004, 0.0011]))
    node = Node("conv", "Conv", ["x", "w", "b"], ["y"],
                {"pads": [1, 1, 1, 1], "integer_op": "mac", "in_zero_point": 5, "requant_multiplier": m,
                 "requant_shift": s, "out_zero_point": -3, "clamp_min": -20, "clamp_max": 100, "channel_axis": 1})
    g = _graph([node], {"x": ((1, 3, 5, 5), np.int8)}, {"y": ((1, 4, 5, 5), np.int8)}, {"w": w, "b": bias})
    y = run_integer(g, {"x": x})["y"]
    xp = np.pad(x.astype(np.int64) - 5, [(0, 0), (0, 0), (1, 1), (1, 1)])
    acc = np.zeros((1, 4, 5, 5), np.int64)
    for i in range(5):
        for j in range(5):
            acc[0, :, i, j] = np.tensordot(w.astype(np.int64), xp[0, :, i:i + 3, j:j + 3], axes=3)
    acc += bias.reshape(1, 4, 1, 1)
    want = requantize(np.moveaxis(saturate_int32(acc), 1, -1), m, s, -3, -20, 100)
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, np.moveaxis(want, -1, 1))


def test_accumulator_saturates_to_int32_before_requantization():
    x = np.full((1, 4), 127, np.int8)
    w = np.full((4, 1), 127, np.int8)
    bias = np.array([INT32_MAX - 10], np.int32)
    node = Node("fc", "MatMul", ["x", "w", "b"], ["y"],
                {"integer_op": "mac", "in_zero_point": -128, "requant_multiplier": np.array([1 << 30]),
                 "requant_shift": np.array([31]), "out_zero_point": 0, "channel_axis": 1})
    g = _graph([node], {"x": ((1, 4), np.int8)}, {"y": ((1, 1), np.int8)}, {"w": w, "b": bias})
    # saturated: INT32_MAX * 2**-1 -> clamps to 127 (a wrapped accumulator would be negative)
    assert run_integer(g, {"x": x})["y"][0, 0] == 127


def test_add_rescales_both_inputs_then_requantizes():
    a, b = _int8((2, 8)), _int8((2, 8))
    ma, sa = quantize_multiplier(2.0 ** 20)
    mb, sb = quantize_multiplier(0.7 * 2.0 ** 20)
    m, s = quantize_multiplier(1.3 / 2.0 ** 20)
    node = Node("add", "Add", ["a", "b"], ["y"],
                {"integer_op": "add", "in_zero_points": [3, -7], "in_multipliers": [ma, mb], "in_shifts": [sa, sb],
                 "requant_multiplier": m, "requant_shift": s, "out_zero_point": 2, "clamp_min": -128,
                 "clamp_max": 127})
    g = _graph([node], {"a": ((2, 8), np.int8), "b": ((2, 8), np.int8)}, {"y": ((2, 8), np.int8)})
    ra = requantize(a.astype(np.int64) - 3, ma, sa, 0, -(2**31), 2**31 - 1).astype(np.int64)
    rb = requantize(b.astype(np.int64) + 7, mb, sb, 0, -(2**31), 2**31 - 1).astype(np.int64)
    want = requantize(ra + rb, m, s, 2)
    np.testing.assert_array_equal(run_integer(g, {"a": a, "b": b})["y"], want)


def test_mul_multiplies_centred_values_and_requantizes():
    a, b = _int8((3, 4)), _int8((3, 4))
    m, s = quantize_multiplier(0.01)
    node = Node("mul", "Mul", ["a", "b"], ["y"],
                {"integer_op": "mul", "in_zero_points": [-128, 0], "requant_multiplier": m, "requant_shift": s,
                 "out_zero_point": -5})
    g = _graph([node], {"a": ((3, 4), np.int8), "b": ((3, 4), np.int8)}, {"y": ((3, 4), np.int8)})
    want = requantize((a.astype(np.int64) + 128) * b.astype(np.int64), m, s, -5)
    np.testing.assert_array_equal(run_integer(g, {"a": a, "b": b})["y"], want)


def test_concat_on_a_shared_grid_is_a_plain_copy():
    a, b = _int8((1, 2, 3)), _int8((1, 5, 3))
    m, s = quantize_multiplier(1.0)
    node = Node("cat", "Concat", ["a", "b"], ["y"],
                {"axis": 1, "integer_op": "concat", "in_zero_points": [4, 4], "in_multipliers": [m, m],
                 "in_shifts": [s, s], "out_zero_point": 4})
    g = _graph([node], {"a": ((1, 2, 3), np.int8), "b": ((1, 5, 3), np.int8)}, {"y": ((1, 7, 3), np.int8)})
    np.testing.assert_array_equal(run_integer(g, {"a": a, "b": b})["y"], np.concatenate([a, b], axis=1))


def test_lut_node_is_a_table_lookup():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    lut = _int8((256,))
    g = _graph([Node("sig", "Sigmoid", ["x"], ["y"], {"integer_op": "lut", "lut": lut})],
               {"x": ((1, 256), np.int8)}, {"y": ((1, 256), np.int8)})
    np.testing.assert_array_equal(run_integer(g, {"x": x})["y"], apply_lut(x, lut))


def test_global_average_pool_sums_then_divides_through_the_multiplier():
    x = _int8((1, 2, 4, 4))
    m, s = quantize_multiplier(1 / 16)
    node = Node("gap", "GlobalAveragePool", ["x"], ["y"],
                {"integer_op": "avgpool", "in_zero_point": 1, "requant_multiplier": m, "requant_shift": s,
                 "out_zero_point": 1})
    g = _graph([node], {"x": ((1, 2, 4, 4), np.int8)}, {"y": ((1, 2, 1, 1), np.int8)})
    acc = (x.astype(np.int64) - 1).sum(axis=(2, 3), keepdims=True)
    np.testing.assert_array_equal(run_integer(g, {"x": x})["y"], requantize(acc, m, s, 1))


def test_data_movement_is_exact_on_int8():
    x = _int8((1, 2, 4, 4))
    nodes = [Node("mp", "MaxPool", ["x"], ["p"], {"kernel_shape": [2, 2], "strides": [2, 2], "integer_op": "move"}),
             Node("t", "Transpose", ["p"], ["y"], {"perm": [0, 2, 3, 1], "integer_op": "move"})]
    g = _graph(nodes, {"x": ((1, 2, 4, 4), np.int8)}, {"y": ((1, 2, 2, 2), np.int8)})
    g.tensors["p"] = Tensor("p", (1, 2, 2, 2), np.int8)
    want = x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5)).transpose(0, 2, 3, 1)
    y = run_integer(g, {"x": x})["y"]
    assert y.dtype == np.int8
    np.testing.assert_array_equal(y, want)


def test_softmax_outputs_probabilities_in_255ths():
    x = _int8((2, 10))
    node = Node("sm", "Softmax", ["x"], ["y"], {"axis": -1, "integer_op": "softmax",
                                                "exp_table": softmax_exp_table(0.1), "out_zero_point": -128})
    g = _graph([node], {"x": ((2, 10), np.int8)}, {"y": ((2, 10), np.int8)})
    y = run_integer(g, {"x": x})["y"].astype(np.int64) + 128
    real = np.exp(0.1 * x) / np.exp(0.1 * x).sum(axis=1, keepdims=True)
    assert np.abs(y - real * 255).max() <= 1
    assert np.all(np.abs(y.sum(axis=1) - 255) <= 10)


def test_quantize_and_dequantize_edges_follow_onnx_rounding():
    x = np.array([[0.25, 0.75, -0.25, 1e6]], np.float32)
    nodes = [Node("q", "QuantizeLinear", ["x"], ["xq"], {"integer_op": "quantize", "scale": np.array(0.5),
                                                        "zero_point": np.array(0), "quant_axis": None}),
             Node("dq", "DequantizeLinear", ["xq"], ["y"], {"integer_op": "dequantize", "scale": np.array(0.5),
                                                           "zero_point": np.array(0), "quant_axis": None})]
    g = Graph("t", nodes, {"x": Tensor("x", (1, 4), np.float32), "xq": Tensor("xq", (1, 4), np.int8),
                           "y": Tensor("y", (1, 4), np.float32)}, ["x"], ["y"], 17)
    out = run_integer(g, {"x": x}, keep_all=True)
    np.testing.assert_array_equal(out["xq"], [[0, 2, 0, 127]])  # half to even, saturating
    np.testing.assert_array_equal(out["y"], [[0.0, 1.0, 0.0, 63.5]])


def test_node_without_integer_semantics_is_an_error_naming_it():
    g = _graph([Node("relu_7", "Relu", ["x"], ["y"])], {"x": ((1, 2), np.int8)}, {"y": ((1, 2), np.int8)})
    with pytest.raises(ModelError, match="relu_7"):
        run_integer(g, {"x": np.zeros((1, 2), np.int8)})


def test_float_feed_for_an_int8_input_is_a_usage_error():
    g = _graph([Node("l", "Relu", ["x"], ["y"], {"integer_op": "lut", "lut": np.zeros(256, np.int8)})],
               {"x": ((1, 2), np.int8)}, {"y": ((1, 2), np.int8)})
    with pytest.raises(UsageError, match="int8"):
        run_integer(g, {"x": np.zeros((1, 2), np.float32)})
