"""fp32 vs fp16 vs int8 on ONNX Runtime CPU, per zoo architecture, from one run.

    python bench/quantize.py                          # every registered architecture, default size
    python bench/quantize.py --arch mcafnet dolg_r50 --iters 20

Each architecture is exported at random initialisation, then quantized with edgeglocal.export.quantize
(int8 calibrated on real frames of opencv-doc's vtest.avi or samples/media). Latency is the median
of ``--iters`` ONNX Runtime CPU runs after a warm-up; "int8 speed-up" divides fp32 latency by int8
latency measured in the same run. Writes bench/results/quantize.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from edgeglocal.export import to_onnx
from edgeglocal.export.quant_report import latency_ms
from edgeglocal.export.quantize import calibration_frames, make_feeds, quantize
from edgeglocal.fsutil import write_text_atomic
from edgeglocal.models import create, get_config, list_models

ROOT = Path(__file__).resolve().parents[1]
#: (column, precision, int8 target): the TensorRT-ready form and ONNX Runtime CPU's faster uint8 form.
VARIANTS = [("fp16", "fp16", "tensorrt"), ("int8", "int8", "tensorrt"), ("int8cpu", "int8", "cpu")]
CALIB = [Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi"), ROOT / "samples/media/vtest_80.mp4"]


def bench_arch(name: str, calib: Path, iters: int, workdir: Path) -> dict:
    cfg = get_config(name)
    torch.manual_seed(0)
    model = create(name).eval()
    bundle = workdir / f"{name}.onnx"
    manifest = to_onnx(model, torch.randn(1, 3, *cfg.input_size), bundle, task=cfg.task, arch=name,
                       dynamic="batch", input_specs=cfg.input_specs(cfg.input_size, "batch"),
                       output_specs=cfg.output_specs())
    feed = make_feeds(manifest, calibration_frames(calib, 1))[0]
    row = {"arch": name, "params_M": sum(p.numel() for p in model.parameters()) / 1e6}
    paths = {"fp32": bundle}
    for key, precision, target in VARIANTS:
        result = quantize(bundle, precision, calib=calib, calib_size=8, target=target,
                          output=workdir / f"{name}_{key}.onnx")
        paths[key] = result.path
        row[f"{key}_snr_db"] = round(result.output_snr_db, 1)
    for key, path in paths.items():
        row[f"{key}_ms"] = latency_ms(path, feed, iters=iters)
        row[f"{key}_MB"] = path.stat().st_size / 2**20
    for key in ("int8", "int8cpu"):
        row[f"{key}_speedup"] = row["fp32_ms"] / row[f"{key}_ms"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=None, help="architectures (default: all)")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/quantize.json")
    args = parser.parse_args()
    calib = next(p for p in CALIB if p.exists())
    archs = args.arch or list_models()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in archs:
            t0 = time.perf_counter()
            rows.append(bench_arch(name, calib, args.iters, Path(tmp)))
            Console().print(f"{name}: {time.perf_counter() - t0:.0f} s")
    table = Table(title=f"ONNX Runtime CPU latency (ms, median of {args.iters}) - {platform.processor() or platform.machine()}")
    for col in ("arch", "params (M)", "fp32", "fp16", "int8 trt", "int8 cpu", "speed-up trt / cpu",
                "fp32 / int8 MB", "SNR dB fp16 / trt / cpu"):
        table.add_column(col, justify="left" if col == "arch" else "right")
    for r in rows:
        table.add_row(r["arch"], f"{r['params_M']:.1f}", f"{r['fp32_ms']:.1f}", f"{r['fp16_ms']:.1f}",
                      f"{r['int8_ms']:.1f}", f"{r['int8cpu_ms']:.1f}",
                      f"{r['int8_speedup']:.2f}x / {r['int8cpu_speedup']:.2f}x",
                      f"{r['fp32_MB']:.1f} / {r['int8_MB']:.1f}",
                      f"{r['fp16_snr_db']} / {r['int8_snr_db']} / {r['int8cpu_snr_db']}")
    Console().print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.json, json.dumps({"date": time.strftime("%Y-%m-%d"), "calib": str(calib),
                                             "torch_threads": torch.get_num_threads(), "rows": rows}, indent=2))
    Console().print(f"Results saved to {args.json}")


if __name__ == "__main__":
    main()
