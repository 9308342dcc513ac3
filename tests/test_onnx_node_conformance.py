"""The importer and the float executor against ONNX's own backend node tests.

The cases are generated in the session from the onnx package's generators
(``onnx.backend.test.case.node``, see ``_onnx_node_cases``); nothing generated
is stored. Every case whose operators are all in the executor's registry
(``axdrive.reference.KERNELS``) runs through ``load_model`` + ``run_float``
and each output is compared with the expected one like onnx's backend runner
does (shape and dtype exactly; floats with the case's rtol=1e-3, atol=1e-7,
NaN equal to NaN; integers and bools exactly), and so is the static shape and
dtype the importer gives it. Shape parameters the cases feed as run-time
inputs (Reshape's shape, a reduction's axes, ...) are bound as initializers
first: axdrive compiles static shapes (see ``static_case``).

With onnx 1.23 (opsets up to 28): 1884 cases, 1184 selected (608 at opsets
11..21, older ones upgraded by onnx's version converter included; 576 at
22..28). 977 pass (586 + 391); 205 are refused on purpose, each by one
documented rule below (UNSUPPORTED_TYPES: 182, mostly the bfloat16, float8,
int4 and int2 variants of opsets 22..28; REFUSED: 23); 2 keep a documented
result where onnx's reference differs (DEVIATIONS). The 700 cases with an
operator outside the registry are not run; ``test_selection_does_not_shrink``
fails if the selection loses cases. See docs/frontend.md, "Conformance with
ONNX's node tests".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from _onnx_node_cases import SUPPORTED_ELEM_TYPES, NodeCase, all_cases, mismatch, static_case

from axdrive.errors import AxdriveError, ModelError, UnsupportedOperatorError
from axdrive.onnx_io import MAX_OPSET, MIN_OPSET, load_model
from axdrive.reference import KERNELS, run_float


@dataclass(frozen=True)
class Refusal:
    """Cases the executor does not implement on purpose, and the one-line error they must raise."""

    cases: str  # regular expression on the case name (fullmatch)
    error: type[AxdriveError]
    message: str  # regular expression the error's message must contain
    why: str


#: Element types that are not numpy types (bfloat16, the float8/float4/int4/int2 families,
#: strings): the int8 pipeline quantizes float models and numpy cannot compute in them.
#: Matched by the element types a case declares (NodeCase.elem_types), not by its name.
UNSUPPORTED_TYPES = Refusal("", ModelError, r"has unsupported element type [A-Z0-9]+$",
                            "element type outside bool, int8..int64, uint8..uint64, float16/32/64")

#: Refused on purpose, by case name. Each rule is checked both ways: every selected case it
#: names raises exactly that one-line error, and it names at least one case (no stale rule).
REFUSED = (
    # Resize: the AIPU resizes nearest/asymmetric; bicubic, antialiased and cropping resizes
    # are neither lowered nor emitted by the exporters of the models axdrive targets.
    Refusal(r"test_resize_.*cubic.*", UnsupportedOperatorError, r"Resize with mode='cubic' is not supported",
            "Resize mode cubic is not implemented"),
    Refusal(r"test_resize_downsample_(scales|sizes)_linear_antialias", UnsupportedOperatorError,
            r"Resize with antialias=1 is not supported", "Resize antialias is not implemented"),
    Refusal(r"test_resize_tf_crop_and_resize.*", UnsupportedOperatorError,
            r"Resize with coordinate_transformation_mode='tf_crop_and_resize' is not supported",
            "Resize tf_crop_and_resize (roi) is not implemented"),
    # Dropout in training mode drops random values: no deterministic expected output exists
    # (onnx's were drawn from numpy's generator). Ratio 0 is the identity and runs.
    Refusal(r"test_training_dropout(_default)?(_mask)?", UnsupportedOperatorError,
            r"Dropout with training_mode true and ratio 0\.\d+ drops random values",
            "Dropout training_mode with ratio > 0 is random"),
    # Sequences and optionals are not tensors; the IR has tensors only.
    Refusal(r"test_identity_(sequence|opt)", ModelError, r"is an? (sequence|optional), not a tensor",
            "sequence and optional values are not supported"),
)

#: Cases whose expected output comes from onnx's reference where axdrive deliberately keeps
#: another, documented result; each is checked against that result instead.
DEVIATIONS = {
    # align_corners with a scale whose output size is not an integer (4 * 0.6 = 2.4 -> 2):
    # onnx's reference divides by 2.4 - 1, onnxruntime (and axdrive) by the real size 2 - 1.
    # Checked against onnxruntime.
    "test_resize_downsample_scales_linear_align_corners": "onnxruntime",
    # DynamicQuantizeLinear's function body: QuantizeLinear divides x / scale in float64
    # (axdrive's QDQ numerics, shared with the quantizer); onnx divides in float32, where
    # 0.5 / 0.019607844 rounds to exactly 25.5 (-> 26) but is 25.4999991 (-> 25) in float64.
    # Checked: every value within one quantization step of onnx's.
    "test_dynamicquantizelinear_expanded": "one step",
}

#: Floors that make a registry or generator regression fail (the counts with onnx 1.23).
MIN_SELECTED = 1184
MIN_SELECTED_NEWER = 576  # of them at opsets 22..MAX_OPSET


def _selected() -> list[NodeCase]:
    registry = {op for domain, op in KERNELS if domain == ""}
    return [c for c in all_cases() if all(d == "" and op in registry for d, op in c.ops)]


def _rule(case: NodeCase) -> Refusal | None:
    if case.elem_types - SUPPORTED_ELEM_TYPES:
        return UNSUPPORTED_TYPES
    return next((r for r in REFUSED if re.fullmatch(r.cases, case.name)), None)


SELECTED = _selected()


def _run(case: NodeCase) -> tuple[onnx.ModelProto, object, dict[str, np.ndarray]]:
    model, feeds = static_case(case)
    graph = load_model(model)
    with np.errstate(all="ignore"):
        return model, graph, run_float(graph, feeds)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SELECTED])
def test_node(case: NodeCase):
    rule = _rule(case)
    if rule is not None:
        with pytest.raises(AxdriveError) as info:
            _run(case)
        text = str(info.value)
        assert "\n" not in text, text
        assert isinstance(info.value, rule.error), f"{type(info.value).__name__}: {text}"
        assert re.search(rule.message, text), f"{case.name} ({rule.why}) raised: {text}"
        return
    model, graph, got = _run(case)
    deviation = DEVIATIONS.get(case.name)
    for vi, expected in zip(model.graph.output, case.outputs):
        want = np.asarray(onnx.numpy_helper.to_array(expected) if isinstance(expected, onnx.TensorProto)
                          else expected)
        tensor = graph.tensors[vi.name]
        assert (tensor.shape, tensor.dtype) == (want.shape, want.dtype), \
            f"static {vi.name!r}: {tensor.dtype}{list(tensor.shape or [])}, expected {want.dtype}{list(want.shape)}"
        if deviation == "onnxruntime":
            want = _onnxruntime(case)[vi.name]
        elif deviation == "one step" and want.dtype.kind in "iu":
            assert got[vi.name].shape == want.shape
            assert np.abs(got[vi.name].astype(np.int64) - want.astype(np.int64)).max() <= 1
            continue
        problem = mismatch(vi.name, got[vi.name], want, case.rtol, case.atol)
        assert problem is None, problem


def _onnxruntime(case: NodeCase) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    model, feeds = static_case(case)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_selection_does_not_shrink():
    """The registry or the onnx generators lost cases: a regression (or update the floors)."""
    newer = [c for c in SELECTED if c.opset > 21]
    assert len(SELECTED) >= MIN_SELECTED, len(SELECTED)
    assert len(newer) >= MIN_SELECTED_NEWER, len(newer)
    assert max(c.opset for c in SELECTED) <= MAX_OPSET


def test_every_exclusion_is_used_and_the_list_stays_short():
    refused = {rule: [c.name for c in SELECTED if _rule(c) is rule] for rule in (UNSUPPORTED_TYPES, *REFUSED)}
    assert all(refused.values()), [r.why for r, names in refused.items() if not names]
    names = {c.name for c in SELECTED}
    assert set(DEVIATIONS) <= names, set(DEVIATIONS) - names
    assert not set(DEVIATIONS) & {n for found in refused.values() for n in found}
    # the short list: the rules by name cover a handful of cases (23 with onnx 1.23)
    assert sum(len(refused[r]) for r in REFUSED) <= 30


def _tiny(opset: int) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_max_opset_is_one_onnxruntime_loads():
    """MAX_OPSET was found this way: the newest opset onnxruntime's session accepts (and onnx defines)."""
    import onnxruntime as ort

    assert MAX_OPSET <= onnx.defs.onnx_opset_version()
    ort.InferenceSession(_tiny(MAX_OPSET).SerializeToString(), providers=["CPUExecutionProvider"])
    assert load_model(_tiny(MAX_OPSET)).opset == MAX_OPSET


def test_newer_opset_is_refused_in_one_line():
    with pytest.raises(ModelError) as info:
        load_model(_tiny(MAX_OPSET + 1))
    assert str(info.value) == f"<model tiny>: opset {MAX_OPSET + 1} is newer than the supported opsets " \
                              f"{MIN_OPSET}..{MAX_OPSET}"
