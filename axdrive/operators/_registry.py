"""The operator registry: one place that says what axdrive does with each ONNX operator.

Why one table fed by plugins: "may this node be quantized, by which integer
kernel?", "does a unit of the AIPU run it, and if not, why?", "which unit?"
and "what do we tell the user in ``axdrive ops``?" are four questions about
the same facts. Asked of four separate lists (the quantizer's dispatch, the
lowering's checks, tiling's layer heads, the report's wording) they drift
apart; asked of one :class:`OperatorRegistry` they cannot. Each fact is an
:class:`OperatorRule` that a plugin registers through the
``axdrive_operators`` hook, the built-in plugins exactly like a third party:
the quantizer registers ``int8`` rules, the lowering ``aipu`` rules, the
frontend ``rewrite`` rules. A constraint is words *and* a predicate
(:class:`Constraint`), so the sentence ``axdrive ops`` prints is the test
the compiler applies.

The float side is the core's: every standard ONNX operator runs, in numpy
where :mod:`axdrive.reference` has a kernel and in onnxruntime otherwise.
"""

from __future__ import annotations

__all__ = ["Check", "Constraint", "OperatorRule", "OperatorRegistry", "build_registry", "HEAD_UNITS", "UNITS", "ROLES",
           "EVERY_OP"]

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Union

if TYPE_CHECKING:  # pragma: no cover
    from ..ir import Graph, Node

#: A constraint's predicate: ``None`` when ``node`` of ``graph`` meets it, else why not, in the user's terms.
Check = Callable[["Graph", "Node"], "str | None"]
#: The roles a rule plays: replaced before quantization, quantized by an integer kernel, run by a unit.
ROLES = ("rewrite", "int8", "aipu")
#: The units an ``aipu`` rule may name: the matrix unit, the depthwise unit, the vector DPU, the DMA engine, and
#: ``view`` (nothing runs: a new shape over the same bytes).
UNITS = ("mvm", "dwpu", "dpu", "dma", "view")
#: Units that start a layer of their own (a DPU tail may fuse after them): tiling and code generation both ask.
HEAD_UNITS = frozenset({"mvm", "dwpu"})
#: An ``aipu`` rule registered for this operator name applies to every node (e.g. batch 1).
EVERY_OP = "*"


@dataclass(frozen=True)
class Constraint:
    """One condition a node must meet, in words (``text``, for the report) and as a predicate (``check``).

    ``check`` returns why a node violates it (that string is what the user reads, so name the tensor or the
    attribute), or ``None``. A constraint without ``check`` is documentation of a condition enforced where it
    cannot be stated per node. ``quantized`` marks a condition on what quantization decides (zero points, tables):
    it is checked on the int8 node only, never to place a float node.
    """

    text: str
    check: Check | None = None
    quantized: bool = False

    def reason(self, graph: "Graph", node: "Node") -> str | None:
        return None if self.check is None else self.check(graph, node)


UnitOf = Union[str, Callable[["Node"], str]]


@dataclass(frozen=True)
class OperatorRule:
    """What one plugin does with one ONNX operator in one role.

    - ``role="rewrite"``: a pass replaces the operator before quantization (``summary`` says with what).
    - ``role="int8"``: the integer kernel ``kind`` (``"mac"``, ``"lut"``, ...: the name the quantizer dispatches
      on) quantizes a node of ``op`` that meets every constraint. Several rules for one operator are tried in
      registration order; the first whose constraints hold decides (``Add`` with a scalar constant is a table,
      any other ``Add`` an integer addition).
    - ``role="aipu"``: ``unit`` runs the operator once it is quantized by one of ``kinds`` (empty: by any
      kernel), if every constraint holds. ``op=""`` with ``kinds`` set maps every operator quantized by those
      kernels (a plugin that lowers tables need not list what another plugin turns into tables); ``op="*"``
      states constraints every node must meet. ``unit`` may be a function of the (quantized) node.

    Plain strings in ``constraints`` become documentation-only :class:`Constraint` objects.
    """

    op: str
    role: str
    summary: str
    constraints: tuple[Constraint, ...] = ()
    domain: str = ""
    kind: str = ""
    kinds: tuple[str, ...] = ()
    unit: UnitOf = ""
    plugin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"operator rule for {self.op!r}: role {self.role!r} is not one of {', '.join(ROLES)}")
        object.__setattr__(self, "constraints", tuple(c if isinstance(c, Constraint) else Constraint(str(c))
                                                      for c in self.constraints))
        object.__setattr__(self, "kinds", tuple(self.kinds))
        if self.role == "int8" and not self.kind:
            raise ValueError(f"int8 rule for {self.op!r} names no integer kernel (kind)")
        if self.role == "aipu" and not callable(self.unit) and self.unit and self.unit not in UNITS:
            raise ValueError(f"aipu rule for {self.op!r}: unit {self.unit!r} is not one of {', '.join(UNITS)}")

    def violation(self, graph: "Graph", node: "Node", *, quantized: bool = False) -> str | None:
        """The first constraint ``node`` violates, as its reason; on a float node the ``quantized`` ones are skipped."""
        for c in self.constraints:
            if c.quantized and not quantized:
                continue
            why = c.reason(graph, node)
            if why:
                return why
        return None

    def unit_of(self, node: "Node") -> str:
        return self.unit(node) if callable(self.unit) else self.unit


def _domain(node: "Node") -> str:
    return "" if node.domain == "ai.onnx" else node.domain


class OperatorRegistry:
    """Every :class:`OperatorRule` the installed plugins registered, and the questions the compiler asks of them.

    Built once per :class:`~axdrive.passes.PluginHost` (``host.operators``, ``ctx.operators``) from the
    ``axdrive_operators`` hook; a pass never keeps an operator list of its own.
    """

    def __init__(self, rules: Iterable[OperatorRule] = ()) -> None:
        self._rules: list[OperatorRule] = []
        self._by_op: dict[tuple[str, str, str], list[OperatorRule]] = {}
        self._by_kind: dict[str, list[OperatorRule]] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: OperatorRule) -> None:
        """Register one rule (the hook's results are added in plugin order)."""
        if not isinstance(rule, OperatorRule):
            raise TypeError(f"expected axdrive.operators.OperatorRule, got {type(rule).__name__}")
        self._rules.append(rule)
        if rule.op:
            self._by_op.setdefault((rule.domain, rule.op, rule.role), []).append(rule)
        elif rule.role == "aipu":
            for kind in rule.kinds:
                self._by_kind.setdefault(kind, []).append(rule)

    # -- what is registered ------------------------------------------------------------------------------------
    @property
    def rules(self) -> list[OperatorRule]:
        return list(self._rules)

    def rules_for(self, op: str, role: str, domain: str = "") -> list[OperatorRule]:
        return list(self._by_op.get((domain, op, role), ()))

    def kind_rules(self, kind: str) -> list[OperatorRule]:
        """The ``aipu`` rules that map every operator quantized by the integer kernel ``kind``."""
        return list(self._by_kind.get(kind, ()))

    def ops(self, role: str | None = None, domain: str = "") -> set[str]:
        """Operator names with a rule (in ``role``, if given) of ``domain``; ``*`` not included."""
        return {op for (d, op, r) in self._by_op if d == domain and op != EVERY_OP and (role is None or r == role)}

    # -- int8 -------------------------------------------------------------------------------------------------
    def integer_rule(self, graph: "Graph", node: "Node") -> OperatorRule | None:
        """The first ``int8`` rule of ``node``'s operator whose constraints it meets, else ``None``."""
        for rule in self._by_op.get((_domain(node), node.op, "int8"), ()):
            if rule.violation(graph, node) is None:
                return rule
        return None

    def integer_kind(self, graph: "Graph", node: "Node") -> str | None:
        """The integer kernel that quantizes ``node`` (the quantizer's dispatch), or ``None``."""
        rule = self.integer_rule(graph, node)
        return rule.kind if rule else None

    def integer_reason(self, graph: "Graph", node: "Node") -> str | None:
        """Why no integer kernel quantizes ``node``, or ``None`` when one does."""
        candidates = self._by_op.get((_domain(node), node.op, "int8"), ())
        if not candidates:
            return f"{node.qualified_op} has no int8 kernel"
        if self.integer_rule(graph, node) is not None:
            return None
        tried = "; ".join(dict.fromkeys(f"{r.kind}: {r.violation(graph, node)}" for r in candidates))
        return f"{node.qualified_op} has no int8 kernel for this node ({tried})"

    # -- on the AIPU ------------------------------------------------------------------------------------------
    def aipu_rules(self, node: "Node", kind: str | None) -> list[OperatorRule]:
        """The ``aipu`` rules that could lower ``node`` quantized by ``kind`` (``None``: by whichever kernel)."""
        own = [r for r in self._by_op.get((_domain(node), node.op, "aipu"), ())
               if kind is None or not r.kinds or kind in r.kinds]
        return own + (self.kind_rules(kind) if kind else [])

    def aipu_reason(self, graph: "Graph", node: "Node", *, kind: str | None = None,
                    quantized: bool = False) -> str | None:
        """Why the AIPU cannot run ``node``, or ``None``.

        ``quantized``: ``node`` is an int8 node and ``kind`` its integer kernel (``integer_op``); every constraint
        applies. Otherwise ``node`` is a float node, ``kind`` what the registry's ``int8`` rules would make of it
        (looked up when not given), and only the constraints that do not depend on quantization apply. A float
        node no ``int8`` rule quantizes is held to the constraints on every node and its operator's own rules;
        that nothing maps it is the ``int8`` rules' reason to give, not this one.
        """
        if not quantized and kind is None:
            kind = self.integer_kind(graph, node)
        for rule in self._by_op.get(("", EVERY_OP, "aipu"), ()):
            why = rule.violation(graph, node, quantized=quantized)
            if why:
                return why
        candidates = self.aipu_rules(node, kind)
        if not candidates:
            if kind is None and not quantized:
                return None  # no integer kernel either: the int8 rules say so (or no quantizer is installed)
            return (f"{node.qualified_op} (integer kernel {kind!r}) has no AIPU mapping" if quantized
                    else f"{node.qualified_op} has no AIPU mapping")
        first = None
        for rule in candidates:
            why = rule.violation(graph, node, quantized=quantized)
            if why is None:
                return None
            first = first or why
        return first

    def unit(self, node: "Node") -> str:
        """The unit that runs the int8 ``node`` (``""`` when no rule maps it): read by tiling and code generation."""
        for rule in self.aipu_rules(node, node.attrs.get("integer_op")):
            unit = rule.unit_of(node)
            if unit:
                return unit
        return ""

    def is_unit_head(self, node: "Node") -> bool:
        """Whether the int8 ``node`` runs on the MVM or the DWPU, starting a layer of its own."""
        return self.unit(node) in HEAD_UNITS

    def __repr__(self) -> str:
        return f"OperatorRegistry({len(self._rules)} rules, {len(self.ops())} operators)"


def build_registry(answers: Iterable[tuple[str, Iterable[Any] | None]]) -> OperatorRegistry:
    """A registry from ``(plugin, rules)`` answers of the ``axdrive_operators`` hook, each rule stamped with its plugin."""
    registry = OperatorRegistry()
    for plugin, rules in answers:
        for rule in rules or ():
            registry.add(replace(rule, plugin=plugin) if isinstance(rule, OperatorRule) else rule)
    return registry
