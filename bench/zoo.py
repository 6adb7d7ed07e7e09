"""Model zoo benchmark: parameters, GMACs, ONNX size, PyTorch eager vs ONNX Runtime CPU latency.

Every registered architecture (or ``--models``) at its default input size, batch 1, fp32, from one
run so the columns are comparable. MACs are counted with ``FlopCounterMode`` / 2, with formulas
added for the edgeglocal ops (which the counter does not know) so scans and window attention count.

    python bench/zoo.py --runs 10 --json bench/results/zoo.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

import edgeglocal.ops  # noqa: F401  (registers torch.ops.edgeglocal.*)
from edgeglocal.export import check_parity, to_onnx
from edgeglocal.models import create, get_config, list_models

console = Console()


@register_flop_formula(torch.ops.edgeglocal.window_attention)
def _window_attention_flops(qkv, rel_bias_table, q_global, num_heads, window_size, shift, scale, out_shape=None,
                            **kwargs) -> int:
    b, h, w, c = out_shape
    n = window_size[0] * window_size[1]
    return 2 * 2 * b * h * w * n * c  # q.k^T and attn.v, 2 FLOPs per MAC


def _scan_flops(n: int, out_shape) -> int:
    # per step, channel and state: exp(dA)*h (1 MAC) + dB*u (1 MAC) + C.h (1 MAC)
    return 2 * 3 * math.prod(out_shape) * n


@register_flop_formula(torch.ops.edgeglocal.selective_scan)
def _selective_scan_flops(u, delta, A, B, C, D, z, delta_bias, delta_softplus, out_shape=None, **kwargs) -> int:
    return _scan_flops(A[1], out_shape)


@register_flop_formula(torch.ops.edgeglocal.selective_scan_2d)
def _selective_scan_2d_flops(x, delta, A, B, C, D, delta_bias, delta_softplus, params_follow_scan,
                             out_shape=None, **kwargs) -> int:
    return 4 * _scan_flops(A[1], out_shape)  # four directions


def _latency_ms(fn, runs: int, warmup: int) -> tuple[float, float]:
    """Median wall and process-CPU milliseconds per call; on a shared machine the CPU time is the
    steadier figure (it is what the call costs, summed over its threads)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def bench_one(name: str, runs: int, warmup: int, threads: int, work: Path) -> dict:
    cfg = get_config(name)
    model = create(name).eval()
    x = torch.randn(1, 3, *cfg.input_size)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    gmacs = counter.get_total_flops() / 2 / 1e9

    t0 = time.perf_counter()
    path = work / f"{name}.onnx"
    to_onnx(model, x, path, task=cfg.task, arch=name, dynamic=None,
            input_specs=cfg.input_specs(cfg.input_size, None), output_specs=cfg.output_specs())
    export_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in work.iterdir() if p.suffix != ".json")  # graph + external weights

    torch.set_num_threads(threads)
    with torch.no_grad():
        eager_ms, eager_cpu_ms = _latency_ms(lambda: model(x), runs, warmup)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x.numpy()}
    ort_ms, ort_cpu_ms = _latency_ms(lambda: session.run(None, feeds), runs, warmup)
    max_abs = max(o.max_abs for o in check_parity(model, path, inputs=x.numpy()).outputs)
    return dict(arch=name, task=cfg.task, input=list(cfg.input_size), params_m=params / 1e6, gmacs=gmacs,
                onnx_mb=size / 2**20, export_s=export_s, eager_ms=eager_ms, ort_ms=ort_ms,
                eager_cpu_ms=eager_cpu_ms, ort_cpu_ms=ort_cpu_ms, max_abs=max_abs)


def _save(args: argparse.Namespace, rows: list[dict]) -> None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(rows=rows, runs=args.runs, threads=args.threads, torch=torch.__version__,
                                         onnxruntime=ort.__version__), indent=2) + "\n")


def markdown(rows: list[dict]) -> str:
    """The BENCHMARKS.md table for ``rows`` (models that failed are listed with their error)."""
    lines = ["| arch | task | input | params (M) | GMACs | ONNX (MB) | export (s) | eager wall / CPU (ms) "
             "| ORT CPU wall / CPU (ms) | max abs diff |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arch']} | failed: {r['error'][:60]} ||||||||| ")
            continue
        lines.append(f"| {r['arch']} | {r['task']} | {'x'.join(map(str, r['input']))} | {r['params_m']:.1f} "
                     f"| {r['gmacs']:.2f} | {r['onnx_mb']:.1f} | {r['export_s']:.0f} "
                     f"| {r['eager_ms']:.0f} / {r['eager_cpu_ms']:.0f} | {r['ort_ms']:.0f} / {r['ort_cpu_ms']:.0f} "
                     f"| {r['max_abs']:.1e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="Architectures (default: all registered).")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="Intra-op threads of both runtimes (1 avoids OpenMP stalls on a loaded machine).")
    parser.add_argument("--json", type=Path, default=Path("bench/results/zoo.json"))
    parser.add_argument("--markdown", action="store_true", help="Print --json's results as a Markdown table.")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.json.read_text())["rows"]))
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or list_models():
            console.print(f"[bold]{name}[/] ...")
            work = Path(tmp) / name
            work.mkdir()
            try:
                rows.append(bench_one(name, args.runs, args.warmup, args.threads, work))
            except Exception as exc:  # one model failing must not lose the others' numbers
                console.print(f"[red]{name} failed:[/] {type(exc).__name__}: {exc}")
                rows.append(dict(arch=name, error=f"{type(exc).__name__}: {exc}"))
            _save(args, rows)  # after every model, so a long run that is stopped keeps what it measured

    table = Table(title=f"Model zoo, batch 1 fp32, {args.threads} threads, median of {args.runs}")
    for col in ("arch", "task", "input", "params (M)", "GMACs", "ONNX (MB)", "export (s)", "eager (ms)",
                "ORT CPU (ms)", "eager CPU-time (ms)", "ORT CPU-time (ms)", "max |diff|"):
        table.add_column(col, justify="left" if col in ("arch", "task", "input") else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["arch"], *["-"] * 10, r["error"][:40])
            continue
        table.add_row(r["arch"], r["task"], "x".join(map(str, r["input"])), f"{r['params_m']:.1f}",
                      f"{r['gmacs']:.2f}", f"{r['onnx_mb']:.1f}", f"{r['export_s']:.0f}", f"{r['eager_ms']:.1f}",
                      f"{r['ort_ms']:.1f}", f"{r['eager_cpu_ms']:.1f}", f"{r['ort_cpu_ms']:.1f}", f"{r['max_abs']:.1e}")
    console.print(table)
    console.print(f"Results saved to [bold]{args.json}[/]")


if __name__ == "__main__":
    main()
