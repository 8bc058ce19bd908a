"""Apply the rule table to every device event of a trace, with memoization.

Scope matching is computed once per host span (a span inherits its parent's matches), and each
distinct (kernel name, launching op, scope matches) triple is classified once, so the cost grows
with the number of distinct kernels and scopes, not with the number of launches.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracekit.analysis.rules import RULES, Rule
from tracekit.trace.model import OP_CATS, Trace

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Attribution:
    category: str
    rule: str


class Classifier:
    """Classifies device events of one trace; ``classify(event)`` returns category and rule."""

    def __init__(self, trace: Trace, rules: tuple[Rule, ...] = RULES) -> None:
        self.trace = trace
        self.rules = rules
        self._scope_rules = [(i, r.scope) for i, r in enumerate(rules) if r.scope is not None]
        self._node_scopes: dict[int, frozenset[int]] = {}
        self._node_op: dict[int, str] = {}
        self._interned: dict[frozenset[int], frozenset[int]] = {}
        self._memo: dict[tuple[str, str, frozenset[int]], Attribution] = {}
        self._name_scopes: dict[str, frozenset[int]] = {}

    def scopes(self, node: int) -> frozenset[int]:
        """Indices of scope rules matched by span ``node`` or any of its ancestors."""
        if node < 0:
            return _EMPTY
        cached = self._node_scopes.get(node)
        if cached is not None:
            return cached
        # Walk up iteratively to the first memoized ancestor, then fill in downwards.
        host = self.trace.host
        chain: list[int] = []
        n = node
        while n >= 0 and n not in self._node_scopes:
            chain.append(n)
            n = host[n].tk_parent
        acc = self._node_scopes[n] if n >= 0 else _EMPTY
        for m in reversed(chain):
            name = host[m].name
            own = self._name_scopes.get(name)
            if own is None:
                own = self._name_scopes[name] = frozenset(i for i, pat in self._scope_rules if pat.search(name))
            if own:
                acc = acc | own
            acc = self._interned.setdefault(acc, acc)
            self._node_scopes[m] = acc
        return self._node_scopes[node]

    def launching_op(self, node: int) -> str:
        """Name of the innermost ``cpu_op`` at or above ``node`` ("" if none)."""
        if node < 0:
            return ""
        cached = self._node_op.get(node)
        if cached is not None:
            return cached
        host = self.trace.host
        n = node
        while n >= 0 and host[n].cat not in OP_CATS:
            n = host[n].tk_parent
        op = host[n].name if n >= 0 else ""
        self._node_op[node] = op
        return op

    def classify(self, name: str, node: int) -> Attribution:
        """Classify work named ``name`` whose innermost host span is ``node`` (-1 if unlinked)."""
        scopes = self.scopes(node)
        op = self.launching_op(node)
        key = (name, op, scopes)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._decide(name, op, scopes)
            self._memo[key] = hit
        return hit

    def _decide(self, kernel: str, op: str, scopes: frozenset[int]) -> Attribution:
        for i, r in enumerate(self.rules):
            if r.kernel is not None and not r.kernel.search(kernel):
                continue
            if r.op is not None and not r.op.search(op):
                continue
            if r.scope is not None and i not in scopes:
                continue
            return Attribution(r.category, r.name)
        return Attribution("other", "fallback")
