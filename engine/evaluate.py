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

from engine.evalstats import pass_at_k, pass_at_k_curve, wilson_interval
from engine.rewards.parsing import is_correct, parse_response, think_token_split

log = logging.getLogger(__name__)


@dataclass
class Source:
    label: str
    model: Any  # engine.spec.ModelSpec
    adapter: Path | None = None
    prompt_mode: str = "think"
    role: str = "source"  # base, sft, checkpoint, trained, or source (anything named on the command line)
    stage: str | None = None  # a checkpoint's stage and step
    step: int | None = None
    run_id: int | None = None  # the run whose weights these are (so a view can offer to export them)


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


BUDGET_ANSWER_TOKENS = 32  # what a budget-forced answer may still take after the think block is closed
FORCED_CLOSE = "\n</think>\n<answer>"


def _spec_near(path: Path):
    from engine.spec import load_spec

    for folder in (path, *path.parents[:3]):
        if (folder / "spec.toml").is_file():
            return load_spec(folder / "spec.toml")
    return None


def _trained_base(model, adapter: Path):
    """The base the adapter was trained on, as its adapter_config.json records it, when that folder is still there
    (a source like builtin:tiny-random may point at another folder by now)."""
    import dataclasses
    import json

    try:
        recorded = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return model
    if recorded and Path(recorded).is_dir() and (Path(recorded) / "config.json").is_file():
        return dataclasses.replace(model, source=recorded)
    return model


def resolve_source(text: str, store=None, default_model=None) -> Source:
    """Turn a source string into the model (and adapter) to evaluate; raises ValueError naming the source."""
    from engine.spec import ModelSpec

    text = text.strip()
    if text.startswith("run:"):
        parts = text.split(":")
        try:
            run_id = int(parts[1])
        except (IndexError, ValueError):
            raise ValueError(f"source {text!r}: write run:ID or run:ID:STEP") from None
        if store is None:
            raise ValueError(f"source {text!r} needs the run store")
        run = store.get_run(run_id)
        from engine.spec import spec_from_dict

        spec = spec_from_dict(run["spec"])
        arts = store.artifacts(run_id)
        if len(parts) > 2:
            stage = parts[2] if len(parts) > 3 else None
            try:
                step = int(parts[-1])
            except ValueError:
                raise ValueError(f"source {text!r}: write run:ID:STEP or run:ID:STAGE:STEP") from None
            found = sorted((a for a in arts if a["kind"] == "checkpoint" and a["meta"].get("step") == step
                            and stage in (None, a["meta"].get("stage") or a["stage"])),
                           key=lambda a: a["stage"] == "grpo")  # GRPO's checkpoint when SFT has one too
            if not found:
                raise ValueError(f"source {text!r}: run {run_id} has no checkpoint at step {step}")
            adapter = Path(found[-1]["path"])
            return Source(text, _trained_base(spec.model, adapter), adapter, spec.rewards.resolved_prompt_mode(),
                          role="checkpoint", stage=found[-1]["meta"].get("stage") or found[-1]["stage"], step=step,
                          run_id=run_id)
        else:
            found = [a for a in arts if a["kind"] == "adapter"]
            if not found:
                raise ValueError(f"source {text!r}: run {run_id} has no final adapter yet ({run['status']})")
            adapter = Path(found[-1]["path"])
        return Source(text, _trained_base(spec.model, adapter), adapter, spec.rewards.resolved_prompt_mode(),
                      role="trained", run_id=run_id)
    path = Path(text).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file():
        spec = _spec_near(path)
        if spec is None:
            raise ValueError(f"source {text!r}: an adapter without a spec.toml beside it; Ponder cannot tell its "
                             "base model")
        return Source(text, _trained_base(spec.model, path), path, spec.rewards.resolved_prompt_mode())
    model = ModelSpec(source=text) if default_model is None or text != "base" else default_model
    return Source(text if text != "base" else "base", model)


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


def _generate_ids(model, tokenizer, rows: list[list[int]], max_new_tokens: int, settings: EvalSettings,
                  num_return_sequences: int = 1) -> list[list[int]]:
    """New token ids after each row of ids (left-padded into one batch); stops at EOS like `generate`."""
    import torch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=model.device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=model.device)
    sample = settings.temperature > 0
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=sample,
                             temperature=settings.temperature if sample else None, top_p=None, top_k=None,
                             num_return_sequences=num_return_sequences, pad_token_id=pad)
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    new = []
    for row in out[:, width:].tolist():
        cut = next((j + 1 for j, t in enumerate(row) if t in eos), len(row))  # up to and with EOS
        new.append(row[:cut])
    return new


def generate_budgeted(model, tokenizer, prompts: list[str], settings: EvalSettings, budget: int,
                      progress=None) -> list[list[tuple]]:
    """Budget forcing (s1): think for at most `budget` tokens, then close the think block and answer.

    Phase 1 generates `budget` tokens. A completion that ended (EOS) is kept; one that closed its think
    block itself goes on as usual, up to max_completion_length in all; one still thinking after exactly
    `budget` tokens gets FORCED_CLOSE appended and BUDGET_ANSWER_TOKENS more to write its answer, and a
    closing </answer> if it wrote none. Returns (text, completion token ids) like `generate`."""
    import torch

    tokenizer.padding_side = "left"
    torch.manual_seed(settings.seed)
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    forced = tokenizer(FORCED_CLOSE, add_special_tokens=False)["input_ids"]
    close_answer = tokenizer("</answer>", add_special_tokens=False)["input_ids"]
    out: list[list[tuple]] = []
    k = settings.num_samples
    for start in range(0, len(prompts), settings.batch_size):
        chunk = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[start:start + settings.batch_size]]
        first = _generate_ids(model, tokenizer, chunk, budget, settings, num_return_sequences=k)
        heads = [chunk[i // k] for i in range(len(first))]  # (len(chunk) * k,) prompt ids per completion
        done = [bool(ids) and ids[-1] in eos for ids in first]
        closed = ["</think>" in tokenizer.decode(ids, skip_special_tokens=True) for ids in first]
        completions = [list(ids) for ids in first]
        for group, extra, more in ((True, [], settings.max_completion_length - budget),
                                   (False, forced, BUDGET_ANSWER_TOKENS)):
            todo = [i for i in range(len(first)) if not done[i] and closed[i] == group]
            if not todo or more <= 0:
                continue
            for i in todo:
                completions[i] += extra
            tails = _generate_ids(model, tokenizer, [heads[i] + completions[i] for i in todo], more, settings)
            for i, tail in zip(todo, tails, strict=True):
                completions[i] += tail
                if not group and "</answer>" not in tokenizer.decode(tail, skip_special_tokens=True):
                    completions[i] += close_answer
        for i in range(len(chunk)):
            out.append([(tokenizer.decode(ids, skip_special_tokens=True), ids)
                        for ids in completions[i * k:(i + 1) * k]])
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
    import gc

    from engine.models import load_model
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
    gc.collect()
    return out


def run_examples(spec, n: int | None = None) -> list[dict]:
    """The run's held-out problems, as its eval stage draws them (its data seed, difficulty mix and columns)."""
    from engine.data import load_examples

    d = spec.data
    return load_examples(d.source, n=d.eval_size if n is None else n, seed=d.seed, split="eval",
                         difficulty_mix=d.mix(), columns=d.columns())


def run_sources(store, run_id: int, checkpoints: str | list[int] = "final", compare_base: bool = True) -> list[Source]:
    """What a run's evaluation covers: its base model, the SFT adapter (when RL followed), the chosen checkpoints
    ("final" = none, "all", or a list of steps) in training order, and the final trained adapter."""
    from engine.spec import spec_from_dict

    run = store.get_run(run_id)
    spec = spec_from_dict(run["spec"])
    mode = spec.rewards.resolved_prompt_mode()
    arts = store.artifacts(run_id)
    adapters = {(a["meta"].get("stage") or a["stage"]): Path(a["path"]) for a in arts if a["kind"] == "adapter"}
    trained = adapters.get("grpo") or adapters.get("prefer") or adapters.get("sft") or next(
        (Path(a["path"]) for a in reversed(arts) if a["kind"] == "adapter"), None)
    sources = [Source("base", spec.model, None, mode, role="base")] if compare_base or trained is None else []
    sft = adapters.get("sft")
    if compare_base and sft is not None and trained is not None and sft != trained:
        sources.append(Source("sft", _trained_base(spec.model, sft), sft, mode, role="sft", run_id=run_id))
    if checkpoints != "final":
        order = {stage: i for i, stage in enumerate(("sft", "prefer", "grpo"))}
        found = {}
        for a in arts:
            stage, step = a["meta"].get("stage") or a["stage"], a["meta"].get("step")
            if a["kind"] == "checkpoint" and step is not None and stage != "judge" and Path(a["path"]).is_dir():
                found[(stage, step)] = Path(a["path"])
        wanted = None if checkpoints == "all" else set(checkpoints)
        if wanted is not None and wanted - {step for _, step in found}:
            missing = sorted(wanted - {step for _, step in found})
            have = ", ".join(str(step) for _, step in sorted(found)) or "none"
            raise ValueError(f"run {run_id} has no checkpoint at step {', '.join(map(str, missing))} "
                             f"(checkpoints: {have})")
        for (stage, step), path in sorted(found.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
            if wanted is None or step in wanted:
                sources.append(Source(f"{stage} step {step}", _trained_base(spec.model, path), path, mode,
                                      role="checkpoint", stage=stage, step=step, run_id=run_id))
    if trained is not None:
        sources.append(Source("trained", _trained_base(spec.model, trained), trained, mode, role="trained",
                              run_id=run_id))
    return sources


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
            for text in ev["sources"]:
                parts = text.strip().split(":")
                if settings.checkpoints != "final" and len(parts) == 2 and parts[0] == "run" and parts[1].isdigit():
                    sources += run_sources(store, int(parts[1]), settings.checkpoints)
                    runs.append(int(parts[1]))
                else:
                    sources.append(resolve_source(text, store, default_model))
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
        store.update_evaluation(eval_id, sources=[s.label for s in sources])
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
