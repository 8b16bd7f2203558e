#!/usr/bin/env python3
"""Summarise an lcov file of crates/store and crates/export (from .ci/coverage).

Prints Markdown: a one-line summary of line coverage per service, then, per
file, its line counts and the line ranges no scenario reached. Uncovered
lines next to a `planted.on(` call are planted-bug code (dead in every build
without the planted-bugs feature) and are counted apart.
"""
import os
import re
import sys
from collections import OrderedDict

PLANTED = re.compile(r"planted\.on\(")


def read_lcov(path):
    files = OrderedDict()
    current = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("SF:"):
                current = files.setdefault(line[3:], {})
            elif line.startswith("DA:") and current is not None:
                number, count = line[3:].split(",")[:2]
                current[int(number)] = current.get(int(number), 0) + int(float(count))
    return files


def ranges(lines_by_number):
    """Runs of uncovered lines; lines without counts between them join a run."""
    runs = []
    previous = None
    for number in sorted(lines_by_number):
        if lines_by_number[number] == 0:
            if runs and previous == runs[-1][1]:
                runs[-1][1] = number
            else:
                runs.append([number, number])
        previous = number
    return runs


def is_planted(source, start, end):
    window = source[max(0, start - 4):end]
    return any(PLANTED.search(text) for text in window)


def service_of(path):
    match = re.search(r"crates/(store|export)/", path)
    return match.group(1) if match else "other"


def main():
    lcov_path, seeds = sys.argv[1], sys.argv[2]
    files = read_lcov(lcov_path)
    totals = {}
    sections = []
    for path, counts in files.items():
        try:
            with open(path) as f:
                source = f.read().splitlines()
        except OSError:
            source = []
        runs = ranges(counts)
        planted = sum(
            sum(1 for n in range(a, b + 1) if counts.get(n) == 0)
            for a, b in runs
            if is_planted(source, a, b)
        )
        hit = sum(1 for c in counts.values() if c > 0)
        t = totals.setdefault(service_of(path), [0, 0, 0])
        t[0] += hit
        t[1] += len(counts)
        t[2] += planted
        short = path[path.find("crates/"):] if "crates/" in path else os.path.basename(path)
        sections.append((short, hit, len(counts), planted, runs, source))

    def pct(hit, total):
        return f"{100.0 * hit / total:.1f}%" if total else "n/a"

    parts = []
    for name in ("store", "export"):
        hit, total, planted = totals.get(name, [0, 0, 0])
        parts.append(
            f"{name} {pct(hit, total)} of lines ({hit}/{total}; "
            f"{pct(hit, total - planted)} without {planted} planted-bug lines)"
        )
    print(f"coverage by the scenarios (seeds {seeds}): " + "; ".join(parts))
    print()
    print("| file | lines reached | uncovered ranges |")
    print("|---|---|---|")
    for short, hit, total, planted, runs, _ in sections:
        text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs) or "-"
        print(f"| {short} | {hit}/{total} ({pct(hit, total)}) | {text} |")
    print()
    for short, _, _, _, runs, source in sections:
        if not runs:
            continue
        print(f"## {short}")
        print()
        for a, b in runs:
            first = source[a - 1].strip() if 0 < a <= len(source) else ""
            tag = " (planted-bug code)" if is_planted(source, a, b) else ""
            where = f"{a}" if a == b else f"{a}-{b}"
            print(f"- {where}{tag}: `{first[:90]}`")
        print()


if __name__ == "__main__":
    main()
