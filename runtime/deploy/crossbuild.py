"""Cross-builds edgefit's runtime for a board, and gathers what `flash` uploads beside a bundle.

native bundles: the `_native` pybind11 module for the board's Python (aarch64-linux-gnu-g++ against
the headers of Debian's arm64 `libpython3.X-dev`, extracted, never installed) and, when the CMake
project defines it, the standalone `edgefit-run`; built with the project's CMake, cached per
target, Python and source hash. tflite/tvm bundles: the aarch64 wheels of ai-edge-litert /
apache-tvm for the board's Python, resolved with every manylinux aarch64 tag.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from edgefit.errors import UserError
from edgefit.runtime.board import apt
from edgefit.runtime.board.paths import cache_dir
from edgefit.runtime.board.rootfs import _locked, pip_target_args
from edgefit.targets import Target

if TYPE_CHECKING:
    from edgefit.runtime.bundle import Bundle
    from edgefit.runtime.deploy.flash import UploadFile

#: What a board needs to run each backend, besides numpy (pip requirement strings).
BACKEND_WHEELS = {"tflite": ["ai-edge-litert"], "tvm": ["apache-tvm==0.27.0.post1"]}
NATIVE_TARGETS = ("_native", "edgefit-run")


class CrossBuildError(UserError):
    """The runtime could not be cross-built for the board (missing sources, compiler, headers)."""


def source_root() -> Path | None:
    """The C++ sources (CMakeLists.txt, csrc/, cmake/): the checkout of an editable install, or the
    copy a wheel carries in `edgefit/_src`; None if neither is there."""
    import edgefit

    package = Path(edgefit.__file__).resolve().parent
    for root in (package.parent, package / "_src"):
        if (root / "CMakeLists.txt").is_file() and (root / "csrc").is_dir():
            return root
    return None


def _source_hash(root: Path) -> str:
    digest = hashlib.sha256()
    files = [
        root / "CMakeLists.txt",
        *sorted((root / "csrc").rglob("*")),
        *sorted((root / "cmake").rglob("*")),
    ]
    for f in files:
        if f.is_file():
            digest.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def python_headers(python: str) -> Path:
    """A directory with `usr/include/python3.X` from Debian's arm64 libpython3.X-dev (cached)."""
    dest = cache_dir() / "crossbuild" / f"python{python}-arm64"
    if (dest / ".done").is_file():
        return dest
    with _locked(dest.with_name(dest.name + ".lock")):
        if (dest / ".done").is_file():
            return dest
        pkgs = apt.Apt(cache_dir() / "apt-arm64")
        pkgs.update()
        try:
            debs = pkgs.download([f"libpython{python}-dev"])
        except UserError:
            raise CrossBuildError(
                f"Debian 12 has no arm64 libpython{python}-dev to build the board's module against"
            ) from None
        tmp = Path(tempfile.mkdtemp(prefix=".py-arm64.", dir=dest.parent))
        apt.extract(debs, tmp)
        (tmp / ".done").touch()
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def _cmake() -> str:
    venv_cmake = Path(sys.executable).with_name("cmake")
    found = str(venv_cmake) if venv_cmake.exists() else shutil.which("cmake")
    if not found:
        raise CrossBuildError("cmake not found (scripts/setup.sh installs it)")
    return found


def build_native(target: Target, python: str, log: bool = True, src: Path | None = None) -> Path:
    """The cross-built runtime directory for `target` and the board's `python` (cached; a failed
    build is remembered for the same sources, so every flash does not retry it)."""
    if not target.is_arm:
        raise CrossBuildError(f"cross builds are for aarch64 boards; {target.name} runs the host build")
    if shutil.which(f"{target.triple}-g++") is None:
        raise CrossBuildError(f"{target.triple}-g++ not found (install g++-aarch64-linux-gnu)")
    src = src or source_root()
    if src is None:
        raise CrossBuildError("no C++ sources here (edgefit installed without its checkout)")
    out = cache_dir() / "crossbuild" / f"{target.name}-py{python}-{_source_hash(src)}"
    failed = out.with_name(out.name + ".failed")
    if (out / ".done").is_file():
        return out
    if failed.is_file():
        raise CrossBuildError(failed.read_text().strip())
    headers = python_headers(python)
    import pybind11

    with _locked(out.with_name(out.name + ".lock")):
        if (out / ".done").is_file():
            return out
        if log:
            print(
                f"crossbuild: building the runtime for {target.name} (Python {python}, -mcpu={target.mcpu})...",
                file=sys.stderr,
            )
        build = Path(tempfile.mkdtemp(prefix=f".build-{target.name}.", dir=out.parent))
        toolchain = src / "cmake" / f"{target.triple}.cmake"
        cross = (
            [f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"]
            if toolchain.is_file()
            else ["-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
                  f"-DCMAKE_CXX_COMPILER={target.triple}-g++", f"-DCMAKE_C_COMPILER={target.triple}-gcc"]
        )  # fmt: skip
        abi = python.replace(".", "")
        configure = [
            _cmake(), "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release", *cross,
            f"-DEDGEFIT_TARGET_CPU={target.mcpu}", "-DEDGEFIT_BUILD_TESTS=OFF", "-DEDGEFIT_BUILD_PYTHON=ON",
            # pyconfig.h includes <aarch64-linux-gnu/python3.X/pyconfig.h>: the .deb's usr/include.
            f"-DCMAKE_CXX_FLAGS=-mcpu={target.mcpu} -idirafter {headers / 'usr/include'}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DPython_INCLUDE_DIR={headers / 'usr/include' / f'python{python}'}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        ]  # fmt: skip
        if shutil.which("ninja") or Path(sys.executable).with_name("ninja").exists():
            configure += [
                "-G",
                "Ninja",
                f"-DCMAKE_MAKE_PROGRAM={shutil.which('ninja') or Path(sys.executable).with_name('ninja')}",
            ]
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        try:
            _run(configure, env, "configure")
            _run([_cmake(), "--build", str(build), "--target", "_native", "-j", "2"], env, "build _native")
            # The standalone runner is optional: older checkouts do not define it.
            subprocess.run([_cmake(), "--build", str(build), "--target", "edgefit-run", "-j", "2"],
                           env=env, capture_output=True, check=False)  # fmt: skip
            staged = Path(tempfile.mkdtemp(prefix=".out.", dir=out.parent))
            # FindPython names the module after the *host* interpreter's SOABI: rename it for the board.
            for f in build.rglob("_native*.so"):
                _check_aarch64(f)
                shutil.copy2(f, staged / f"_native.cpython-{abi}-{target.triple}.so")
            for f in build.rglob("edgefit-run"):
                if f.is_file():
                    _check_aarch64(f)
                    shutil.copy2(f, staged / f.name)
            if not any(staged.glob("_native*.so")):
                raise CrossBuildError("the build produced no _native module")
            (staged / ".done").touch()
            staged.chmod(0o755)
            shutil.rmtree(out, ignore_errors=True)
            staged.rename(out)
            _prune_other_builds(out)
        except CrossBuildError as exc:
            failed.write_text(f"{exc}\n")
            raise
        finally:
            shutil.rmtree(build, ignore_errors=True)
    return out


def _prune_other_builds(keep: Path) -> None:
    """Builds of older sources for the same target and Python are never used again."""
    prefix = keep.name.rsplit("-", 1)[0] + "-"
    for old in keep.parent.glob(prefix + "*"):
        if old.name.removesuffix(".lock").removesuffix(".failed") != keep.name:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def _check_aarch64(path: Path) -> None:
    with open(path, "rb") as f:
        header = f.read(20)
    if header[:4] != b"\x7fELF" or int.from_bytes(header[18:20], "little") != 183:  # EM_AARCH64
        raise CrossBuildError(f"{path.name} was not built for aarch64 (check the cross toolchain)")


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [
            ln for ln in (proc.stdout + proc.stderr).splitlines() if "error" in ln.lower()
        ] or proc.stderr.splitlines()
        raise CrossBuildError(f"cross {what} failed: {' | '.join(lines[-3:])}")


def backend_site(backend: str, python: str) -> Path:
    """A directory of the aarch64 wheels `backend` needs, unpacked for the board's Python (cached)."""
    reqs = BACKEND_WHEELS[backend]
    key = hashlib.sha256(" ".join(reqs).encode()).hexdigest()[:10]
    dest = cache_dir() / "crossbuild" / f"site-{backend}-py{python}-{key}"
    if (dest / ".done").is_file():
        return dest
    with _locked(dest.with_name(dest.name + ".lock")):
        if (dest / ".done").is_file():
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=".site.", dir=dest.parent))
        # numpy is already on the board; everything else the backend needs comes along.
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(tmp), *pip_target_args(python), *reqs],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            tail = " | ".join(proc.stderr.strip().splitlines()[-2:])
            raise CrossBuildError(f"no aarch64 wheels of {' '.join(reqs)} for Python {python}: {tail}")
        for numpy_dir in tmp.glob("numpy*"):
            shutil.rmtree(numpy_dir) if numpy_dir.is_dir() else numpy_dir.unlink()
        (tmp / ".done").touch()
        tmp.chmod(0o755)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def runtime_upload(bundle: Bundle, target: Target, board_python: str) -> tuple[list[UploadFile], list[str]]:
    """(files under runtime/ for flash to upload, notes saying what was left out and why)."""
    from edgefit.runtime.deploy.flash import UploadFile

    files: list[UploadFile] = []
    notes: list[str] = []
    if not board_python:
        return files, ["the board has no python3: only the bundle was uploaded"]
    try:
        if bundle.backend == "native" and target.is_arm:
            built = build_native(target, board_python)
            files = [
                UploadFile(f"runtime/{f.name}", path=f)
                for f in sorted(built.iterdir())
                if f.is_file() and f.name != ".done"
            ]
        elif bundle.backend in BACKEND_WHEELS:
            site = backend_site(bundle.backend, board_python)
            files = [
                UploadFile(f"runtime/site/{f.relative_to(site)}", path=f)
                for f in sorted(site.rglob("*"))
                if f.is_file() and f.name != ".done" and "__pycache__" not in f.parts
            ]
    except CrossBuildError as exc:
        notes.append(f"runtime not included ({exc}); the board runs what it has")
    return files, notes
