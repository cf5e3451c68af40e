#!/usr/bin/env bash
# build_llama_cpp.sh — build llama.cpp's reference tools (llama-perplexity, llama-bench,
# llama-tokenize, llama-simple) on the CPU, outside the repo, for the golden files in tests/golden/
# and for the benchmarks. llama.cpp's source comes from the llama-cpp-python sdist on PyPI,
# which vendors a pinned llama.cpp tree under vendor/llama.cpp (the only registry reachable here).
# Usage: tools/build_llama_cpp.sh            (env: KEEL_CACHE, LLAMA_CPP_PY_VERSION, JOBS)
# Result: $KEEL_CACHE/llama.cpp-build/bin/{llama-perplexity,llama-bench,...}; the vendored source
#         (with convert_hf_to_gguf.py) stays at $KEEL_CACHE/src/llama_cpp_python-$VER/vendor/llama.cpp.
set -euo pipefail

CACHE="${KEEL_CACHE:-/root/.cache/keel}"
VER="${LLAMA_CPP_PY_VERSION:-0.3.36}"     # llama-cpp-python release whose vendored llama.cpp we use
JOBS="${JOBS:-2}"                          # the machine has 2 shared cores
TARGETS="${TARGETS:-llama-perplexity llama-bench llama-tokenize llama-simple}"

mkdir -p "$CACHE/dl" "$CACHE/src"
SDIST="$CACHE/dl/llama_cpp_python-$VER.tar.gz"
if [ ! -f "$SDIST" ]; then
    pip download --no-deps --no-binary :all: "llama-cpp-python==$VER" -d "$CACHE/dl"
fi
SRC="$CACHE/src/llama_cpp_python-$VER/vendor/llama.cpp"
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    tar xzf "$SDIST" -C "$CACHE/src"
fi

BUILD="$CACHE/llama.cpp-build"
# -march=native turns on AMX on these Xeons, but the sandbox does not let a process use the AMX
# tiles (tilezero raises SIGILL in ggml's AMX Q4_1 matmul): keep every other native ISA, drop AMX.
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
# The sdist carries the submodule's git metadata (.git -> ../../.git/modules/vendor/llama.cpp), so
# the pinned llama.cpp commit is known; stamp it (with the sdist version as a fallback).
COMMIT="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo "llama-cpp-python-$VER")"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DCMAKE_C_FLAGS="$NO_AMX" -DCMAKE_CXX_FLAGS="$NO_AMX" -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_NUMBER=0 -DLLAMA_BUILD_COMMIT="$COMMIT" >"$BUILD.cmake.log" 2>&1 \
    || { tail -40 "$BUILD.cmake.log"; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" --config Release -j "$JOBS" --target $TARGETS
ls -l "$BUILD/bin"
sha256sum "$SDIST"
git -C "$SRC" log -1 --format='llama.cpp commit %H (%cd) %s' 2>/dev/null || true
