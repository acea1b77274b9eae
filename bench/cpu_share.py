"""Where a step's wall time went on the machine's cores: the step's own processes, the database
server, the rest of the machine, and idle (read from /proc before and after the step).

A step that is slow because the server works on the other core, or because nothing works at all
(a lock, a round trip), looks the same on a stopwatch; this tells them apart. The server's CPU is
every PostgreSQL server process's (backends that ended count through the postmaster's children's
times), so on a shared machine it includes other people's queries: measure on a quiet machine.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SERVER_NAMES = {"postgres", "postmaster"}


@dataclass(frozen=True)
class Reading:
    at: float        # time.time(): readings of several processes are compared
    ours: float      # this process and its ended children, CPU s
    server: float    # every database server process, CPU s
    busy: float      # the whole machine, CPU s summed over its cores
    stolen: float    # time the hypervisor gave the cores to someone else
    cores: int

    @classmethod
    def now(cls) -> Reading:
        me = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, stolen = _machine()
        return cls(time.time(), me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime,
                   _server(), busy, stolen, os.cpu_count() or 1)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Share:
    """Core-seconds over one window: ``wall * cores`` = ours + server + other + stolen + idle."""
    wall: float
    cores: int
    ours: float
    server: float
    other: float
    stolen: float
    idle: float

    @classmethod
    def between(cls, first: Reading, last: Reading, ours: float | None = None) -> Share:
        """From the first reading to the last; ``ours``: the CPU of several processes (the
        workers), else the one process's own."""
        wall = max(last.at - first.at, 1e-9)
        ours = last.ours - first.ours if ours is None else ours
        server = max(0.0, last.server - first.server)
        busy = max(0.0, last.busy - first.busy)
        stolen = max(0.0, last.stolen - first.stolen)
        return cls(wall, first.cores, ours, server, max(0.0, busy - ours - server), stolen,
                   max(0.0, wall * first.cores - busy - stolen))

    @classmethod
    def of_processes(cls, readings: list[tuple[dict, dict]]) -> Share:
        """Processes that ran at once, each with its (before, after) readings: from the first
        start to the last end, their CPU summed."""
        pairs = [(Reading(**a), Reading(**b)) for a, b in readings]
        first = min((a for a, _ in pairs), key=lambda r: r.at)
        last = max((b for _, b in pairs), key=lambda r: r.at)
        return cls.between(first, last, sum(b.ours - a.ours for a, b in pairs))

    def percent(self, part: float) -> float:
        return 100.0 * part / (self.wall * self.cores)

    def label(self) -> str:
        """e.g. 'ours 48% · server 31% · other 3% · idle 18%' of the cores' time."""
        parts = [("ours", self.ours), ("server", self.server), ("other", self.other)]
        if self.stolen >= 0.01 * self.wall:
            parts.append(("stolen", self.stolen))
        parts.append(("idle", self.idle))
        return " · ".join(f"{name} {self.percent(v):.0f}%" for name, v in parts)


def _machine() -> tuple[float, float]:
    # cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def _server() -> float:
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:  # ended between the listing and the read
            continue
        name, rest = raw[raw.index("(") + 1:].rsplit(")", 1)
        if name in SERVER_NAMES:
            f = rest.split()
            total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime
    return total / TICK


def chart(rows: list[tuple[str, Share]], path: Path, title: str) -> Path:
    """One horizontal bar a step: the share of the cores' time each part took, the wall time
    at the end of the bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"ours": "#3b6fb6", "server": "#e08a2e", "other": "#9a9a9a", "stolen": "#c0392b",
               "idle": "#f2f2f2"}
    names = {"ours": "the step's processes", "server": "database server",
             "other": "rest of the machine", "stolen": "stolen by the host", "idle": "idle / waiting"}
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 1.6))
    for y, (_, share) in enumerate(reversed(rows)):
        left = 0.0
        for part in colours:
            width = share.percent(getattr(share, part))
            ax.barh(y, width, left=left, color=colours[part], edgecolor="#555", linewidth=0.4,
                    label=names[part] if y == 0 else None)
            left += width
        ax.text(101, y, f"{share.wall:.1f} s", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)], fontsize=8)
    ax.set_xlim(0, 112)
    ax.set_xlabel(f"% of the {rows[0][1].cores} cores' time during the step (wall time at right)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.45, -0.12 - 0.5 / len(rows)), ncol=3, fontsize=7,
              frameon=False)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
