#!/usr/bin/env bash
# Build the libFuzzer target (walker + reassembler) with ASan and UBSan into build/fuzz/.
# UBSan findings abort (-fno-sanitize-recover) so libFuzzer saves them like crashes.
#   tests/fuzz/build.sh                                   # clang-14, or $CC if set
#   EXTRA_CFLAGS='-DEXTRA' tests/fuzz/build.sh                # extra compiler flags
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="$ROOT/build/fuzz"
CC="${CC:-$(command -v clang-14 || command -v clang || true)}"
if [ -z "$CC" ]; then
    echo "clang not found: apt-get install -y clang-14 libfuzzer-14-dev llvm-14" >&2
    exit 1
fi
mkdir -p "$OUT"
"$CC" -g -O1 -std=gnu11 -fno-omit-frame-pointer -fno-strict-aliasing \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I "$ROOT/csrc" ${EXTRA_CFLAGS:-} \
    "$ROOT/tests/fuzz/fuzz_native.c" "$ROOT/csrc/walk.c" "$ROOT/csrc/reassembly.c" \
    -o "$OUT/fuzz_native"
echo "built $OUT/fuzz_native"
