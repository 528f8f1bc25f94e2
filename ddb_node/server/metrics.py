"""Request latency for the dashboard's charts, kept cheap enough to run on every request.

The node records each SQL request's time from arrival to answer into a fixed histogram (one
``bisect`` over 64 geometric bucket bounds and one increment: no allocation, no lock, no
sorting on the loop). A reader (the event stream, once a second) takes the difference since
its last look: the count, p50 and p99 of that window, and the non-empty buckets, so a page
can merge several nodes' windows into one cluster-wide percentile.
"""
from __future__ import annotations

from bisect import bisect_left

# bucket k holds latencies in (BOUNDS[k-1], BOUNDS[k]] seconds: 50 us * 1.25^k, up to ~35 s
BOUNDS = tuple(50e-6 * 1.25 ** k for k in range(61)) + (float("inf"),)


class LatencyHistogram:
    """Cumulative counts per bucket; `record` is the only call on the request path."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0] * len(BOUNDS)

    def record(self, seconds: float) -> None:
        self.counts[bisect_left(BOUNDS, seconds)] += 1


class LatencyWindow:
    """The histogram's change between two looks (``take``)."""

    def __init__(self, hist: LatencyHistogram) -> None:
        self.hist = hist
        self.last = list(hist.counts)

    def take(self) -> dict:
        """-> {"n", "p50_ms", "p99_ms", "buckets": [[lo_ms, hi_ms, count], ...]} since the last
        take (percentiles None when nothing was recorded)."""
        now = list(self.hist.counts)
        delta = [a - b for a, b in zip(now, self.last)]
        self.last = now
        n = sum(delta)
        buckets = [[_ms(BOUNDS[k - 1]) if k else 0.0, _ms(BOUNDS[k]), c]
                   for k, c in enumerate(delta) if c]
        return {"n": n, "p50_ms": percentile(buckets, 0.50), "p99_ms": percentile(buckets, 0.99),
                "buckets": buckets}


def percentile(buckets: list, q: float) -> float | None:
    """The q-quantile of [[lo, hi, count]] buckets (sorted), interpolated inside its bucket
    (the open last bucket answers its lower bound)."""
    n = sum(c for _, _, c in buckets)
    if n == 0:
        return None
    rank = q * n
    seen = 0
    for lo, hi, c in buckets:
        if seen + c >= rank:
            if hi is None:
                return lo
            return round(lo + (hi - lo) * max(0.0, rank - seen) / c, 3)
        seen += c
    return buckets[-1][1] if buckets[-1][1] is not None else buckets[-1][0]


def _ms(seconds: float) -> float | None:
    return None if seconds == float("inf") else round(seconds * 1000, 4)
