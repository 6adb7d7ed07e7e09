"""Default dehaze / anomaly / embedding models on the CPU: latency per stage and fitting cost.

    python bench/dehaze_anomaly.py --repeats 10

Times the packaged DCP dehazer (ONNX Runtime) at three frame sizes, the MobileNetV2 feature
sessions (patch at 256x256, GeM at 224x224 for batch 1 and 16), PatchCore scoring (nearest
neighbour + map) and fitting (features + coreset + cross-validated threshold) on vtest.avi frames.
Writes bench/results/dehaze_anomaly.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from edgeglocal.io.frame import Frame
from edgeglocal.io.sources import open_source
from edgeglocal.tasks.anomaly import AnomalyTask, fit_normal_bank, patch_features
from edgeglocal.tasks.backbones import extract, feature_session
from edgeglocal.tasks.dehaze import DehazeTask

VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--fit-frames", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("bench/results/dehaze_anomaly.json"))
    args = parser.parse_args()

    with open_source(VIDEO, max_frames=args.fit_frames + 1) as src:
        frames = [f.image for f in src]
    rows: list[tuple[str, str, float]] = []

    dehaze = DehazeTask(device="cpu")
    for h, w in ((480, 640), (576, 768), (720, 1280)):
        frame = Frame(cv2.resize(frames[0], (w, h)), 0, 0.0, "bench")
        rows.append(("dcp dehaze (task call)", f"{w}x{h}", median_ms(lambda: dehaze(frame), args.repeats)))

    gem = feature_session("gem", device="cpu")
    for batch in (1, 16):
        crops = [frames[0][200:456, 300:428]] * batch
        rows.append((f"gem embedding, batch {batch}", "224x224", median_ms(lambda: extract(gem, crops), args.repeats)))

    patch = feature_session("patch", device="cpu")
    rows.append(("patch features", "256x256", median_ms(lambda: patch_features(patch, frames[0]), args.repeats)))

    t0 = time.perf_counter()
    bank = fit_normal_bank(frames[: args.fit_frames], coreset=0.1, session=patch)
    fit_s = time.perf_counter() - t0
    rows.append((f"fit bank ({args.fit_frames} frames, coreset 0.1)", "768x576", 1e3 * fit_s))
    feats = patch_features(patch, frames[-1])
    rows.append((f"patchcore score ({len(bank.memory)} x 128 bank)", "256x256", median_ms(
        lambda: bank.anomaly_map(feats, (256, 256)), args.repeats)))
    bank_path = args.out.with_suffix(".npz")
    bank.save(bank_path)
    task = AnomalyTask(bank=bank_path, device="cpu")
    last = Frame(frames[-1], 0, 0.0, "bench")
    rows.append(("anomaly (task call)", "768x576", median_ms(lambda: task(last), args.repeats)))
    bank_path.unlink()

    table = Table(title=f"default task models, CPU ({platform.processor() or platform.machine()})")
    for col in ("what", "input", "ms (median)"):
        table.add_column(col, justify="right" if col.startswith("ms") else "left")
    for what, size, ms in rows:
        table.add_row(what, size, f"{ms:.1f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"machine": platform.platform(), "repeats": args.repeats,
              "rows": [{"what": w, "input": s, "ms": round(ms, 2)} for w, s, ms in rows]}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
