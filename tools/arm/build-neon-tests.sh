#!/usr/bin/env bash
# Cross-builds the NEON kernels, their scalar references and the aarch64 test driver / bench
# (static, so qemu-aarch64 runs them without a sysroot). Usage: tools/arm/build-neon-tests.sh [OUT]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/build/neon-tests}")"  # absolute: the script changes directory
CXX="${CXX_AARCH64:-aarch64-linux-gnu-g++}"
CXXFLAGS=(-std=c++17 -O2 -mcpu=cortex-a72 -Wall -Wextra -I "$ROOT/csrc")
mkdir -p "$OUT"
cd "$ROOT/csrc/kernels"
# The references every NEON kernel is compared with, and the packing routine the GEMM reads.
SCALAR=(f32-gemm/f32-gemm-4x8-scalar.cc f32-gemm/f32-gemm-pack.cc f32-spmm/f32-spmm-scalar.cc
        cb-gemm/cb-gemm-4x8-scalar.cc f32-dwconv/f32-dwconv-kxk-scalar.cc
        f32-elementwise/f32-elementwise-scalar.cc f32-pool/f32-pool-scalar.cc)
mapfile -t NEON < <(ls ./*/*neon*.cc | sort)
objs=()
pids=()
for src in "${SCALAR[@]}" "${NEON[@]}"; do
  obj="$OUT/obj/$(basename "${src%.cc}").o"
  mkdir -p "$OUT/obj"
  "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$obj" &
  pids+=($!)
  objs+=("$obj")
done
# A bare `wait` would hide a failed compile.
for pid in "${pids[@]}"; do wait "$pid"; done
# The kernels' assembly, for the llvm-mca measurements and the spill checks.
mkdir -p "$OUT/asm"
for src in "${NEON[@]}"; do
  "$CXX" "${CXXFLAGS[@]}" -S "$src" -o "$OUT/asm/$(basename "${src%.cc}").s"
done
"$CXX" "${CXXFLAGS[@]}" -static "$ROOT/csrc/tests/neon/neon_kernel_test.cc" "${objs[@]}" \
  -o "$OUT/neon-kernel-tests.tmp"
mv "$OUT/neon-kernel-tests.tmp" "$OUT/neon-kernel-tests"
if [ -f "$ROOT/tools/arm/neon_bench.cc" ]; then
  "$CXX" "${CXXFLAGS[@]}" -static "$ROOT/tools/arm/neon_bench.cc" "${objs[@]}" \
    -o "$OUT/neon-bench.tmp"
  mv "$OUT/neon-bench.tmp" "$OUT/neon-bench"
fi
echo "built $OUT/neon-kernel-tests"
