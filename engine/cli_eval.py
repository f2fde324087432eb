"""`ponder eval` and `ponder compare`: held-out evaluation of one or two sources, with its summary table
and the efficiency-frontier chart."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.cli import EXIT_FAILED, EXIT_USAGE, _err, _out
from engine.progress import fmt_duration


def _print_summary(summary: dict) -> None:
    keys = ["accuracy", "pass@1", "tokens", "think_tokens", "answer_tokens", "think_rate", "eot"]
    labels = [k for k in summary if k != "deltas"]
    _out(f"{'':<16}" + "".join(f"{label[-22:]:>24}" for label in labels))
    extra = sorted({k for label in labels for k in summary[label] if k.startswith(("pass@", "accuracy/d"))})
    for key in keys + [k for k in extra if k not in keys]:
        _out(f"{key:<16}" + "".join(f"{summary[label].get(key, float('nan')):>24.4g}" for label in labels))
    for key, value in summary.get("deltas", {}).items():
        _out(f"{key:<16}{value:>+24.1f}")
    for label in labels:
        for point in summary[label].get("budgets") or []:
            _out(f"{label[-22:]:<24} budget {point['budget']:>5}: accuracy {point['accuracy']:.3f}, "
                 f"{point['tokens']:.1f} tokens ({point['think_tokens']:.1f} thinking)")


def _checkpoints_arg(text: str) -> str | list[int]:
    """--checkpoints final | all | 10,20,30"""
    if text in ("final", "all"):
        return text
    try:
        steps = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"write final, all, or steps like 10,20; got {text!r}") from None
    if not steps or min(steps) < 1:
        raise argparse.ArgumentTypeError(f"steps start at 1; got {text!r}")
    return steps


def _budgets_arg(text: str) -> list[int]:
    try:
        budgets = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"write token budgets like 8,16,32; got {text!r}") from None
    if not budgets or budgets[0] < 1:
        raise argparse.ArgumentTypeError(f"a thinking budget is at least 1 token; got {text!r}")
    return budgets


def write_plot(store_path: Path, eval_id: int, out: Path) -> bool:
    """The efficiency-frontier chart of an evaluation as a PNG, drawn by the desktop's chart in a headless
    process (the engine itself never imports Qt)."""
    import os
    import subprocess

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    argv = [sys.executable, "-m", "desktop.widgets.evalplot", str(eval_id), "--store", str(store_path),
            "--out", str(out)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        _out(f"could not write the chart: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return done.returncode == 0


def _input_problem(store, args) -> str | None:
    """What is wrong with the sources or the task, found as the evaluation would find it (a run that does
    not exist or has no adapter, an adapter folder without its spec, a data file that cannot be read);
    None when nothing is. Loading the models is left to the evaluation."""
    from engine.data import load_examples
    from engine.eval_sources import resolve_row, run_sources
    from engine.store.schema import source_row

    try:
        for text in args.sources:
            row = source_row(text)
            if args.checkpoints != "final" and row["kind"] == "run":  # as run_evaluation reads such a row
                run_sources(store, row["run_id"], args.checkpoints)
            else:
                resolve_row(row, store)
        load_examples(args.task, n=args.n, seed=args.seed, split="eval")
    except (ValueError, KeyError) as exc:  # DataError and RunNotFound among them; their str() is the message
        return str(exc)
    return None


def cmd_eval(args) -> int:
    from engine.spec import EvalSpec

    # the spec's eval rules, said with the options' names
    options = {"num_samples": "--samples", "temperature": "--temperature", "max_completion_length": "--max-tokens",
               "batch_size": "--batch-size"}
    problems = [f"{options.get(e.field, e.field)}: {e.message}" for e in EvalSpec(
        num_samples=args.samples, temperature=args.temperature, max_completion_length=args.max_tokens,
        batch_size=args.batch_size).problems("")]
    if args.n < 1:
        problems.insert(0, f"--n: the number of prompts must be at least 1; got {args.n}.")
    if problems:  # before anything heavy is imported or loaded
        _err("\n".join(problems))
        return EXIT_USAGE
    from engine.evaluate import run_evaluation
    from engine.store import RunStore

    settings = {"num_samples": args.samples, "temperature": args.temperature,
                "max_completion_length": args.max_tokens, "batch_size": args.batch_size, "seed": args.seed,
                "prompt_mode": args.prompt_mode, "budgets": args.budgets or [],
                "checkpoints": args.checkpoints}
    if args.budgets and max(args.budgets) >= args.max_tokens:
        _out(f"--budgets: {max(args.budgets)} thinking tokens leave no room to answer within --max-tokens "
             f"{args.max_tokens}")
        return EXIT_USAGE
    with RunStore(args.store) as store:
        problem = _input_problem(store, args)
        if problem:  # refused before the evaluation is registered: bad input writes nothing to the store
            _err(f"evaluation not started: {problem}")
            return EXIT_USAGE
        eval_id = store.create_evaluation(args.sources, args.task, args.n, settings)
        _out(f"evaluation {eval_id}: {' vs '.join(args.sources)} on {args.n} held-out prompts of {args.task}")
        last = [0.0]

        def report(done: int, total: int, started: float) -> None:
            if time.time() - last[0] >= 2 or done == total:
                last[0] = time.time()
                left = (time.time() - started) / done * (total - done) if done else None
                _out(f"progress {done}/{total} answers  ETA {fmt_duration(left)}")

        try:
            summary = run_evaluation(store, eval_id, report=report)
        except Exception as exc:  # noqa: BLE001 - reported, not raised, at the command line
            _out(f"evaluation failed: {type(exc).__name__}: {exc}")
            return EXIT_FAILED
        _print_summary(summary)
        if args.plot is not None and write_plot(store.path, eval_id, args.plot):
            _out(f"chart: {args.plot}")
    return 0
