"""Embed edgeglocal in your own program: run a task over a source and use each result.

    python samples/python/run_stream.py                          # dehaze the sample photo
    python samples/python/run_stream.py --task track --source samples/media/vtest_80.mp4 --save

``edgeglocal.run`` is the Python twin of ``edgeglocal run``: the same sources (camera index, file,
folder, glob, rtsp:// or http:// URL, .streams), the same outputs under runs/<task>/exp*, and a
threaded pipeline underneath. Each iteration gives the task's result for one frame; ``to_record()``
is the JSON line that ``--save-json`` would write.
"""

from __future__ import annotations

import argparse
import json

import edgeglocal
from edgeglocal.io.pipeline import PipelineStats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="dehaze", help="dehaze, anomaly, track or retrieve")
    parser.add_argument("--source", default="samples/media/aero1.jpg")
    parser.add_argument("--model", default=None, help="a bundle .onnx/.engine (default: the task's built-in model)")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--save", action="store_true", help="also save rendered images / video")
    args = parser.parse_args()

    def report(stats: PipelineStats) -> None:
        if stats.frames % 25 == 0:
            print(f"  {stats.frames} frames, {stats.fps:.1f} FPS, infer {stats.latency_ms['infer']:.1f} ms")

    results = edgeglocal.run(args.task, args.source, model=args.model, save=args.save,
                             max_frames=args.max_frames, on_stats=report)
    with results:  # closing finishes the outputs even if the loop stops early
        for i, result in enumerate(results):
            record = result.to_record()
            print(f"frame {i}: {json.dumps(record, default=str)[:120]}")
    if results.run_dir is not None:
        print(f"saved to {results.run_dir}")


if __name__ == "__main__":
    main()
