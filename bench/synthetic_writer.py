"""A stand-in worker that writes a GRPO run's metrics and traces to the store at a fixed pace.

    python bench/synthetic_writer.py STORE RUN_ID [--rate 20] [--series 15] [--traces 64] [--seconds 10]

It registers itself as the run's worker (status running, its pid), then writes `rate` steps
per second, each step `series` metrics, `traces` completions, the stage progress and an
event, through RunStore exactly as the worker does; it marks the run succeeded at the end.
No torch: it starts fast and costs the CPU only what the store writes cost.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time

SERIES = ("reward", "rewards/accuracy/mean", "rewards/format/mean", "accuracy", "think_rate", "tokens/think",
          "tokens/answer", "tokens/completion", "loss", "learning_rate", "tokens_per_s", "kl", "step_time",
          "grad_norm", "entropy", "frac_reward_zero_std", "completions/clipped_ratio", "reward_std")
COMPLETION = ("Let me add the tens first: 40 + 20 = 60, then the ones: 7 + 5 = 12, so 60 + 12 = 72. "
              "Check: 72 - 25 = 47, which matches.\n</think>\n<answer>72</answer>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("run_id", type=int)
    parser.add_argument("--rate", type=float, default=20.0, help="steps per second")
    parser.add_argument("--series", type=int, default=15, help="metrics per step")
    parser.add_argument("--traces", type=int, default=64, help="completions per step")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    import psutil

    from engine.store import RunStore

    rng = random.Random(0)
    names = SERIES[: args.series] if args.series <= len(SERIES) else \
        SERIES + tuple(f"extra/{i}" for i in range(args.series - len(SERIES)))
    with RunStore(args.store) as store:
        store.update_run(args.run_id, status="running", pid=os.getpid(),
                         pid_started=psutil.Process().create_time())
        steps = max(1, round(args.rate * args.seconds))
        store.set_stage(args.run_id, "grpo", status="running", started=time.time(), total_steps=steps,
                        progress=0)
        t0 = time.perf_counter()
        late = 0
        for step in range(1, steps + 1):
            values = {n: math.sin(step / 50 + i) + rng.random() * 0.1 for i, n in enumerate(names)}
            store.add_metrics(args.run_id, "grpo", step, values)
            store.add_traces([{
                "run_id": args.run_id, "stage": "grpo", "step": step, "prompt_id": f"p{step}-{k // 4}",
                "prompt": f"What is {step} + {k}?", "completion": COMPLETION, "think_tokens": 40,
                "answer_tokens": 6, "tokens": 46, "mode": "think", "correct": k % 2, "reward": rng.random(),
                "rewards": json.dumps({"accuracy": float(k % 2), "format": 1.0}), "difficulty": 1 + k % 5,
            } for k in range(args.traces)])
            store.set_stage(args.run_id, "grpo", progress=step)
            if step % 20 == 0:
                store.log_event(args.run_id, "info", f"step {step}", "grpo", step)
            wait = t0 + step / args.rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            else:
                late += 1
        store.update_run(args.run_id, status="succeeded", finished=time.time())
        store.set_stage(args.run_id, "grpo", status="succeeded", finished=time.time())
        elapsed = time.perf_counter() - t0
    sys.stdout.write(json.dumps({"steps": steps, "seconds": elapsed, "steps_per_s": steps / elapsed,
                                 "late_steps": late}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
