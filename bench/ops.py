"""Op benchmarks on CPU: reference, eager fast path, ONNX Runtime on the portable body, numba baseline.

    python bench/ops.py                      # every case, 1 thread everywhere
    python bench/ops.py --only selective_scan_2d --threads 2 --repeat 10

Each op contributes a function returning :class:`Case` objects to ``CASE_BUILDERS``; a case is a
set of zero-argument callables over the same inputs. "numba fused" is a compiled single-thread
sequential kernel (one pass, nothing materialised): the near-limit CPU baseline that the ONNX body
is judged against. Times are the best of ``--repeat`` runs, as wall and process-CPU milliseconds
(CPU time stays honest when other jobs share the machine). Writes bench/results/ops.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from rich.console import Console
from rich.table import Table

from edgeglocal.fsutil import write_text_atomic
from edgeglocal.ops import (
    selective_scan,
    selective_scan_2d,
    selective_scan_2d_ref,
    selective_scan_ref,
    window_attention,
    window_attention_ref,
)
from edgeglocal.ops._registry import DOMAIN, OPSET_VERSION, PLUGIN_ATTRS, registered_ops

REFERENCE, EAGER, ORT, NUMBA = "reference", "eager fast path", "onnxruntime cpu (body)", "numba fused"


@dataclass
class Case:
    op: str
    shape: str
    impls: dict[str, Callable[[], object]]
    #: implementations too slow to repeat (timed once, without warm-up)
    once: set[str] = field(default_factory=lambda: {REFERENCE})


def ort_node_session(op_type: str, feeds: dict[str, np.ndarray], threads: int, **attrs) -> Callable[[], object]:
    """One edgeglocal node with unshaped inputs and its function body, as a zero-argument callable."""
    names = list(feeds)
    node = helper.make_node(op_type, names, ["y"], domain=DOMAIN, **attrs, **PLUGIN_ATTRS)
    graph = helper.make_graph(
        [node], op_type,
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, OPSET_VERSION)],
        functions=[registered_ops()[op_type].function(18)],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, feeds)


# ------------------------------------------------------------------------------ selective scans


def _numba_kernels():
    """Fused sequential kernels (compiled on first use); None when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(fastmath=True, cache=False)
    def softplus(v):
        return v if v > 20.0 else np.log1p(np.exp(v))

    @numba.njit(fastmath=True, cache=False)
    def scan_1d(u, delta, A, Bt, Ct, D, bias, use_softplus, y):  # Bt, Ct: (b, g, l, n)
        b, d, l = u.shape
        g, n = Bt.shape[1], A.shape[1]
        h = np.empty(n, np.float32)
        for bi in range(b):
            for di in range(d):
                gi = di // (d // g)
                h[:] = 0.0
                for t in range(l):
                    dt = delta[bi, di, t] + bias[di]
                    if use_softplus:
                        dt = softplus(dt)
                    du = dt * u[bi, di, t]
                    acc = 0.0
                    for ni in range(n):
                        h[ni] = np.exp(dt * A[di, ni]) * h[ni] + du * Bt[bi, gi, t, ni]
                        acc += h[ni] * Ct[bi, gi, t, ni]
                    y[bi, di, t] = acc + D[di] * u[bi, di, t]

    @numba.njit(fastmath=True, cache=False)
    def scan_2d(x, delta, A, Bt, Ct, D, bias, follow, y):  # x, y: (b, d, h*w); Bt, Ct: (b, 4, l, n)
        b, d, l = x.shape
        hh, ww, n = y.shape[2], y.shape[3], A.shape[1]
        h = np.empty(n, np.float32)
        yf = y.reshape(b, d, l)
        for bi in range(b):
            for k in range(4):
                for di in range(d):
                    c = k * d + di
                    h[:] = 0.0
                    for t in range(l):
                        s = t if k < 2 else l - 1 - t
                        pos = s if k % 2 == 0 else (s % hh) * ww + s // hh
                        i = pos if follow else t
                        dt = softplus(delta[bi, k, di, i] + bias[c])
                        xv = x[bi, di, pos]
                        acc = 0.0
                        for ni in range(n):
                            h[ni] = np.exp(dt * A[c, ni]) * h[ni] + dt * Bt[bi, k, i, ni] * xv
                            acc += h[ni] * Ct[bi, k, i, ni]
                        yf[bi, di, pos] += acc + D[c] * xv

    return scan_1d, scan_2d


def _rand(*shape, low=-1.0, high=1.0, rng):
    return torch.from_numpy(rng.uniform(low, high, shape).astype(np.float32))


def scan_cases(threads: int) -> Iterable[Case]:
    rng = np.random.default_rng(0)
    kernels = _numba_kernels()
    b, d, n = 1, 192, 16
    for l in (49, 1024, 3136):
        t = dict(
            u=_rand(b, d, l, rng=rng), delta=_rand(b, d, l, low=-4, high=0, rng=rng), A=_rand(d, n, low=-16, high=-1, rng=rng),
            B=_rand(b, 1, n, l, rng=rng), C=_rand(b, 1, n, l, rng=rng), D=_rand(d, rng=rng), delta_bias=_rand(d, rng=rng),
        )
        feeds = {k: v.numpy() for k, v in t.items()}
        impls = {
            REFERENCE: lambda t=t: selective_scan_ref(**t, delta_softplus=True),
            EAGER: lambda t=t: selective_scan(**t, delta_softplus=True),
            ORT: ort_node_session("SelectiveScan", feeds, threads, delta_softplus=1),
        }
        if kernels:
            def fused(f=feeds):
                y = np.empty_like(f["u"])
                Bt, Ct = (np.ascontiguousarray(f[k].transpose(0, 1, 3, 2)) for k in "BC")
                kernels[0](f["u"], f["delta"], f["A"], Bt, Ct, f["D"], f["delta_bias"], True, y)
                return y
            impls[NUMBA] = fused
        yield Case("selective_scan", f"b={b} d={d} n={n} l={l}", impls)


def scan_2d_cases(threads: int) -> Iterable[Case]:
    rng = np.random.default_rng(1)
    kernels = _numba_kernels()
    b, d, n, h, w = 1, 96, 16, 56, 56
    l = h * w
    t = dict(
        x=_rand(b, d, h, w, rng=rng), delta=_rand(b, 4, d, l, low=-4, high=0, rng=rng),
        A=_rand(4 * d, n, low=-16, high=-1, rng=rng), B=_rand(b, 4, n, l, rng=rng), C=_rand(b, 4, n, l, rng=rng),
        D=_rand(4 * d, rng=rng), delta_bias=_rand(4 * d, rng=rng),
    )
    feeds = {k: v.numpy() for k, v in t.items()}
    for follow in (True, False):
        impls = {
            REFERENCE: lambda f=follow: selective_scan_2d_ref(**t, params_follow_scan=f),
            EAGER: lambda f=follow: selective_scan_2d(**t, params_follow_scan=f),
            ORT: ort_node_session("SelectiveScan2D", feeds, threads, delta_softplus=1, params_follow_scan=int(follow)),
        }
        if kernels:
            def fused(f=follow):
                y = np.zeros_like(feeds["x"])
                Bt, Ct = (np.ascontiguousarray(feeds[k].transpose(0, 1, 3, 2)) for k in "BC")
                x = feeds["x"].reshape(b, d, l)
                kernels[1](x, feeds["delta"], feeds["A"], Bt, Ct, feeds["D"], feeds["delta_bias"], f, y)
                return y
            impls[NUMBA] = fused
        variant = "vmamba" if follow else "vcmamba"
        yield Case("selective_scan_2d", f"{variant} b={b} d={d} n={n} {h}x{w}", impls)


# ----------------------------------------------------------------------------- window attention


def window_attention_cases(threads: int) -> Iterable[Case]:
    """Swin-T stage 1: 56x56 tokens, c=96, 3 heads, 7x7 windows, plain and shifted."""
    rng = np.random.default_rng(2)
    heads, c, window = 3, 96, 7
    qkv, table = _rand(1, 56, 56, 3 * c, rng=rng), _rand((2 * window - 1) ** 2, heads, rng=rng)
    feeds = {"qkv": qkv.numpy(), "table": table.numpy(), "q_global": np.zeros((1, 1, c), np.float32)}
    for shift in (0, window // 2):
        kwargs = dict(num_heads=heads, window_size=window, shift=shift)
        impls = {
            REFERENCE: lambda kw=kwargs: window_attention_ref(qkv, table, **kw),
            EAGER: lambda kw=kwargs: window_attention(qkv, table, **kw),
            ORT: ort_node_session("WindowAttention", feeds, threads, num_heads=heads, window_size=[window] * 2,
                                  shift=[shift] * 2, scale=(c // heads) ** -0.5, global_query=0),
        }
        yield Case("window_attention", f"{'shifted' if shift else 'plain'} b=1 56x56 c={c} h={heads} w={window}", impls)


#: One builder per op family; each takes the thread count and yields cases.
CASE_BUILDERS: list[Callable[[int], Iterable[Case]]] = [scan_cases, scan_2d_cases, window_attention_cases]


# ------------------------------------------------------------------------------------- driver


def measure(fn: Callable[[], object], repeat: int, warmup: bool) -> tuple[float, float]:
    """Best (wall ms, process-CPU ms) over ``repeat`` runs."""
    if warmup:
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return 1e3 * min(wall), 1e3 * min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime intra-op threads")
    parser.add_argument("--only", nargs="*", help="op names to run (default: all)")
    parser.add_argument("--out", default="bench/results/ops.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=150)
    rows = []
    with torch.no_grad():
        for build in CASE_BUILDERS:
            for case in build(args.threads):
                if args.only and case.op not in args.only:
                    continue
                times = {}
                for label, fn in case.impls.items():
                    slow = label in case.once
                    times[label] = measure(fn, 1 if slow else args.repeat, warmup=not slow)
                    console.log(f"{case.op} {case.shape} {label}: {times[label][0]:.1f} ms")
                for label, (wall, cpu) in times.items():
                    rows.append({
                        "op": case.op, "shape": case.shape, "impl": label, "wall_ms": wall, "cpu_ms": cpu,
                        "x_numba": cpu / times[NUMBA][1] if NUMBA in times else None,
                        "speedup_vs_reference": times[REFERENCE][1] / cpu if REFERENCE in times else None,
                    })
    table = Table(title=f"ops on CPU, {args.threads} thread(s), best of {args.repeat}")
    for col in ("op", "shape", "impl", "wall ms", "CPU ms", "x numba (CPU)", "speed-up vs ref (CPU)"):
        table.add_column(col, justify="left" if col in ("op", "shape", "impl") else "right")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for r in rows:
        table.add_row(r["op"], r["shape"], r["impl"], f"{r['wall_ms']:.1f}", f"{r['cpu_ms']:.1f}",
                      fmt(r["x_numba"], ".2f"), fmt(r["speedup_vs_reference"], ".1f"))
    console.print(table)
    meta = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}",
        "torch": torch.__version__, "onnxruntime": ort.__version__, "threads": args.threads,
        "repeat": args.repeat, "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    write_text_atomic(args.out, json.dumps({"meta": meta, "rows": rows}, indent=2))
    console.print(f"results -> {args.out}")


if __name__ == "__main__":
    main()
