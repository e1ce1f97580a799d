"""What the benches report about the machine they ran on."""
from __future__ import annotations

import os


def others_cpu_seconds() -> float | None:
    """CPU seconds all OTHER processes have used since boot (Linux /proc/stat), or None elsewhere: this
    bench and the launches it waited for are taken out. On 2 cores a neighbour's work shows in every figure."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    own = os.times()
    return busy - own.user - own.system - own.children_user - own.children_system
