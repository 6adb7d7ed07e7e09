"""Latency statistics of a callable: warm-up, then one wall-clock sample per call."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Latency:
    """Per-call wall-clock milliseconds of one batch, and the images per second they imply.

    ``cpu_ms`` is the process CPU time per call (summed over its threads): on a shared machine it
    is the steadier figure, since waiting for a core does not count.
    """

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput: float  # images / s at the mean latency
    iters: int
    cpu_ms: float

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def measure(fn: Callable[[], object], batch: int, warmup: int = 3, iters: int = 20) -> Latency:
    """Call ``fn`` ``warmup`` times untimed (allocators, lazy init, autotuning), then time ``iters`` calls."""
    if iters < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"iters={iters}, warmup={warmup}, batch={batch}: expected iters, batch >= 1, warmup >= 0")
    for _ in range(warmup):
        fn()
    samples = np.empty(iters)
    c0 = time.process_time()
    for i in range(iters):
        t0 = time.perf_counter()
        fn()
        samples[i] = (time.perf_counter() - t0) * 1e3
    cpu_ms = (time.process_time() - c0) * 1e3 / iters
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    mean = float(samples.mean())
    return Latency(mean, float(p50), float(p90), float(p99), batch * 1e3 / mean, iters, cpu_ms)
