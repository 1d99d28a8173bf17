#!/usr/bin/env bash
# The GPU check of llmdeck's telemetry: per-model VRAM and GPU gauges against nvidia-smi.
#
#   scripts/gpu-check.sh prepare        # here (internet or the llmdeck cache): copy a trimmed
#                                       # llama.cpp source tree (~38 MB) into .gpu/llama.cpp
#   scripts/gpu-check.sh run [OUT_DIR [gpu_check.py options]]  # on the GPU machine (no internet needed): build a CUDA
#                                       # llama-server for sm_90, then scripts/gpu_check.py
#   scripts/gpu-check.sh build [OUT_DIR]  # the build alone (then run with LLAMA_SERVER=…)
#   scripts/gpu-check.sh run OUT_DIR --swap only  # only the on-demand swap scenario (3 × ~59 GB
#                                       # zero-weight sparse models through `llmdeck serve`)
#
# `run` builds only the llama-server target (static, CUDA arch $CUDA_ARCH, default 90; FlashAttention
# kernels off to halve the build, they are not needed here) into $BUILD_DIR, or uses $LLAMA_SERVER
# if set. Then gpu_check.py writes a random-weight llama GGUF with the source's gguf-py, starts it
# through llmdeck with n_gpu_layers 99, and compares llmdeck with nvidia-smi (see its docstring).
# The report is printed and written to OUT_DIR/gpu-check-report.txt (default /tmp/llmdeck-gpu-out).
# Exit status: 0 when every check passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${LLAMA_CPP_SRC:-$ROOT/.gpu/llama.cpp}"
PY="${PYTHON:-python3}"

prepare() {
    local from
    from="$("$ROOT/.venv/bin/python" -c 'from tui.core import provision; print(provision.llama_cpp_source())')"
    rm -rf "$SRC"
    mkdir -p "$SRC/models"
    # everything a CUDA llama-server build and gguf-py need; no docs, tests, web UI sources or
    # other GPU backends (the whole tree must travel in 64 MiB)
    tar -C "$from" -cf - \
        --exclude=./docs --exclude=./media --exclude=./models --exclude=./tests --exclude=./benches \
        --exclude=./examples --exclude=./tools/ui/tests --exclude=./tools/ui/package-lock.json \
        --exclude=./tools/server/tests --exclude=./tools/server/bench \
        --exclude=./ggml/src/ggml-vulkan --exclude=./ggml/src/ggml-sycl --exclude=./ggml/src/ggml-opencl \
        --exclude=./ggml/src/ggml-metal --exclude=./ggml/src/ggml-hexagon --exclude=./ggml/src/ggml-webgpu \
        --exclude=./ggml/src/ggml-openvino --exclude=./ggml/src/ggml-et --exclude=./ggml/src/ggml-cann \
        --exclude=./ggml/src/ggml-zdnn --exclude=./ggml/src/ggml-zendnn --exclude=./ggml/src/ggml-virtgpu \
        --exclude=./ggml/src/ggml-musa --exclude=./ggml/src/ggml-hip . | tar -C "$SRC" -xf -
    cp "$from/models/ggml-vocab-llama-spm.gguf" "$SRC/models/"
    du -sh "$SRC"
}

build() {
    # the CUDA llama-server only, into $BUILD_DIR (default /tmp/llmdeck-cuda-build); prints its path last
    local out="${1:-/tmp/llmdeck-gpu-out}"
    mkdir -p "$out"
    [ -f "$SRC/CMakeLists.txt" ] || { echo "gpu-check: no llama.cpp source at $SRC (run '$0 prepare' first)" >&2; exit 2; }
    local build="${BUILD_DIR:-/tmp/llmdeck-cuda-build}"
    local t0=$SECONDS
    echo "gpu-check: building llama-server (CUDA, sm_${CUDA_ARCH:-90}) in $build; log in $out/build.log" >&2
    cmake -S "$SRC" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA_FA=OFF \
        -DGGML_CUDA_NCCL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_CCACHE=OFF \
        >"$out/build.log" 2>&1 || { tail -30 "$out/build.log" >&2; exit 1; }
    cmake --build "$build" --target llama-server -j "$(nproc)" >>"$out/build.log" 2>&1 \
        || { tail -40 "$out/build.log" >&2; exit 1; }
    echo "gpu-check: built $build/bin/llama-server in $((SECONDS - t0)) s" >&2
    echo "$build/bin/llama-server"
}

run() {
    local out="${1:-/tmp/llmdeck-gpu-out}"
    shift || true
    mkdir -p "$out"
    [ -f "$SRC/CMakeLists.txt" ] || { echo "gpu-check: no llama.cpp source at $SRC (run '$0 prepare' first)" >&2; exit 2; }
    command -v nvidia-smi >/dev/null || echo "gpu-check: no nvidia-smi here: only the GPU-less path is checked" >&2
    local bin="${LLAMA_SERVER:-}"
    if [ -z "$bin" ]; then
        bin="$(build "$out")"
    fi
    "$bin" --version 2>&1 | head -3 || true
    PYTHONUNBUFFERED=1 "$PY" "$ROOT/scripts/gpu_check.py" --src "$SRC" --binary "$bin" --out "$out" "$@"
}

case "${1:-}" in
    prepare) prepare ;;
    build) shift; build "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
