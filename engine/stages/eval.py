"""Evaluation stage: the trained model (and the base, for the deltas) on the held-out split.

Every generation goes to the `generations` table under one `evaluations` row for the run, the
summary (pass@1, pass@k, tokens, think-rate by difficulty, EoT, dAcc%, dTok%) to that row and
to the run's metrics (stage "eval"), so the Runs page and the model card can show them.
"""

from __future__ import annotations

from pathlib import Path

from engine.evaluate import EvalSettings, Source, run_evaluation
from engine.stages import StageContext, is_main_process

STAGE = "eval"


def run(ctx: StageContext) -> str:
    from engine.data import load_examples

    if not is_main_process():  # generation is not sharded: one process evaluates and writes
        return "succeeded"
    spec, e = ctx.spec, ctx.spec.eval
    trained = ctx.outputs.get("grpo_adapter") or ctx.outputs.get("prefer_adapter") or ctx.outputs.get("sft_adapter")
    if trained is None:
        found = [a for a in ctx.store.artifacts(ctx.run_id) if a["kind"] == "adapter"]
        trained = found[-1]["path"] if found else None
    examples = load_examples(spec.data.source, n=spec.data.eval_size, seed=spec.data.seed, split="eval",
                             difficulty_mix=spec.data.mix(), columns=spec.data.columns())
    settings = EvalSettings(num_samples=e.num_samples, temperature=e.temperature,
                            max_completion_length=e.max_completion_length, batch_size=e.batch_size,
                            prompt_mode=spec.rewards.resolved_prompt_mode(), seed=spec.seed)
    sources = (["base"] if e.compare_base or trained is None else []) + ([str(trained)] if trained else [])
    sft = ctx.outputs.get("sft_adapter")
    if e.compare_base and sft and trained and str(sft) != str(trained):
        sources.insert(1, f"sft:{sft}")  # the table the papers show: base, after SFT, after RL
    eval_id = ctx.store.create_evaluation(sources, spec.data.source, len(examples), settings.__dict__,
                                          run_id=ctx.run_id)
    ctx.store.set_stage(ctx.run_id, STAGE, total_steps=len(sources) * len(examples), progress=0)
    ctx.event("info", f"eval: {len(examples)} held-out prompts x {e.num_samples} sample(s) on "
                      f"{', '.join(_source(s, ctx).label for s in sources)}", STAGE)
    summary = run_evaluation(ctx.store, eval_id, placement=ctx.placement, examples=examples,
                             default_model=spec.model, sources=[_source(s, ctx) for s in sources])
    ctx.store.set_stage(ctx.run_id, STAGE, progress=len(sources) * len(examples))
    trained_label = "trained" if trained else "base"
    for label, values in summary.items():
        prefix = "eval/" if label in (trained_label, "deltas") else f"eval/{label}/"
        ctx.store.add_metrics(ctx.run_id, STAGE, 0, {prefix + k: v for k, v in values.items()
                                                     if isinstance(v, int | float)})
    ours = summary.get(trained_label, {})
    line = f"eval: accuracy {ours.get('accuracy', float('nan')):.3f}, {ours.get('tokens', float('nan')):.1f} tokens"
    if "deltas" in summary:
        d = summary["deltas"]
        base = summary["base"]
        line += (f" (base {base['accuracy']:.3f}, {base['tokens']:.1f} tokens; dAcc "
                 f"{d.get('d_accuracy_pct', float('nan')):+.1f}%, dTok {d.get('d_tokens_pct', float('nan')):+.1f}%)")
    ctx.event("info", line, STAGE)
    ctx.outputs["eval_id"] = eval_id
    return "succeeded"


def _source(text: str, ctx: StageContext) -> Source:
    """"base" is the run's base model, "sft:PATH" the SFT adapter, anything else the trained adapter."""
    mode = ctx.spec.rewards.resolved_prompt_mode()
    if text == "base":
        return Source("base", ctx.spec.model, None, mode)
    if text.startswith("sft:"):
        return Source("sft", ctx.spec.model, Path(text[4:]), mode)
    return Source("trained", ctx.spec.model, Path(text), mode)
