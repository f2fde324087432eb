"""GUI cold start: seconds from launching `ponder` (the GUI entry point) to its first painted window.

    QT_QPA_PLATFORM=offscreen python bench/startup.py [--repeats 5] [--json OUT]

Each start is a fresh interpreter (bench/startup_probe.py runs desktop.entry.main and quits at
the main window's first paint) on a fresh Ponder home and settings folder. The time runs from
just before the process is created to the end of that paint, as a user would see it. The
probe also reports whether torch (or any of the ML stack) was imported by then: it must not
be. Median of the repeats; the first (coldest) is shown too. Target: <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from common import ROOT, child_env, emit, median  # noqa: E402

TARGET_S = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    probe = Path(__file__).with_name("startup_probe.py")
    times, loaded, phases = [], set(), []
    for _ in range(args.repeats):
        scratch = Path(tempfile.mkdtemp(prefix="ponder-bench-startup-"))
        env = child_env(PONDER_HOME=str(scratch / "home"), XDG_CONFIG_HOME=str(scratch / "config"))
        t0 = time.time()
        out = subprocess.run([sys.executable, str(probe)], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode != 0 or not lines:
            raise RuntimeError(f"the startup probe failed (exit {out.returncode}):\n{out.stdout}\n"
                               f"{out.stderr[-3000:]}")
        report = json.loads(lines[-1])
        times.append(report["painted"] - t0)
        loaded |= set(report["loaded"])
        marks = report["marks"]
        phases.append({"python_start": marks["interpreter"] - t0,
                       "qt_application": marks["qapplication"] - marks["interpreter"],
                       "import_desktop_app": marks["imports"] - marks["qapplication"],
                       "window_and_first_paint": report["painted"] - marks["imports"]})
    emit({"benchmark": "startup", "seconds_to_first_paint": median(times), "first_start_s": times[0],
          "all_s": times, "phases_median_s": {k: median(p[k] for p in phases) for k in phases[0]},
          "ml_stack_loaded_at_first_paint": sorted(loaded), "torch_loaded": "torch" in loaded,
          "target": f"<= {TARGET_S} s, torch not loaded"}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
