"""Benchmark library behind ``edgeglocal bench``: latency of models x backends x precisions."""

from edgeglocal.bench.backends import BACKENDS, PRECISIONS
from edgeglocal.bench.run import BenchRow, bench_model, benchmark, prepare
from edgeglocal.bench.timing import Latency, measure

__all__ = ["BACKENDS", "PRECISIONS", "BenchRow", "Latency", "bench_model", "benchmark", "measure", "prepare"]
