"""Small ONNX models built in code, shared by the test modules that need them
(a uniquely named module: several test folders have a ``conftest``)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _assemble(nodes, inputs, outputs, inits, opset, name):
    graph = helper.make_graph(nodes, name, inputs, outputs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def onnx_model(nodes, inputs, outputs, inits, opset=17):
    """A checked ONNX model from nodes, value infos and ``{name: array}`` initializers."""
    model = _assemble(nodes, inputs, outputs, inits, opset, "m")
    onnx.checker.check_model(model)
    return model


def toy_model(nodes, inits, x_shape=(1, 3, 8, 8), outputs=("y",), opset=17, name="m"):
    """A model with one float input ``x`` and float ``outputs`` whose shapes the frontend infers (not
    checked: the ONNX checker wants output shapes)."""
    return _assemble(nodes, [value_info("x", list(x_shape))],
                     [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits, opset, name)


def value_info(name, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


def classifier(preamble: str = "none"):
    """[preamble] -> Conv -> Relu -> GlobalAveragePool -> Flatten -> MatMul -> Add -> Relu -> MatMul -> Softmax."""
    rng = np.random.default_rng(0)
    inits = {
        "w": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "b": rng.standard_normal(8).astype(np.float32) * 0.1,
        "fc1": rng.standard_normal((8, 16)).astype(np.float32) * 0.3,
        "fc1b": rng.standard_normal(16).astype(np.float32) * 0.1,
        "fc2": rng.standard_normal((16, 5)).astype(np.float32) * 0.3,
        "scale": np.array(1 / 255, np.float32),
        "mean": np.array([0.4, 0.5, 0.6], np.float32).reshape(1, 3, 1, 1),
    }
    nodes = []
    x = "x"
    shape = [1, 3, 8, 8]
    if preamble == "layout":  # a layout change the AIPU can run (DMA copies): only the config moves it to the host
        nodes.append(helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 1, 3, 2], name="to_nchw"))
        x = "x_nchw"
    if preamble in ("normalise", "layout"):
        nodes += [helper.make_node("Mul", [x, "scale"], ["xs"], name="scale255"),
                  helper.make_node("Sub", ["xs", "mean"], ["xn"], name="submean")]
        x = "xn"
    nodes += [
        helper.make_node("Conv", [x, "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "fc1"], ["m1"], name="fc1"),
        helper.make_node("Add", ["m1", "fc1b"], ["a1"], name="fc1_bias"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "fc2"], ["m2"], name="fc2"),
        helper.make_node("Softmax", ["m2"], ["prob"], axis=-1, name="softmax"),
    ]
    return onnx_model(nodes, [value_info("x", shape)], [value_info("prob", [1, 5])], inits)


def between_convs(middle, seed: int, opset: int = 17, weights=("w", "w2"), convs=("conv", "conv2")):
    """``x`` -> 3x3 conv to 8 channels (``c``) -> the ``middle`` nodes (reading ``c``, producing ``m``) -> 1x1 conv
    to 4 channels (``y``): a model whose middle is what a test is about. Weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    inits = {weights[0]: rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
             weights[1]: rng.standard_normal((4, 8, 1, 1)).astype(np.float32) * 0.3}
    nodes = [helper.make_node("Conv", ["x", weights[0]], ["c"], pads=[1, 1, 1, 1], name=convs[0]), *middle,
             helper.make_node("Conv", ["m", weights[1]], ["y"], name=convs[1])]
    return toy_model(nodes, inits, opset=opset)
