"""A sampled profile of a step's Python: py-spy attached to the step's process and its children
(the mail sessions, the letters' pool), summarised by area of the code (the package a sample's
innermost frame is in) and by function. py-spy leaves out threads it sees idle, so the shares are
mostly of our CPU, not of the wall time (cpu_share.py splits that); a thread blocked in a socket
read is not always seen idle (the mail's `socket` share is largely waiting for the server).

The raw stacks are kept beside the summary, in the collapsed format speedscope and flamegraph.pl
read.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE = 100  # samples a second: about 1 % of a core for py-spy itself
ENV = "ARREARS_BENCH_PROFILE"  # the raw file a step process samples itself into
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--profile needs py-spy (the dev group installs it: make install)")
    return found


def attach(pid: int, raw: Path, wait: bool = False) -> subprocess.Popen:
    """Sample ``pid`` and its children until it ends, into ``raw`` (collapsed stacks);
    ``wait``: return once py-spy samples (a process that profiles itself)."""
    raw.parent.mkdir(parents=True, exist_ok=True)
    said = raw.with_suffix(".log")
    with said.open("w") as log:  # a file, not a pipe: py-spy outlives a process sampling itself
        sampler = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--subprocesses",
                                    "--nonblocking", "--rate", str(RATE), "--format", "raw",
                                    "--output", str(raw)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while wait and "Sampling" not in said.read_text() and time.monotonic() < deadline:
        if sampler.poll() is not None:
            raise SystemExit(f"py-spy could not sample process {pid}: {said.read_text()}")
        time.sleep(0.02)  # py-spy says 'Sampling process ...' once attached
    return sampler


def area_of(file: str) -> str:
    """'arrears/policy/stages.py' -> 'arrears.policy'; 'psycopg/cursor.py' -> 'psycopg';
    'csv.py' -> 'csv'; '<frozen importlib._bootstrap>' -> 'imports'."""
    if file.startswith("<frozen"):
        return "imports"
    parts = file.split("/")
    if parts[0] == "arrears" and len(parts) > 2:
        return f"arrears.{parts[1]}"
    return parts[0].removesuffix(".py")


@dataclass(frozen=True)
class Summary:
    samples: int
    areas: Counter       # innermost frame's area -> samples
    functions: Counter   # innermost frame 'function (file)' -> samples

    @classmethod
    def read(cls, raw: Path) -> Summary:
        areas, functions, total = Counter(), Counter(), 0
        text = raw.read_text(encoding="utf-8", errors="replace") if raw.exists() else ""
        for line in text.splitlines():
            stack, _, n = line.rpartition(" ")
            if not n.isdigit():
                continue
            frames = [f for f in stack.split(";") if not f.startswith("process ")]
            match = FRAME.match(frames[-1]) if frames else None
            if match is None:
                area = function = "(no Python frame: exit, native threads)"
            else:
                area = area_of(match["file"])
                function = f"{match['function']} ({match['file']})"
            areas[area] += int(n)
            functions[function] += int(n)
            total += int(n)
        return cls(total, areas, functions)

    @classmethod
    def read_all(cls, raws: list[Path]) -> Summary:
        """Several processes' samples as one (the workers of one row)."""
        parts = [cls.read(raw) for raw in raws]
        return cls(sum(p.samples for p in parts), sum((p.areas for p in parts), Counter()),
                   sum((p.functions for p in parts), Counter()))

    def top(self, counter: Counter, n: int) -> list[tuple[str, float]]:
        return [(name, 100.0 * k / self.samples) for name, k in counter.most_common(n)]

    def markdown(self, title: str, n: int = 10) -> str:
        if not self.samples:
            return f"**{title}**: no samples (the step ended before py-spy attached)\n"
        areas = ", ".join(f"{name} {p:.0f}%" for name, p in self.top(self.areas, n))
        lines = [f"**{title}** ({self.samples:,} samples at {RATE}/s): by area: {areas}", "",
                 "| function (innermost frame) | share of our samples |", "|---|---|"]
        lines += [f"| `{name}` | {p:.1f}% |" for name, p in self.top(self.functions, n)]
        return "\n".join(lines) + "\n"


def chart(profiles: list[tuple[str, Summary]], path: Path, title: str, n: int = 8) -> Path | None:
    """One panel a step: its top areas as a share of our samples (None: no step had any)."""
    profiles = [(label, s) for label, s in profiles if s.samples]
    if not profiles:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(profiles), 1, figsize=(9, 1.9 * len(profiles) + 0.6), squeeze=False)
    for ax, (label, summary) in zip(axes[:, 0], profiles):
        top = summary.top(summary.areas, n)
        ax.barh(range(len(top)), [p for _, p in top], color="#3b6fb6")
        ax.set_yticks(range(len(top)), [name for name, _ in top], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_title(f"{label} ({summary.samples:,} samples)", fontsize=9, loc="left")
        for y, (_, p) in enumerate(top):
            ax.text(p + 0.8, y, f"{p:.0f}%", va="center", fontsize=7)
    axes[-1, 0].set_xlabel("% of our CPU samples (py-spy), by the package of the innermost frame")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
