"""What every benchmark script prints about the machine it ran on (figures from different
machines are not comparable: compare only ratios measured in one run)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_line() -> str:
    """One line: CPU model, cores, load average (1 min), Python version."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "n/a"
    return (f"CPU: {cpu_model()}; {os.cpu_count()} cores; load average {load}; "
            f"python {platform.python_version()}")
