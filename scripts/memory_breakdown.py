#!/usr/bin/env python3
"""What a process's resident memory is made of, from /proc/PID/smaps (scripts/bench memory).

Prints one `memory` line of key=value totals (MiB): rss, anonymous (heap, stacks, the
relocated data of libraries: the process's own), file (pages of the binary and shared
libraries that are mapped: the page cache's, shared with every process that maps the same
file), pss (rss with shared pages divided among their users) and peak (VmHWM). Then the
mappings that hold most of it, biggest first.

Usage: memory_breakdown.py PID LABEL [--top N]
"""

import argparse
import collections
import os
import re

MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$")


def kib_fields(path):
    values = {}
    with open(path) as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                values[name] = int(parts[0])
    return values


def breakdown(pid):
    """Rss and anonymous KiB by mapping name (the file's base name, or [anon], [stack]...)."""
    rss = collections.Counter()
    anonymous = collections.Counter()
    current = None
    with open(f"/proc/{pid}/smaps") as handle:
        for line in handle:
            match = MAPPING.match(line)
            if match:
                name = match.group(2).strip()
                current = os.path.basename(name) if name.startswith("/") else (name or "[anon]")
                continue
            if line.startswith("Rss:"):
                rss[current] += int(line.split()[1])
            elif line.startswith("Anonymous:"):
                anonymous[current] += int(line.split()[1])
    return rss, anonymous


def mib(kib):
    return f"{kib / 1024:.1f}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("pid")
    parser.add_argument("label")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    rollup = kib_fields(f"/proc/{args.pid}/smaps_rollup")
    status = kib_fields(f"/proc/{args.pid}/status")
    rss, anonymous = breakdown(args.pid)
    file_backed = rollup["Rss"] - rollup["Anonymous"]
    print(
        f"memory state={args.label} rss_mb={mib(rollup['Rss'])} anon_mb={mib(rollup['Anonymous'])} "
        f"file_mb={mib(file_backed)} pss_mb={mib(rollup['Pss'])} peak_mb={mib(status['VmHWM'])} "
        f"threads={open(f'/proc/{args.pid}/status').read().split('Threads:')[1].split()[0]}"
    )
    for name, kib in rss.most_common(args.top):
        print(f"  {mib(kib):>6} MiB  (anonymous {mib(anonymous[name]):>5})  {name}")


if __name__ == "__main__":
    main()
