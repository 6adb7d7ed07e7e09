"""Embed an edgeglocal model in your own Python app: load a bundle, prepare frames, run, time it.

    python samples/python/trt_embed.py model_trt.engine image.jpg [--runs 50]

``edgeglocal.load`` picks the backend from the file: a ``.engine`` runs on TensorRT (with the
plugin library from $EDGEGLOCAL_TRT_PLUGINS or plugins_trt/build), an ``.onnx`` on ONNX Runtime,
so the same script runs an engine on a Jetson and its ONNX bundle on a laptop.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

import edgeglocal
from edgeglocal.runtime.preprocess import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="NAME.engine or NAME.onnx (with NAME.json beside it)")
    parser.add_argument("image", help="an image file")
    parser.add_argument("--runs", type=int, default=20, help="timed runs after one warm-up")
    args = parser.parse_args()

    session = edgeglocal.load(args.model)
    print(f"{args.model}: backend {session.backend}")
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"Cannot read image {args.image}.")
    spec = session.inputs[0]
    batch, meta = prepare(image, spec)  # resize/pad/normalise as the manifest says
    feeds = {spec.name: batch.astype(spec.dtype)}
    print(f"input  {spec.name}: {batch.shape} (frame {image.shape[1]}x{image.shape[0]}, resized {meta.resized_hw})")

    outputs = session.run(feeds)  # warm-up: TensorRT allocates, ORT initialises
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        outputs = session.run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    for name, value in outputs.items():
        print(f"output {name}: {value.shape} {value.dtype} range [{value.min():.4g}, {value.max():.4g}]")
    print(f"latency over {args.runs} runs: median {np.median(times):.2f} ms, p90 {np.percentile(times, 90):.2f} ms")


if __name__ == "__main__":
    main()
