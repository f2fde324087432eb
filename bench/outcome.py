"""`make outcome`: does Ponder's pipeline give a model that thinks only as much as a problem needs?

    python bench/outcome.py [--spec resources/specs/quickstart.toml] [--n 240] [--json OUT]
    python bench/outcome.py --report bench/results/outcome.json   # reprint a measured run

On the bundled SmolLM2-135M and the spec's built-in task mix:
1. the long-CoT reference: SFT on the built-in long traces, with the spec's SFT data, steps, batch and
   learning rate (the baseline the papers compare against: a model that always reasons at length);
2. Ponder's pipeline: the spec as shipped (`ponder run SPEC`, its own evaluation included), timed;
3. base, reference, Ponder after SFT and Ponder's final model on the same N held-out problems, greedy,
   the same token limit for all: accuracy with a 95% bootstrap interval, mean completion tokens
   (thinking / answer), think-rate and accuracy per difficulty level, dTok% and dAcc% against the
   reference, and a paired bootstrap of final vs. SFT on the same prompts;
4. the SFT model once more with its think block closed for it (what answering directly costs per
   level), and from it the best accuracy any per-level mix of thinking and direct answers could reach
   within the issue's token and think-rate targets (`mode_mix_bound`).

Each training run is a real worker process (`python -m engine.worker`) on a scratch store; wall time
comes from the store's stage rows, memory from the worker's own metrics and from polling the whole
process tree. Prints a table and writes bench/results/outcome.json; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common import RESULTS, SPECS, machine, scratch_home, tree_memory

BOOTSTRAP = 10_000


# ---- statistics ------------------------------------------------------------------------------------

def bootstrap_ci(values, reps: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """95% percentile interval of the mean of `values`, resampling items with replacement."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(v), size=(reps, len(v)))
    means = v[idx].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def paired(a_rows: list[dict], b_rows: list[dict], reps: int = BOOTSTRAP, seed: int = 1) -> dict:
    """b minus a on the same prompts: accuracy and tokens, each with a 95% interval and the share of
    resamples on the other side of 0 (a one-sided bootstrap p)."""
    import numpy as np

    a = {r["prompt_id"]: r for r in a_rows}
    pairs = [(a[r["prompt_id"]], r) for r in b_rows if r["prompt_id"] in a]
    out: dict = {"prompts": len(pairs)}
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(pairs), size=(reps, len(pairs)))
    for key in ("correct", "tokens"):
        d = np.array([y[key] - x[key] for x, y in pairs], dtype=float)
        means = d[idx].mean(axis=1)
        out[key] = {"diff": float(d.mean()), "ci": [float(np.percentile(means, 2.5)),
                                                     float(np.percentile(means, 97.5))],
                    "p_not_above_0": float((means <= 0).mean()), "p_not_below_0": float((means >= 0).mean())}
    ta = np.array([x["tokens"] for x, _ in pairs], dtype=float)
    tb = np.array([y["tokens"] for _, y in pairs], dtype=float)
    ratios = 1 - tb[idx].mean(axis=1) / ta[idx].mean(axis=1)
    out["token_reduction"] = {"value": float(1 - tb.mean() / ta.mean()),
                              "ci": [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]}
    return out


def describe(rows: list[dict]) -> dict:
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    out = {"accuracy": mean([r["correct"] for r in rows]), "accuracy_ci": bootstrap_ci([r["correct"] for r in rows]),
           "tokens": mean([r["tokens"] for r in rows]), "tokens_ci": bootstrap_ci([r["tokens"] for r in rows]),
           "think_tokens": mean([r["think_tokens"] for r in rows]),
           "answer_tokens": mean([r["answer_tokens"] for r in rows]),
           "think_rate": mean([r["mode"] == "think" for r in rows]),
           "accuracy_by_level": {}, "think_rate_by_level": {}, "tokens_by_level": {}, "prompts_by_level": {}}
    for level in sorted({r["difficulty"] for r in rows}):
        group = [r for r in rows if r["difficulty"] == level]
        out["accuracy_by_level"][str(level)] = mean([r["correct"] for r in group])
        out["think_rate_by_level"][str(level)] = mean([r["mode"] == "think" for r in group])
        out["tokens_by_level"][str(level)] = mean([r["tokens"] for r in group])
        out["prompts_by_level"][str(level)] = len(group)
    return out


def mode_mix_bound(models: dict, think: str = "final", skip: str = "sft, thinking skipped",
                   reference: str = "reference", token_cut: float = 0.8, easy_max: float = 0.2,
                   hard_min: float = 0.8) -> dict:
    """The best accuracy any per-level choice of mode could reach within the issue's targets, from what
    was measured: on level l a share p_l of the problems is answered as `think` answered them (accuracy
    a_l, tokens t_l) and the rest as `skip` did (b_l, u_l). Maximise sum n_l (p_l a_l + (1 - p_l) b_l)
    subject to sum n_l (p_l t_l + (1 - p_l) u_l) <= (1 - token_cut) * reference tokens * N, with
    p_easiest <= easy_max and p_hardest >= hard_min (and once without the think-rate limits). One
    budget and box limits: a fractional knapsack, which the greedy fill by gain per token solves
    exactly. The problems within a level are taken as alike (no foresight of which ones a mode gets
    right); the skipped answers' tokens leave out the "</think>" the model would have to write, which
    only favours the bound."""
    a, b = models[think], models[skip]
    levels = sorted(a["prompts_by_level"], key=int)
    n = {lv: a["prompts_by_level"][lv] for lv in levels}
    budget = (1 - token_cut) * models[reference]["tokens"] * sum(n.values())
    out = {"think_from": think, "skip_from": skip, "token_budget_per_prompt": budget / sum(n.values()),
           "reference_accuracy": models[reference]["accuracy"]}
    targets = {levels[0]: (0.0, easy_max), levels[-1]: (hard_min, 1.0)}
    for name, limits in (("with_think_rate_targets", targets), ("tokens_only", {})):
        p = {lv: limits.get(lv, (0.0, 1.0))[0] for lv in levels}
        cost = lambda q: sum(n[lv] * (q[lv] * a["tokens_by_level"][lv]  # noqa: E731
                                      + (1 - q[lv]) * b["tokens_by_level"][lv]) for lv in levels)
        if cost(p) > budget:
            out[name] = {"feasible": False, "tokens": cost(p) / sum(n.values())}
            continue
        gain = {lv: (a["accuracy_by_level"][lv] - b["accuracy_by_level"][lv],
                     a["tokens_by_level"][lv] - b["tokens_by_level"][lv]) for lv in levels}
        for lv in sorted(levels, key=lambda lv: -gain[lv][0] / max(gain[lv][1], 1e-9)):
            d_acc, d_tok = gain[lv]
            if d_acc <= 0:
                continue
            room = limits.get(lv, (0.0, 1.0))[1] - p[lv]
            p[lv] += min(room, (budget - cost(p)) / (n[lv] * d_tok) if d_tok > 0 else room)
        acc = sum(n[lv] * (p[lv] * a["accuracy_by_level"][lv] + (1 - p[lv]) * b["accuracy_by_level"][lv])
                  for lv in levels) / sum(n.values())
        out[name] = {"feasible": True, "accuracy": acc, "tokens": cost(p) / sum(n.values()),
                     "think_rate_by_level": p}
    return out


# ---- runs ------------------------------------------------------------------------------------------

def run_spec(spec, store) -> dict:
    """One real worker run of `spec`; returns its id, folder, wall time, the process tree's peak PSS (each
    page shared with the fork server counted once; the RSS sum beside it) and per-stage seconds and
    memory (the worker's own metrics)."""
    import psutil

    from engine.launch import create_run, spawn_worker

    run_id, run_dir = create_run(spec, store)
    started = time.time()
    proc = spawn_worker(run_dir, store)
    watched = psutil.Process(proc.pid)
    peak = peak_rss_sum = 0.0
    while proc.poll() is None:
        pss, rss = tree_memory(watched)
        peak, peak_rss_sum = max(peak, pss / 2**30), max(peak_rss_sum, rss / 2**30)
        time.sleep(0.5)
    wall = time.time() - started
    run = store.get_run(run_id)
    if run["status"] != "succeeded":
        raise RuntimeError(f"run {run_id} ({spec.name}) {run['status']}: {(run.get('error') or '')[:2000]}\n"
                           f"see {run_dir / 'worker.log'}")
    stages = {}
    metrics = store.metrics_since(run_id)
    for s in store.stages(run_id):
        rss = [m["value"] for m in metrics if m["stage"] == s["stage"] and m["name"] == "memory/rss_gb"]
        stages[s["stage"]] = {"seconds": (s["finished"] or 0) - (s["started"] or 0),
                              "max_rss_gb": max(rss) if rss else None}
    sys.stderr.write(f"{spec.name}: {run['status']} in {wall:.0f} s, peak {peak:.2f} GiB (PSS)\n")
    out = {"run_id": run_id, "run_dir": str(run_dir), "wall_s": wall, "peak_pss_gb": peak,
           "peak_rss_sum_gb": peak_rss_sum, "stages": stages,
           "load_avg_after": machine().get("load_avg")}
    (run_dir / "outcome-run.json").write_text(json.dumps(out, indent=2))
    return out


def forced_no_think(source, examples: list[dict], settings) -> list[dict]:
    """`source` made to skip thinking: its prompt with the think block already closed. What answering every
    problem directly would cost, per level (the tokens counted are the model's own, after "</think>\\n")."""
    from engine.evaluate import generate, score
    from engine.models import load_model
    from engine.prompts import PREFIXES, render_prompt

    model, tokenizer, _ = load_model(source.model, adapter=source.adapter)
    model.eval()
    closed = "</think>\n"
    prompts = [render_prompt(ex["question"], tokenizer, source.prompt_mode) + closed for ex in examples]
    groups = generate(model, tokenizer, prompts, settings)
    return score(examples, PREFIXES.get(source.prompt_mode, "") + closed, groups, tokenizer)


def adapter_of(store, run_id: int, stage: str) -> Path:
    found = [a for a in store.artifacts(run_id, "adapter") if a["stage"] == stage]
    if not found:
        raise RuntimeError(f"run {run_id} saved no {stage} adapter")
    return Path(found[-1]["path"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPECS / "quickstart.toml")
    parser.add_argument("--n", type=int, default=240, help="held-out problems (the same for every model)")
    parser.add_argument("--max-tokens", type=int, default=160, help="new tokens per completion, every model")
    parser.add_argument("--batch-size", type=int, default=24)
    parser.add_argument("--json", default=str(RESULTS / "outcome.json"))
    parser.add_argument("--home", type=Path, default=None,
                        help="a Ponder home to keep the runs in; a reference trained there before with the same "
                             "settings is reused (default: a fresh scratch home)")
    parser.add_argument("--report", type=Path, default=None, metavar="JSON",
                        help="train and evaluate nothing: print the table of an earlier run's JSON, with the "
                             "figures derived from it recomputed, and write it to --json")
    args = parser.parse_args()
    if args.report:
        result = json.loads(args.report.read_text(encoding="utf-8"))
        result["mode_mix_bound"] = mode_mix_bound(result["models"])
        report(result)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        return 0

    if args.home:
        args.home.mkdir(parents=True, exist_ok=True)
        os.environ["PONDER_HOME"] = str(args.home.resolve())
    else:
        scratch_home("outcome")
    from engine.data import load_examples
    from engine.evaluate import EvalSettings, Source, run_evaluation
    from engine.spec import load_spec
    from engine.store import RunStore

    spec = load_spec(args.spec)
    # the reference: the same SFT data, steps, batch and learning rate on the long traces, think prompt
    reference = spec.replace(**{"name": "long-cot-reference", "stages": ["sft"], "sft.trace": "reasoning",
                                "rewards.preset": "r1-zero", "rewards.weights": {}, "rewards.prompt_mode": ""})
    load_before = machine().get("load_avg")
    result: dict = {"spec": str(args.spec), "prompts": args.n, "max_completion_length": args.max_tokens,
                    "decoding": "greedy", "runs": {}}
    with RunStore() as store:
        earlier = [r for r in store.list_runs() if r["status"] == "succeeded" and r["spec"] == reference.to_dict()]
        if earlier:  # the baseline stays fixed: the same settings, the same trained reference
            result["runs"]["reference"] = json.loads((Path(earlier[-1]["run_dir"]) / "outcome-run.json").read_text())
            sys.stderr.write(f"reusing the reference of run {earlier[-1]['id']}\n")
        else:
            result["runs"]["reference"] = run_spec(reference, store)
        result["runs"]["ponder"] = run_spec(spec, store)
        ref_id, ponder_id = result["runs"]["reference"]["run_id"], result["runs"]["ponder"]["run_id"]
        mode = spec.rewards.resolved_prompt_mode()
        sources = [Source("base", spec.model, None, mode),
                   Source("reference", spec.model, adapter_of(store, ref_id, "sft"), "think"),
                   Source("sft", spec.model, adapter_of(store, ponder_id, "sft"), mode),
                   Source("final", spec.model, adapter_of(store, ponder_id, "grpo" if "grpo" in spec.stages
                                                          else "sft"), mode)]
        examples = load_examples(spec.data.source, n=args.n, seed=spec.data.seed, split="eval",
                                 difficulty_mix=spec.data.mix(), columns=spec.data.columns())
        settings = EvalSettings(max_completion_length=args.max_tokens, batch_size=args.batch_size,
                                seed=spec.seed)
        eval_id = store.create_evaluation([s.label for s in sources], spec.data.source, len(examples),
                                          settings.__dict__)
        started = time.time()
        summary = run_evaluation(store, eval_id, examples=examples, sources=sources)
        result["eval_seconds"] = {k: v.get("seconds") for k, v in summary.items() if k != "deltas"}
        rows: dict[str, list[dict]] = {}
        for g in store.generations(eval_id):
            rows.setdefault(g["source"], []).append(g)
        sys.stderr.write(f"evaluation of {len(sources)} models on {len(examples)} prompts: "
                         f"{time.time() - started:.0f} s\n")
        started = time.time()
        rows["sft, thinking skipped"] = forced_no_think(sources[2], examples, settings)
        result["eval_seconds"]["sft, thinking skipped"] = time.time() - started
    result["prompts"] = len(examples)
    result["models"] = {label: describe(rows[label]) for label in ("base", "reference", "sft", "final",
                                                                   "sft, thinking skipped")}
    ref = result["models"]["reference"]
    for m in result["models"].values():
        m["d_tokens_pct_vs_reference"] = 100 * (ref["tokens"] - m["tokens"]) / ref["tokens"]
        m["d_accuracy_pct_vs_reference"] = 100 * (m["accuracy"] - ref["accuracy"]) / ref["accuracy"]
    result["paired_final_vs_sft"] = paired(rows["sft"], rows["final"])
    result["paired_final_vs_reference"] = paired(rows["reference"], rows["final"])
    result["mode_mix_bound"] = mode_mix_bound(result["models"])
    result["machine"] = {**machine(), "load_avg_before": load_before}
    result["quickstart_wall_s"] = result["runs"]["ponder"]["wall_s"]
    report(result)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


def report(r: dict) -> None:
    w = sys.stdout.write
    levels = sorted({lv for m in r["models"].values() for lv in m["accuracy_by_level"]}, key=int)
    w(f"\n{r['prompts']} held-out problems, greedy, at most {r['max_completion_length']} new tokens\n\n")
    w("| model | accuracy [95% CI] | tokens (thinking + answer) | dTok% / dAcc% vs reference | think-rate "
      + " ".join(f"d{lv}" for lv in levels) + " | accuracy " + " ".join(f"d{lv}" for lv in levels) + " |\n")
    w("| --- | --- | --- | --- | --- | --- |\n")
    for label, m in r["models"].items():
        lo, hi = m["accuracy_ci"]
        w(f"| {label} | {m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | {m['tokens']:.1f} ({m['think_tokens']:.1f} + "
          f"{m['answer_tokens']:.1f}) | {m['d_tokens_pct_vs_reference']:+.1f}% / "
          f"{m['d_accuracy_pct_vs_reference']:+.1f}% | "
          + " ".join(f"{m['think_rate_by_level'][lv]:.2f}" for lv in levels) + " | "
          + " ".join(f"{m['accuracy_by_level'][lv]:.2f}" for lv in levels) + " |\n")
    counts = r["models"]["final"]["prompts_by_level"]
    w("\nprompts per level: " + ", ".join(f"d{lv} {counts[lv]}" for lv in levels) + "\n")
    for name in ("paired_final_vs_sft", "paired_final_vs_reference"):
        p = r[name]
        c, t = p["correct"], p["tokens"]
        w(f"{name}: accuracy {c['diff']:+.3f} [{c['ci'][0]:+.3f}, {c['ci'][1]:+.3f}], tokens {t['diff']:+.1f} "
          f"[{t['ci'][0]:+.1f}, {t['ci'][1]:+.1f}], token reduction {p['token_reduction']['value']:.1%} "
          f"[{p['token_reduction']['ci'][0]:.1%}, {p['token_reduction']['ci'][1]:.1%}]\n")
    bound = r["mode_mix_bound"]
    w(f"best per-level mix of {bound['think_from']!r} (thinking) and {bound['skip_from']!r} within "
      f"{bound['token_budget_per_prompt']:.1f} tokens (80% under the reference; its accuracy "
      f"{bound['reference_accuracy']:.3f}):\n")
    for name in ("with_think_rate_targets", "tokens_only"):
        b = bound[name]
        w(f"  {name.replace('_', ' ')}: " + (
            f"accuracy {b['accuracy']:.3f} at {b['tokens']:.1f} tokens, think-rate "
            + " ".join(f"d{lv} {v:.2f}" for lv, v in b["think_rate_by_level"].items()) if b["feasible"]
            else f"no mix fits (the limits alone cost {b['tokens']:.1f} tokens)") + "\n")
    for name, run in r["runs"].items():
        stages = ", ".join(f"{s} {v['seconds']:.0f} s"
                           + (f" ({v['max_rss_gb']:.1f} GB)" if v.get("max_rss_gb") else "")
                           for s, v in run["stages"].items())
        peak = (f"{run['peak_pss_gb']:.2f} GiB (process tree's PSS; RSS sum {run['peak_rss_sum_gb']:.2f})"
                if "peak_pss_gb" in run else f"{run['peak_rss_gb']:.2f} GiB (process tree's RSS sum)")  # older runs
        w(f"{name}: {run['wall_s']:.0f} s wall, peak {peak}; {stages}\n")
    w(f"evaluation seconds per model: {', '.join(f'{k} {v:.0f}' for k, v in r['eval_seconds'].items())}\n")
    w(f"machine: {r['machine']}\n")


if __name__ == "__main__":
    sys.exit(main())
