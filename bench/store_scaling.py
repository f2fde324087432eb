"""Run store scaling: insert cost per metric and trace row, and the monitor's poll queries, as it grows.

    python bench/store_scaling.py [--sizes 1e3,1e4,1e5,1e6] [--json OUT]

At each size (rows in `metrics` and in `traces`, spread over 20 earlier runs) a new run
writes through RunStore exactly as the worker does: `add_metrics` (15 values, one step) and
`add_traces` (64 completions, one step); the monitor's poll `metrics_since(run_id, last_id)`
then returns that step's 15 rows, and `traces_since` its 64. Medians over repeats. Target:
flat (the 1e6 figure within a small factor of the 1e3 one).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

from common import emit, median, scratch_home

METRICS_PER_STEP, TRACES_PER_STEP, OLD_RUNS = 15, 64, 20
NAMES = [f"metric/{i}" for i in range(METRICS_PER_STEP)]
COMPLETION = ("Let me add the tens first: 40 + 20 = 60, then the ones: 7 + 5 = 12, so 60 + 12 = 72.\n"
              "</think>\n<answer>72</answer>")


def grow(store, table: str, target: int, run_ids: list[int]) -> None:
    """Bulk-fill `table` to `target` rows, in blocks per run (runs write one after another)."""
    have = store.db.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    need = target - have
    if need <= 0:
        return
    rng = random.Random(target)
    now = time.time()
    per_run = -(-need // len(run_ids))
    for run_id in run_ids:
        for start in range(0, per_run, 50_000):
            n = min(50_000, per_run - start, need)
            if n <= 0:
                break
            if table == "metrics":
                rows = [(run_id, "grpo", (start + i) // METRICS_PER_STEP, NAMES[i % METRICS_PER_STEP],
                         rng.random(), now) for i in range(n)]
                sql = "INSERT INTO metrics (run_id, stage, step, name, value, time) VALUES (?, ?, ?, ?, ?, ?)"
            else:
                rewards = '{"accuracy": 1.0, "format": 1.0}'
                rows = [(run_id, "grpo", (start + i) // TRACES_PER_STEP, f"p{i}", f"What is {i} + 7?",
                         COMPLETION, 40, 6, 46, "think", i % 2, rng.random(), rewards, 1 + i % 5)
                        for i in range(n)]
                sql = ("INSERT INTO traces (run_id, stage, step, prompt_id, prompt, completion, "
                       "think_tokens, answer_tokens, tokens, mode, correct, reward, rewards, difficulty) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            with store.db.conn:
                store.db.conn.executemany(sql, rows)
            need -= n
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def measure(store, repeats: int) -> dict[str, float]:
    """Per-row insert cost and poll cost (ms) for a fresh run in the store as it is now."""
    run_id = store.create_run("bench-poll", {}, "")
    rng = random.Random(0)
    metric_insert, trace_insert, poll_metrics, poll_traces, last = [], [], [], [], []
    after_m = after_t = 0
    for step in range(1, repeats + 1):
        values = {n: rng.random() for n in NAMES}
        t0 = time.perf_counter()
        store.add_metrics(run_id, "grpo", step, values)
        metric_insert.append((time.perf_counter() - t0) * 1000 / METRICS_PER_STEP)
        traces = [{"run_id": run_id, "stage": "grpo", "step": step, "prompt_id": f"p{k}",
                   "prompt": "What is 1 + 1?", "completion": COMPLETION, "think_tokens": 40,
                   "answer_tokens": 6, "tokens": 46, "mode": "think", "correct": 1, "reward": 1.0,
                   "rewards": json.dumps({"accuracy": 1.0}), "difficulty": 1}
                  for k in range(TRACES_PER_STEP)]
        t0 = time.perf_counter()
        store.add_traces(traces)
        trace_insert.append((time.perf_counter() - t0) * 1000 / TRACES_PER_STEP)
        t0 = time.perf_counter()
        rows = store.metrics_since(run_id, after_m)
        poll_metrics.append((time.perf_counter() - t0) * 1000)
        assert len(rows) == METRICS_PER_STEP, len(rows)
        after_m = rows[-1]["id"]
        t0 = time.perf_counter()
        trows = store.traces_since(run_id, after_t)
        poll_traces.append((time.perf_counter() - t0) * 1000)
        assert len(trows) == TRACES_PER_STEP, len(trows)
        after_t = trows[-1]["id"]
        t0 = time.perf_counter()
        store.last_metrics(run_id)
        last.append((time.perf_counter() - t0) * 1000)
    return {"metric_insert_ms_per_row": median(metric_insert),
            "trace_insert_ms_per_row": median(trace_insert),
            "poll_metrics_since_ms": median(poll_metrics), "poll_traces_since_ms": median(poll_traces),
            "last_metrics_ms": median(last)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e3,1e4,1e5,1e6")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]

    home = scratch_home("store")
    from engine.store import RunStore

    rows = []
    with RunStore(home / "ponder.db") as store:
        old = [store.create_run(f"old-{i}", {}, "") for i in range(OLD_RUNS)]
        for size in sizes:
            t0 = time.perf_counter()
            grow(store, "metrics", size, old)
            grow(store, "traces", size, old)
            filled = time.perf_counter() - t0
            figures = measure(store, args.repeats)
            mb = (home / "ponder.db").stat().st_size / 2**20
            rows.append({"rows": size, **figures, "db_mb": round(mb, 1), "fill_s": round(filled, 1)})
            said = ", ".join(f"{k} {v:.4g}" for k, v in figures.items())
            sys.stderr.write(f"{size:>9} rows: {said}\n")
    first, last = rows[0], rows[-1]
    growth = {k: last[k] / first[k] for k in first if k.endswith("_ms") or k.endswith("_row")}
    emit({"benchmark": "store_scaling", "sizes": rows, "growth_largest_vs_smallest": growth,
          "target": "flat"}, args.json)
    import shutil

    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
