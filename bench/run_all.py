"""`make bench`: every benchmark, one after another, each in its own process; figures, never a verdict.

    QT_QPA_PLATFORM=offscreen python bench/run_all.py [--only NAME,...] [--quick]

Writes bench/results/latest.json (every benchmark's full output and the machine) and prints a
markdown table for the README's "Performance" section. PONDER_BENCH_BUNDLED=1 adds the GRPO
overhead and rollout benchmarks on the bundled SmolLM2-135M (minutes per run on a CPU) and the
per-stage memory of a short bundled quickstart.
--quick shrinks repeats and sizes to check that everything runs (its figures mean little).
Run it on a quiet machine: the figures are ratios measured side by side, but a loaded CPU
still spreads them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, ROOT, child_env, fmt, machine

HERE = Path(__file__).resolve().parent


def benchmarks(bundled: bool, quick: bool) -> list[tuple[str, list[str]]]:
    q = quick
    runs = [
        ("grpo_overhead", ["grpo_overhead.py", "--profile",
                           *(["--steps", "3", "--repeats", "1"] if q else [])]),
        ("rollout_throughput", ["rollout_throughput.py", *(["--repeats", "2"] if q else [])]),
        ("gui_latency", ["gui_latency.py", *(["--seconds", "4"] if q else [])]),
        ("compare_poll", ["compare_poll.py", *(["--generations", "1000"] if q else [])]),
        ("startup", ["startup.py", *(["--repeats", "2"] if q else [])]),
        ("store_scaling", ["store_scaling.py", *(["--sizes", "1e3,1e4", "--repeats", "10"] if q else [])]),
    ]
    if bundled:
        runs[1:1] = [("grpo_overhead_bundled", ["grpo_overhead.py", "--bundled",
                                                *(["--steps", "2", "--repeats", "1"] if q else [])])]
        runs.insert(3, ("rollout_throughput_bundled", ["rollout_throughput.py", "--bundled",
                                                       *(["--repeats", "2"] if q else [])]))
        runs.append(("stage_memory", ["stage_memory.py", *(["--grpo-steps", "2"] if q else [])]))
    return runs


def run_one(name: str, argv: list[str]) -> dict:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.unlink(missing_ok=True)
    sys.stderr.write(f"\n=== {name}: {' '.join(argv)}\n")
    t0 = time.time()
    with open(RESULTS / f"{name}.log", "w") as log:  # the benchmark's own output; progress goes to stderr
        rc = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:], "--json", str(out)], cwd=ROOT,
                            env=child_env(QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen")),
                            stdout=log, timeout=4 * 3600).returncode
    took = time.time() - t0
    if rc != 0 or not out.is_file():
        tail = (RESULTS / f"{name}.log").read_text(errors="replace")[-2000:]
        sys.stderr.write(f"=== {name} failed (exit {rc}) after {took:.0f} s; "
                         f"see {RESULTS / (name + '.log')}\n")
        return {"error": f"exit {rc}", "log_tail": tail, "seconds": took}
    result = json.loads(out.read_text())
    result["seconds"] = took
    sys.stderr.write(f"=== {name} done in {took:.0f} s\n")
    return result


def _rows(n: int) -> str:
    return f"{n:.0e}".replace("e+0", "e").replace("e+", "e")


def _ok(flag: bool | None) -> str:
    return "" if flag is None else ("yes" if flag else "**no**")


def table(results: dict[str, dict]) -> str:
    """One row per figure: what was measured, the target, the result, whether it meets the target."""
    rows = []
    for name, r in results.items():
        if "error" in r:
            rows.append((name, "did not run: " + r["error"], "", "", ""))
            continue
        if name.startswith("grpo_overhead"):
            ratio = r.get("ratio")
            rows.append((f"GRPO s/step, Ponder vs bare TRL ({r['model']})",
                         f"{fmt(r['ponder_s_per_step'])} vs {fmt(r['bare_trl_s_per_step'])} s/step",
                         "<= 1.03x", f"{fmt(ratio)}x", _ok(ratio <= 1.03 if ratio else None)))
            if "profile" in r:
                per_step = r["profile"].get("callbacks_s_per_step")
                rows.append(("  Ponder's callbacks (cProfile)", f"{fmt(per_step)} s/step", "", "", ""))
        elif name.startswith("rollout_throughput"):
            ratio = r.get("ratio")
            rows.append((f"Rollout tokens/s, GRPO stage vs raw generate ({r['model']})",
                         f"{fmt(r['stage_tokens_per_s'])} vs {fmt(r['raw_generate_tokens_per_s'])} tokens/s; "
                         f"per CPU-second: {fmt(r.get('ratio_cpu'))}; inside training steps: "
                         f"{fmt(r.get('ratio_during_training'))}",
                         ">= 0.95", fmt(ratio), _ok(ratio >= 0.95 if ratio else None)))
        elif name == "gui_latency":
            busy, idle = r["lag_ms_while_writing"], r["lag_ms_idle"]
            rows.append(("GUI event-loop lag, monitor following 20 steps/s (15 series, 64 traces/step)",
                         f"p50 {fmt(busy['p50'], 2)} ms (idle p99 {fmt(idle['p99'], 2)} ms)", "p99 <= 30 ms",
                         f"p99 {fmt(busy['p99'])} ms",
                         _ok(busy["p99"] <= 30 if busy["p99"] is not None else None)))
            red = r["redraw_100k_ms"]
            rows.append((f"Chart redraw, {red['points']:,} points (setData + repaint)",
                         f"p90 {fmt(red['p90'])} ms; 1-px pen: "
                         f"{fmt(r['redraw_100k_ms_pen_width_1']['median'])} ms",
                         "<= 16 ms", f"{fmt(red['median'])} ms", _ok(red["median"] <= 16)))
        elif name == "compare_poll":
            tick, last = r["tick_ms"], r["tick_ms_last_tenth"]
            rows.append((f"Compare page poll tick, {r['generations']:,}-generation comparison "
                         f"({r['per_tick']} new per tick)",
                         f"median {fmt(tick['median'])} ms, last tenth {fmt(last['median'])} ms; opening it "
                         f"finished: {fmt(r['open_finished_ms']['median'])} ms", "<= 16 ms",
                         f"p99 {fmt(tick['p99'])} ms", _ok(tick["p99"] <= 16)))
        elif name == "startup":
            s = r["seconds_to_first_paint"]
            rows.append(("GUI start to first painted window (median of "
                         f"{len(r['all_s'])})", f"first {fmt(r['first_start_s'])} s; torch loaded: "
                         f"{r['torch_loaded']}", "<= 1.5 s", f"{fmt(s)} s",
                         _ok(s <= 1.5 and not r["torch_loaded"])))
        elif name == "stage_memory":
            peak = r["tree_peak_gb"]
            rows.append(("Peak memory (PSS) of a short bundled quickstart (worker's process tree), per stage",
                         ", ".join(f"{k} {fmt(v['peak_gb'])} GB (steady {fmt(v['steady_gb'])})"
                                   for k, v in r["stages"].items()), "<= 3.5 GB", f"{fmt(peak)} GB "
                         f"(largest process {fmt(r['largest_process_peak_gb'])} GB)", _ok(peak <= 3.5)))
        elif name == "store_scaling":
            sizes = r["sizes"]
            lo, hi = sizes[0], sizes[-1]
            for key, label in (("metric_insert_ms_per_row", "Store insert, per metric row"),
                               ("trace_insert_ms_per_row", "Store insert, per trace row"),
                               ("poll_metrics_since_ms", "Monitor poll, metrics_since (15 new rows)"),
                               ("poll_traces_since_ms", "Monitor poll, traces_since (64 new rows)")):
                growth = hi[key] / lo[key]
                rows.append((label, " / ".join(f"{fmt(s[key])}" for s in sizes) + f" ms at "
                             + " / ".join(_rows(s["rows"]) for s in sizes) + " rows", "flat",
                             f"{fmt(growth)}x from {_rows(lo['rows'])} to {_rows(hi['rows'])}",
                             _ok(growth <= 2)))
    lines = ["| Benchmark | Measured | Target | Result | Meets target |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {' | '.join(str(c) for c in row)} |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes: a check that all run")
    args = parser.parse_args(argv)
    bundled = os.environ.get("PONDER_BENCH_BUNDLED") == "1"
    chosen = benchmarks(bundled, args.quick)
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [b for b in chosen if b[0] in wanted]
    before = machine()
    results = {name: run_one(name, argv) for name, argv in chosen}
    report = {"machine_before": before, "machine_after": machine(), "quick": args.quick, "bundled": bundled,
              "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    load = before.get("load_avg")
    sys.stdout.write(f"\n{table(results)}\n\nMeasured {before['time']} on {before['cpus']} CPUs, Python "
                     f"{before['python']}; load average {load} at the start"
                     f"{' (quick run: few repeats)' if args.quick else ''}. Full figures: "
                     f"{(RESULTS / 'latest.json').relative_to(ROOT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
