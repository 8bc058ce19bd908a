"""Apply the rule table to the device work of a trace, vectorized and memoized.

What a rule can look at is the work's own name (and its identity, ``kernel_id``), the innermost
operator above its launch, and the set of scope patterns matched by any span above it. Those two
facts are computed once per trace for every host span with array operations (nearest marked
ancestor, see ``tracekit.trace.tree``); the rules then run once per distinct (name, operator,
scope set) triple, so the cost grows with the number of distinct kernels and scopes, not with the
number of launches.

Work replayed from a CUDA/HIP graph carries the correlation id of the one ``cudaGraphLaunch`` that
replayed the whole graph: the operator and scopes above that call say nothing about each kernel,
so such work is classified by name alone, like work whose launch is not in the trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from tracekit.analysis.kernel_id import identity
from tracekit.analysis.rules import RULES, Rule
from tracekit.annotations import scope as scope_pattern
from tracekit.trace.model import OP_CATS, RUNTIME_CATS, Codes, Trace
from tracekit.trace.tree import nearest_marked

_EMPTY: frozenset[int] = frozenset()
GRAPH_LAUNCH = re.compile(r"^(?:cuda|cu|hip)GraphLaunch")


def graph_launches(trace: Trace) -> NDArray[np.bool_]:
    """Which host spans are CUDA/HIP graph launches (runtime calls that replay a whole graph)."""
    names = np.fromiter((GRAPH_LAUNCH.match(s) is not None for s in trace.strings), bool, len(trace.strings))
    return names[trace.spans.name] & trace.host_mask(RUNTIME_CATS) if len(trace.spans) else np.zeros(0, bool)


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
        parent = trace.parent
        # The trace's strings, plus "" at the end: the name of "no span" (index -1 / code NONE).
        self.strings: list[str] = [*trace.strings, ""]
        none = len(self.strings) - 1
        # Scope sets hold indices into ``self.scope_keys``, every scope pattern some rule names.
        self.scope_keys = sorted({k for r in rules for k in (r.scope, r.outside) if k is not None})
        self._needs = [
            (
                self.scope_keys.index(r.scope) if r.scope is not None else -1,
                self.scope_keys.index(r.outside) if r.outside is not None else -1,
            )
            for r in rules
        ]
        patterns = [(i, scope_pattern(k)) for i, k in enumerate(self.scope_keys)]
        own = [frozenset(i for i, pat in patterns if pat.search(nm)) for nm in self.strings]
        marked = np.fromiter(map(bool, own), bool, len(own))[spans.name]
        scope_node = nearest_marked(parent, marked)
        # The scope set of each marked span: its own matches and those of the marked spans above
        # it. Parents sort before their children, so one pass in index order fills them all.
        marks = np.flatnonzero(marked)
        del marked
        up = parent[marks]
        above = np.where(up >= 0, scope_node[np.maximum(up, 0)], -1).tolist()
        interned: dict[frozenset[int], int] = {_EMPTY: 0}
        self._sets: list[frozenset[int]] = [_EMPTY]
        set_ids: list[int] = []
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
            set_ids.append(sid)
        # Per host span only 32-bit pointers are kept (the nearest marked span, the innermost
        # operator) and the graph-launch flag; the scope set of a span is that of its nearest
        # marked span, found by bisection among the (sorted) marked spans.
        self._marks = marks
        self._mark_set = np.array(set_ids, np.int64)
        self._scope_node = scope_node.astype(np.int32)
        del scope_node
        self._op_node = nearest_marked(parent, trace.host_mask(OP_CATS)).astype(np.int32)
        self._none = none
        # Graph launches read as "no span": their work is classified by name alone.
        self.graph = graph_launches(trace)
        self._memo: dict[tuple[str, str, int], Decision] = {}

    def _where(self, nodes: NDArray[np.int64]) -> NDArray[np.int64]:
        """The span each item is classified from: its launch, or -1 when unlinked or replayed from a graph."""
        nodes = np.asarray(nodes, np.int64)
        linked = nodes >= 0
        linked[linked] = ~self.graph[nodes[linked]]
        return np.where(linked, nodes, -1)

    def _facts(self, at: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The launching operator's name code ("" for none) and the scope-set id at spans ``at`` (-1: none)."""
        ok = at >= 0
        op = np.full(len(at), -1, np.int64)
        op[ok] = self._op_node[at[ok]]
        op_code = np.full(len(at), self._none, np.int64)
        has_op = op >= 0
        op_code[has_op] = self.trace.spans.name[op[has_op]]
        near = np.full(len(at), -1, np.int64)
        near[ok] = self._scope_node[at[ok]]
        set_code = np.zeros(len(at), np.int64)
        scoped = near >= 0
        if scoped.any():
            set_code[scoped] = self._mark_set[np.searchsorted(self._marks, near[scoped])]
        return op_code, set_code

    def classify(self, name: str, node: int) -> Decision:
        """Classify work named ``name`` whose innermost host span is ``node`` (-1 if unlinked)."""
        at = self._where(np.array([node], np.int64))
        op_code, set_code = self._facts(at)
        return self._decide_memo((name, self.strings[int(op_code[0])], int(set_code[0])))

    def classify_many(self, names: Codes, nodes: NDArray[np.int64]) -> tuple[NDArray[np.int64], list[Decision]]:
        """Classify many items at once: ``names`` are codes in the trace's strings, ``nodes`` host
        spans (-1: none). Returns a code per item and the attribution of each code; codes number
        the distinct (name, operator, scope set) triples in order of first appearance."""
        if len(names) == 0:
            return np.zeros(0, np.int64), []
        op_code, set_code = self._facts(self._where(nodes))
        n_str, n_sets = len(self.strings), len(self._sets)
        names = names.astype(np.int64)  # codes are 32-bit; the packing below needs 64
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
        ident = identity(kernel)
        for r, (need, avoid) in zip(self.rules, self._needs):
            if need >= 0 and need not in scopes:
                continue
            if avoid >= 0 and avoid in scopes:
                continue
            if r.op is not None and not r.op.search(op):
                continue
            if r.kernel is not None and not r.kernel.search(kernel):
                continue
            if r.ident is not None and not r.ident.search(ident):
                continue
            return Decision(r.category, r.name)
        return Decision("other", "fallback")
