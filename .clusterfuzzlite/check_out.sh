#!/usr/bin/env bash
# Check a build.sh output folder: every target that `cargo fuzz list` names in
# fuzz/ has an executable libFuzzer binary in it, a seed corpus zip with one
# entry per file of fuzz/corpus/TARGET/, and its dictionary when fuzz/dict/
# has one. Prints what it checked (the positive control) and exits non-zero
# naming everything that is missing.
#
#   bash .clusterfuzzlite/check_out.sh /tmp/cflite-out
set -euo pipefail

out=${1:?usage: check_out.sh OUT_FOLDER}
out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"


if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "check_out.sh: error: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 1
fi
targets=$(cargo fuzz list)
problems=()
checked=0
inputs=0
dicts=0
for target in $targets; do
    checked=$((checked + 1))
    if [[ ! -x "$out/$target" ]]; then
        problems+=("$target: no executable $out/$target")
    elif ! "$out/$target" -help=1 >/dev/null 2>&1; then
        problems+=("$target: $out/$target does not run as a libFuzzer binary (-help=1)")
    fi
    zip="$out/${target}_seed_corpus.zip"
    expected=$(find "corpus/$target" -type f 2>/dev/null | wc -l)
    if [[ ! -f "$zip" ]]; then
        problems+=("$target: no seed corpus $zip")
    else
        entries=$(unzip -Z1 "$zip" | wc -l)
        inputs=$((inputs + entries))
        if [[ "$entries" -ne "$expected" || "$entries" -eq 0 ]]; then
            problems+=("$target: $zip has $entries inputs, fuzz/corpus/$target has $expected")
        fi
    fi
    if [[ -f "dict/$target.dict" ]]; then
        dicts=$((dicts + 1))
        cmp -s "dict/$target.dict" "$out/$target.dict" ||
            problems+=("$target: $out/$target.dict missing or differs from fuzz/dict/$target.dict")
    fi
done
if [[ ${#problems[@]} -gt 0 ]]; then
    printf 'check_out.sh: error: %s\n' "${problems[@]}" >&2
    exit 1
fi
if [[ "$checked" -eq 0 ]]; then
    echo "check_out.sh: error: cargo fuzz list named no targets" >&2
    exit 1
fi
echo "check_out.sh: $checked targets in $out: binaries run, $inputs seed inputs zipped, $dicts dictionaries"
