#!/usr/bin/env bash
# One-time (idempotent) set-up on Debian 12: system packages, the virtualenv, the editable build.
set -euo pipefail
cd "$(dirname "$0")/.."

# clang + libclang-rt-14-dev: the loader fuzzer (libFuzzer's runtime is in the latter, which clang
# does not depend on).
APT_PACKAGES=(g++ cmake ninja-build python3-venv python3-dev g++-aarch64-linux-gnu qemu-user
              openssh-server openssh-client llvm clang-format zstd xz-utils clang libclang-rt-14-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# torch is pinned to the CPU build: an unpinned torch would pull gigabytes of CUDA packages.
.venv/bin/pip install -q --disable-pip-version-check scikit-build-core pybind11 ninja cmake "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check --no-build-isolation -e ".[backends,split,harness,dev]"
echo "setup: done (.venv ready; run '.venv/bin/edgefit --help')"
