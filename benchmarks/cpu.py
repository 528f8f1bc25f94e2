"""Who used the CPU during a measurement: the load generator (this process), each node, and
everything else on the machine. On 2 cores a load generator near 1 core is itself the
bottleneck, and a busy neighbour makes the numbers noisy; both must be reported."""
from __future__ import annotations

import os
import time

_CLK = os.sysconf("SC_CLK_TCK")


def _proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0
    fl = st[st.rindex(")") + 2:].split()
    return int(fl[11]) + int(fl[12])          # utime + stime (threads included)


def _machine_busy() -> int:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:8]]
    user, nice, system, idle, iowait, irq, softirq = v
    return user + nice + system + irq + softirq


class CpuMeter:
    """`with CpuMeter(node_pids) as m: ...` then `m.result()`: cores used on average."""

    def __init__(self, node_pids: dict[int, int]):
        self.node_pids = dict(node_pids)

    def __enter__(self) -> "CpuMeter":
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy()
        self.me0 = _proc_ticks(os.getpid())
        self.nodes0 = {n: _proc_ticks(p) for n, p in self.node_pids.items()}
        return self

    def __exit__(self, *exc) -> None:
        self.wall = max(time.monotonic() - self.t0, 1e-6)
        self.busy = _machine_busy() - self.busy0
        self.me = _proc_ticks(os.getpid()) - self.me0
        self.nodes = {n: _proc_ticks(p) - self.nodes0[n] for n, p in self.node_pids.items()}

    def result(self) -> dict:
        cores = lambda ticks: round(ticks / _CLK / self.wall, 2)   # noqa: E731
        nodes = sum(self.nodes.values())
        with open("/proc/loadavg") as f:
            load1 = float(f.read().split()[0])
        return {"loadgen_cpu_cores": cores(self.me),
                "node_cpu_cores": {str(n): cores(t) for n, t in sorted(self.nodes.items())},
                "other_cpu_cores": cores(max(0, self.busy - self.me - nodes)),
                "machine_cores": os.cpu_count(), "loadavg1": load1}
