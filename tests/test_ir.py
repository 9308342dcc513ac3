"""The graph IR: invariants checked by verify(), ordering, dump, and the rewrite engine."""

from __future__ import annotations

import numpy as np
import pytest

from axdrive.errors import ModelError
from axdrive.ir import Graph, Node, Tensor
from axdrive.ir.rewrite import Rule, const, op, rewrite, var


def chain() -> Graph:
    """x -> Relu -> t -> Sigmoid -> s ; y = Mul(t, s)"""
    tensors = {n: Tensor(n, (1, 4), np.float32) for n in ("x", "t", "s", "y")}
    tensors["w"] = Tensor.constant("w", np.ones((1, 4), np.float32))
    nodes = [Node("relu", "Relu", ["x"], ["t"], source=("onnx_relu",)),
             Node("sig", "Sigmoid", ["t"], ["s"], source=("onnx_sig",)),
             Node("mul", "Mul", ["t", "s"], ["y"], source=("onnx_mul",))]
    return Graph("chain", nodes, tensors, ["x"], ["y"], opset=17)


def test_valid_graph_verifies_and_answers_queries():
    g = chain()
    g.verify()
    assert g.producer("s").name == "sig"
    assert g.producer("x") is None
    assert [n.name for n in g.consumers("t")] == ["sig", "mul"]


def test_dangling_input_is_an_error_naming_the_node():
    g = chain()
    g.nodes[1].inputs = ["ghost"]
    with pytest.raises(ModelError, match=r"node 'sig': dangling input 'ghost'"):
        g.verify()


def test_tensor_produced_twice_is_an_error():
    g = chain()
    g.nodes[1].outputs = ["t"]
    with pytest.raises(ModelError, match=r"node 'sig': tensor 't' is produced twice \(also by node 'relu'\)"):
        g.verify()


def test_cycle_is_an_error_naming_the_cycle():
    g = chain()
    g.nodes[0].inputs = ["y"]
    with pytest.raises(ModelError, match=r"node .relu.: the graph has a cycle: relu -> mul -> relu"):
        g.verify()


def test_unsorted_nodes_are_an_error_and_toposort_fixes_them():
    g = chain()
    g.nodes = [g.nodes[2], g.nodes[0], g.nodes[1]]
    with pytest.raises(ModelError, match=r"node 'mul': nodes are not in topological order"):
        g.verify()
    g.toposort()
    assert [n.name for n in g.nodes] == ["relu", "sig", "mul"]
    g.verify()


def test_unproduced_graph_output_is_an_error():
    g = chain()
    g.outputs.append("nowhere")
    with pytest.raises(ModelError, match=r"graph output 'nowhere' is not produced"):
        g.verify()


def test_tensor_without_static_shape_is_an_error():
    g = chain()
    g.tensors["s"].shape = None
    with pytest.raises(ModelError, match=r"tensor 's' has no static shape"):
        g.verify()


def test_errors_are_one_line():
    g = chain()
    g.nodes[0].inputs = ["y"]
    with pytest.raises(ModelError) as info:
        g.verify()
    assert "\n" not in str(info.value)


def test_dump_is_readable_and_deterministic():
    g = chain()
    g.nodes[2].attrs = {"b": 1.5, "a": [1, 2]}
    text = g.dump()
    assert text == chain_dump()
    assert g.copy().dump() == text


def chain_dump() -> str:
    return (
        "graph chain (opset 17)\n"
        "  input x: float32[1,4]\n"
        "  const w: float32[1,4] = [1.,1.,1.,1.]\n"
        "  t = Relu(x)  # relu\n"
        "  s = Sigmoid(t)  # sig\n"
        "  y = Mul(t, s) {a=[1,2], b=1.5}  # mul\n"
        "  output y: float32[1,4]\n"
    )


def silu_graph() -> Graph:
    tensors = {n: Tensor(n, (2,), np.float32) for n in ("x", "s", "y")}
    nodes = [Node("sig", "Sigmoid", ["x"], ["s"], source=("a",)), Node("mul", "Mul", ["s", "x"], ["y"], source=("b",))]
    return Graph("g", nodes, tensors, ["x"], ["y"])


SILU = Rule("silu", op("Mul", var("x"), op("Sigmoid", var("x"))),
            lambda m: [m.node("SiLU", [m["x"]], domain="axdrive")])


def test_rewrite_matches_commuted_inputs_and_merges_sources():
    g = silu_graph()
    assert rewrite(g, [SILU]) == {"silu": 1}
    assert [(n.qualified_op, n.inputs, n.outputs, n.source) for n in g.nodes] == \
        [("axdrive.SiLU", ["x"], ["y"], ("a", "b"))]
    assert "s" not in g.tensors
    g.verify()


def test_rewrite_requires_the_same_tensor_for_the_same_name():
    g = silu_graph()
    g.tensors["z"] = Tensor("z", (2,), np.float32)
    g.inputs.append("z")
    g.nodes[1].inputs = ["s", "z"]
    assert rewrite(g, [SILU]) == {"silu": 0}


def test_rewrite_leaves_inner_nodes_with_other_users_alone():
    g = silu_graph()
    g.tensors["s2"] = Tensor("s2", (2,), np.float32)
    g.nodes.append(Node("neg", "Neg", ["s"], ["s2"]))
    g.outputs.append("s2")
    assert rewrite(g, [SILU]) == {"silu": 0}


def test_rewrite_runs_to_a_fixed_point_and_aliases():
    tensors = {n: Tensor(n, (2,), np.float32) for n in ("x", "a", "b", "c", "y")}
    nodes = [Node(f"n{i}", "Identity", [i_], [o]) for i, (i_, o) in enumerate([("x", "a"), ("a", "b"), ("b", "c")])]
    nodes.append(Node("relu", "Relu", ["c"], ["y"]))
    g = Graph("g", nodes, tensors, ["x"], ["y"])
    drop = Rule("identity", op("Identity", var("x")), lambda m: m["x"])
    assert rewrite(g, [drop]) == {"identity": 3}
    assert [(n.op, n.inputs) for n in g.nodes] == [("Relu", ["x"])]


def test_const_pattern_checks_the_value():
    tensors = {n: Tensor(n, (2,), np.float32) for n in ("x", "y")}
    tensors["k"] = Tensor.constant("k", np.array(0.0, np.float32))
    g = Graph("g", [Node("add", "Add", ["k", "x"], ["y"])], tensors, ["x"], ["y"])
    g.tensors["z"] = Tensor("z", (2,), np.float32)
    g.nodes.append(Node("neg", "Neg", ["y"], ["z"]))
    g.outputs = ["z"]
    zero = Rule("add_zero", op("Add", var("x"), const(where=lambda v: not v.any())), lambda m: m["x"])
    assert rewrite(g, [zero]) == {"add_zero": 1}
    assert g.nodes[0].inputs == ["x"]
