"""The CUDA kernel sources, run on the CPU: tests/harness.cu (every kernel against its plain CPU
reference, fp32 and fp16) compiled with g++ against plugins_trt/tests/emu/cuda_emu.h, which
stands in for CUDA's execution model (one OS thread per CUDA thread, block and warp barriers,
shared memory per block, host memory as device memory).

This checks the kernels' indexing, shared-memory staging, synchronisation and warp-shuffle scan
where no GPU exists; it says nothing about speed or GPU-specific behaviour (tests marked gpu do).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kernel_lib import REPO

PLUGINS = REPO / "plugins_trt"
CUDA_INCLUDE = next((p for p in (Path("/usr/local/cuda/include"), *sorted(Path("/usr/local").glob("cuda*/include")))
                     if (p / "cuda_runtime.h").is_file()), None)
SOURCES = ["common/egl_status.cu", "selective_scan/selective_scan_kernel.cu",
           "selective_scan_2d/selective_scan_2d_kernel.cu", "window_attention/window_attention_kernel.cu",
           "tests/harness.cu", "common/egl_scan_core.cuh"]
_LAUNCH = re.compile(r"([A-Za-z_][A-Za-z_0-9:]*(?:<[^<>]*>)?)<<<([^>]*)>>>\(")


def _emulable(text: str) -> tuple[str, int]:
    """`k<<<grid, block, shared, stream>>>(args)` -> `emu::launch(k, grid, block, shared, stream)(args)`,
    and dynamic shared memory -> the emulator's block buffer; also returns how many launches changed."""
    text = text.replace("extern __shared__ float smem[];", "float* smem = emu::shared_memory();")
    return _LAUNCH.subn(r"emu::launch(\1, \2)(", text)


@pytest.mark.skipif(shutil.which("g++") is None or CUDA_INCLUDE is None,
                    reason="needs g++ (C++20) and the CUDA toolkit headers")
def test_kernels_pass_the_harness_on_the_cpu_emulator(tmp_path: Path):
    launches = 0
    for source in SOURCES:
        converted, count = _emulable((PLUGINS / source).read_text())
        launches += count
        name = Path(source).name
        (tmp_path / (name if name.endswith(".cuh") else name.replace(".cu", ".cpp"))).write_text(converted)
    assert launches == 3, "the scan engine, the fp16 cast and window attention are the three launch sites"
    includes = [f"-I{tmp_path}"] + [f"-I{PLUGINS / d}" for d in
                                    ("include", "common", "selective_scan", "selective_scan_2d", "window_attention")]
    exe = tmp_path / "harness_emu"
    compile_ = subprocess.run(
        ["g++", "-std=c++20", "-O1", "-pthread", "-include", str(PLUGINS / "tests/emu/cuda_emu.h"), *includes,
         f"-I{CUDA_INCLUDE}", *sorted(str(p) for p in tmp_path.glob("*.cpp")), "-o", str(exe)],
        capture_output=True, text=True, timeout=600,
    )
    assert compile_.returncode == 0, compile_.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout
    lines = run.stdout.splitlines()
    assert sum(line.startswith("PASS") for line in lines) == 24, run.stdout
    assert lines[-1] == "0 failed"
