#!/usr/bin/env bash
# Build every cargo-fuzz target of fuzz/ into $OUT, the way ClusterFuzzLite
# (and OSS-Fuzz) expect a Rust project to: one libFuzzer binary per target,
# its seed corpus as $OUT/TARGET_seed_corpus.zip (from fuzz/corpus/TARGET/),
# and its dictionary as $OUT/TARGET.dict (from fuzz/dict/TARGET.dict, if any).
#
# Inside the ClusterFuzzLite image (.clusterfuzzlite/Dockerfile) the builder
# sets SRC=/src, OUT=/out and SANITIZER (address, or coverage for coverage
# reports), and the repository is $SRC/crosstalk.
#
# Locally, without Docker (from the repository root):
#
#   OUT=/tmp/cflite-out bash .clusterfuzzlite/build.sh                     # stable, no sanitizer
#   OUT=/tmp/cflite-out SANITIZER=address bash .clusterfuzzlite/build.sh   # nightly, ASan
#
# Environment:
#   OUT        where the binaries, seed corpora and dictionaries go (required;
#              created if missing).
#   SRC        optional: a folder holding the repository (as SRC/crosstalk,
#              or SRC itself); by default the repository this script is in.
#   SANITIZER  none or unset: `cargo fuzz build -s none` on the default
#              toolchain (stable works); address (or another cargo-fuzz
#              sanitizer): `-s SANITIZER` on nightly (`cargo +nightly` when the
#              default toolchain is not nightly); coverage: no -s flag, the
#              OSS-Fuzz cargo wrapper adds the coverage instrumentation.
#
# Any failure (missing tool, failed build, target without a binary or a seed
# corpus) stops the script with a message and a non-zero exit.
set -euo pipefail

fail() {
    echo "build.sh: error: $*" >&2
    exit 1
}

# Finds the repository: $SRC/crosstalk or $SRC when SRC is set, otherwise the
# folder above this script.
find_repo() {
    local candidate
    if [[ -n "${SRC:-}" ]]; then
        for candidate in "$SRC/crosstalk" "$SRC"; do
            if [[ -f "$candidate/fuzz/Cargo.toml" ]]; then
                echo "$candidate"
                return
            fi
        done
        fail "SRC=$SRC holds neither crosstalk/fuzz/Cargo.toml nor fuzz/Cargo.toml"
    fi
    candidate=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    [[ -f "$candidate/fuzz/Cargo.toml" ]] || fail "no fuzz/Cargo.toml above $0; set SRC"
    echo "$candidate"
}

[[ -n "${OUT:-}" ]] || fail "OUT is not set (where the fuzz target binaries go), e.g. OUT=/tmp/cflite-out"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
repo=$(find_repo)
cd "$repo/fuzz"

# Chooses the toolchain and the sanitizer flag from $SANITIZER.
sanitizer=${SANITIZER:-none}
cargo=(cargo)
case "$sanitizer" in
    none) sanitizer_flag=(--sanitizer none) ;;
    coverage) sanitizer_flag=() ;;
    *)
        sanitizer_flag=(--sanitizer "$sanitizer")
        if [[ $(rustc --version) != *nightly* ]]; then
            cargo +nightly --version >/dev/null 2>&1 ||
                fail "SANITIZER=$sanitizer needs a nightly toolchain (rustup toolchain install nightly), or use SANITIZER=none"
            cargo=(cargo +nightly)
        fi
        ;;
esac
"${cargo[@]}" fuzz --version >/dev/null 2>&1 ||
    fail "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
command -v zip >/dev/null 2>&1 || fail "zip is missing (it packs the seed corpora): apt-get install zip"

targets=$("${cargo[@]}" fuzz list)
[[ -n "$targets" ]] || fail "cargo fuzz list found no targets in $repo/fuzz"
echo "build.sh: building $(wc -w <<<"$targets") targets (sanitizer: $sanitizer) into $OUT"

# -O --debug-assertions: optimised, with debug assertions and overflow checks,
# as OSS-Fuzz builds Rust targets.
"${cargo[@]}" fuzz build -O --debug-assertions "${sanitizer_flag[@]}"

# cargo-fuzz builds for the host triple into the fuzz workspace's target folder.
triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir=$("${cargo[@]}" metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[[ -n "$triple" && -n "$target_dir" ]] || fail "cannot find the host triple or cargo's target folder"
built="$target_dir/$triple/release"

for target in $targets; do
    [[ -x "$built/$target" ]] || fail "cargo fuzz build made no binary $built/$target"
    cp "$built/$target" "$OUT/$target"
    corpus="corpus/$target"
    [[ -d "$corpus" ]] && [[ -n "$(ls -A "$corpus")" ]] ||
        fail "target $target has no seed corpus in fuzz/$corpus/"
    rm -f "$OUT/${target}_seed_corpus.zip"
    zip -q -j "$OUT/${target}_seed_corpus.zip" "$corpus"/*
    if [[ -f "dict/$target.dict" ]]; then
        cp "dict/$target.dict" "$OUT/$target.dict"
    fi
    echo "build.sh: $target: binary, $(ls -A "$corpus" | wc -l) seed inputs$([[ -f "dict/$target.dict" ]] && echo ", dictionary")"
done
