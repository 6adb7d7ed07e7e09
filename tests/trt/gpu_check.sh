#!/usr/bin/env bash
# One-shot GPU check of the TensorRT side: build plugins_trt for this GPU, run the C harness, run
# the GPU test suite (kernels vs edgeglocal.ops, speed/bandwidth, TensorRT engines when TensorRT is
# installed) and print the numbers. Run from the repository root on a CUDA machine:
#
#   bash tests/trt/gpu_check.sh            # results also go to $OUT (or ./gpu_check_out)
#
# EGL_CUDA_ARCH overrides the architecture (default: this GPU's, from nvidia-smi); TensorRT_ROOT
# points CMake at TensorRT. Without nvcc on the GPU machine, build plugins_trt/build elsewhere for
# its architecture (e.g. -DCMAKE_CUDA_ARCHITECTURES=90 for H100/H200) and bring that folder along:
# the script uses an existing build folder as it is (EGL_REBUILD=1 rebuilds it).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
BUILD=plugins_trt/build
PY="$(command -v python3 || command -v python)"  # the GPU image's python3 is the one with torch
status=0

echo "== device"
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader || status=1
NVCC="$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)"
echo "nvcc: ${NVCC:-missing}"; [ -n "$NVCC" ] && "$NVCC" --version | tail -1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
"$PY" -c "import tensorrt; print('tensorrt', tensorrt.__version__)" 2>/dev/null || echo "tensorrt: not installed"
"$PY" -c "import edgeglocal.ops, edgeglocal.cli.app" || { echo "edgeglocal does not import with $PY: see above"; exit 1; }

ARCH="${EGL_CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)}"
if [ -f "$BUILD/libedgeglocal_kernels.so" ] && [ -z "${EGL_REBUILD:-}" ]; then
  echo "== using the prebuilt $BUILD (EGL_REBUILD=1 rebuilds)"
elif [ -n "$NVCC" ] && command -v cmake > /dev/null; then
  echo "== build plugins_trt (sm_${ARCH})"
  start=$(date +%s)
  cmake -S plugins_trt -B "$BUILD" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
        -DCMAKE_CUDA_COMPILER="$NVCC" ${TensorRT_ROOT:+-DTensorRT_ROOT=$TensorRT_ROOT} > "$OUT/cmake.log" 2>&1 \
    && cmake --build "$BUILD" -j"$(nproc)" >> "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
  grep -E "TensorRT" "$OUT/cmake.log" | head -2
  echo "built in $(( $(date +%s) - start )) s"
else
  echo "no nvcc/cmake and no prebuilt $BUILD: nothing to test"; exit 1
fi
echo "libraries: $(ls $BUILD/*.so | xargs -n1 basename | tr '\n' ' ')"

echo "== C harness (kernels vs CPU reference)"
"$BUILD/egl_kernel_harness" | tee "$OUT/harness.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== pytest -m gpu tests/trt"
[ -f "$BUILD/libedgeglocal_trt_plugins.so" ] && export EDGEGLOCAL_TRT_PLUGINS="$PWD/$BUILD/libedgeglocal_trt_plugins.so"
EGL_BENCH_JSON="$OUT/selective_scan_bench.json" timeout 420 "$PY" -m pytest -q -m gpu tests/trt -rs 2>&1 | tee "$OUT/pytest_gpu.txt" | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== numbers"
[ -f "$OUT/selective_scan_bench.json" ] && cat "$OUT/selective_scan_bench.json"
exit $status
