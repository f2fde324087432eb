"""What the benchmarks share: a scratch Ponder home, the environment for child processes, statistics, output.

Every benchmark is a script (`python bench/NAME.py [--json OUT]`) that measures two things side
by side in one run and reports their ratio; none asserts anything about time. `run_all.py`
runs them one after another, each in its own process.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "resources" / "specs"
RESULTS = ROOT / "bench" / "results"
# Converted models are shared with the tests: converting the bundled GGUF takes ~20 s, once.
os.environ.setdefault("PONDER_CACHE", str(ROOT / ".cache" / "ponder-models"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def scratch_home(prefix: str) -> Path:
    """A fresh Ponder home for one benchmark (PONDER_HOME is set for this process and its children)."""
    home = Path(tempfile.mkdtemp(prefix=f"ponder-bench-{prefix}-"))
    os.environ["PONDER_HOME"] = str(home)
    return home


def child_env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    env.update(extra)
    return env


def median(values: Iterable[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def machine() -> dict[str, object]:
    """What the figures were measured on; the load average says whether the machine was quiet."""
    info: dict[str, object] = {"python": platform.python_version(), "platform": platform.platform(),
                               "cpus": os.cpu_count(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        info["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info


def emit(result: dict, json_path: str | None) -> None:
    """Print a benchmark's result; write it as JSON where run_all asked for it."""
    result = {**result, "machine": machine()}
    text = json.dumps(result, indent=2, default=str)
    sys.stdout.write(text + "\n")
    if json_path:
        Path(json_path).write_text(text + "\n", encoding="utf-8")


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def tree_memory(proc) -> tuple[int, int]:
    """(PSS, RSS) bytes of a process and all its descendants, summed ((0, 0) once it is gone)."""
    import psutil

    pss = rss = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            info = p.memory_full_info()
        except psutil.Error:
            continue
        pss, rss = pss + info.pss, rss + info.rss
    return pss, rss
