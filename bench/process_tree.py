"""A benchmarked process and everything it started: memory and CPU time, read from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from vdi.testing.processes import proc_stats


def tree(pid: int) -> list[int]:
    pids = [pid]
    for child, fields in proc_stats():
        if int(fields[1]) in pids:  # its parent
            pids.append(child)
    return pids


def tree_rss_kib(pid: int) -> int:
    total = 0
    for child in tree(pid):
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def tree_cpu_seconds(pid: int) -> float:
    ticks = 0
    for child in tree(pid):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")
