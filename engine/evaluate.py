"""Evaluation: generate on held-out prompts, score, and summarise the way the papers report it.

Used by the eval stage, by `ponder eval` / `ponder compare`, and by the GUI's Compare page
(which starts `python -m engine.evaluate EVAL_ID` and polls the `evaluations` table).

Sources (what is evaluated):
  base model sources   bundled:..., builtin:..., a folder, a .gguf file, a hub id
  run:ID               the run's final adapter on its base model
  run:ID:STEP          the run's checkpoint at STEP
  a folder with adapter_config.json (an exported adapter or a checkpoint): its base model is
  read from the spec.toml beside it (or the run folder above it)
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.rewards.parsing import is_correct, parse_response, think_token_split

log = logging.getLogger(__name__)


@dataclass
class Source:
    label: str
    model: Any  # engine.spec.ModelSpec
    adapter: Path | None = None
    prompt_mode: str = "think"


@dataclass
class EvalSettings:
    num_samples: int = 1
    temperature: float = 0.0
    max_completion_length: int = 256
    batch_size: int = 16
    prompt_mode: str = "" # "" = each source's own (a run's spec), else think
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


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
            step = int(parts[2])
            found = sorted((a for a in arts if a["kind"] == "checkpoint" and a["meta"].get("step") == step),
                           key=lambda a: ("sft", "prefer", "grpo").index(a["stage"])
                           if a["stage"] in ("sft", "prefer", "grpo") else -1)  # the latest stage's at that step
            if not found:
                raise ValueError(f"source {text!r}: run {run_id} has no checkpoint at step {step}")
            adapter = Path(found[-1]["path"])
        else:
            found = [a for a in arts if a["kind"] == "adapter"]
            if not found:
                raise ValueError(f"source {text!r}: run {run_id} has no final adapter yet ({run['status']})")
            adapter = Path(found[-1]["path"])
        return Source(text, _trained_base(spec.model, adapter), adapter, spec.rewards.resolved_prompt_mode())
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


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


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
    for k in sorted({1, 2, 4, 8, 16, num_samples}):
        if k <= num_samples:
            out[f"pass@{k}"] = mean([pass_at_k(len(g), sum(r["correct"] for r in g), k) for g in by_prompt.values()])
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


def evaluate_source(source: Source, examples: list[dict], settings: EvalSettings, placement=None,
                    progress=None) -> list[dict]:
    """Load `source`, generate on `examples`, return scored rows. Frees the model afterwards."""
    import gc

    from engine.models import load_model
    from engine.prompts import PREFIXES, render_prompt

    model, tokenizer, _ = load_model(source.model, placement=placement, adapter=source.adapter)
    model.eval()
    mode = settings.prompt_mode or source.prompt_mode or "think"
    prompts = [render_prompt(ex["question"], tokenizer, mode) for ex in examples]
    groups = generate(model, tokenizer, prompts, settings, progress)
    rows = score(examples, PREFIXES.get(mode, ""), groups, tokenizer)
    del model
    gc.collect()
    return rows


def run_evaluation(store, eval_id: int, placement=None, default_model=None, examples=None,
                   sources: list[Source] | None = None) -> dict[str, Any]:
    """Evaluate every source of an `evaluations` row on the same prompts; store generations and the summary."""
    import os

    import psutil

    from engine.data import load_examples

    ev = store.get_evaluation(eval_id)
    settings = EvalSettings(**ev["settings"])
    store.update_evaluation(eval_id, status="running", pid=os.getpid(),
                            pid_started=psutil.Process().create_time())
    try:
        if examples is None:
            examples = load_examples(ev["task"], n=ev["n"], seed=settings.seed, split="eval")
        if sources is None:
            sources = [resolve_source(s, store, default_model) for s in ev["sources"]]
        seen: set[str] = set()
        for s in sources:  # the same source twice (a seed check) still gets two columns
            base, k = s.label, 2
            while s.label in seen:
                s.label, k = f"{base} ({k})", k + 1
            seen.add(s.label)
        store.update_evaluation(eval_id, sources=[s.label for s in sources])
        total = len(sources) * len(examples)
        store.update_evaluation(eval_id, total=total)
        summary: dict[str, Any] = {}
        for i, source in enumerate(sources):
            def progress(done, _n, offset=i * len(examples)):
                store.update_evaluation(eval_id, progress=offset + done)
                if ev["run_id"] is not None:
                    store.set_stage(ev["run_id"], "eval", progress=offset + done)

            started = time.time()
            rows = evaluate_source(source, examples, settings, placement, progress)
            store.add_generations({**{k: v for k, v in r.items() if k != "answer"}, "eval_id": eval_id,
                                   "source": source.label, "reward": None} for r in rows)
            summary[source.label] = summarize(rows, settings.num_samples) | {"seconds": time.time() - started}
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
