"""Evaluation: generate on held-out prompts, score, and summarise the way the papers report it.

Used by the eval stage, by `ponder eval` / `ponder compare`, and by the GUI's Compare page
(which starts `python -m engine.evaluate EVAL_ID` and polls the `evaluations` table).

Sources (what is evaluated):
  base model sources   bundled:..., builtin:..., a folder, a .gguf file, a hub id
  run:ID               the run's final adapter on its base model
  run:ID:STEP          the run's checkpoint at STEP (run:ID:STAGE:STEP where two stages saved one at STEP)
  a folder with adapter_config.json (an exported adapter or a checkpoint): its base model is
  read from the spec.toml beside it (or the run folder above it)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.budget_forcing import FORCED_CLOSE, generate_budgeted  # noqa: F401 (FORCED_CLOSE: for callers)
from engine.eval_sources import (  # noqa: F401
    Source,
    _trained_base,
    resolve_row,
    resolve_source,
    run_examples,
    run_sources,
    source_record,
)
from engine.evalstats import pass_at_k, pass_at_k_curve, wilson_interval
from engine.rewards.parsing import is_correct, parse_response, think_token_split

log = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    num_samples: int = 1
    temperature: float = 0.0
    max_completion_length: int = 256
    batch_size: int = 16
    prompt_mode: str = "" # "" = each source's own (a run's spec), else think
    seed: int = 0
    budgets: list[int] = field(default_factory=list)  # thinking budgets, each evaluated by budget forcing
    checkpoints: str | list[int] = "final"  # a run:ID source covers "final", "all" or these steps (run_sources)
    extra: dict[str, Any] = field(default_factory=dict)



def generate(model, tokenizer, prompts: list[str], settings: EvalSettings, progress=None) -> list[list[tuple]]:
    """`num_samples` completions per prompt as (text, token ids); batched with left padding."""
    import torch

    tokenizer.padding_side = "left"
    out: list[list[tuple]] = []
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    sample = settings.temperature > 0
    torch.manual_seed(settings.seed)
    for start in range(0, len(prompts), settings.batch_size):
        chunk = prompts[start:start + settings.batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            ids = model.generate(**enc, max_new_tokens=settings.max_completion_length, do_sample=sample,
                                 temperature=settings.temperature if sample else None, top_p=None, top_k=None,
                                 num_return_sequences=settings.num_samples, pad_token_id=tokenizer.pad_token_id)
        new = ids[:, enc["input_ids"].shape[1]:].tolist()
        for i in range(len(chunk)):
            group = []
            for row in new[i * settings.num_samples:(i + 1) * settings.num_samples]:
                cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))  # up to and with EOS
                group.append((tokenizer.decode(row[:cut], skip_special_tokens=True), row[:cut]))
            out.append(group)
        if progress:
            progress(min(start + settings.batch_size, len(prompts)), len(prompts))
    return out


def score(examples: list[dict], prompts_prefix: str, groups: list[list[tuple]], tokenizer) -> list[dict]:
    rows = []
    for ex, group in zip(examples, groups, strict=True):
        for k, (text, ids) in enumerate(group):
            parsed = parse_response(text, prompts_prefix)
            think, ans = think_token_split(text, len(ids), tokenizer, prompts_prefix)
            rows.append({"prompt_id": ex["id"], "prompt": ex["question"], "completion": text, "tokens": len(ids),
                         "think_tokens": think, "answer_tokens": ans, "mode": parsed.mode,
                         "correct": int(is_correct(parsed.answer, str(ex["answer"]))),
                         "difficulty": int(ex.get("difficulty") or 0), "sample": k, "answer": str(ex["answer"])})
    return rows


def summarize(rows: list[dict], num_samples: int) -> dict[str, Any]:
    """pass@1 (averaged over samples), pass@k, mean tokens (thinking, answer; correct, wrong), think-rate by
    difficulty, and efficiency of thinking EoT = accuracy / mean thinking tokens (SketchThinker-R1)."""
    if not rows:
        return {}
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    by_prompt: dict[str, list[dict]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    out: dict[str, Any] = {
        "accuracy": mean([r["correct"] for r in rows]),
        "tokens": mean([r["tokens"] for r in rows]),
        "think_tokens": mean([r["think_tokens"] for r in rows]),
        "answer_tokens": mean([r["answer_tokens"] for r in rows]),
        "tokens_correct": mean([r["tokens"] for r in rows if r["correct"]]),
        "tokens_wrong": mean([r["tokens"] for r in rows if not r["correct"]]),
        "think_rate": mean([r["mode"] == "think" for r in rows]),
        "prompts": len(by_prompt), "samples": num_samples,
    }
    out["eot"] = out["accuracy"] / out["think_tokens"] if out["think_tokens"] else float("nan")
    out["n_rows"] = len(rows)
    out["ci95"] = list(wilson_interval(sum(r["correct"] for r in rows), len(rows)))
    groups = [(len(g), sum(r["correct"] for r in g)) for g in by_prompt.values()]
    n = min(g[0] for g in groups)
    for k in sorted({1, 2, 4, 8, 16, n}):
        if k <= n:
            out[f"pass@{k}"] = mean([pass_at_k(gn, gc, k) for gn, gc in groups])
    if n > 1:
        out["pass_curve"] = pass_at_k_curve(groups)  # mean pass@k for k = 1..n
    for level in sorted({r["difficulty"] for r in rows if r["difficulty"]}):
        group = [r for r in rows if r["difficulty"] == level]
        out[f"accuracy/d{level}"] = mean([r["correct"] for r in group])
        out[f"think_rate/d{level}"] = mean([r["mode"] == "think" for r in group])
        out[f"tokens/d{level}"] = mean([r["tokens"] for r in group])
    return out


def deltas(base: dict[str, Any], new: dict[str, Any]) -> dict[str, float]:
    """Relative changes vs. the base, as the papers report: dAcc% = (Acc-Acc0)/Acc0, dTok% = (Tok0-Tok)/Tok0."""
    out = {}
    if base.get("accuracy"):
        out["d_accuracy_pct"] = 100 * (new["accuracy"] - base["accuracy"]) / base["accuracy"]
    if base.get("tokens"):
        out["d_tokens_pct"] = 100 * (base["tokens"] - new["tokens"]) / base["tokens"]
    return out


def generation_key(source: Source, examples: list[dict], settings: EvalSettings, mode: str,
                   budget: int | None) -> str:
    """What identifies a set of generations: the model and adapter (with its weights' mtime, so a folder
    trained again is not mistaken for the old one), the decoding settings, the prompt mode and budget, and the
    prompts with their reference answers. Equal keys mean the same outputs; they are reused, not regenerated."""
    import dataclasses

    adapter = None
    if source.adapter is not None:
        folder = Path(source.adapter).resolve()
        weights = sorted(folder.glob("adapter_model.*"))
        adapter = [str(folder), *(w.stat().st_mtime for w in weights)]
    model = dataclasses.asdict(source.model) if dataclasses.is_dataclass(source.model) else str(source.model)
    what = {"model": model, "adapter": adapter, "mode": mode, "budget": budget,
            "settings": {k: v for k, v in dataclasses.asdict(settings).items()
                         if k not in ("budgets", "checkpoints", "extra", "prompt_mode")},
            "prompts": [(str(ex["id"]), ex["question"], str(ex["answer"])) for ex in examples]}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:32]


def evaluate_source(source: Source, examples: list[dict], settings: EvalSettings, placement=None,
                    progress=None, budgets: list[int | None] | None = None) -> dict[int | None, list[dict]]:
    """Load `source` once, generate on `examples` without a budget (None) and under each budget; scored rows
    per budget. Frees the model afterwards."""
    from engine.models import load_model, release_memory
    from engine.prompts import PREFIXES, render_prompt

    budgets = [None] if budgets is None else budgets
    model, tokenizer, _ = load_model(source.model, placement=placement, adapter=source.adapter)
    model.eval()
    mode = settings.prompt_mode or source.prompt_mode or "think"
    prompts = [render_prompt(ex["question"], tokenizer, mode) for ex in examples]
    out = {}
    for j, budget in enumerate(budgets):
        def step(done, _n, offset=j * len(examples)):
            if progress:
                progress(offset + done, len(budgets) * len(examples))

        groups = generate(model, tokenizer, prompts, settings, step) if budget is None else \
            generate_budgeted(model, tokenizer, prompts, settings, budget, step)
        out[budget] = [r | {"budget": budget} for r in score(examples, PREFIXES.get(mode, ""), groups, tokenizer)]
    del model
    release_memory()  # the next source loads its own copy: this one's pages go back first
    return out


def _summary_of(rows_by_budget: dict[int | None, list[dict]], settings: EvalSettings, source: Source) -> dict:
    out = summarize(rows_by_budget[None], settings.num_samples)
    out |= {"role": source.role, "stage": source.stage, "step": source.step, "run_id": source.run_id,
            "adapter": str(source.adapter) if source.adapter else None}
    curve = []
    for budget, rows in rows_by_budget.items():
        if budget is not None and rows:
            s = summarize(rows, settings.num_samples)
            curve.append({"budget": budget, **{k: s[k] for k in ("accuracy", "tokens", "think_tokens",
                                                                  "answer_tokens", "ci95")}})
    if curve:
        out["budgets"] = sorted(curve, key=lambda c: c["budget"])
    return out


def run_evaluation(store, eval_id: int, placement=None, default_model=None, examples=None,
                   sources: list[Source] | None = None, report=None) -> dict[str, Any]:
    """Evaluate every source of an `evaluations` row on the same prompts; store generations and the summary.

    A source whose generations under the same key (model, settings, prompts, budget) are already in the store
    is not generated again: those rows are copied into this evaluation. `report(done, total, started)` hears
    the progress (the CLI prints it with an ETA)."""
    import os

    import psutil

    from engine.data import load_examples

    ev = store.get_evaluation(eval_id)
    settings = EvalSettings(**ev["settings"])
    began = time.time()
    store.update_evaluation(eval_id, status="running", pid=os.getpid(),
                            pid_started=psutil.Process().create_time(), started=began)
    try:
        runs = []  # run:ID sources that cover the run's checkpoints
        if sources is None:
            sources = []
            for row in ev["source_rows"]:
                if settings.checkpoints != "final" and row["kind"] == "run":
                    sources += run_sources(store, row["run_id"], settings.checkpoints)
                    runs.append(row["run_id"])
                else:
                    sources.append(resolve_row(row, store, default_model))
        if examples is None and runs:
            from engine.spec import spec_from_dict

            spec = spec_from_dict(store.get_run(runs[0])["spec"])
            if spec.data.source == ev["task"]:  # the problems its eval stage saw, so its answers can be reused
                examples = run_examples(spec, ev["n"])
        if examples is None:
            examples = load_examples(ev["task"], n=ev["n"], seed=settings.seed, split="eval")
        seen: set[str] = set()
        for s in sources:  # the same source twice (a seed check) still gets two columns
            base, k = s.label, 2
            while s.label in seen:
                s.label, k = f"{base} ({k})", k + 1
            seen.add(s.label)
        store.set_eval_sources(eval_id, [source_record(s) for s in sources])
        # the run's eval stage follows this evaluation's progress only while that stage is what runs it
        # (an evaluation of a finished run's checkpoints must not touch its stages)
        stage_runs = ev["run_id"] is not None and any(
            st["stage"] == "eval" and st["status"] == "running" for st in store.stages(ev["run_id"]))
        budgets: list[int | None] = [None, *sorted(set(settings.budgets))]
        per_source = len(budgets) * len(examples)
        store.update_evaluation(eval_id, total=len(sources) * per_source)
        summary: dict[str, Any] = {}
        for i, source in enumerate(sources):
            def progress(done, _n, offset=i * per_source):
                store.update_evaluation(eval_id, progress=offset + done)
                if report is not None:
                    report(offset + done, len(sources) * per_source, began)
                if stage_runs:
                    store.set_stage(ev["run_id"], "eval", progress=offset + done)

            started = time.time()
            mode = settings.prompt_mode or source.prompt_mode or "think"
            keys = {b: generation_key(source, examples, settings, mode, b) for b in budgets}
            count = len(examples) * settings.num_samples
            reused = {b: store.reusable_generations(keys[b], count, exclude_eval=eval_id) for b in budgets}
            todo = [b for b in budgets if not reused[b]]
            rows_by_budget = evaluate_source(source, examples, settings, placement, progress, todo) if todo else {}
            answers = {str(ex["id"]): str(ex["answer"]) for ex in examples}
            for b in budgets:
                if reused[b]:
                    rows_by_budget[b] = [{k: v for k, v in r.items() if k not in ("id", "eval_id", "source")}
                                         | {"answer": answers.get(r["prompt_id"], "")} for r in reused[b]]
                store.add_generations({**{k: v for k, v in r.items() if k not in ("answer", "reward", "key")},
                                       "eval_id": eval_id, "source": source.label, "reward": None,
                                       "key": keys[b]} for r in rows_by_budget[b])
            progress(per_source, per_source)
            summary[source.label] = _summary_of(rows_by_budget, settings, source) | {
                "seconds": time.time() - started, "reused": not todo}
            store.update_evaluation(eval_id, summary=summary)  # each source's result as soon as it is known
        if len(sources) >= 2:  # the last against the first: trained vs. base, or B vs. A
            summary["deltas"] = deltas(summary[sources[0].label], summary[sources[-1].label])
        store.update_evaluation(eval_id, status="succeeded", summary=summary, finished=time.time())
        return summary
    except BaseException as exc:
        store.update_evaluation(eval_id, status="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time())
        raise


def main(argv: list[str] | None = None) -> int:
    """`python -m engine.evaluate EVAL_ID [--store DB]`: run an evaluation the GUI or CLI registered."""
    from engine.store import RunStore

    parser = argparse.ArgumentParser(prog="python -m engine.evaluate")
    parser.add_argument("eval_id", type=int)
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with RunStore(args.store) as store:
        try:
            run_evaluation(store, args.eval_id)
        except Exception:
            log.exception("evaluation %s failed", args.eval_id)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
