"""What the rounds measured at one context length, and the manifest's ``Timings`` drawn from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from tracekit import stats
from tracekit.capture.backends.base import Generation
from tracekit.manifest import Timings, kept_steps
from tracekit.stats import decode_seed, prefill_seed


def _r(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


@dataclass
class Measured:
    """Raw measurements of one context, appended round by round."""

    context_tokens: int
    warmup_steps: int
    cache_reused: bool
    decode_by_round: list[list[float]] = field(default_factory=list)
    prefill: list[float] = field(default_factory=list)
    prefill_unsynced: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    profiled_by_round: list[list[float]] = field(default_factory=list)
    profiled_steps_by_round: list[list[int]] = field(default_factory=list)

    def add_prefill(self, g: Generation) -> None:
        self.prefill.append(g.prefill_s)
        self.prefill_unsynced.append(g.prefill_s_unsynced)
        self.ttft.append(g.ttft_s if g.ttft_s is not None else g.prefill_s)

    def add_profiled(self, steps: list[int], decode_s: list[float]) -> None:
        self.profiled_steps_by_round.append(list(steps))
        self.profiled_by_round.append(list(decode_s[: len(steps)]))

    def timings(self) -> Timings:
        ctx = self.context_tokens
        kept = kept_steps(self.decode_by_round, self.warmup_steps)
        flat = [s for r in kept for s in r]
        ms_groups = [[1000.0 * s for s in r] for r in kept]
        reps = stats.replicates(ms_groups, "median", seed=decode_seed(ctx))
        ms = stats.point(ms_groups, "median")
        ci = stats.interval(reps)
        prefill, prefill_ci = stats.median_ci([self.prefill], seed=prefill_seed(ctx))
        ttft, ttft_ci = stats.median_ci([self.ttft], seed=prefill_seed(ctx, "ttft"))
        itl = stats.percentiles([1000.0 * s for s in flat], (50, 90, 99))
        prof = [s for r in self.profiled_by_round for s in r]
        prof_med = stats.point([prof])
        return Timings(
            prefill_s=_r(prefill),
            prefill_s_unsynced=_r(stats.point([self.prefill_unsynced])),
            decode_s_per_token=flat,
            tokens_per_s=_r(1000.0 / ms, 4) if ms else None,
            profiled_tokens_per_s=_r(1.0 / prof_med, 4) if prof_med else None,
            profiled_decode_s_per_token=prof,
            rounds=len(self.decode_by_round),
            warmup_steps=self.warmup_steps,
            cache_reused=self.cache_reused,
            decode_s_by_round=[list(r) for r in self.decode_by_round],
            decode_ms_per_token=_r(ms),
            decode_ms_per_token_ci95=stats.rounded(ci),
            decode_ms_per_token_by_round=[round(stats.point([g]) or 0.0, 6) for g in ms_groups if g],
            tokens_per_s_ci95=stats.rounded(stats.per_second(ci), 4),
            prefill_s_repeats=list(self.prefill),
            prefill_s_unsynced_repeats=list(self.prefill_unsynced),
            prefill_s_ci95=stats.rounded(prefill_ci),
            ttft_s=_r(ttft),
            ttft_s_ci95=stats.rounded(ttft_ci),
            ttft_s_repeats=list(self.ttft),
            itl_ms_p50=_r(itl[0], 4) if itl else None,
            itl_ms_p90=_r(itl[1], 4) if itl else None,
            itl_ms_p99=_r(itl[2], 4) if itl else None,
            profiled_decode_s_by_round=[list(r) for r in self.profiled_by_round],
            profiled_steps_by_round=[list(r) for r in self.profiled_steps_by_round],
        )
