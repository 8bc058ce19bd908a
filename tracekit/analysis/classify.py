"""Apply the rule table to the device work of a trace, vectorized and memoized.

What a rule can look at is the work's own name, the innermost operator above its launch, and the
set of scope rules matched by any span above it. Those two facts are computed once per trace for
every host span with array operations (nearest marked ancestor, see ``tracekit.trace.tree``); the
rules then run once per distinct (name, operator, scope set) triple, so the cost grows with the
number of distinct kernels and scopes, not with the number of launches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.rules import RULES, Rule
from tracekit.trace.model import OP_CATS, Trace
from tracekit.trace.tree import nearest_marked

_EMPTY: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Decision:
    """What the rule table decided for one kind of work: its category and the rule that said so."""

    category: str
    rule: str


class Classifier:
    """Classifies the device work of one trace: ``classify(name, node)`` for one item,
    ``classify_many(names, nodes)`` for all of them at once."""

    def __init__(self, trace: Trace, rules: tuple[Rule, ...] = RULES) -> None:
        self.trace = trace
        self.rules = rules
        spans = trace.spans
        n = len(spans)
        parent = trace.parent
        # The trace's strings, plus "" at the end: the name of "no span" (index -1 / code NONE).
        self.strings: list[str] = [*trace.strings, ""]
        none = len(self.strings) - 1
        scope_rules = [(i, r.scope) for i, r in enumerate(rules) if r.scope is not None]
        own = [frozenset(i for i, pat in scope_rules if pat.search(nm)) for nm in self.strings]
        marked = np.fromiter(map(bool, own), bool, len(own))[spans.name]
        self._scope_node = nearest_marked(parent, marked)
        # The scope set of each marked span: its own matches and those of the marked spans above
        # it. Parents sort before their children, so one pass in index order fills them all.
        marks = np.flatnonzero(marked)
        up = parent[marks]
        above = np.where(up >= 0, self._scope_node[np.maximum(up, 0)], -1).tolist()
        interned: dict[frozenset[int], int] = {_EMPTY: 0}
        self._sets: list[frozenset[int]] = [_EMPTY]
        set_of: dict[int, int] = {}
        for m, a, code in zip(marks.tolist(), above, spans.name[marks].tolist()):
            acc = own[code]
            if a >= 0:
                acc = acc | self._sets[set_of[a]]
            sid = interned.get(acc)
            if sid is None:
                sid = interned[acc] = len(self._sets)
                self._sets.append(acc)
            set_of[m] = sid
        # Scope-set id of every host span (and 0, the empty set, at index -1 / n).
        sid_arr = np.zeros(n + 1, np.int64)
        if set_of:
            sid_arr[np.fromiter(set_of.keys(), np.int64, len(set_of))] = np.fromiter(
                set_of.values(), np.int64, len(set_of)
            )
        near = self._scope_node
        self._span_set = np.zeros(n + 1, np.int64)
        self._span_set[:n] = np.where(near >= 0, sid_arr[np.maximum(near, 0)], 0)
        # Name code of every span, and at index -1 / n the code of "" (no operator).
        self._name_code = np.append(spans.name, none)
        op = np.full(n + 1, -1, np.int64)
        op[:n] = nearest_marked(parent, trace.host_mask(OP_CATS))
        self._op_node = op
        self._memo: dict[tuple[str, str, int], Decision] = {}

    def launching_op(self, node: int) -> str:
        """Name of the innermost ``cpu_op`` at or above ``node`` ("" if none)."""
        return self.strings[int(self._name_code[self._op_node[node]])] if node >= 0 else ""

    def classify(self, name: str, node: int) -> Decision:
        """Classify work named ``name`` whose innermost host span is ``node`` (-1 if unlinked)."""
        sid = int(self._span_set[node]) if node >= 0 else 0
        return self._decide_memo((name, self.launching_op(node), sid))

    def classify_many(
        self, names: NDArray[np.int64], nodes: NDArray[np.int64]
    ) -> tuple[NDArray[np.int64], list[Decision]]:
        """Classify many items at once: ``names`` are codes in the trace's strings, ``nodes`` host
        spans (-1: none). Returns a code per item and the attribution of each code; codes number
        the distinct (name, operator, scope set) triples in order of first appearance."""
        if len(names) == 0:
            return np.zeros(0, np.int64), []
        at = np.where(nodes >= 0, nodes, len(self._name_code) - 1)  # -1 reads the "no span" slot
        op_code = self._name_code[self._op_node[at]]  # index -1 is the "" slot at the end
        set_code = self._span_set[at]
        n_str, n_sets = len(self.strings), len(self._sets)
        if n_str * n_str * n_sets < 1 << 62:
            # One integer per (name, operator, scope set) triple, packed in mixed radix
            # (name, then operator, then scope set), so np.unique finds the distinct triples.
            combo = (names * n_str + op_code) * n_sets + set_code
            _, first, inverse = np.unique(combo, return_index=True, return_inverse=True)
        else:  # pragma: no cover - astronomically many distinct strings
            _, first, inverse = np.unique(
                np.stack([names, op_code, set_code], axis=1), axis=0, return_index=True, return_inverse=True
            )
        # Renumber in order of first appearance.
        rank = np.argsort(first, kind="stable")
        renum = np.empty_like(rank)
        renum[rank] = np.arange(rank.size)
        codes = renum[inverse.reshape(-1)].astype(np.int64)
        firsts = first[rank]
        s = self.strings
        keys = [
            (s[nm], s[op], sid)
            for nm, op, sid in zip(names[firsts].tolist(), op_code[firsts].tolist(), set_code[firsts].tolist())
        ]
        return codes, list(map(self._decide_memo, keys))

    def _decide_memo(self, key: tuple[str, str, int]) -> Decision:
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._decide(key[0], key[1], self._sets[key[2]])
        return hit

    def _decide(self, kernel: str, op: str, scopes: frozenset[int]) -> Decision:
        for i, r in enumerate(self.rules):
            if r.kernel is not None and not r.kernel.search(kernel):
                continue
            if r.op is not None and not r.op.search(op):
                continue
            if r.scope is not None and i not in scopes:
                continue
            return Decision(r.category, r.name)
        return Decision("other", "fallback")
